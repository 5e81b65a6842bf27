"""A mark's or an unmark's change of the records, and its journal when made without a transaction.

A ``mark`` or an ``unmark`` decides all it writes before its first write (:class:`RecordsChange`).
In a transaction those writes commit together; without one, :class:`ChangeJournal` notes the
change as under way in ``_odm_migrations_state`` (``_id`` :data:`CHANGE_KEY`) before its first
write and removes the note after its last, so that a command cut off between them is finished
by the next one. Likewise an apply or a rollback recorded without a transaction keeps its log
entry in the file's position (``logging``) until logged, and the next command logs it if it was
cut off first (:func:`log_once` makes repeating a log entry harmless).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from ..exceptions import MigrationError
from .cleanup import quietly, settled_session
from .lock import LeaseRanOut, MigrationLock, shown_holder
from .recorder import (
    STATE,
    AppliedRecord,
    Recorder,
    done_as_recorded,
    in_session,
    not_written_by_odm,
    record_of,
    stored_value,
)
from .reporting import failure_reason
from .retry import TransientRetry, is_transient
from .transaction import FencedTransaction

#: The ``_id`` in :data:`STATE` of the change of the records under way (no migration id, which
#: starts with digits, and no ``file:`` position can take it).
CHANGE_KEY = "records-change"

#: What a change of the records may be, as its log entry names it.
CHANGE_ACTIONS = ("mark", "rename", "unmark")


@dataclass(frozen=True)
class RecordsChange:
    """What a ``mark`` or an ``unmark`` writes, decided before its first write.

    The positions of ``forget_positions`` are forgotten; ``put`` (a whole record) is stored,
    or ``update`` set on the record of ``migration``; the records of ``remove`` are removed;
    ``log`` (an entry with its ``_id``) is logged. Every value is fixed here, when and by whom
    included, so a run that finishes the change after a fault writes what the first would have.
    """

    action: str
    migration: str
    log: dict[str, Any]
    forget_positions: tuple[str, ...] = ()
    put: dict[str, Any] | None = None
    update: dict[str, Any] | None = None
    remove: tuple[str, ...] = ()

    def describe(self) -> str:
        """Name the change as its command reads (``mark 0002_b``: a rename is marked too)."""
        return f"{'mark' if self.action == 'rename' else self.action} {self.migration}"

    def document(self) -> dict[str, Any]:
        """Return the change as stored while under way (no ``migration`` field: forgetting the
        file's positions must not forget it)."""
        return {
            "_id": CHANGE_KEY,
            "action": self.action,
            "target": self.migration,
            "log": self.log,
            "forget_positions": list(self.forget_positions),
            "put": self.put,
            "update": self.update,
            "remove": list(self.remove),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RecordsChange:
        """Read a stored change, refusing one of a shape odm never writes: a field this odm does
        not know (another version's: finishing without it would do part of the change), or
        writes other than a mark, a rename or an unmark of its target makes (a record put for
        another id, fields set that no record holds, records removed that it does not name)."""
        def refuse(field: str, expected: str) -> MigrationError:
            return not_written_by_odm(
                f"{STATE}: the change under way {CHANGE_KEY!r} has", field, doc.get(field),
                expected,
            )

        _refuse_unknown_fields(doc)
        if doc.get("action") not in CHANGE_ACTIONS:
            raise refuse("action", "mark, rename or unmark")
        target, log = doc.get("target"), doc.get("log")
        if not isinstance(target, str) or not target:
            raise refuse("target", "a migration id")
        if not (isinstance(log, dict) and isinstance(log.get("_id"), ObjectId)):
            raise refuse("log", "a log entry with its _id")
        put, update = doc.get("put"), doc.get("update")
        if put is not None and not isinstance(put, dict):
            raise refuse("put", "an applied record")
        if update is not None and not isinstance(update, dict):
            raise refuse("update", "the fields of a record")
        ids: dict[str, tuple[str, ...]] = {}
        for field in ("forget_positions", "remove"):
            value = doc.get(field)
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise refuse(field, "a list of migration ids")
            ids[field] = tuple(value)
        change = cls(
            action=str(doc["action"]), migration=target, log=dict(log),
            forget_positions=ids["forget_positions"], put=put, update=update,
            remove=ids["remove"],
        )
        mismatch = change._mismatch()
        if mismatch is not None:
            raise refuse(*mismatch)
        return change

    def _mismatch(self) -> tuple[str, str] | None:
        """Return the field where this change differs from what its action writes for its
        target, with what that field should hold (``None``: it is as odm writes it)."""
        target, action, log = self.migration, self.action, self.log
        old = log.get("renamed_from")
        if (log.get("migration"), log.get("action")) != (target, action) or (
            action == "rename" and not (isinstance(old, str) and old and old != target)
        ):
            return "log", f"the log entry of this {action} of {target}"
        forget, remove = {
            "mark": ((target,), ()),
            "unmark": ((target,), (target,)),
            "rename": ((target, old), (old,)),
        }[action]
        if self.forget_positions != forget:
            return "forget_positions", repr(list(forget))
        if self.remove != remove:
            return "remove", repr(list(remove))
        if (action == "rename" or (action == "mark" and self.update is None)) != (
            self.put is not None
        ) or not (self.put is None or _is_record_of(self.put, target)):
            return "put", f"the applied record of {target}" if self.put is not None else "none"
        if self.update is not None and not (action == "mark" and _is_content_of(self.update)):
            return "update", "the checksum and the dependencies of a record"
        return None

    def changes_which_applied(self) -> bool:
        """Tell whether this change adds or removes an applied record (not only updates one)."""
        return self.put is not None or bool(self.remove)

    def applied_after(self, applied: Mapping[str, AppliedRecord]) -> dict[str, AppliedRecord]:
        """Return the applied records as they will be once this change is finished."""
        records = {mid: record for mid, record in applied.items() if mid not in self.remove}
        if self.put is not None:
            record = record_of(self.put)
            records[record.id] = record
        current = records.get(self.migration)
        if self.update is not None and current is not None:
            records[self.migration] = record_of(
                {**_record_document(current), **self.update}
            )
        return records


#: The fields of a change under way, as :meth:`RecordsChange.document` writes them.
CHANGE_FIELDS = ("_id", "action", "target", "log", "forget_positions", "put", "update", "remove")


def _refuse_unknown_fields(doc: Mapping[str, Any]) -> None:
    """Refuse a change under way holding a field this odm does not write (another version's, or
    a hand's): finishing it without knowing what that field asks would do part of it."""
    unknown = [str(field) for field in doc if field not in CHANGE_FIELDS]
    if unknown:
        raise MigrationError(
            f"{STATE}: the change under way {CHANGE_KEY!r} has "
            f"{'fields' if len(unknown) > 1 else 'a field'} this version of odm does not know "
            f"({stored_value(unknown)}; written by another version?): finish it with the odm "
            "that began it, or fix or delete that document"
        )


def _is_record_of(doc: Mapping[str, Any], migration_id: str) -> bool:
    """Tell whether ``doc`` is an applied record of ``migration_id`` as odm writes one."""
    try:
        return record_of(doc).id == migration_id
    except MigrationError:
        return False


def _is_content_of(update: Mapping[str, Any]) -> bool:
    """Tell whether ``update`` sets what a mark sets on a record it keeps: its checksum and its
    dependencies, as odm writes them."""
    if set(update) != {"checksum", "depends"} or not isinstance(update["checksum"], str):
        return False
    return _is_record_of({"_id": "-", **update}, "-")


def _record_document(record: AppliedRecord) -> dict[str, Any]:
    """Return ``record`` as the document it was read from (what :func:`record_of` reads)."""
    return {
        "_id": record.id,
        "checksum": record.checksum,
        "applied_at": record.applied_at,
        "applied_by": record.applied_by,
        "duration_ms": record.duration_ms,
        "marked": record.marked,
        "depends": None if record.depends is None else list(record.depends),
    }


async def log_once(recorder: Recorder, entry: dict[str, Any], *, session: Any = None) -> None:
    """Log ``entry`` (with its ``_id``) unless it is logged already: a run that finishes
    another's writes may repeat it.

    Looked for first: in a transaction, the insert's duplicate key error would abort it.
    """
    options = in_session(session)
    if await recorder.log_collection.find_one({"_id": entry["_id"]}, {"_id": 1}, **options):
        return
    with contextlib.suppress(DuplicateKeyError):  # logged meanwhile: only without a transaction
        await recorder.log_collection.insert_one(entry, **options)


async def fenced(lock: MigrationLock, write: Callable[[], Awaitable[Any]]) -> None:
    """Make ``write`` (one made without a transaction) under ``lock``: proven just before, so
    that a run that lost the lock does not make it, and bounded by the lease that proof
    extended (:meth:`MigrationLock.within_lease`), so that it cannot land once another run may
    have taken the lock over (stalled on its way or on the server)."""
    await lock.prove()
    await lock.bounded(write)


class ChangeJournal:
    """Makes the changes of the records and keeps their journal: the records (``recorder``),
    the ``client`` whose sessions carry the writes made without a transaction, and where
    progress goes (``echo``)."""

    def __init__(
        self,
        recorder: Recorder,
        client: Any,
        echo: Callable[[str], None],
        *,
        transactions: bool = False,
    ) -> None:
        self.recorder = recorder
        self.client = client
        self.echo = echo
        #: Whether the server runs transactions: what an earlier run left is finished in one.
        self.transactions = transactions

    async def make(
        self, change: RecordsChange, *, session: Any = None, lock: MigrationLock | None = None
    ) -> None:
        """Make every write of ``change``, each one such that making it again changes nothing:
        the positions forgotten, the record stored, the records removed, the entry logged.

        Without a transaction, ``lock`` fences each write (:func:`fenced`), so that a run that
        lost the lock stops before its next write, and ``session`` carries them.
        """
        for write in self._writes_of(change, session):
            if lock is None:
                await write()
            else:
                await fenced(lock, write)

    def _writes_of(
        self, change: RecordsChange, session: Any
    ) -> list[Callable[[], Awaitable[Any]]]:
        """Return the writes of ``change``, in the order they are made."""
        recorder = self.recorder
        applied, options = recorder.applied_collection, in_session(session)
        writes: list[Callable[[], Awaitable[Any]]] = [
            partial(recorder.clear_state, migration_id, session=session)
            for migration_id in change.forget_positions
        ]
        if change.put is not None:
            put = change.put
            writes.append(partial(applied.replace_one, {"_id": put["_id"]}, put, upsert=True,
                                  **options))
        if change.update is not None:
            writes.append(partial(applied.update_one, {"_id": change.migration},
                                  {"$set": change.update}, **options))
        if change.remove:
            writes.append(partial(applied.delete_many, {"_id": {"$in": list(change.remove)}},
                                  **options))
        writes.append(partial(log_once, recorder, change.log, session=session))
        return writes

    async def unfinished(self) -> RecordsChange | None:
        """Return the change of the records an earlier run began and did not finish."""
        doc = await self.recorder.state.find_one({"_id": CHANGE_KEY})
        return None if doc is None else RecordsChange.from_document(doc)

    async def _begin(self, change: RecordsChange, session: Any) -> None:
        """Note ``change`` as under way, before its first write (refused while another is)."""
        await self.recorder.state.insert_one(change.document(), **in_session(session))

    async def _end(self, change: RecordsChange, session: Any) -> None:
        """Forget ``change`` as under way: its last write is done (or it never began)."""
        await self.recorder.state.delete_one(
            {"_id": CHANGE_KEY, "log._id": change.log["_id"]}, **in_session(session)
        )

    async def unlogged_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """Return, by migration id, the log entries of runs of files that were being recorded
        without a transaction when they were cut off: kept in the file's position until logged.
        """
        found = []
        async for doc in self.recorder.state.find(
            {"_id": {"$regex": "^file:"}, "logging": {"$exists": True}}
        ):
            migration_id = str(doc["_id"]).removeprefix("file:")
            entry = doc["logging"]
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("_id"), ObjectId)
                and entry.get("migration") == migration_id
                and entry.get("action") in ("apply", "rollback")
            ):
                raise not_written_by_odm(
                    f"{STATE}: the saved position {doc['_id']!r} holds", "logging", entry,
                    f"the log entry of an apply or a rollback of {migration_id}",
                )
            found.append((migration_id, dict(entry)))
        return found

    async def journaled(self, lock: MigrationLock, change: RecordsChange) -> None:
        """Make the writes of ``change`` one after the other (no transaction), noted as under
        way first and forgotten last: cut off between, the next command finishes it.

        Each write may be made again with the same outcome, so finishing repeats them all.
        """
        what = change.describe()
        try:
            await lock.prove()
        except Exception as exc:
            raise MigrationError(
                f"{what} failed, nothing was changed: {failure_reason(exc)}"
            ) from exc
        try:
            async with self._settled_session() as session:
                await lock.bounded(partial(self._begin, change, session))
        except Exception as exc:
            raise await self._not_begun(lock, change, exc) from exc
        except BaseException:
            self.echo(await self._interrupted_while_noting(change))
            raise
        try:
            await self._make_noted(lock, change)
        except Exception as exc:
            raise MigrationError(
                f"{what} stopped part-way: {failure_reason(exc)}; {_NOTED}"
            ) from exc
        except BaseException:
            self.echo(f"{what}: interrupted part-way; {_NOTED}")
            raise

    def _settled_session(self) -> AbstractAsyncContextManager[Any]:
        """Return a session for writes made without a transaction, ended on the server and
        fenced there if cut off, so that none of them lands after the lock is released (under
        the next run), nor after what it stored was read back."""
        return settled_session(self.client, self.echo, fence_in=self.recorder.database.name)

    async def _make_noted(self, lock: MigrationLock, change: RecordsChange) -> None:
        """Make the writes of ``change`` (noted as under way), then forget the note: each under
        a fresh proof of ``lock``, so that a run that lost it stops before the next write."""
        async with self._settled_session() as session:
            await self.make(change, session=session, lock=lock)
            await fenced(lock, partial(self._end, change, session))

    async def _finish(self, lock: MigrationLock, change: RecordsChange) -> None:
        """Make the writes of ``change``, noted as under way by an earlier run, and forget the
        note: in one transaction fenced by ``lock`` where the server runs them, so that they
        land together or not at all; else one after the other (:meth:`_make_noted`)."""
        if not self.transactions:
            await self._make_noted(lock, change)
            return

        async def writes() -> None:
            await self.make(change)
            await self._end(change, None)

        await self.in_transaction(lock, writes)

    async def in_transaction(
        self, lock: MigrationLock, writes: Callable[[], Awaitable[None]]
    ) -> None:
        """Make ``writes`` (driver calls without a session) in one transaction fenced by
        ``lock``: proven before it opens and once more in it before it commits. One that fails
        transiently (a write conflict, a primary stepping down) runs again while the lease
        lasts, as a file's transaction does (:class:`TransientRetry`): each of its writes
        changes nothing made again."""
        retry = TransientRetry(lock)
        while True:
            try:
                await self._transaction_attempt(lock, writes)
                return
            except Exception as exc:
                if await retry.again(exc):
                    continue
                if retry.retries and is_transient(exc):
                    raise retry.gave_up("its transaction", exc) from exc
                raise

    async def _transaction_attempt(
        self, lock: MigrationLock, writes: Callable[[], Awaitable[None]]
    ) -> None:
        """Make ``writes`` once in a transaction fenced by ``lock``; nothing is kept of it when
        it fails."""
        tx = FencedTransaction(self.recorder.database, lock)
        try:
            await tx.begin()
            await writes()
            await tx.commit()
        except BaseException:
            await quietly(tx.abort())
            await quietly(tx.settle())  # a commit cut off on its way must not land later
            raise

    async def _not_begun(
        self, lock: MigrationLock, change: RecordsChange, exc: Exception
    ) -> MigrationError:
        """Return the error of a change whose note as under way failed: its write's answer may
        be lost after it was stored, so the note is taken back before saying nothing changed."""
        what = change.describe()
        if isinstance(exc, LeaseRanOut) and not exc.sent:
            # Refused before it was sent: no note to take back (and no lease left to do it in).
            return MigrationError(f"{what} failed, nothing was changed: {failure_reason(exc)}")
        try:
            async with self._settled_session() as session:
                await fenced(lock, partial(self._end, change, session))
        except Exception as unknown:
            return MigrationError(
                f"{what} failed: {failure_reason(exc)}; whether it was begun cannot be told "
                f"({failure_reason(unknown)}): if it was, {_NEXT_FINISHES}{_SHOWN}"
            )
        return MigrationError(f"{what} failed, nothing was changed: {failure_reason(exc)}")

    async def _interrupted_while_noting(self, change: RecordsChange) -> str:
        """Say where a change interrupted while being noted as under way stands (its write
        ended on the server): noted, not, or unknown."""
        what = change.describe()
        try:
            noted = await self.unfinished()
        except Exception as exc:
            return (
                f"{what}: interrupted; whether it was begun cannot be told "
                f"({failure_reason(exc)}): if it was, {_NEXT_FINISHES}{_SHOWN}"
            )
        if noted is not None and noted.log["_id"] == change.log["_id"]:
            return f"{what}: interrupted part-way; {_NOTED}"
        return f"{what}: interrupted; nothing was changed"

    async def finish_unfinished(self, lock: MigrationLock) -> RecordsChange | None:
        """Finish a mark or an unmark an earlier run began without a transaction and did not
        finish (cut off by a fault, a kill or Ctrl-C), saying so, before anything else; return
        it (``None``: there was none). Log the runs recorded and not logged, too."""
        await self._log_unlogged_runs(lock)
        change = await self.unfinished()
        if change is None:
            return None
        what = change.describe()
        self.echo(f"finishing `{what}`, which {_begun_by(change)} and did not finish")
        try:
            await self._finish(lock, change)
        except Exception as exc:
            raise MigrationError(
                f"`{what}`, which {_begun_by(change)}, could not be finished: "
                f"{failure_reason(exc)}; nothing else was done: run the command again"
            ) from exc
        except BaseException:
            self.echo(f"finishing `{what}`: interrupted part-way; {_NOTED}")
            raise
        self.echo(f"  {said(change)}")
        return change

    async def _log_unlogged_runs(self, lock: MigrationLock) -> None:
        """Log the applies and rollbacks that an earlier run recorded without a transaction,
        and was cut off before logging (their entry waits in the file's position)."""
        applied = await self.recorder.applied()
        for mid, entry in await self.unlogged_runs():
            if not done_as_recorded(entry["action"], entry.get("checksum"), applied.get(mid)):
                continue  # cut off before its record: the next run of the file records it
            what = f"{entry['action']} {mid}"
            self.echo(f"logging `{what}`, recorded by an earlier run that was cut off before "
                      "logging it")
            try:
                await self._log_run(lock, mid, entry)
            except Exception as exc:
                raise MigrationError(
                    f"logging `{what}` failed: {failure_reason(exc)}; nothing else was done: "
                    "run the command again"
                ) from exc

    async def _log_run(self, lock: MigrationLock, mid: str, entry: dict[str, Any]) -> None:
        """Log the run of ``mid`` recorded as done (``entry``), then forget its positions: in one
        transaction where the server runs them, else one write after the other, each fenced."""
        if self.transactions:
            async def writes() -> None:
                await log_once(self.recorder, entry)
                await self.recorder.clear_state(mid)

            await self.in_transaction(lock, writes)
            return
        async with self._settled_session() as session:
            await fenced(lock, partial(log_once, self.recorder, entry, session=session))
            await fenced(lock, partial(self.recorder.clear_state, mid, session=session))

    async def unfinished_note(self) -> str | None:
        """Say which mark or unmark an earlier run left part-way (``None``: none), for the
        verbs that only read."""
        change = await self.unfinished()
        if change is None:
            return None
        return (
            f"note: `{change.describe()}`, which {_begun_by(change)}, is not finished: "
            f"{_NEXT_FINISHES}"
        )


