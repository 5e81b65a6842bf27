"""``batched_update``: a long data step that runs in batches, shows progress and resumes.

Documents are read in ``_id`` order, ``batch_size`` at a time, and each batch's updates are
written with one ``bulk_write``. The position (the last ``_id`` done) lives in the migrations'
state collection, so that a killed run resumes after the last batch that was written.

"After the last ``_id``" follows MongoDB's sort order across BSON types (numbers, then strings,
objects, binary, ObjectIds, ...): ``{"_id": {"$gt": last}}`` alone only matches ``_id`` values
of the type of ``last``, and would skip every document whose ``_id`` has a type sorting later.
After the last batch, a check with the server's own comparison makes sure that no matching
document was left behind; finding one fails the step rather than recording it finished.

Exactly once, however the run dies:

- Where the server runs transactions (a replica set), each batch's writes and the new position
  are committed in ONE short transaction, guarded by the previous position (compare-and-set):
  either both are stored or neither is. The session id is recorded first, so that a resumed run
  can kill a transaction the dead process left open instead of waiting for the server to reap it.
- Elsewhere (a standalone server), every per-document update is guarded by a marker field
  (``_odm_batch``) that it sets in the same single-document write: a document updated before the
  crash no longer matches, so resuming from an older position repeats no update. The markers are
  removed when the operation finishes. A batch cut off on its way (Ctrl-C, a network error) is
  ended on the server, and its session fenced there, before the run goes on: else a run resumed
  at once could remove the markers before its late writes land, and they would match again.

Before each batch is written, the run proves it still holds the migrations lock (first inside
the batch's transaction where there is one): a run that lost the lock writes no further batch.
Every write made outside a transaction (a batch without transactions, the position's bookkeeping)
is also bounded by what is left of the lock's lease (``MigrationLock.bounded``): stalled past
it, the driver does not send it or the server refuses it, so it cannot land once another run may
hold the lock. A batch cut off at the lease is ended on the server and the step fails saying
what is known to be written: the batches before it (the stored position), and of that batch
only what its markers show, which the next run does not write again.

The documents are read and the updates computed outside the transaction, which stays open for
milliseconds: the 60 s transaction limit never applies, whatever the collection's size.
"""

from __future__ import annotations

import datetime
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final

from bson import Binary, Code, DatetimeMS, DBRef, Decimal128, MaxKey, MinKey, ObjectId, Timestamp
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from .. import drivers
from ..exceptions import MigrationError
from ..server_transactions import abort_server_transaction, end_session_by_id
from .cleanup import settle
from .lock import LeaseRanOut
from .operations import Context, Operation, collection_name, collection_of, current_context
from .recorder import STATE, not_written_by_odm, whole_number
from .retry import LeaseBound

#: The field that guards per-document updates on servers without transactions.
MARKER = "_odm_batch"

Update = Mapping[str, Any] | Sequence[Mapping[str, Any]]
UpdateFunction = Callable[[dict[str, Any]], Update | None]

#: The position of a run that has done no batch yet (``None`` is a valid last ``_id``).
_START: Final = object()

#: BSON types in the order MongoDB sorts them, as ``$type`` names them, each with the smallest
#: value(s) of the type: ``{"$gte": smallest}`` matches the whole type and reads the ``_id``
#: index from the type's start. Arrays, regular expressions and DBPointers cannot be an ``_id``
#: (or cannot be written from Python) and are left out.
_SORT_ORDER: Final[tuple[tuple[str, tuple[Any, ...]], ...]] = (
    ("minKey", (MinKey(),)),
    ("null", (None,)),
    ("number", (float("-inf"), float("nan"))),  # NaN sorts before every other number
    ("string", ("",)),
    ("object", ({},)),
    ("binData", (Binary(b"", 0),)),
    ("objectId", (ObjectId(b"\x00" * 12),)),
    ("bool", (False,)),
    # Year 1, not the BSON minimum: a date before it could not be read back (nor its document),
    # and an explain or a query log holding the minimum would not decode either.
    ("date", (datetime.datetime.min,)),
    ("timestamp", (Timestamp(0, 0),)),
    ("javascript", (Code(""),)),
    ("javascriptWithScope", (Code("", {}),)),
    ("maxKey", (MaxKey(),)),
)
_TYPE_NAMES: Final = [name for name, _ in _SORT_ORDER]


