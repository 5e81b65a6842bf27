"""Change tracking: what ``save()`` sends for a document that was loaded or saved before.

The snapshot is the BSON dict the document was loaded from (or last written), kept on the
instance as it came: no copy on the hot path. ``save()`` compares the document with it
(:func:`odm.models.save_plan.changes`), producing the smallest update:

- only fields whose value changed are written (``$set``); unknown stored keys are left alone;
- embedded documents and dicts are compared key by key, so a change writes a dotted path
  (``{"$set": {"address.city": "Lyon"}}``) and a removed key is ``$unset``;
- a changed list is written whole, except a pure append (the old list is a prefix of the new
  one), which becomes ``{"$push": {"tags": {"$each": [...]}}}`` so that concurrent appends by
  others survive;
- values equal once stored are not changes: datetimes are compared as BSON keeps them (UTC,
  milliseconds), an ``Enum`` as its value, a tuple as a list.

The comparison itself is :mod:`odm.models.save_plan`'s (field by field, without a whole
dump); the rules for stored values are :mod:`odm.models.diffing`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from itertools import repeat
from typing import Any

from ..session import current_unit_of_work
from .diffing import diff, same

__all__ = [
    "TrackingState",
    "capture_state",
    "collection_model",
    "get_snapshot",
    "has_changes",
    "is_dirty",
    "mark_clean",
    "pending_update",
    "restore_state",
    "set_snapshot",
    "set_snapshots",
    "will_change",
]

_SNAPSHOT = "_odm_snapshot"
_set_slot = object.__setattr__


def set_snapshot(document: Any, raw: dict[str, Any] | None) -> None:
    """Record ``raw`` (a stored form of ``document``) as what the database holds."""
    _set_slot(document, _SNAPSHOT, raw)


def set_snapshots(documents: Iterable[Any], raws: Iterable[dict[str, Any]]) -> None:
    """:func:`set_snapshot` for each document and its stored form, in one C-level loop (a
    batch of thousands: a Python call per document is a visible part of loading them)."""
    deque(map(_set_slot, documents, repeat(_SNAPSHOT), raws), maxlen=0)


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


def has_changes(document: Any, dumped: Mapping[str, Any]) -> bool:
    """Tell whether ``dumped`` (the document's stored form now) differs from its snapshot."""
    snapshot = get_snapshot(document)
    return snapshot is None or bool(diff(snapshot, dumped))


# -- for the unit of work's flush ------------------------------------------------------------

_PENDING = "_odm_pending"


def is_dirty(document: Any) -> bool:
    """Tell whether the flush would write ``document`` (stored, whole, and changed)."""
    from .writes import prepare_update

    if getattr(document, "_odm_partial", False):
        return False
    return prepare_update(document) is not None


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


# -- what an abort puts back -----------------------------------------------------------------

#: An instance's tracking state: its snapshot, whether it is partial, (under
#: ``Meta.optimistic_lock``) the version in its fields, which a write bumps in memory too, and
#: the family of its copies with what that family last knew (:mod:`odm.models.copies`).
TrackingState = tuple[dict[str, Any] | None, bool, Any, Any, dict[str, Any] | None]
_NO_VERSION = object()


def capture_state(document: Any) -> TrackingState:
    """Return ``document``'s tracking state, for :func:`restore_state` after an abort."""
    meta = type(document)._meta
    version = (
        document.__dict__.get(meta.version_field, _NO_VERSION)
        if meta.optimistic_lock
        else _NO_VERSION
    )
    family = getattr(document, "_odm_family", None)
    return (
        getattr(document, _SNAPSHOT, None),
        getattr(document, "_odm_partial", False),
        version,
        family,
        None if family is None else family.latest,
    )


def restore_state(document: Any, state: TrackingState) -> None:
    """Put back a state from :func:`capture_state`: the document again says what the database
    held before the aborted writes (its field values, the user's intent, are left alone).
    Restore the states of one transaction newest first, so that a family of copies ends with
    what it knew before the first of them changed."""
    snapshot, partial, version, family, latest = state
    _set_slot(document, _SNAPSHOT, snapshot)
    _set_slot(document, "_odm_partial", partial)
    _set_slot(document, _PENDING, None)
    if version is not _NO_VERSION:
        document.__dict__[type(document)._meta.version_field] = version
    if family is not None:
        family.latest = latest


def will_change(document: Any) -> None:
    """Call before a write changes ``document``'s tracking state: inside a transaction its
    unit of work keeps the state before the block's first change, to put back on abort."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.remember(document)
