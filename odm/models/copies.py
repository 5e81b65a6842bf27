"""What the copies of one stored document know of it in common.

A copy of a stored document (``copy.copy``, ``copy.deepcopy``, ``model_copy``) is the same
stored document with a snapshot of its own. When one of them is saved, the others' snapshots
no longer say what the database holds: a shallow copy sharing a list with its original then
pushed again what the original had pushed (issue #19 item 3). So the copies of a document form
a :class:`Family` that remembers the stored form last written through any of them, and
``save()`` diffs against it (:func:`known_state`): after ``save()`` of any of them, the stored
document is that object's fields. Each keeps its own snapshot for the write filter, so under
``Meta.optimistic_lock`` a copy saved after another still raises ``StaleDocument``.

A write of one of them cut off without telling whether it ran (:mod:`odm.outcomes`) makes
the family's ``latest`` that document's unsure snapshot; what its next ``save()`` learns from
the stored document is then the family's too (:func:`learnt`), so that neither it nor a copy
of it made since sends again what that write already did.

Objects pickled together (one ``pickle.dumps`` of a list of them) stay one family; a lone
pickled copy starts its own, like a document loaded again (it may be loaded elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .diffing import same
from .tracking import Unsure, family_for, family_of, raw_snapshot, set_family

__all__ = [
    "Family",
    "join",
    "known_state",
    "learn_from",
    "learnt",
    "rejoin",
    "same_family",
    "written",
    "written_each",
]

# Reading an unset slot costs an AttributeError on every save: until a copy of a document
# exists, no document has a family and save() does not look.
_copies_made = False


class Family:
    """The copies of one stored document: ``latest`` is its stored form last written (or
    loaded) through any of them, ``None`` before that."""

    __slots__ = ("latest",)

    def __init__(self, latest: dict[str, Any] | None = None) -> None:
        self.latest = latest

    def __reduce__(self) -> tuple[type[Family], tuple[dict[str, Any] | None]]:
        return Family, (self.latest,)


def join(source: Any, copied: Any) -> None:
    """Make ``copied`` (a copy of ``source``) a member of ``source``'s family."""
    global _copies_made
    _copies_made = True
    family = family_of(source)
    if family is None:
        family = Family(raw_snapshot(source))
        set_family(source, family)
    set_family(copied, family)


def rejoin(document: Any, family: Family | None) -> None:
    """Give an unpickled ``document`` the family it was pickled with."""
    global _copies_made
    if family is not None:
        _copies_made = True
    set_family(document, family)


def known_state(document: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Return what the database holds for ``document`` as far as this process knows: the
    stored form last written through a copy of it when there is a later one than its own
    ``snapshot``, else ``snapshot``."""
    if not _copies_made:
        return snapshot
    family: Family | None = family_of(document)
    if family is None:
        return snapshot
    latest = family.latest
    if latest is None or latest is snapshot or not same(latest.get("_id"), snapshot.get("_id")):
        return snapshot  # a copy given another id is another document
    return latest


def same_family(document: Any, other: Any) -> bool:
    """Tell whether ``document`` and ``other`` are copies of one another (one family)."""
    family = family_of(document)
    return family is not None and family is family_of(other)


def written(document: Any, stored: dict[str, Any]) -> None:
    """Record that ``stored`` is what the database now holds for ``document``."""
    if not _copies_made:
        return
    family: Family | None = family_for(document, stored)
    if family is not None:
        family.latest = stored


def written_each(documents: Iterable[Any], stored: Iterable[dict[str, Any]]) -> None:
    """:func:`written` for each document and what the database now holds for it (a batch
    inserted by ``bulk_create``): nothing per document until a copy of one exists."""
    if not _copies_made:
        return
    for document, raw in zip(documents, stored, strict=True):
        written(document, raw)


def learnt(document: Any, snapshot: dict[str, Any] | None, *, stored: bool) -> None:
    """Record what :func:`odm.outcomes.learn_outcome` learnt for ``document`` after a write of
    it was cut off: ``snapshot``, its new snapshot (``None``: the document is not stored);
    ``stored``: that snapshot is the stored form just read. A snapshot pieced together from
    the one before the write replaces the family's ``latest`` only while that is still unsure
    (a copy written since knows better)."""
    if not _copies_made:
        return
    family: Family | None = family_for(document, snapshot)
    if family is None:
        return
    latest = family.latest
    if snapshot is None or stored or latest is None or isinstance(latest, Unsure):
        family.latest = snapshot


#: A key absent from one side of a merge (:func:`learn_from`).
_ABSENT: Any = object()


def _extends(longer: list[Any], prefix: list[Any]) -> bool:
    """Tell whether list ``longer`` begins with every item of ``prefix``, in order."""
    return len(prefix) <= len(longer) and same(longer[: len(prefix)], prefix)


def learn_from(mine: Any, own: Any, latest: Any) -> tuple[Any, Any]:
    """What a document learns from what a copy of it saved: ``(merged, read)``.

    ``merged`` is ``latest`` (what the copy stored) wherever ``mine`` (the document's stored
    form now) is still ``own`` (its snapshot), and ``mine`` elsewhere: its own changes, an
    append kept as an append, unless the copy saved those very items after ``own``'s (a copy
    made after the appends, or a shallow one sharing the list: appending them again would
    double them). ``read`` is what of ``merged`` was learnt:
    ``merged`` without those changes (``own``'s value where the document changed a value,
    ``merged`` but the items it appended where it appended). Should the block abort, every
    value still equal to ``read`` goes back to what the database holds, and the rest, the
    document's own changes, stays (:func:`odm.journal.take_back_reads`).
    (:data:`_ABSENT`: no such key.)"""
    if mine is own or (mine is not _ABSENT and own is not _ABSENT and same(mine, own)):
        return latest, latest
    if isinstance(mine, dict) and isinstance(own, dict) and isinstance(latest, dict):
        merged: dict[str, Any] = {}
        read: dict[str, Any] = {}
        for key in {**latest, **own, **mine}:
            value, seen = learn_from(
                mine.get(key, _ABSENT), own.get(key, _ABSENT), latest.get(key, _ABSENT)
            )
            if value is not _ABSENT:
                merged[key] = value
            if seen is not _ABSENT:
                read[key] = seen
        return merged, read
    if (
        isinstance(mine, list) and isinstance(own, list) and isinstance(latest, list)
        and len(own) < len(mine) and _extends(mine, own)
    ):
        items = mine[len(own) :]
        if _extends(latest, own) and same(latest[len(own) : len(mine)], items):
            # The copy saved these very appends already (after the document's items): they
            # stay the document's own where nothing follows them, else all is learnt.
            return latest, own if len(latest) == len(mine) else latest
        return latest + items, latest
    return mine, own