class BatchedUpdate(Operation):
    """Update the documents matching a filter in ``_id`` order, in resumable batches."""

    transactional = False
    outside_note = "each batch commits on its own, with its position"
    #: Seconds between two plain progress lines (when not on a terminal).
    log_interval = 1.0

    def __init__(
        self,
        collection: Any,
        filter: Mapping[str, Any],
        update: Update | UpdateFunction,
        *,
        batch_size: int = 1000,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            # A float or a bool would only fail at the first batch, as the driver's error.
            raise MigrationError(
                f"batch_size must be a whole number of at least 1, not {batch_size!r}"
            )
        self.collection = collection
        self.filter = dict(filter)
        self.update = update
        self.batch_size = batch_size

    def describe(self) -> str:
        """Name the collection, the filter and the batch size."""
        return (
            f"batched update of {collection_name(self.collection)} matching {self.filter!r} "
            f"in batches of {self.batch_size}"
        )

    def _update_for(self, document: dict[str, Any]) -> Update | None:
        if callable(self.update):
            return self.update(document)
        return self.update

    async def run(self, context: Context) -> None:
        """Process every matching document not yet done, resuming from the stored position."""
        collection = collection_of(context, self.collection)
        key = context.next_key()
        state = context.state
        transactional = context.transactions
        saved = await state.find_one({"_id": key}) if state is not None else None
        saved = _checked_position(saved or {}, key)
        if saved.get("finished"):
            return
        last_id = _position_of(saved)
        done = int(saved.get("done", 0))
        name = collection_name(self.collection)
        if saved:
            context.echo(f"{context.migration_id}: resuming {name} after {done} document(s)")
        remaining = await collection.count_documents(self._query(last_id, key, transactional))
        progress = _Progress(name, done + remaining, done, context.echo, self.log_interval)
        session = await drivers.start_session(collection.database.client)
        try:
            if state is not None:
                await self._take_over(state, key, saved, session, context)
            while True:
                cursor = collection.find(
                    self._query(last_id, key, transactional),
                    sort=[("_id", 1)],
                    limit=self.batch_size,
                )
                batch = [doc async for doc in cursor]
                if not batch:
                    break
                requests = []
                for document in batch:
                    update = self._update_for(document)
                    if update is None:
                        continue
                    selector: dict[str, Any] = {"_id": document["_id"]}
                    if not transactional:
                        selector[MARKER] = {"$ne": key}
                        update = _with_marker(update, key)
                    requests.append(UpdateOne(selector, update))
                new_last = batch[-1]["_id"]
                if transactional:
                    await self._commit_batch(
                        session,
                        collection,
                        state,
                        key,
                        requests,
                        last_id,
                        new_last,
                        done + len(batch),
                        context,
                    )
                else:
                    try:
                        await self._write_alone(
                            session, collection, state, key, requests, new_last,
                            done + len(batch), context,
                        )
                    except LeaseRanOut as exc:
                        raise self._cut_at_lease(exc, len(batch), done) from exc
                last_id = new_last
                done += len(batch)
                progress.advance(len(batch))
            await self._check_none_left(collection, last_id, key, transactional)
            await self._finish(collection, state, key, done, session, context)
        except BaseException:
            if not transactional:
                await settle(
                    collection.database.client, session, context.echo,
                    fence_in=context.database.name,
                )
            raise
        finally:
            progress.close()
            # Its id is stored with the position: a later run fences it, so it must never
            # serve another operation of this process.
            await drivers.end_session_unpooled(session)

    async def _finish(
        self, collection: Any, state: Any, key: str, done: int, session: Any, context: Context
    ) -> None:
        """Remove the guards (without transactions) and store the operation as finished,
        under a fresh proof of the lock and within its lease: a run that lost the lock must not
        remove the markers the new holder's batches rely on."""
        if context.prove is not None:
            await context.prove(None)

        async def unmark_and_store() -> None:
            if not context.transactions:
                # Every document is done: the guards have served their purpose.
                await collection.update_many(
                    {MARKER: key}, {"$unset": {MARKER: ""}}, session=session
                )
            if state is not None:
                await state.update_one(
                    {"_id": key},
                    {
                        "$set": {
                            "finished": True,
                            "done": done,
                            "migration": context.migration_id,
                            "checksum": context.checksum,
                        }
                    },
                    upsert=True,
                    session=session,
                )

        await _lease_bound(context, unmark_and_store)

    async def _write_alone(
        self,
        session: Any,
        collection: Any,
        state: Any,
        key: str,
        requests: list[UpdateOne],
        new_last: Any,
        new_done: int,
        context: Context,
    ) -> None:
        """Write a batch without a transaction: prove the lock, then the guarded updates and the
        new position, in ``session`` (cut off, :meth:`run` ends them on the server before the
        run may release its lock: a write still running there must not land under the next
        run, after it removed the guards)."""
        if context.prove is not None:
            await context.prove(None)

        async def write_and_move() -> None:
            if requests:
                await collection.bulk_write(requests, ordered=False, session=session)
            if state is not None:
                await state.update_one(
                    {"_id": key},
                    {"$set": _moved_to(new_last, new_done)},
                    upsert=True,
                    session=session,
                )

        await _lease_bound(context, write_and_move)

    def _cut_at_lease(self, exc: LeaseRanOut, size: int, done: int) -> LeaseRanOut:
        """Return the error of a batch (``size`` documents, after ``done`` documents stored as
        done) whose writes ran out of the lock's lease, saying what is known to be written."""
        if exc.sent:
            batch = (
                f"the next batch ({size} document(s)) was cut off and may be partly written: "
                f"each document it updated carries the marker {MARKER!r}, so no run updates it "
                "again"
            )
        else:
            batch = f"the next batch ({size} document(s)) was not sent"
        return LeaseRanOut(
            f"{self.describe()}: {done} document(s) done and stored as done; {batch}; the next "
            f"run resumes after the last stored: {exc}",
            sent=exc.sent,
        )

    def _query(self, last_id: Any, key: str, transactional: bool) -> dict[str, Any]:
        """Return the filter of the documents still to do, after ``last_id`` in ``_id`` order."""
        parts: list[dict[str, Any]] = [self.filter] if self.filter else []
        if last_id is not _START:
            parts.append(_after(last_id))
        if not transactional:
            parts.append({MARKER: {"$ne": key}})
        return _all_of(parts)

    async def _check_none_left(
        self, collection: Any, last_id: Any, key: str, transactional: bool
    ) -> None:
        """Fail if a matching document sorting after the last one done was never reached.

        Asked with the server's own comparison (``$expr``), which orders values of different
        types as the ``_id`` sort does: independent of :func:`_after`'s table of types.
        """
        if last_id is _START:
            return  # no batch at all: nothing matched from the start
        parts: list[dict[str, Any]] = [self.filter] if self.filter else []
        parts.append({"$expr": {"$gt": ["$_id", {"$literal": last_id}]}})
        if not transactional:
            parts.append({MARKER: {"$ne": key}})
        left = await collection.find_one(_all_of(parts), projection={"_id": 1})
        if left is not None:
            raise MigrationError(
                f"{self.describe()}: the document with _id {left['_id']!r} matches and sorts "
                f"after the last one done (_id {last_id!r}) but was never reached; the update "
                "is not recorded as finished, and the next run resumes after that last one"
            )

    async def _take_over(
        self, state: Any, key: str, saved: Mapping[str, Any], session: Any, context: Context
    ) -> None:
        previous = saved.get("lsid")
        if previous is not None:
            # A killed run may have left its last batch's transaction open; kill it now rather
            # than hitting write conflicts until the server reaps it (60 s by default).
            lsid = {
                k: Binary.from_uuid(v) if isinstance(v, uuid.UUID) else v
                for k, v in dict(previous).items()
            }
            # Fenced too: a command of it still on its way (unread in the socket of the dead
            # process, or delayed on the network) was no operation for the kill to end, and
            # arriving after it, a transaction's first command would open the transaction again.
            await end_session_by_id(state.database.client, lsid, fence_in=context.database.name)
        await _lease_bound(context, partial(self._note_session, state, key, session, context))

    async def _note_session(self, state: Any, key: str, session: Any, context: Context) -> None:
        """Store this run's session id with the position, for a resumed run to end it."""
        await state.update_one(
            {"_id": key},
            {
                "$set": {
                    "lsid": session.session_id,
                    "migration": context.migration_id,
                    "checksum": context.checksum,
                },
                "$setOnInsert": {"last_id": None, "done": 0},
            },
            upsert=True,
        )

    async def _commit_batch(
        self,
        session: Any,
        collection: Any,
        state: Any,
        key: str,
        requests: list[UpdateOne],
        last_id: Any,
        new_last: Any,
        new_done: int,
        context: Context,
    ) -> None:
        prove = context.prove
        # The driver retries a transaction that failed transiently for up to 120 s: stop
        # before the lock's lease may run out, after which another deployer may hold it.
        bound = LeaseBound(context.lease_left()) if context.lease_left is not None else None
        failed: list[PyMongoError] = []

        async def write(tx: Any) -> None:
            if bound is not None:
                if bound.attempts and bound.passed():
                    last = failed[-1] if failed else None
                    raise bound.gave_up(f"batched update of {collection.name}", last)
                bound.attempts += 1
            try:
                await write_batch(tx)
            except PyMongoError as exc:
                failed[:] = [exc]  # the last one, to name when giving up
                raise

        async def write_batch(tx: Any) -> None:
            if prove is not None:
                # First in the transaction: the batch commits only with the proof of the lock.
                await prove(tx)
            if state is not None:
                # Compare-and-set on the old position: a batch is committed at most once.
                moved = await state.update_one(
                    {"_id": key, **_stored_as(last_id)},
                    {"$set": _moved_to(new_last, new_done)},
                    session=tx,
                )
                if moved.matched_count != 1:
                    raise MigrationError(
                        f"batched update of {collection.name}: the stored position moved "
                        "under this run (is another process running this migration?)"
                    )
            if requests:
                await collection.bulk_write(requests, ordered=False, session=tx)

        try:
            await drivers.resolve(session.with_transaction(write))
        except BaseException:
            # Its abort ignores its own failure, and a command of it still on its way would open
            # it again: killed and fenced.
            await abort_server_transaction(session, kill=True, fence_in=context.database.name)
            raise


async def _lease_bound(context: Context, write: Callable[[], Awaitable[Any]]) -> None:
    """Await ``write()``, its driver calls bounded by the lock's lease (none without a lock)."""
    if context.lease_bounded is None:
        await write()
    else:
        await context.lease_bounded(write)


def _all_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _bson_type(value: Any) -> str | None:
    """Name the BSON type ``value`` is stored as, as in ``_SORT_ORDER`` (``None``: unknown)."""
    if isinstance(value, MinKey | MaxKey):
        return "minKey" if isinstance(value, MinKey) else "maxKey"
    if value is None:
        return "null"
    if isinstance(value, bool):  # before numbers: a bool is an int in Python
        return "bool"
    if isinstance(value, int | float | Decimal128):
        return "number"
    if isinstance(value, Code):  # before strings: Code is a str in Python
        return "javascript" if value.scope is None else "javascriptWithScope"
    simple: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (str, "string"),
        ((Mapping, DBRef), "object"),
        ((bytes, uuid.UUID), "binData"),  # Binary is bytes
        (ObjectId, "objectId"),
        ((datetime.datetime, DatetimeMS), "date"),
        (Timestamp, "timestamp"),
    )
    return next((name for kind, name in simple if isinstance(value, kind)), None)


