"""``batched_update``: a long data step that runs in batches, shows progress and resumes.

Documents are read in ``_id`` order, ``batch_size`` at a time, and each batch's updates are
written with one ``bulk_write``. The position (the last ``_id`` done) lives in the migrations'
state collection, so that a killed run resumes after the last batch that was written.

Exactly once, however the run dies:

- Where the server runs transactions (a replica set), each batch's writes and the new position
  are committed in ONE short transaction, guarded by the previous position (compare-and-set):
  either both are stored or neither is. The session id is recorded first, so that a resumed run
  can kill a transaction the dead process left open instead of waiting for the server to reap it.
- Elsewhere (a standalone server), every per-document update is guarded by a marker field
  (``_odm_batch``) that it sets in the same single-document write: a document updated before the
  crash no longer matches, so resuming from an older position repeats no update. The markers are
  removed when the operation finishes.

Before each batch is written, the run proves it still holds the migrations lock (first inside
the batch's transaction where there is one): a run that lost the lock writes no further batch.

The documents are read and the updates computed outside the transaction, which stays open for
milliseconds: the 60 s transaction limit never applies, whatever the collection's size.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bson import Binary
from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from .. import drivers
from ..exceptions import MigrationError
from .operations import Context, Operation, collection_name, collection_of, current_context

#: The field that guards per-document updates on servers without transactions.
MARKER = "_odm_batch"

Update = Mapping[str, Any] | Sequence[Mapping[str, Any]]
UpdateFunction = Callable[[dict[str, Any]], Update | None]


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
        if batch_size < 1:
            raise MigrationError(f"batch_size must be at least 1, not {batch_size}")
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
        saved = saved or {}
        if saved.get("finished"):
            return
        last_id = saved.get("last_id")
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
                        context.prove,
                    )
                else:
                    if context.prove is not None:
                        await context.prove(None)
                    if requests:
                        await collection.bulk_write(requests, ordered=False)
                    if state is not None:
                        await state.update_one(
                            {"_id": key},
                            {"$set": {"last_id": new_last, "done": done + len(batch)}},
                            upsert=True,
                        )
                last_id = new_last
                done += len(batch)
                progress.advance(len(batch))
            if not transactional:
                # Every document is done: the guards have served their purpose.
                await collection.update_many({MARKER: key}, {"$unset": {MARKER: ""}})
            if state is not None:
                await state.update_one(
                    {"_id": key},
                    {"$set": {"finished": True, "done": done, "migration": context.migration_id}},
                    upsert=True,
                )
        finally:
            progress.close()
            await drivers.resolve(session.end_session())

    def _query(self, last_id: Any, key: str, transactional: bool) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [self.filter] if self.filter else []
        if last_id is not None:
            parts.append({"_id": {"$gt": last_id}})
        if not transactional:
            parts.append({MARKER: {"$ne": key}})
        if not parts:
            return {}
        return parts[0] if len(parts) == 1 else {"$and": parts}

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
            with contextlib.suppress(PyMongoError):
                await state.database.client.admin.command({"killSessions": [lsid]})
        await state.update_one(
            {"_id": key},
            {
                "$set": {"lsid": session.session_id, "migration": context.migration_id},
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
        prove: Callable[[Any], Awaitable[None]] | None,
    ) -> None:
        async def write(tx: Any) -> None:
            if prove is not None:
                # First in the transaction: the batch commits only with the proof of the lock.
                await prove(tx)
            if state is not None:
                # Compare-and-set on the old position: a batch is committed at most once.
                moved = await state.update_one(
                    {"_id": key, "last_id": last_id},
                    {"$set": {"last_id": new_last, "done": new_done}},
                    session=tx,
                )
                if moved.matched_count != 1:
                    raise MigrationError(
                        f"batched update of {collection.name}: the stored position moved "
                        "under this run (is another process running this migration?)"
                    )
            if requests:
                await collection.bulk_write(requests, ordered=False, session=tx)

        await drivers.resolve(session.with_transaction(write))


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
