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

import copy
from collections import deque
from collections.abc import Iterable, Mapping
from itertools import repeat
from types import MappingProxyType
from typing import Any

from ..session import current_unit_of_work
from .diffing import diff, same

__all__ = [
    "SLOTS",
    "TrackingState",
    "Unsure",
    "annotations_of",
    "capture_state",
    "check_own_block",
    "collection_model",
    "copied",
    "copy_state",
    "family_for",
    "family_of",
    "get_snapshot",
    "gone",
    "has_changes",
    "held_by",
    "is_partial",
    "never_tracked",
    "pickled_state",
    "raw_snapshot",
    "restore_state",
    "set_annotations",
    "set_family",
    "set_partial",
    "set_pending",
    "set_snapshot",
    "set_snapshots",
    "stored_id",
    "take_pending",
    "unpickle_state",
    "unsure",
    "version_set_by_hand",
    "will_change",
    "will_read",
    "will_reread",
]

# The instance slots this module owns (declared in ``Document.__slots__``). They are set with
# object.__setattr__, past pydantic's validated assignment: they are not fields.
_SNAPSHOT = "_odm_snapshot"
_PARTIAL = "_odm_partial"
_PENDING = "_odm_pending"
_FAMILY = "_odm_family"
_ANNOTATIONS = "_odm_annotations"
#: The unit of work whose journal keeps a state of the document (see :func:`held_by`).
_BLOCK = "_odm_block"
#: The slots, for ``Document.__slots__``.
SLOTS = (_ANNOTATIONS, _BLOCK, _FAMILY, _PARTIAL, _PENDING, _SNAPSHOT)
_NO_ANNOTATIONS: Mapping[str, Any] = MappingProxyType({})
_set_slot = object.__setattr__
_get_slot = object.__getattribute__


def _slot_or(document: Any, name: str, default: Any) -> Any:
    """Read the slot ``name`` of ``document``, or ``default`` when it was never set.

    ``getattr(document, name, default)`` would be the same, but slower by ~1.5 µs where the
    slot is unset (as the partial flag and the family of copies mostly are): the failed
    lookup falls through to pydantic's ``BaseModel.__getattr__``, which raises a second
    ``AttributeError``; ``object.__getattribute__`` raises only the first."""
    try:
        return _get_slot(document, name)
    except AttributeError:
        return default


def set_snapshot(document: Any, raw: dict[str, Any] | None) -> None:
    """Record ``raw`` (a stored form of ``document``) as what the database holds."""
    _set_slot(document, _SNAPSHOT, raw)


def never_tracked(document: Any) -> bool:
    """Tell whether ``document`` never had a snapshot, not even ``None``: it was never loaded,
    written, deleted, copied, unpickled or put back by an abort (each of them sets one)."""
    return _slot_or(document, _SNAPSHOT, _NEVER) is _NEVER


#: What :func:`never_tracked` reads in a snapshot slot never set.
_NEVER: Any = object()


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


class Unsure(dict[str, Any]):
    """The snapshot of a document whose last write outside a transaction failed without
    telling whether it ran (a cancellation, a deadline, a lost connection, an unconfirmed write
    concern: :func:`odm.outcomes.outcome_unknown`): that write may have run on the server or
    not (and may still run), so the snapshot no longer says what the database holds.

    Its content is the snapshot from before the write (empty when the document was never
    stored, and ``existed`` is then false: ``is_stored`` says what was known before the
    write); ``call`` names the write, ``planned`` is the stored form the write would leave
    (``None`` for a delete), ``sent`` the update document it sent (``None`` for an insert
    or a delete) and ``touched`` the top-level stored keys it writes. Read as a dict it behaves
    like the old snapshot; ``save()`` and ``delete()`` read the stored document first and keep
    what they learn instead (:func:`odm.outcomes.learn_outcome`)."""

    __slots__ = ("call", "existed", "planned", "sent", "touched")

    call: str
    existed: bool
    planned: dict[str, Any] | None
    touched: frozenset[str]
    sent: Mapping[str, Any] | None


def unsure(
    document: Any, call: str, planned: dict[str, Any] | None, update: Mapping[str, Any] | None
) -> None:
    """Record that ``call``, a write of ``document`` that would leave ``planned`` stored (an
    ``update`` document, or ``None`` when it writes the whole document or deletes it), failed
    without telling whether it ran: its snapshot becomes an :class:`Unsure` one. Its copies
    (:mod:`odm.models.copies`) no longer know what is stored either: their family's latest
    stored form becomes that same unsure snapshot, until it learns. A document given another
    id since its snapshot (a new document: :func:`get_snapshot`) was not stored before."""
    before = get_snapshot(document)
    if isinstance(before, Unsure):  # cut off again before anything was learnt
        before = dict(before) if before.existed else None
    marked = Unsure(before or {})
    marked.call = call
    marked.existed = before is not None
    marked.planned = planned
    marked.sent = update
    if update is None:
        marked.touched = frozenset(planned or ())
    else:
        marked.touched = frozenset(
            path.partition(".")[0] for paths in update.values() for path in paths
        )
    _set_slot(document, _SNAPSHOT, marked)
    family = family_for(document, marked if planned is None else planned)
    if family is not None:
        family.latest = marked


