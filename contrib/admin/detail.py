"""The read-only detail page of a document: every field as text, embedded models and lists of
them readable, references as links to their target's detail page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import forms, references
from .site import AdminSite


@dataclass(frozen=True)
class Shown:
    """One value of the detail page, as the template renders it.

    ``kind`` is ``text``, ``empty`` (no value), ``link`` (a reference to a registered model),
    ``code`` (JSON), ``items`` (a list of scalars: ``parts``), ``group`` (an embedded model: its
    fields in ``parts``) or ``table`` (a list of embedded models: ``columns`` and ``rows``).
    ``path`` is the field's path (``lines.0.sku``), which the page carries as ``data-field``.
    """

    path: str
    label: str
    kind: str
    text: str = ""
    href: str = ""
    parts: tuple[Shown, ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Shown, ...], ...] = ()


Labels = dict[type[Any], dict[str, str]]
"""The labels of the referenced documents that exist: by target model, then by id."""


async def shown_document(site: AdminSite, model: type[Any], doc: Any) -> tuple[Shown, ...]:
    """Every field of ``doc`` (a ``model``), as shown; the referenced documents are read with
    one query per target model, for their labels."""
    specs = forms.describe(model)
    wanted: dict[type[Any], set[str]] = {}
    for spec in specs:
        _collect(spec, _part(doc, spec.name), wanted)
    found: Labels = {}
    for target, ids in wanted.items():
        found[target] = await references.labels(target, site.admin_of(target), ids)
    return tuple(_shown(site, spec, spec.name, _part(doc, spec.name), found) for spec in specs)


def _part(value: Any, name: str) -> Any:
    # A stored embedded value is a model; JSON-ish values are mappings.
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _collect(spec: forms.FieldSpec, value: Any, wanted: dict[type[Any], set[str]]) -> None:
    """Note the id of every reference under ``value``, by target model."""
    if value is None:
        return
    if spec.kind == "reference" and spec.target is not None:
        wanted.setdefault(spec.target, set()).add(forms.shown(spec, value))
    elif spec.kind == "embedded":
        for child in spec.children:
            _collect(child, _part(value, child.name), wanted)
    elif spec.kind == "embedded_list":
        for row in value:
            for child in spec.children:
                _collect(child, _part(row, child.name), wanted)


def _shown(site: AdminSite, spec: forms.FieldSpec, path: str, value: Any, found: Labels) -> Shown:
    label = spec.label
    if value is None or (spec.kind in ("embedded_list", "lines") and not value):
        return Shown(path, label, "empty")
    kind = spec.kind
    if kind == "reference" and spec.target is not None:
        return _reference(site, spec.target, path, label, forms.shown(spec, value), found)
    if kind == "embedded":
        parts = tuple(
            _shown(site, c, f"{path}.{c.name}", _part(value, c.name), found) for c in spec.children
        )
        return Shown(path, label, "group", parts=parts)
    if kind == "embedded_list":
        rows = tuple(
            tuple(
                _shown(site, c, f"{path}.{i}.{c.name}", _part(row, c.name), found)
                for c in spec.children
            )
            for i, row in enumerate(value)
        )
        return Shown(path, label, "table", columns=tuple(c.label for c in spec.children), rows=rows)
    if kind == "lines":
        items = tuple(Shown(f"{path}.{i}", label, "text", str(v)) for i, v in enumerate(value))
        return Shown(path, label, "items", parts=items)
    if kind == "json":
        return Shown(path, label, "code", forms.shown(spec, value))
    if kind == "bool":
        return Shown(path, label, "text", "yes" if value else "no")
    if kind == "datetime":
        return Shown(path, label, "text", f"{forms.shown(spec, value).replace('T', ' ')} UTC")
    return Shown(path, label, "text", str(forms.shown(spec, value)))


def _reference(
    site: AdminSite, target: type[Any], path: str, label: str, id: str, found: Labels
) -> Shown:
    """A link to the referenced document's detail page; text when it is gone or its model is
    not in this admin."""
    target_admin = site.admin_of(target)
    known = found.get(target, {}).get(id)
    if known is None:
        return Shown(path, label, "text", f"{id} (no such {target.__name__})")
    if target_admin is None:
        return Shown(path, label, "text", known)
    return Shown(path, label, "link", known, href=site.url(target_admin.slug, id))
