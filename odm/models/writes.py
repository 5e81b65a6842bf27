"""What an instance write sends: its filter (id, shard key, version) and its change set.

Shared by ``Document.save()`` / ``delete()`` and by the unit of work's flush; no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pymongo import UpdateOne

from .copies import known_state, written
from .options import ID_KEY, Options
from .save_plan import changes
from .tracking import get_snapshot, is_partial, set_pending, set_snapshot, take_pending


class Stored(Protocol):
    """What the instance-write helpers need of a document (``odm.Document`` has it all)."""

    @property
    def _meta(self) -> Options:
        """The declaration of the document's class."""

    @property
    def id(self) -> Any:
        """The document's id."""

    def to_bson(self) -> dict[str, Any]:
        """The document's stored form."""



# -- writes by instance (shared with the unit of work's flush) -------------------------------

#: The default of :func:`write_filter`'s ``snapshot``: not read yet (``None`` is an answer).
_UNREAD: Any = object()


def write_filter(
    document: Stored, *, with_version: bool = True, snapshot: Any = _UNREAD
) -> dict[str, Any]:
    """Return the filter that targets ``document`` in a write: its ``_id``, the shard key
    (from the stored values, so the write goes to the shard that holds it) and, under
    ``Meta.optimistic_lock``, the version it was loaded with. ``snapshot``: what
    :func:`~odm.models.tracking.get_snapshot` returned for it, when the caller has it."""
    meta = document._meta
    if snapshot is _UNREAD:
        snapshot = get_snapshot(document)
    filter: dict[str, Any] = {ID_KEY: snapshot[ID_KEY] if snapshot else document.id}
    if meta.shard_key:
        current = snapshot if snapshot is not None else document.to_bson()
        for key in meta.shard_key:
            path = meta.db_path(key)
            if path != ID_KEY:
                filter[path] = get_path(current, path)
    if with_version and meta.optimistic_lock and snapshot is not None:
        filter[meta.db_key(meta.version_field)] = snapshot.get(meta.db_key(meta.version_field))
    return filter


def get_path(raw: Mapping[str, Any], path: str, missing: Any = None) -> Any:
    """Return the value at the dotted stored ``path`` in ``raw``, or ``missing`` where a key on
    the way is absent (or its parent is no sub-document)."""
    value: Any = raw
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return missing
        value = value[part]
    return value


def prepare_update(
    document: Stored, *, snapshot: Any = _UNREAD
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Return ``(filter, update, new_snapshot)`` for what changed since ``document`` was
    loaded, or ``None`` when nothing changed (or it was never stored). ``snapshot``: what
    :func:`~odm.models.tracking.get_snapshot` returned for it, when the caller has it.

    After the update succeeded, call :func:`commit_update` with ``new_snapshot``. Under
    ``Meta.optimistic_lock`` the update also raises the version by one.
    """
    if snapshot is _UNREAD:
        snapshot = get_snapshot(document)
    if snapshot is None:
        return None
    # Compared field by field against the snapshot (save_plan.changes), not dumped whole;
    # new_raw is a new dict (the snapshot's unchanged sub-documents are shared, never mutated).
    # A copy of the document may have written since this snapshot (odm.models.copies): the
    # changes are found against what it wrote; the filter keeps this snapshot's version.
    update, new_raw = changes(document, known_state(document, snapshot))
    if not update:
        return None
    meta = document._meta
    filter = write_filter(document, snapshot=snapshot)
    if meta.optimistic_lock:
        key = meta.db_key(meta.version_field)
        version = (snapshot.get(key) or 0) + 1
        update.setdefault("$set", {})[key] = version
        for operator in ("$unset", "$push"):
            update.get(operator, {}).pop(key, None)
        new_raw[key] = version
    return filter, update, new_raw


def commit_update(document: Stored, new_snapshot: dict[str, Any]) -> None:
    """Record that ``new_snapshot`` (from :func:`prepare_update`) is now stored."""
    meta = document._meta
    if meta.optimistic_lock:
        document.__dict__[meta.version_field] = new_snapshot[meta.db_key(meta.version_field)]
    set_snapshot(document, new_snapshot)
    written(document, new_snapshot)


# -- for the unit of work's flush ------------------------------------------------------------


def is_dirty(document: Stored) -> bool:
    """Tell whether the flush would write ``document`` (stored, whole, and changed)."""
    if is_partial(document):
        return False
    return prepare_update(document) is not None


def pending_update(document: Stored) -> UpdateOne | None:
    """Return a PyMongo ``UpdateOne`` for what changed in ``document`` since it was loaded,
    or ``None`` when nothing did (or it was never stored). After the write succeeded, call
    :func:`mark_clean`."""
    if is_partial(document):
        return None  # loaded with only()/defer(): never written back (save() refuses it too)
    plan = prepare_update(document)
    if plan is None:
        return None
    filter, update, new_snapshot = plan
    set_pending(document, new_snapshot)
    return UpdateOne(filter, update)


def mark_clean(document: Stored) -> None:
    """Record that the update from :func:`pending_update` is stored."""
    new_snapshot = take_pending(document)
    if new_snapshot is not None:
        commit_update(document, new_snapshot)