def _after(last_id: Any) -> dict[str, Any]:
    """Return the condition matching the ``_id`` values that sort after ``last_id``, of any type.

    ``$gt`` covers the rest of ``last_id``'s own type; each type sorting later is matched from
    its smallest value on, so that every branch is a range of the ``_id`` index.
    """
    kind = _bson_type(last_id)
    if kind is None:
        # A type the table does not know (a custom codec's): the server's own comparison, which
        # crosses types too (and reads the index from MongoDB 5.0 on).
        return {"$expr": {"$gt": ["$_id", {"$literal": last_id}]}}
    later = _SORT_ORDER[_TYPE_NAMES.index(kind) + 1 :]
    # Nothing is $gt NaN, though NaN sorts before every other number: they all come after it.
    rest = {"$gte": float("-inf")} if _is_nan(last_id) else {"$gt": last_id}
    branches = [{"_id": rest}]
    branches += [{"_id": {"$gte": smallest}} for _, values in later for smallest in values]
    return branches[0] if len(branches) == 1 else {"$or": branches}


def _is_nan(value: Any) -> bool:
    if isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return isinstance(value, float) and value != value


#: The fields of a batched update's stored position other than ``last_id`` (which may hold
#: any ``_id``), each with what odm writes there.
_POSITION_FIELDS: Final[tuple[tuple[str, Callable[[Any], bool], str], ...]] = (
    ("done", lambda value: whole_number(value) and value >= 0, "a count"),
    ("started", lambda value: isinstance(value, bool), "true or false"),
    ("finished", lambda value: isinstance(value, bool), "true or false"),
    ("lsid", lambda value: isinstance(value, Mapping), "a session id (a document)"),
)


