"""What an instance write sends: its filter (id, shard key, version) and its change set.

Shared by ``Document.save()`` / ``delete()`` and by the unit of work's flush; no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .copies import known_state, written
from .options import ID_KEY
from .save_plan import changes
from .tracking import get_snapshot, set_snapshot

if TYPE_CHECKING:
    from .base import Document

_set_slot = object.__setattr__


# -- writes by instance (shared with the unit of work's flush) -------------------------------


def write_filter(document: Document, *, with_version: bool = True) -> dict[str, Any]:
    """Return the filter that targets ``document`` in a write: its ``_id``, the shard key
    (from the stored values, so the write goes to the shard that holds it) and, under
    ``Meta.optimistic_lock``, the version it was loaded with."""
    meta = document._meta
    snapshot = get_snapshot(document)
    filter: dict[str, Any] = {ID_KEY: snapshot[ID_KEY] if snapshot else document.id}
    if meta.shard_key:
        current = snapshot if snapshot is not None else document.to_bson()
        for key in meta.shard_key:
            path = meta.db_path(key)
            if path != ID_KEY:
                filter[path] = _get_path(current, path)
    if with_version and meta.optimistic_lock and snapshot is not None:
        filter[meta.db_key(meta.version_field)] = snapshot.get(meta.db_key(meta.version_field))
    return filter


def _get_path(raw: Mapping[str, Any], path: str) -> Any:
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def prepare_update(
    document: Document,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Return ``(filter, update, new_snapshot)`` for what changed since ``document`` was
    loaded, or ``None`` when nothing changed (or it was never stored).

    After the update succeeded, call :func:`commit_update` with ``new_snapshot``. Under
    ``Meta.optimistic_lock`` the update also raises the version by one.
    """
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
    filter = write_filter(document)
    if meta.optimistic_lock:
        key = meta.db_key(meta.version_field)
        version = (snapshot.get(key) or 0) + 1
        update.setdefault("$set", {})[key] = version
        for operator in ("$unset", "$push"):
            update.get(operator, {}).pop(key, None)
        new_raw[key] = version
    return filter, update, new_raw


def commit_update(document: Document, new_snapshot: dict[str, Any]) -> None:
    """Record that ``new_snapshot`` (from :func:`prepare_update`) is now stored."""
    meta = document._meta
    if meta.optimistic_lock:
        document.__dict__[meta.version_field] = new_snapshot[meta.db_key(meta.version_field)]
    set_snapshot(document, new_snapshot)
    written(document, new_snapshot)


