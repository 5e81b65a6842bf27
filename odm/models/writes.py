"""What an instance write sends: its filter (id, shard key, version) and its change set.

Shared by ``Document.save()`` / ``delete()`` and by the unit of work's flush; no I/O here.

An explicit ``save()`` makes the stored document what the object holds, diffed against what
any copy of it last wrote (:mod:`odm.models.copies`). The flush writes tracked documents the
user never asked to save, so it writes only what each changed itself (against its own
snapshot): a document with no change of its own is not written, and one whose copy saved
since first learns what that copy stored wherever it has no change of its own
(:func:`flush_snapshot`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, Protocol

import bson
from pydantic import ValidationError
from pymongo import UpdateOne

from ..exceptions import StaleDocument
from ..session import current_unit_of_work
from .copies import known_state, learn_from, same_family, written
from .diffing import diff
from .loading import _snapshot_of, load_into
from .options import ID_KEY, Options
from .save_plan import changes
from .tracking import (
    Unsure,
    get_snapshot,
    is_partial,
    never_tracked,
    set_pending,
    set_snapshot,
    take_pending,
    will_reread,
)


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
        loaded = snapshot.get(meta.db_key(meta.version_field))
        _refuse_version_set_by_hand(document, loaded)
        filter[meta.db_key(meta.version_field)] = loaded
    return filter


def _refuse_version_set_by_hand(document: Stored, loaded: Any) -> None:
    """Raise :class:`odm.StaleDocument` before a write by instance of ``document`` whose
    optimistic-lock version is not ``loaded``, the one it was loaded with (``None``: a
    document stored without one, which loads as 0).

    The write checks the loaded version, not the object's: a version set by hand, or taken
    from a client that sends back the version it read, would otherwise be ignored, and the
    write would go over whatever that client never saw. A version other than the loaded one
    says the document is not at the version the caller thinks: stale, as a copy loaded
    earlier is."""
    meta = document._meta
    held = document.__dict__.get(meta.version_field)
    if held == (0 if loaded is None else loaded):
        return
    at = "0 (stored without one)" if loaded is None else repr(loaded)
    raise StaleDocument(
        f"{type(document).__name__} _id={document.id!r}: its {meta.version_field} is "
        f"{held!r}, but it was loaded at version {at}; the optimistic lock's counter is "
        "odm's to set, and a version set by hand (or a client's) that is not the loaded one "
        "means the document is not at the version its caller saw: nothing was written; "
        "refresh() and retry"
    )


def get_path(raw: Any, path: str, missing: Any = None) -> Any:
    """Return the value at the dotted stored ``path`` in ``raw``, through list positions
    (``scores.2``), or ``missing`` where a key or position on the way is absent (or its parent
    is neither a sub-document nor a list)."""
    value: Any = raw
    for part in path.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                return missing
            value = value[part]
        elif isinstance(value, list) and part.isascii() and part.isdigit():
            if int(part) >= len(value):
                return missing
            value = value[int(part)]
        else:
            return missing
    return value


def prepare_update(
    document: Stored, *, snapshot: Any = _UNREAD, check: bool = True
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Return ``(filter, update, new_snapshot)`` for what changed since ``document`` was
    loaded, or ``None`` when nothing changed (or it was never stored). ``snapshot``: what
    :func:`~odm.models.tracking.get_snapshot` returned for it, when the caller has it.
    Pydantic's ``ValidationError`` is raised for a change its model would not load back,
    unless ``check`` is false (the caller only asks whether there is a change).

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
    update, new_raw = changes(document, known_state(document, snapshot), check=check)
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


#: Where an insert that cannot start the optimistic lock's counter at 0 starts it (see
#: :func:`insert_version`): past any count a document stored with a small version reaches, and
#: below 2**53, so that the version stays exact as a JSON number (a browser's, say).
FRESH_VERSIONS = range(2**32, 2**52)


def insert_version(document: Stored) -> int:
    """Return the version an insert of ``document`` stores under ``Meta.optimistic_lock``.

    The version is what tells a write which stored document its object was loaded from, so
    an insert must not store one that an object of an earlier document of that ``_id`` (one
    deleted since) may hold, else that stale object's write would pass the version check and
    land on the newer document. 0 when the id is one odm just made for ``document``: no
    document can have had it (:func:`_id_made_for`). Otherwise (an id given, a copy's, an
    insert again after a delete) a fresh random number from :data:`FRESH_VERSIONS`, which an
    earlier document of the id reaches only by one chance in about 2**52 per version it had.
    """
    if _id_made_for(document):
        return 0
    return FRESH_VERSIONS[secrets.randbelow(len(FRESH_VERSIONS))]


def _id_made_for(document: Any) -> bool:
    """Tell whether ``document``'s id is the ObjectId odm made for it when it was built (not
    given, not assigned) and the object was never stored, deleted, copied or unpickled: no
    document can have had that id before, nor any object have loaded one. A class whose id
    has a default of its own (a constant, say) does not tell so."""
    field = type(document).model_fields.get("id")
    return (
        field is not None
        and field.default_factory is bson.ObjectId
        and "id" not in document.model_fields_set
        and never_tracked(document)
    )


def start_version(document: Stored, raw: dict[str, Any]) -> None:
    """Under ``Meta.optimistic_lock``, put in ``raw`` (``document``'s stored form, about to be
    inserted) the version the insert starts at (:func:`insert_version`), whatever the object
    holds: the insert owns the counter."""
    meta = document._meta
    if meta.optimistic_lock:
        raw[meta.db_key(meta.version_field)] = insert_version(document)


def take_version(document: Stored, raw: Mapping[str, Any]) -> None:
    """Under ``Meta.optimistic_lock``, give ``document`` the version of ``raw``, its snapshot
    after an insert (what it sent, or what is stored under its id)."""
    meta = document._meta
    if meta.optimistic_lock:
        document.__dict__[meta.version_field] = raw.get(meta.db_key(meta.version_field), 0)


def learnt_insert(
    document: Stored, sent: dict[str, Any], stored: dict[str, Any]
) -> dict[str, Any]:
    """Return the snapshot ``document`` takes after an insert of ``sent`` that may not have
    run (cut off, or refused with others of a list), now that ``stored`` is what its ``_id``
    holds.

    ``stored`` when the model has no ``Meta.optimistic_lock`` (a document told it is stored
    must know what is), or when it holds the version the insert sent: it is what the insert
    stored, and nobody wrote since (every write raises the version). Otherwise ``sent``:
    ``stored`` is another document of the id, or the one the insert stored, saved since by
    someone else; either way this object never loaded it, and taking its version would let
    the object's ``save()`` or ``delete()`` pass the version check and write over it. With
    ``sent``'s version (fresh: :func:`insert_version`) they raise :class:`odm.StaleDocument`,
    as any stale copy's do, and ``refresh()`` loads ``stored``."""
    meta = document._meta
    if not meta.optimistic_lock:
        return stored
    key = meta.db_key(meta.version_field)
    return stored if stored.get(key) == sent.get(key) else sent