def _checked_position(saved: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Return a batched update's stored position, refusing a field odm never writes so (edited
    by hand): the error names the document, rather than the step failing on it later."""
    for field, fine, expected in _POSITION_FIELDS:
        value = saved.get(field)
        if value is not None and not fine(value):
            raise not_written_by_odm(
                f"{STATE}: the saved position {key!r} holds", field, value, expected,
                ", or start the file over with --restart",
            )
    return saved


def _position_of(saved: Mapping[str, Any]) -> Any:
    """Return the last ``_id`` done according to a state document, or ``_START``."""
    # ``started`` tells a run that has not begun from one whose last _id was null; state
    # written before it was kept has a null last_id only when it had not begun.
    if saved.get("started") or saved.get("last_id") is not None:
        return saved.get("last_id")
    return _START


def _stored_as(last_id: Any) -> dict[str, Any]:
    """Return the state document's fields that hold ``last_id`` (to compare-and-set on them)."""
    if last_id is _START:
        return {"last_id": None, "started": {"$ne": True}}
    if last_id is None:
        return {"last_id": None, "started": True}
    return {"last_id": last_id}


def _moved_to(last_id: Any, done: int) -> dict[str, Any]:
    """Return the ``$set`` recording that the documents up to ``last_id`` are done."""
    return {"last_id": last_id, "started": True, "done": done}