def is_partial(document: Any) -> bool:
    """Tell whether ``document`` was loaded with ``only()``/``defer()`` (it is never written
    back whole)."""
    return bool(_slot_or(document, _PARTIAL, False))


def set_partial(document: Any, partial: bool) -> None:
    """Record whether ``document`` holds only some of its stored fields."""
    _set_slot(document, _PARTIAL, partial)


def set_pending(document: Any, snapshot: dict[str, Any] | None) -> None:
    """Keep the snapshot a flush is writing for ``document`` until the write is confirmed."""
    _set_slot(document, _PENDING, snapshot)


def take_pending(document: Any) -> dict[str, Any] | None:
    """Return and forget the snapshot :func:`set_pending` kept (``None`` when none)."""
    pending: dict[str, Any] | None = getattr(document, _PENDING, None)
    if pending is not None:
        _set_slot(document, _PENDING, None)
    return pending


def family_of(document: Any) -> Any:
    """Return the family of copies ``document`` belongs to (:mod:`odm.models.copies`), if any."""
    return _slot_or(document, _FAMILY, None)


def set_family(document: Any, family: Any) -> None:
    """Make ``document`` a member of ``family`` (``None``: of none)."""
    _set_slot(document, _FAMILY, family)


def family_for(document: Any, stored: Mapping[str, Any] | None) -> Any:
    """Return the family of copies of ``document`` that learns ``stored``, a stored form of
    ``document`` under the id it has now (just written, read or planned), or ``None``.

    A copy given another id (``doc.id = new``, ``model_copy(update={"id": ...})``) is
    another document (:func:`get_snapshot`): when it writes under that id, it leaves the
    family, whose other members still stand for the document of the old id. Telling them
    the new document's stored form would make them diff against it, and send again what
    their family had written already (an append pushed twice)."""
    family = _slot_or(document, _FAMILY, None)
    if family is None or stored is None:
        return family
    latest = family.latest
    if latest is None or _same_stored_id(latest, stored):
        return family
    _set_slot(document, _FAMILY, None)  # a family of its own, made when copied again
    return None