def commit_update(document: Stored, new_snapshot: dict[str, Any]) -> None:
    """Record that ``new_snapshot`` (from :func:`prepare_update`) is now stored."""
    meta = document._meta
    if meta.optimistic_lock:
        document.__dict__[meta.version_field] = new_snapshot[meta.db_key(meta.version_field)]
    set_snapshot(document, new_snapshot)
    written(document, new_snapshot)


# -- for the unit of work's flush ------------------------------------------------------------


def is_dirty(document: Stored) -> bool:
    """Tell whether the flush would write ``document`` (stored, whole, and changed by its
    own code: see :func:`flush_snapshot`)."""
    if is_partial(document):
        return False
    snapshot = flush_snapshot(document)
    # Asked before the save hooks run, which may still make the change valid.
    return (
        snapshot is not None
        and prepare_update(document, snapshot=snapshot, check=False) is not None
    )


def pending_update(document: Stored) -> UpdateOne | None:
    """Return a PyMongo ``UpdateOne`` for what changed in ``document`` since it was loaded,
    or ``None`` when nothing did (or it was never stored). After the write succeeded, call
    :func:`mark_clean`."""
    if is_partial(document):
        return None  # loaded with only()/defer(): never written back (save() refuses it too)
    snapshot = flush_snapshot(document)
    if snapshot is None:
        return None
    plan = prepare_update(document, snapshot=snapshot)
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


def flush_snapshot(document: Stored) -> dict[str, Any] | None:
    """Return the snapshot the flush diffs ``document`` against, or ``None`` when it has no
    change of its own to write (or was never stored).

    Usually its own snapshot. When a copy of it saved since (:func:`known_state`), the
    document first learns what the copy stored, wherever it has no change of its own
    (:func:`learn_copies`): that is its snapshot then, and only its own changes are sent, on
    top of the copy's. Under ``Meta.optimistic_lock`` a document with changes of its own
    keeps its snapshot, and its version: it was changed on a version the copy replaced, so
    its write is refused as stale, as an explicit ``save()`` of it would be.

    Raise pydantic's ``ValidationError`` (the document unchanged, the bound transaction
    rollback-only) when its own changes on top of what the copy stored make values its model
    refuses (a validator across fields): no write keeps both, and sending it whole would undo
    the copy's save unseen (:func:`_refuse_merge`)."""
    snapshot = get_snapshot(document)
    if snapshot is None:
        return None
    latest = known_state(document, snapshot)
    if latest is snapshot:
        return snapshot
    own = changes(document, snapshot, check=False)[0]  # the flush's write checks them
    if isinstance(latest, Unsure) or (own and document._meta.optimistic_lock):
        return snapshot if own else None  # a copy's write cut off: nothing to learn yet
    if not own:
        # Nothing of its own to send: the flush leaves it out, whether it learns or not.
        with suppress(ValidationError):
            learn_copies(document, snapshot, latest)
        return None
    try:
        return learn_copies(document, snapshot, latest)
    except ValidationError as error:
        _refuse_merge(document, own, snapshot, latest, error)
        raise


