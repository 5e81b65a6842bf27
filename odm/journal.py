"""The unit of work's journal: each document's tracking state before a transaction changed it.

A write inside ``odm.transaction()`` (``insert``, ``save``, ``delete``, ``refresh``,
``bulk_create``, the flush) changes what a document believes the database holds: its snapshot,
its optimistic-lock version, whether it is stored. Those beliefs only come true if the
transaction commits. So before the first such change in a block, the unit of work keeps the
document's state here; an abort of any cause puts every kept state back
(:meth:`Journal.restore`), and a commit simply forgets them (:meth:`Journal.clear`). When a
commit's outcome is unknown, the states are read again from the server instead
(:meth:`Journal.reload`). Field values the block's code set are never put back: they are the
user's intent, and the next ``save()`` writes exactly what differs from what the database holds.
Values the block only *read* are another matter: a document loaded, refreshed or read again
after the transaction wrote may hold the transaction's own writes (a queryset ``update()``, a
raw driver call). So the journal keeps what each such document was read with
(:meth:`Journal.read`; since a raw driver call writes unseen, an abort marks every document the
block loaded so: ``UnitOfWork._read_back_every_load``), and after an abort every value still
equal to it goes back to what the database holds (a three-way merge, :func:`take_back_reads`);
otherwise the next ``save()`` would write the aborted transaction's values as if they were the
user's. A read may hold the block's own writes of the document too (the flush before a queryset
``update()`` sent the user's changes, then the update read them back): so before each such read
the journal keeps what the block's writes made of the document since it was last read
(:meth:`Journal.reading`), and an abort applies those changes again on what the database holds,
before the merge. A document inserted in the block is merged onto what its insert wrote.

SQLAlchemy expires every instance of a session on ``Session.rollback()``. odm reads back the
documents the block loaded (as they may hold its unseen writes), but keeps the old state of a
document loaded before the block instead of reloading it, so that an optimistic lock still sees
a concurrent write.
"""

from __future__ import annotations

import logging
import weakref
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from pymongo.errors import PyMongoError

from . import executor
from .exceptions import OperationTimeout
from .identity import by_stored_id, hashable_id
from .models.copies import written
from .models.diffing import same
from .models.loading import _snapshot_of, load_into
from .models.options import ID_KEY
from .models.tracking import (
    TrackingState,
    Unsure,
    capture_state,
    collection_model,
    family_of,
    held_by,
    raw_snapshot,
    restore_state,
    set_snapshot,
    stored_id,
    version_set_by_hand,
)
from .models.writes import take_version

__all__ = ["Journal"]

logger = logging.getLogger("odm.uow")