def _same_stored_id(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Tell whether two stored forms are of one ``_id`` (either without one: not known, so
    taken as one: a document never stored)."""
    first, second = one.get("_id", _NO_ID), other.get("_id", _NO_ID)
    return first is _NO_ID or second is _NO_ID or same(first, second)


def set_annotations(document: Any, values: Mapping[str, Any]) -> None:
    """Give a loaded ``document`` the values a query computed for it (a ``geo_near()``
    distance, a ``search()`` score), read-only."""
    _set_slot(document, _ANNOTATIONS, MappingProxyType(dict(values)))


def annotations_of(document: Any) -> Mapping[str, Any]:
    """Return the computed values a queryset gave ``document`` (``{"distance": 812.5}`` after
    ``geo_near()``, ``{"score": 1.5}`` after ``search()``); empty when it has none."""
    found: Mapping[str, Any] = getattr(document, _ANNOTATIONS, _NO_ANNOTATIONS)
    return found


def copy_state(source: Any, copied: Any, memo: dict[int, Any] | None = None) -> None:
    """Give ``copied`` the snapshot and partial flag of ``source`` (the snapshot deep-copied
    along with the fields when ``memo`` is given). A pending flush stays with ``source``."""
    snapshot = getattr(source, _SNAPSHOT, None)
    if memo is not None and snapshot is not None:
        snapshot = copy.deepcopy(snapshot, memo)
    _set_slot(copied, _SNAPSHOT, snapshot)
    _set_slot(copied, _PARTIAL, _slot_or(source, _PARTIAL, False))


def pickled_state(document: Any) -> dict[str, Any]:
    """Return the tracking state to add to ``document``'s pickle; objects pickled together
    share one family object (pickle's memo), so they stay copies."""
    return {
        "__odm_snapshot__": getattr(document, _SNAPSHOT, None),
        "__odm_partial__": _slot_or(document, _PARTIAL, False),
        "__odm_family__": _slot_or(document, _FAMILY, None),
    }


def unpickle_state(document: Any, state: Mapping[str, Any]) -> Any:
    """Put back what :func:`pickled_state` kept, but the family, which is returned for
    :func:`odm.models.copies.rejoin`."""
    _set_slot(document, _SNAPSHOT, state.get("__odm_snapshot__"))
    _set_slot(document, _PARTIAL, state.get("__odm_partial__", False))
    return state.get("__odm_family__")


_NO_ID = object()


def raw_snapshot(document: Any) -> dict[str, Any] | None:
    """Return the snapshot ``document`` holds, even when its id changed since (see
    :func:`get_snapshot`): what its copies start from."""
    snapshot: dict[str, Any] | None = getattr(document, _SNAPSHOT, None)
    return snapshot


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


def stored_id(document: Any) -> Any:
    """Return ``document``'s ``_id`` as stored (its ``id`` dumped)."""
    dumped = type(document).__pydantic_serializer__.to_python(
        document, by_alias=True, include={"id"}
    )
    return dumped.get("_id")


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
    family = _slot_or(document, _FAMILY, None)
    return (
        getattr(document, _SNAPSHOT, None),
        _slot_or(document, _PARTIAL, False),
        version,
        family,
        None if family is None else family.latest,
    )


def restore_state(document: Any, state: TrackingState) -> None:
    """Put back a state from :func:`capture_state`: the document again says what the database
    held before the aborted writes (its field values, the user's intent, are left alone).
    Restore the states of one transaction newest first, so that a family of copies ends with
    what it knew before the first of them changed.

    Under ``Meta.optimistic_lock`` the version the aborted writes bumped in memory goes back
    too, but not one set by hand since (:func:`version_set_by_hand`): that one is the user's,
    as the other fields the block changed are, and their next write raises
    :class:`odm.StaleDocument` as it would outside a block, instead of passing the lock's
    check with the version silently replaced."""
    snapshot, partial, version, family, latest = state
    keep_version = version is _NO_VERSION or version_set_by_hand(document)
    _set_slot(document, _SNAPSHOT, snapshot)
    _set_slot(document, _PARTIAL, partial)
    _set_slot(document, _PENDING, None)
    if not keep_version:
        document.__dict__[type(document)._meta.version_field] = version
    if family is not None:
        _set_slot(document, _FAMILY, family)  # it may have left it (family_for)
        family.latest = latest


def version_set_by_hand(document: Any) -> bool:
    """Tell whether ``document``, under ``Meta.optimistic_lock``, holds another version than
    the one its snapshot says odm last stored or read (``None`` in the snapshot: stored
    without one, which loads as 0): one set by hand, or a client's copied on with a request
    body. A document with no snapshot (never stored, or deleted), or whose insert was cut off,
    cannot tell: ``False``."""
    meta = type(document)._meta
    snapshot = raw_snapshot(document)
    if not meta.optimistic_lock or snapshot is None:
        return False
    if isinstance(snapshot, Unsure) and not snapshot.existed:
        return False
    known = snapshot.get(meta.db_key(meta.version_field))
    held = document.__dict__.get(meta.version_field)
    return bool(held != (0 if known is None else known))


def held_by(document: Any, block: Any) -> None:
    """Record that ``block`` (a unit of work) keeps a state of ``document`` for an abort: until
    the block ends, a write or read of the document from outside it is refused
    (:func:`check_own_block`)."""
    _set_slot(document, _BLOCK, block)


def check_own_block(document: Any) -> None:
    """Refuse (``odm.TransactionError``) an instance write or read of ``document`` from outside
    the open block that wrote it: from another task, or through ``outside_blocks()``.

    Such a write would wait on the server for the block's own uncommitted write (until the
    server's transaction lifetime limit ends the block), and either way the object would end
    up saying what neither side committed: the block puts back its state on abort over what
    the outside write stored, or the outside write records a state built on the block's
    uncommitted one. One slot read when nothing holds the document."""
    block = _slot_or(document, _BLOCK, None)
    if block is not None and block is not current_unit_of_work():
        block.refuse_outside(document)


def will_change(document: Any) -> None:
    """Call before a write changes ``document``'s tracking state: inside a transaction its
    unit of work keeps the state before the block's first change, to put back on abort."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.remember(document)


def will_read(document: Any) -> None:
    """Call before a read sets ``document``'s fields from the database (``refresh()``, the
    read after a queryset write): inside a transaction its unit of work keeps what the block's
    own writes made of it since it was last read, which the read's values hide, so that an
    abort does not take them back with the values read (:meth:`odm.journal.Journal.reading`)."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.journal.reading(document)


def copied(source: Any, copy: Any) -> None:
    """Call when ``copy`` was just made of ``source``: inside a transaction the unit of work
    keeps for the copy what it keeps for ``source`` (:meth:`odm.journal.Journal.copied`), so
    that an abort puts both back."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.journal.copied(source, copy)


def will_reread(document: Any) -> None:
    """:func:`will_change` then :func:`will_read`: before a read replaces ``document``'s
    snapshot and fields (a read after a write of the block, or what a copy of it saved)."""
    will_change(document)
    will_read(document)


def gone(document: Any) -> None:
    """Record that ``document`` is no longer stored (it was deleted): its next ``save()``
    inserts it again, and the bound unit of work, if any, keeps its state for an abort and
    stops holding it (with what it held before, should the block insert its id again)."""
    will_change(document)
    before = raw_snapshot(document)
    set_snapshot(document, None)
    uow = current_unit_of_work()
    if uow is not None:
        uow.forget(document, before)