def learn_copies(
    document: Stored, snapshot: dict[str, Any], latest: dict[str, Any]
) -> dict[str, Any]:
    """Make ``document`` (whose snapshot is ``snapshot``) learn ``latest``, what a copy of it
    stored since: its fields take ``latest``'s values wherever they still hold
    ``snapshot``'s, and keep their own elsewhere (:func:`~odm.models.copies.learn_from`);
    its snapshot becomes ``latest``, which is returned.

    Inside a transaction this is a read of the block's (a copy's save in the block): the unit
    of work notes it, and an abort takes the learnt values back. Raise pydantic's
    ``ValidationError`` (nothing changed) when the merged values do not validate (a model
    validator across fields)."""
    _merge_learnt(document, snapshot, latest)
    return latest


def _refuse_merge(
    document: Stored,
    own: Mapping[str, Any],
    snapshot: dict[str, Any],
    latest: dict[str, Any],
    error: ValidationError,
) -> None:
    """Make the bound transaction rollback-only: ``document``'s own changes (the update
    ``own``) on top of what a copy of it stored (``latest``) make values its model refuses.

    Writing only its own changes would store a document no query can load; writing its
    whole stale state would silently undo the copy's save. Neither is the flush's to choose
    (as when another object's save meets the same conflict: :meth:`odm.uow.UnitOfWork.saved`),
    so ``error`` is raised, noted with the class, the ``_id`` and the fields of both sides."""
    copy_changed = ", ".join(_top_level_keys(diff(snapshot, latest))) or "nothing"
    reason = (
        f"the flush of {type(document).__name__} _id={snapshot.get(ID_KEY)!r} cannot write "
        f"its changes of its own ({', '.join(_top_level_keys(own))}) on top of what a save "
        f"through a copy of it stored ({copy_changed}): its model refuses the values both "
        "make together, and writing the object whole would silently undo the copy's save"
    )
    uow = current_unit_of_work()
    if uow is not None:  # always, the flush being the unit of work's
        uow.rollback_only(reason, error)


def _top_level_keys(update: Mapping[str, Any]) -> list[str]:
    """The stored top-level keys an update document writes, sorted."""
    return sorted({path.partition(".")[0] for paths in update.values() for path in paths})


def _merge_learnt(document: Stored, snapshot: dict[str, Any], latest: dict[str, Any]) -> None:
    """:func:`learn_copies`, but raise pydantic's ``ValidationError`` (nothing changed) when
    the merged values do not validate."""
    merged, read = learn_from(document.to_bson(), snapshot, latest)
    meta = document._meta
    load_into(document, _snapshot_of(meta, merged), before=will_reread)
    set_snapshot(document, latest)
    uow = current_unit_of_work()
    if uow is not None:
        uow.journal.read(document, read)


def learn_stored(document: Stored, stored: dict[str, Any]) -> bool:
    """Make ``document`` learn ``stored``, what the database holds for it now, written through
    another object of its id (not a copy of it: see :meth:`odm.uow.UnitOfWork.saved`).

    As from a copy's save (:func:`learn_copies`): its fields take ``stored``'s values wherever
    they still hold its snapshot's, its own changes stay, to be sent on top by its next write,
    and its snapshot becomes ``stored``, which its copies diff against from now on. Under
    ``Meta.optimistic_lock`` a document with changes of its own learns nothing: they were made
    on the version replaced since, so its write is refused as stale (:class:`odm.StaleDocument`),
    as an explicit ``save()`` of it would be.

    Raise pydantic's ``ValidationError`` (``document`` unchanged) when its own changes on top
    of ``stored`` make values its model refuses (a validator across fields): its next write
    would store them so (the caller, :meth:`odm.uow.UnitOfWork.saved`, makes the transaction
    rollback-only). Return whether it learnt (not: it was never stored, its last write is of
    unknown outcome, or the lock keeps its snapshot)."""
    snapshot = get_snapshot(document)
    if snapshot is None or isinstance(snapshot, Unsure):
        return False
    snapshot = at_loaded_version(document, snapshot)
    if document._meta.optimistic_lock and changes(document, snapshot, check=False)[0]:
        return False
    _merge_learnt(document, snapshot, stored)
    written(document, stored)
    return True


def at_loaded_version(document: Stored, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Return ``snapshot`` with the version ``document`` loaded at: under
    ``Meta.optimistic_lock`` a document stored without one (before the lock was enabled)
    loads at 0 (:func:`take_version`), which is then no change of its own; else ``snapshot``
    itself."""
    meta = document._meta
    if not meta.optimistic_lock:
        return snapshot
    key = meta.db_key(meta.version_field)
    return snapshot if key in snapshot else {**snapshot, key: 0}


def another_object(document: Any, other: Any) -> bool:
    """Tell whether ``other``, an object of ``document``'s id, is another object than it and
    than its copies (copies learn from one another through their family instead)."""
    return other is not document and not same_family(document, other)
