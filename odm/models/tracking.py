"""Change tracking: what ``save()`` sends for a document that was loaded or saved before.

The snapshot is the BSON dict the document was loaded from (or last written), kept on the
instance as it came: no copy on the hot path. ``save()`` dumps the document again and
:func:`diff` compares, producing the smallest update:

- only fields whose value changed are written (``$set``); unknown stored keys are left alone;
- embedded documents and dicts are compared key by key, so a change writes a dotted path
  (``{"$set": {"address.city": "Lyon"}}``) and a removed key is ``$unset``;
- a changed list is written whole, except a pure append (the old list is a prefix of the new
  one), which becomes ``{"$push": {"tags": {"$each": [...]}}}`` so that concurrent appends by
  others survive;
- values equal once stored are not changes: datetimes are compared as BSON keeps them (UTC,
  milliseconds), an ``Enum`` as its value, a tuple as a list.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from typing import Any

__all__ = [
    "collection_model",
    "diff",
    "get_snapshot",
    "has_changes",
    "mark_clean",
    "pending_update",
    "set_snapshot",
]

_SNAPSHOT = "_odm_snapshot"
_set_slot = object.__setattr__


def set_snapshot(document: Any, raw: dict[str, Any] | None) -> None:
    """Record ``raw`` (a stored form of ``document``) as what the database holds."""
    _set_slot(document, _SNAPSHOT, raw)


def get_snapshot(document: Any) -> dict[str, Any] | None:
    """Return what the database held when ``document`` was last loaded or written, or
    ``None`` for a document that was never stored.

    A document whose ``id`` was changed since (``doc.id = ...``, ``model_copy(update={"id":
    ...})``) is a new document: ``None`` too, so ``save()`` inserts it (as Django does when
    the primary key changes) and ``delete()`` never reaches the document it was copied from.
    """
    snapshot: dict[str, Any] | None = getattr(document, _SNAPSHOT, None)
    if snapshot is not None:
        stored = snapshot.get("_id", _NO_ID)
        if stored is not _NO_ID and not _same_id(document, stored):
            return None
    return snapshot


_NO_ID = object()


def _same_id(document: Any, stored: Any) -> bool:
    """Tell whether ``document``'s id is still ``stored`` (the ``_id`` of its snapshot)."""
    fields = getattr(document, "__dict__", {})
    if "id" not in fields:
        return True
    ident = fields["id"]
    if ident is stored or (type(ident) is type(stored) and ident == stored):
        return True
    # Another type (a custom id type, say): compare the stored forms.
    dumped = type(document).__pydantic_serializer__.to_python(
        document, by_alias=True, include={"id"}
    )
    return same(stored, dumped.get("_id", _NO_ID))


def _bson_value(value: Any) -> Any:
    """Return ``value`` as it reads back from BSON, for comparisons only."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    if isinstance(value, enum.Enum):
        return _bson_value(value.value)
    return value


def same(a: Any, b: Any) -> bool:
    """Tell whether ``a`` and ``b`` are stored as the same BSON value."""
    if a == b:
        # True == 1 in Python, but BSON stores a bool and an int differently.
        return (type(a) is not bool and type(b) is not bool) or type(a) is type(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(_bson_value(a) == _bson_value(b))


def _diff_value(
    path: str,
    old: Any,
    new: Any,
    sets: dict[str, Any],
    unsets: dict[str, Any],
    pushes: dict[str, Any],
) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping) and new:
        for key, value in new.items():
            if key in old:
                if not same(old[key], value):
                    _diff_value(f"{path}.{key}", old[key], value, sets, unsets, pushes)
            else:
                sets[f"{path}.{key}"] = value
        for key in old:
            if key not in new:
                unsets[f"{path}.{key}"] = ""
        return
    appended = isinstance(old, list) and isinstance(new, list | tuple) and len(old) < len(new)
    if appended and same(old, new[: len(old)]):
        pushes[path] = {"$each": list(new[len(old) :])}
        return
    sets[path] = new


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Return the update document that turns stored ``old`` into ``new`` (``{}``: no change).

    Only keys of ``new`` (the model's dump) are considered at the top level, so keys stored
    by others and unknown to the model are never touched.
    """
    sets: dict[str, Any] = {}
    unsets: dict[str, Any] = {}
    pushes: dict[str, Any] = {}
    for key, value in new.items():
        if key in old:
            before = old[key]
            if before is value or same(before, value):
                continue
            _diff_value(key, before, value, sets, unsets, pushes)
        else:
            sets[key] = value
    update: dict[str, Any] = {}
    if sets:
        update["$set"] = sets
    if unsets:
        update["$unset"] = unsets
    if pushes:
        update["$push"] = pushes
    return update


def has_changes(document: Any, dumped: Mapping[str, Any]) -> bool:
    """Tell whether ``dumped`` (the document's stored form now) differs from its snapshot."""
    snapshot = get_snapshot(document)
    return snapshot is None or bool(diff(snapshot, dumped))


# -- for the unit of work's flush ------------------------------------------------------------

_PENDING = "_odm_pending"


def pending_update(document: Any) -> Any:
    """Return a PyMongo ``UpdateOne`` for what changed in ``document`` since it was loaded,
    or ``None`` when nothing did (or it was never stored). After the write succeeded, call
    :func:`mark_clean`."""
    from pymongo import UpdateOne

    from .writes import prepare_update

    if getattr(document, "_odm_partial", False):
        return None  # loaded with only()/defer(): never written back (save() refuses it too)
    plan = prepare_update(document)
    if plan is None:
        return None
    filter, update, new_snapshot = plan
    _set_slot(document, _PENDING, new_snapshot)
    return UpdateOne(filter, update)


def mark_clean(document: Any) -> None:
    """Record that the update from :func:`pending_update` is stored."""
    new_snapshot = getattr(document, _PENDING, None)
    if new_snapshot is not None:
        from .writes import commit_update

        commit_update(document, new_snapshot)
        _set_slot(document, _PENDING, None)


def collection_model(model: type[Any]) -> type[Any]:
    """Return the class that owns ``model``'s collection (the root of a polymorphic family)."""
    root: type[Any] | None = model._meta.root
    return root if root is not None else model