class Journal:
    """Documents whose tracking state a transaction changed, with their state before it, and
    documents loaded after the transaction wrote (their state is read back after an abort)."""

    __slots__ = ("_entries", "_kept", "_owner", "_reading", "_reads")

    def __init__(self, owner: Any = None) -> None:
        # Weakly: the unit of work holds its journal, and a strong reference back would make
        # every block a reference cycle, freed only by the cyclic garbage collector, whose
        # collections then walk the heap (a transfer's block cost ~7 % more instructions and
        # half again the floor's cache misses; docs/performance-internals.md).
        self._owner = None if owner is None else weakref.ref(owner)
        # Keyed by id(): the entry holds the document, so its id() stays its own. A state of
        # None means "read it back": the document was loaded after the transaction wrote, so
        # what it was loaded with may be one of the transaction's own writes.
        self._entries: dict[int, tuple[Any, TrackingState | None]] = {}
        # id(document) -> the stored form its fields were last read from after the
        # transaction wrote (each such document also has an entry above).
        self._reads: dict[int, dict[str, Any]] = {}
        # id(document) -> the block's own writes of it, one (written on, left) pair of stored
        # forms per read that followed them, oldest first: replayed after an abort.
        self._kept: dict[int, list[Written]] = {}
        # id(document) -> the pair for the read under way (kept once the read is done).
        self._reading: dict[int, Written] = {}

    @property
    def owner(self) -> Any:
        """The unit of work whose journal this is (``None`` for a journal of none): each
        document it holds is marked with it (:func:`~odm.models.tracking.held_by`), so that a
        write of the document from outside that block is refused while the block is open."""
        return None if self._owner is None else self._owner()

    def reading(self, document: Any) -> None:
        """Note that ``document``'s fields are about to be set from the database: what the
        block's writes made of it since it was last read (or since the block's first change
        to it) is the user's intent, which the read's values hide; :meth:`read` keeps it, for
        :func:`take_back_reads` to apply again after an abort."""
        key = id(document)
        entry = self._entries.get(key)
        if entry is None:
            return  # nothing of the block's: no write of it to keep
        base = self._reads.get(key)
        if base is None:
            state = entry[1]
            if state is None:
                return
            base = state[0] or {}  # inserted in the block: all it wrote is the block's
        left = raw_snapshot(document)
        if left is None or left is base:
            self._reading.pop(key, None)
            return
        self._reading[key] = (base, left)

    def read(self, document: Any, read: dict[str, Any] | None = None) -> None:
        """Note that ``document``'s fields were just set from its snapshot (or from ``read``,
        when given), read after the transaction wrote: an abort reads it back, and takes back
        each value the block's code did not change since (:func:`take_back_reads`)."""
        snapshot = raw_snapshot(document)
        if snapshot is None:
            return
        self.remember_to_reload(document)
        key = id(document)
        wrote = self._reading.pop(key, None)
        if wrote is not None:
            self._kept.setdefault(key, []).append(wrote)
        self._reads[key] = snapshot if read is None else read

    def copied(self, source: Any, copy: Any) -> None:
        """Keep for ``copy``, just made of ``source`` (``copy.copy``, ``model_copy``...), what
        is kept for ``source``: the copy starts from ``source``'s snapshot, which may be one of
        the block's writes, so an abort puts it back as it puts ``source`` back, and takes back
        the values it read. A family of copies made in the block (:mod:`odm.models.copies`)
        knew before it what ``source`` knew: an abort puts that back too."""
        key = id(source)
        entry = self._entries.get(key)
        if entry is None:
            return  # nothing of the block's in its state
        state = entry[1]
        if state is not None and state[3] is None:
            family = family_of(source)
            if family is not None:  # made for this copy: it stood for source's snapshot
                state = (*state[:3], family, state[0])
                self._entries[key] = (source, state)
        mine = id(copy)
        self._entries[mine] = (copy, state)
        held_by(copy, self.owner)
        if key in self._reads:
            self._reads[mine] = self._reads[key]
        if key in self._kept:
            self._kept[mine] = list(self._kept[key])

    def remember(self, document: Any) -> None:
        """Keep ``document``'s state unless it was kept already (the first change wins)."""
        key = id(document)
        if key not in self._entries:
            self._entries[key] = (document, capture_state(document))
            held_by(document, self.owner)

    def read_back(self, document: Any) -> bool:
        """:meth:`read` ``document``, loaded in the block (what it was loaded with may hold
        writes the block made unseen), and say whether it was marked so: not when the journal
        holds it already, nor when its snapshot is :class:`~odm.models.tracking.Unsure` (a
        write of it outside the block was cut off since: it claims nothing, and its next
        write learns what is stored first)."""
        if id(document) in self._entries or isinstance(raw_snapshot(document), Unsure):
            return False
        self.read(document)
        return True

    def remember_to_reload(self, document: Any) -> None:
        """Mark ``document``, loaded after the transaction wrote, to be read back on abort."""
        key = id(document)
        if key not in self._entries:
            self._entries[key] = (document, None)
            held_by(document, self.owner)

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, document: Any) -> bool:
        """Whether the journal keeps a state of ``document``, or marks it to be read back."""
        return id(document) in self._entries

    def restore(self) -> None:
        """Put every kept state back (the transaction was aborted) and forget them; documents
        to read back stay, for :meth:`reload` once the session is gone."""
        left: dict[int, tuple[Any, TrackingState | None]] = {}
        for key, (document, state) in reversed(self._entries.items()):
            if state is None:
                left[key] = (document, state)
            else:
                held_by(document, None)
                restore_state(document, state)
                read = self._reads.pop(key, None)
                kept = self._kept.pop(key, ())
                if read is not None:
                    take_back_reads(document, read, raw_snapshot(document), kept)
        self._entries = left
        self._reading = {}

    def clear(self) -> None:
        """Forget the kept states (the transaction committed: the new states are true)."""
        _release(self._entries.values())
        self._entries = {}
        self._reads = {}
        self._kept = {}
        self._reading = {}

    async def reload(self) -> None:
        """Read the state of every document still kept from the server, outside the
        transaction (after a commit of unknown outcome, or for documents loaded after the
        transaction wrote): its snapshot becomes the stored document, or ``None`` where there
        is none. Where the server cannot be read, the kept state is put back (a document to
        read back is left as it is) and a warning logged: the outcome is the caller's to
        check then."""
        entries, self._entries = self._entries, {}
        _release(entries.values())
        reads, self._reads = self._reads, {}
        kept_all, self._kept = self._kept, {}
        self._reading = {}
        groups: dict[type[Any], list[tuple[Any, TrackingState | None]]] = defaultdict(list)
        for document, state in entries.values():
            groups[collection_model(type(document))].append((document, state))
        for model, group in groups.items():
            ids = [stored_id(document) for document, _ in group]
            try:
                raws = await executor.find_list(model, {ID_KEY: {"$in": ids}})
            except (PyMongoError, OperationTimeout) as exc:  # the executor's own timeout too
                logger.warning(
                    "could not read %d %s document(s) back after a failed transaction (%s): "
                    "their tracking state may not match the database",
                    len(group), model.__name__, exc,
                )
                for document, state in group:
                    if state is not None:
                        restore_state(document, state)
                continue
            stored = by_stored_id(raws)
            for (document, state), ident in zip(group, ids, strict=True):
                # What the fields were last set from: the read in the block, else the
                # snapshot before it. A value still equal to it is no change of the user's,
                # and takes the stored one below, lest the next save() write it back.
                read = reads.get(id(document))
                kept = kept_all.get(id(document), [])
                raw = stored.get(hashable_id(ident))
                wrote = raw_snapshot(document)  # what the block's writes left it believing
                hand_set = version_set_by_hand(document)  # the user's: kept, as in restore()
                if state is not None:
                    restore_state(document, state)
                    before = raw_snapshot(document)
                else:  # loaded after the block wrote: what it was first loaded with
                    before = kept[0][0] if kept else read
                if read is None:
                    read = before
                if read is not None and _landed(wrote, before, raw):
                    # The commit went through for this document: what it wrote is what the
                    # fields were last set from, and the block's writes are stored already
                    # (an append merged onto the stored list again would be appended twice by
                    # the next save()).
                    read, kept = wrote, []
                meta = type(document)._meta
                snapshot = None if raw is None else _snapshot_of(meta, raw)
                set_snapshot(document, snapshot)
                if snapshot is not None:
                    written(document, snapshot)
                if raw is not None and meta.optimistic_lock and not hand_set:
                    # A document stored without a version loads as 0, not None: None would
                    # pass for one set by hand, and refuse the next save() as stale.
                    take_version(document, raw)
                if read is not None:
                    take_back_reads(document, read, snapshot, kept)


