"""The picker of a reference field: a search box and keyset pages over the target model.

A target collection may hold any number of documents, so the picker lists one page of them (in
the target's list order), searched like the target's list and paged by keyset, and keeps the
chosen document shown even when it is on no listed page. A target that the admin does not serve
is listed by id alone, with no search box (see :func:`_admin_for`). It is plain HTML: its
buttons submit the whole form back (``_pick``) and the page comes back with everything typed
kept and nothing saved. The form's names of its own: ``_search.<field>`` (the search typed),
``_searched.<field>`` (the search the page shows) and the button ``_pick`` (``<field>``,
``<field>:after:<cursor>`` or ``<field>:before:<cursor>``).

A search typed but not run (``_search`` differs from ``_searched``, as when Enter is pressed in
the search box, which submits the form) is run instead of saving: the form is never saved while
a picker shows something else than what was asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import forms, listing, references
from .forms import PICK, SEARCH, SEARCHED, FormError
from .options import ModelAdmin
from .site import AdminSite

PAGE = 50
"""How many documents a picker lists at a time."""

DIRECTIONS = ("after", "before")
"""The ways a picker pages: the page after a cursor, or the page before it."""


@dataclass(frozen=True)
class PickState:
    """What the pickers of a form page show: each one's search, and the page one of them moved
    to (``field``, ``direction`` and ``cursor``; none: every picker at its first page)."""

    searches: dict[str, str] = field(default_factory=dict)
    field: str | None = None
    direction: str | None = None
    cursor: str | None = None
    notice: str | None = None


@dataclass(frozen=True)
class Picker:
    """One reference field's picker: the documents listed, and its neighbouring pages."""

    field: str
    target: str
    search: str
    searchable: tuple[str, ...]
    options: list[tuple[str, str]]
    next_cursor: str | None
    previous_cursor: str | None


def _search_text(form: Mapping[str, str], key: str) -> str:
    return form.get(key, "").strip()[: listing.MAX_SEARCH]


def requested(form: Mapping[str, str], fields: Iterable[str]) -> PickState | None:
    """The picker state a posted form asks for; ``None`` when it asks to be saved.

    ``fields`` are the form's reference fields that have a picker. A ``_pick`` naming another
    field, or malformed, is a :class:`FormError`.
    """
    names = list(fields)
    searches = {name: _search_text(form, SEARCH + name) for name in names}
    unrun = [name for name in names if searches[name] != _search_text(form, SEARCHED + name)]
    action = form.get(PICK)
    if action is None:
        if not unrun:
            return None
        return PickState(searches, notice="The search was run; nothing is saved yet.")
    name, _, rest = action.partition(":")
    if name not in names:
        raise FormError(PICK, f"no reference picker {name!r} in this form")
    direction, _, cursor = rest.partition(":")
    if rest and (direction not in DIRECTIONS or not cursor):
        raise FormError(PICK, f"not a picker action: {action!r}")
    if not rest or name in unrun:
        # A cursor belongs to the search its page was listed for: a new search starts over.
        return PickState(searches, name)
    return PickState(searches, name, direction, cursor)


def _admin_for(site: AdminSite, target: type[Any]) -> tuple[ModelAdmin, bool]:
    """The target's options as a picker uses them (its list's order and search, a page of
    :data:`PAGE`), and whether the picker may search it.

    Only a target this admin serves is searched, with its own list's search: a target it does
    not serve is listed by id alone. Searching it would let the form read what the admin
    otherwise hides (a ``password_hash`` guessed a character at a time, its field names in
    the search box's hint), as Django's autocomplete requires the target's admin too.
    """
    served = site.admin_of(target)
    admin = served or ModelAdmin(target, text_search=False)
    return dataclasses.replace(admin, per_page=PAGE), served is not None


def check_searches(
    site: AdminSite, specs: tuple[forms.FieldSpec, ...], form: Mapping[str, str]
) -> None:
    """Refuse (:class:`FormError`) a search posted to a picker that has no search box (its
    target is not served by this admin)."""
    by_name = {s.name: s for s in specs}
    for key, value in form.items():
        if not key.startswith((SEARCH, SEARCHED)) or not value.strip():
            continue
        spec = by_name.get(key.partition(".")[2])
        if spec is not None and spec.target is not None and site.admin_of(spec.target) is None:
            raise FormError(key, f"{spec.target.__name__} is not searchable in this admin")


async def pickers(
    site: AdminSite,
    specs: tuple[forms.FieldSpec, ...],
    values: Mapping[str, Any],
    state: PickState,
) -> dict[str, Picker]:
    """The picker of every writable top-level reference field, as ``state`` asks."""
    found: dict[str, Picker] = {}
    for spec in specs:
        if spec.name not in picker_fields((spec,)) or spec.target is None:
            continue
        admin, searchable = _admin_for(site, spec.target)
        search = state.searches.get(spec.name, "") if searchable else ""
        query = {"q": search}
        if state.field == spec.name and state.direction and state.cursor:
            query[state.direction] = state.cursor
        try:
            page = await listing.page(admin, query)
        except listing.ListError as exc:
            raise FormError(PICK, str(exc)) from None
        shown_admin = site.admin_of(spec.target)
        options = [(str(doc.id), references.label(shown_admin, doc)) for doc in page.rows]
        current = str(values.get(spec.name) or "")
        if current and current not in {id for id, _ in options}:
            # The chosen document stays chosen, wherever it is in the target's order.
            known = await references.labels(spec.target, shown_admin, [current])
            options.insert(0, (current, known.get(current, current)))
        found[spec.name] = Picker(
            field=spec.name,
            target=admin.verbose_name,
            search=search,
            searchable=admin.searched() if searchable else (),
            options=options,
            next_cursor=page.next_cursor,
            previous_cursor=page.previous_cursor,
        )
    return found


def picker_fields(specs: tuple[forms.FieldSpec, ...]) -> list[str]:
    """The form's fields that have a picker (writable top-level references)."""
    return [
        s.name for s in specs if s.kind == "reference" and s.target is not None and not s.readonly
    ]