#: Who finishes a mark or an unmark left part-way, and where it shows meanwhile.
_NEXT_FINISHES = "the next `odm migrate apply`, `rollback`, `mark` or `unmark` finishes it first"
_SHOWN = " (`plan` and `list` show it)"

#: What a mark or an unmark cut off part-way without a transaction leaves, and what then.
_NOTED = f"it is noted as under way ({STATE} {CHANGE_KEY!r}), and {_NEXT_FINISHES}{_SHOWN}"


def same_change(change: RecordsChange | None, action: str, migration_id: str) -> bool:
    """Tell whether ``change`` is ``action`` (a rename counts as a mark) of ``migration_id``."""
    if change is None or change.migration != migration_id:
        return False
    return change.action == action or (action, change.action) == ("mark", "rename")


def said(change: RecordsChange) -> str:
    """Say what ``change`` did, once done."""
    if change.action == "rename":
        return (
            f"recorded {change.log.get('renamed_from')} as renamed to {change.migration} "
            "(already applied)"
        )
    if change.action == "unmark":
        return f"unmarked {change.migration}"
    return f"marked {change.migration} as applied"


def _begun_by(change: RecordsChange) -> str:
    """Say who began ``change`` and when, as its log entry has it."""
    at = change.log.get("at")
    when = f" at {at.isoformat(timespec='seconds')}" if isinstance(at, datetime) else ""
    return f"{shown_holder(change.log.get('by', '?'))} began{when}"