def _release(entries: Iterable[tuple[Any, Any]]) -> None:
    """Unmark the documents of ``entries``, no longer kept: the block no longer refuses
    writes of them from outside, nor keeps itself alive through them."""
    for document, _ in entries:
        held_by(document, None)


def _landed(
    wrote: dict[str, Any] | None, before: dict[str, Any] | None, stored: dict[str, Any] | None
) -> bool:
    """Whether ``stored`` holds every value the block wrote to a document (``wrote``, where it
    differs from ``before``, its snapshot before the block): the commit went through for it."""
    if wrote is None or stored is None:
        return False
    before = before or {}
    return all(
        key in stored and same(stored[key], value)
        for key, value in wrote.items()
        if key not in before or not same(before[key], value)
    ) and all(key in wrote or key not in stored for key in before)


#: One run of the block's own writes of a document: the stored form they were made on, and
#: the one they left (:meth:`Journal.reading`).
Written = tuple[dict[str, Any], dict[str, Any]]


def take_back_reads(
    document: Any,
    read: dict[str, Any],
    stored: dict[str, Any] | None,
    kept: Iterable[Written] = (),
) -> None:
    """Set ``document``'s fields to ``stored`` (what the database holds after an abort)
    wherever they still hold what the block read (``read``): those values may be the aborted
    transaction's writes. What the block's code changed since stays (its intent, for the next
    ``save()``): merged key by key into embedded documents and dicts, and an append to a list
    is kept as an append to the stored list; a list changed otherwise is kept whole. So do the
    block's own writes that the read hid (``kept``, oldest first, from
    :meth:`Journal.reading`): they are applied again on ``stored`` first.

    Under ``Meta.optimistic_lock``, a document that keeps changes of the block's code made on
    a version older than the stored one (someone else committed since the read) keeps that
    version in its snapshot: its next ``save()`` raises :class:`odm.StaleDocument` instead of
    writing over what it never saw, as for a document loaded before the block.

    A document no longer stored (``stored`` is ``None``) keeps its values, but those it read
    after an insert of the block: they go back to what the insert wrote. Should the merge not
    validate (a model validator across fields), the document takes ``stored`` (or what its
    insert wrote) whole; should that fail too, it is left as it is and a warning logged (this
    runs while a block is being aborted: its own error must go on)."""
    kept = list(kept)
    if stored is None and not kept:
        return
    try:
        meta = type(document)._meta
        mine = document.to_bson()
        base = _replay(meta, stored, kept)
        merged = _three_way(mine, read, base)
        kept_on = None
        if stored is not None and (kept_on := _version_kept_on(meta, merged, read, stored)):
            key, version = kept_on
            merged[key] = version
            set_snapshot(document, {**stored, key: version})
        if same(merged, mine):
            return
        try:
            # Copied as a load copies them: the fields must not share objects with the
            # snapshot, or an in-place change would change both and never be saved.
            load_into(document, _snapshot_of(meta, merged))
        except ValidationError:
            if stored is not None and kept_on is not None:
                set_snapshot(document, stored)
            load_into(document, _snapshot_of(meta, base))
    except Exception as exc:  # logged, not raised: the abort's own error goes on
        logger.warning(
            "could not take back the values %s _id=%r read in an aborted transaction (%s): "
            "refresh() it before saving",
            type(document).__name__, stored_id(document), exc,
        )