def _with_marker(update: Update, key: str) -> Update:
    if isinstance(update, Mapping):
        merged = {op: dict(value) if isinstance(value, Mapping) else value
                  for op, value in update.items()}
        merged.setdefault("$set", {})[MARKER] = key
        return merged
    return [*update, {"$set": {MARKER: key}}]


class _Progress:
    """A rich progress bar on a terminal, plain lines at most every few seconds otherwise."""

    def __init__(
        self, name: str, total: int, done: int, echo: Callable[[str], None], interval: float
    ) -> None:
        self.name = name
        self.total = total
        self.done = done
        self.echo = echo
        self.interval = interval
        self.last_line = 0.0
        self.bar: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import Progress
            except ImportError:  # rich is the `migrations` extra; plain lines still work.
                return
            # The bar goes to the terminal it was detected on, not to a piped stdout (a log).
            self.bar = Progress(console=Console(stderr=True), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(f"updating {name}", total=total, completed=done)

    def advance(self, count: int) -> None:
        """Count ``count`` more documents done."""
        self.done += count
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
            return
        now = time.monotonic()
        if now - self.last_line >= self.interval or self.done >= self.total:
            self.last_line = now
            self.echo(f"  {self.name}: {self.done}/{self.total} documents{self._percent()}")

    def _percent(self) -> str:
        return f" ({100 * self.done // self.total}%)" if self.total else ""

    def close(self) -> None:
        """Stop the bar (a plain run prints nothing more)."""
        if self.bar is not None:
            self.bar.stop()


def batched_update(
    collection: Any,
    filter: Mapping[str, Any],
    update: Update | UpdateFunction,
    *,
    batch_size: int = 1000,
) -> BatchedUpdate:
    """Return a resumable batched update of the documents of ``collection`` matching ``filter``.

    ``update`` is an update document (or pipeline) applied to each document, or a function of
    the document returning one (``None`` leaves that document alone). Use it as a step's apply,
    directly or from a lambda: ``step(lambda db: batched_update(db.customers, {...}, fn))``.
    """
    return BatchedUpdate(collection, filter, update, batch_size=batch_size)


__all__ = ["MARKER", "BatchedUpdate", "batched_update", "current_context"]