def _replay(
    meta: Any, stored: dict[str, Any] | None, kept: list[Written]
) -> dict[str, Any]:
    """``stored`` (``None``: not stored, nothing) with the block's own writes ``kept`` made
    again on it, each as a three-way merge. The version of an optimistic lock is the stored
    one: the writes that bumped it were rolled back."""
    replayed = {} if stored is None else stored
    for written_on, left in kept:
        replayed = _three_way(left, written_on, replayed)
    if kept and stored is not None and meta.optimistic_lock:
        key = meta.db_key(meta.version_field)
        replayed = {**replayed, key: stored.get(key, _ABSENT)}
        if replayed[key] is _ABSENT:
            del replayed[key]
    return replayed


def _version_kept_on(
    meta: Any, merged: dict[str, Any], read: dict[str, Any], stored: dict[str, Any]
) -> tuple[str, int] | None:
    """``(key, version)`` when a document under an optimistic lock keeps changes made on a
    version (``read``'s) older than the stored one, else ``None``.

    Older only: someone else committed since the read, so the document is a copy of that
    time, as one loaded before the block is. A newer read held the aborted transaction's own
    write, gone now: the stored version is the one to write on (as for any document, the
    values the block's code set are its intent)."""
    if not meta.optimistic_lock:
        return None
    key = meta.db_key(meta.version_field)
    version, current = read.get(key), stored.get(key)
    if type(version) is not int or type(current) is not int or version >= current:
        return None
    if same(merged, stored):
        return None
    return key, version


#: A key absent from one side of a three-way merge.
_ABSENT: Any = object()


def _three_way(mine: Any, read: Any, stored: Any) -> Any:
    """The value to keep: ``stored`` where ``mine`` is still what was ``read``, else
    ``mine``, merged into mappings key by key (:data:`_ABSENT`: no such key)."""
    if mine is read or (mine is not _ABSENT and read is not _ABSENT and same(mine, read)):
        return stored
    if isinstance(mine, dict) and isinstance(read, dict) and isinstance(stored, dict):
        merged: dict[str, Any] = {}
        for key in {**stored, **read, **mine}:
            value = _three_way(
                mine.get(key, _ABSENT), read.get(key, _ABSENT), stored.get(key, _ABSENT)
            )
            if value is not _ABSENT:
                merged[key] = value
        return merged
    if (
        isinstance(mine, list) and isinstance(read, list) and isinstance(stored, list)
        and len(read) < len(mine) and same(mine[: len(read)], read)
    ):
        return stored + mine[len(read) :]  # the block's code appended: still an append
    return mine
