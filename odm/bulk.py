"""Bulk inserts: Document instances -> BSON -> ``insert_many``, in pipelined chunks.

:meth:`QuerySet.bulk_create <odm.queryset.QuerySet.bulk_create>` hands its documents to
:class:`BulkInsert`. The documents are dumped (a batch per pydantic call when they are all of
the queryset's class); the driver encodes the dumps of a short list as it sends them, and a
split list's chunks are encoded here, ahead of their turn.

Up to :data:`SPLIT_ABOVE` documents go in one ``insert_many`` sent from the calling task. A
longer list is split into chunks: while chunk *k* is at the server (a helper task awaits its reply),
the calling task dumps and encodes chunk *k + 1*, so the server's work and the client's
overlap. One ``insert_many`` is in flight at a time and chunk *k + 1* is sent only after chunk
*k* came back, which keeps MongoDB's ordered semantics: with ``ordered=True`` nothing after a
failing document is sent. The session is taken in the calling task
(:func:`~odm.session.operation_session`, which refuses tasks spawned inside a transaction) and
passed explicitly, and ``timeout=`` is one deadline over every chunk.

The driver sends an ``insert_many`` in messages of at most 48 MB, and when one of them fails
with an error that names no document (a command error, a lost connection) it does not say how
many messages before it were acknowledged. So a split list's chunks, whose encoded sizes are
known here, are sent in runs that each fit in one message (:meth:`BulkInsert._messages`): every
``insert_many`` the pipeline sends is one ``insert`` command, and a failure tells exactly which
documents went in. A short list is encoded by the driver, its sizes unknown until it fails: if
it took more than one message, such a failure does not say which of its documents went in.
When the driver had every message it sent answered (the server refused one with a command
error, or the driver could not encode a document of a later one), nothing of the list still
runs on the server, so the ids of the documents sent are read back on the primary, once and
only then (:meth:`BulkInsert._learn_sent`): each document learns whether it is stored, and
what under its id (an id taken before the call holds another document, which it then knows
as its stored form, as the read after an insert of unknown outcome would tell it). Should
the read fail, they stay of unknown outcome, as after a cut-off or a lost connection (the
write may still run then, and nothing is read).

A write concern error (the servers did not confirm the write in time; a failover may still
roll it back) leaves the documents its ``insert`` acknowledged of unknown outcome too, as it
leaves the one of an ``insert()``; their next ``save()`` reads first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import aclosing, suppress
from typing import Any

from bson.errors import InvalidDocument
from pymongo import ReadPreference
from pymongo.errors import BulkWriteError, DocumentTooLarge, OperationFailure, PyMongoError

from . import executor
from .exceptions import OperationTimeout
from .gcpause import paused_gc
from .models import copies
from .models.diffing import same
from .models.model_plan import standard_dump
from .models.options import CLASS_KEY, ID_KEY
from .models.tracking import set_snapshots, unsure
from .models.writes import learnt_insert, start_version, take_version
from .nesting import check_payload
from .outcomes import outcome_unknown
from .session import current_unit_of_work, operation_session
from .timeouts import deadline_after, time_left

__all__ = [
    "CHUNK",
    "FIRST_CHUNK",
    "MIN_CHUNK",
    "SPLIT_ABOVE",
    "BulkCreateTooLarge",
    "BulkInsert",
    "chunk_size",
    "dump",
]

#: A list of this many documents or fewer is sent whole, with one ``insert_many`` from the
#: calling task (no helper task); a longer one is split into chunks.
SPLIT_ABOVE = 1000
#: Documents per ``insert_many`` when a list is split. Each command costs the client and the
#: server a little (bigger is cheaper); the server's work on the last chunk is waited for with
#: nothing to overlap it (smaller is shorter).
CHUNK = 1000
#: The first chunk of a split list: short, so that the server starts working sooner.
FIRST_CHUNK = 250
#: The end of a split list goes in chunks of half what is left, down to this many documents
#: (the last chunk holds this many to twice as many), so that the chunks nothing overlaps are
#: short.
MIN_CHUNK = 250
#: Documents dumped between two yields to the event loop while a chunk is in
#: flight (the helper task needs the loop to send it and to read the reply).
_SLICE = 250
#: The size of the driver's messages: the ``maxMessageSizeBytes`` every MongoDB server
#: announces (48,000,000 bytes). The driver fills each message of an ``insert_many`` with
#: documents up to it, encoding them as it goes, and sends one message at a time.
_MESSAGE_BYTES = 48_000_000
#: The same with automatic encryption, where the driver splits at 2 MiB.
_ENCRYPTED_MESSAGE_BYTES = 2 * 1024 * 1024
#: Bytes of a message that are not documents, and more: its headers and the ``insert``
#: command (collection, session, cluster time, write concern: well under 1 KiB).
_COMMAND_ROOM = 16 * 1024
#: Bytes a message spends on each document besides its BSON (none in an ``OP_MSG``; its type
#: and array key with automatic encryption).
_PER_DOCUMENT = 16
#: How many characters of the first earlier write error a too-large error's message quotes
#: (the rest, and every other write error, are in its ``details``).
_QUOTED_ERROR_CHARS = 200

#: The most documents the server takes in one ``insert`` command (``maxWriteBatchSize``).
_MAX_WRITE_BATCH = 100_000

#: MongoDB's limit on one document (the driver's ``max_bson_size``, the same on every server).
_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

#: The server's code of the write error of a document over that limit by less than 16 KB
#: (BadValue, "object to insert too large"), as of any other bad value.
_BAD_VALUE = 2

#: The server's code for a document over that limit in a command (BSONObjectTooLarge).
_BSON_OBJECT_TOO_LARGE = 10334

#: The largest document the server parses in a command (its BSONObjMaxInternalSize): one of
#: up to 16 KB over the limit only gets a write error of its own (code 2), so the document
#: a BSONObjectTooLarge refusal is about is over this.
_MAX_COMMAND_DOCUMENT_BYTES = _MAX_DOCUMENT_BYTES + 16 * 1024


class BulkCreateTooLarge(executor.CommandTooLarge):
    """``bulk_create``'s :class:`~odm.executor.CommandTooLarge`: a document over MongoDB's
    16 MB limit stopped the insert. With ``ordered=False``, documents of the chunks sent
    before it may have had write errors (a duplicate key...): the message says so, and
    :attr:`details` holds them as a ``BulkWriteError``'s do (``writeErrors`` indexing the
    whole list, ``nInserted``...)."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        #: The write errors of the documents before the one too large, as a
        #: ``BulkWriteError.details`` (``writeErrors`` empty when there were none).
        self.details = details


def _dumps_as_batch(model: type[Any], documents: Sequence[Any]) -> bool:
    """Tell whether ``documents`` can be dumped with one pydantic call over the list: all of
    exactly ``model`` (a subclass would be dumped with ``model``'s fields only), which keeps
    the ODM's ``to_bson`` and pydantic's ``model_dump``."""
    if not standard_dump(model):
        return False
    return all(type(document) is model for document in documents)


def dump(
    model: type[Any], documents: Sequence[Any], *, batch: bool = False
) -> list[dict[str, Any]]:
    """Return the stored form of each document (what ``to_bson()`` returns).

    ``batch=True`` (every document of exactly ``model``, see :class:`BulkInsert`) dumps the
    list with one pydantic call, ~20 % faster than one ``to_bson()`` per document.
    """
    if not batch:
        return [document.to_bson() for document in documents]
    serializer = model._meta.list_adapter().serializer
    raws: list[dict[str, Any]] = serializer.to_python(documents, by_alias=True)
    class_name = model._meta.class_name
    if class_name is not None:
        for raw in raws:
            raw[CLASS_KEY] = class_name
    return raws


def chunk_size(sent: int, total: int) -> int:
    """Return how many documents the next chunk holds once ``sent`` of ``total`` are out:
    all of them up to :data:`SPLIT_ABOVE`; for a split list, :data:`FIRST_CHUNK` first, then
    :data:`CHUNK` at a time, and at the end half of what is left (the last chunk holds
    :data:`MIN_CHUNK` to twice as many)."""
    left = total - sent
    if total <= SPLIT_ABOVE:
        return left
    if sent == 0:
        return FIRST_CHUNK
    if left < 2 * MIN_CHUNK:
        return left
    return min(CHUNK, left // 2)


class BulkInsert:
    """One ``bulk_create``: dump and insert ``documents`` (instances of ``model`` or
    of its subclasses), in pipelined chunks when there are more than :data:`SPLIT_ABOVE`.

    :meth:`run` inserts them, then (also after a failure) marks each document as what the
    database holds (:meth:`stored`, :meth:`unknown`), as ``insert()`` marks one. Errors are
    those of a single ``insert_many``: a ``BulkWriteError`` whose
    ``writeErrors`` index the whole list (:class:`odm.DuplicateKey` when they are all
    duplicate keys), :class:`odm.OperationTimeout`, pydantic's ``ValidationError`` for a
    value BSON cannot hold. With ``ordered=False`` every chunk is sent and the write errors of
    all of them are raised together at the end (inside a transaction, which the server aborts at
    a write error, the chunks after the first that has one are not sent).
    """

    def __init__(
        self,
        model: type[Any],
        documents: Sequence[Any],
        *,
        ordered: bool = True,
        timeout: float | None = None,
    ) -> None:
        self.model = model
        self.documents = documents
        self.ordered = ordered
        self.timeout = timeout
        #: The stored form of each document dumped so far, in order: its tracking snapshot.
        self.raws: list[dict[str, Any]] = []
        self._batch = _dumps_as_batch(model, documents)
        self._split = len(documents) > SPLIT_ABOVE
        # Documents [0, _confirmed) were acknowledged, except those in _missing (write errors).
        self._confirmed = 0
        self._missing: set[int] = set()
        # Acknowledged documents whose write concern was not confirmed (outside a transaction):
        # of unknown outcome, as an insert() they would be.
        self._unconfirmed: set[int] = set()
        # What reading back the ids of a failed run told of its documents (see _learn_sent):
        # index -> the stored form under its id, or None where nothing is stored.
        self._learnt: dict[int, dict[str, Any] | None] = {}
        self._write_errors: list[dict[str, Any]] = []
        self._concern_errors: list[Any] = []
        self._inserted_count = 0
        self._failed = False
        self._in_transaction = False
        # Documents [0, _sent) were sent; whether the insert failed without telling which of
        # them ran (a cancellation, a deadline, a lost connection: odm.outcomes).
        self._sent = 0
        self._outcome_unknown = False
        # Whether the server refused a chunk (a write error, a command error): inside a
        # transaction it has then aborted it.
        self._refused = False
        # Whether the driver may have sent part of the failing chunk without saying which: it
        # raised on the client after it sent some of its messages, or a message of a chunk it
        # split failed with an error that names no document (see _MESSAGE_BYTES).
        self._partly_sent = False
        # Whether every message the driver sent of the failing run was answered (the server
        # refused one, or the driver could not encode the next): nothing of it still runs.
        self._answered = False
        # Bytes of encoded documents that surely go in one message (see _message_budget).
        self._budget: int | None = None
        # The documents [start, stop) of the run that failed for a document over MongoDB's
        # limit, and the position of that document when it could be found (_over_the_limit).
        self._too_large: tuple[int, int, int | None] | None = None

    async def run(self) -> None:
        """Insert every document; raise as one ``insert_many`` of them all would. However it
        ends, each document then says what the database holds (:meth:`_mark`).

        Inside ``odm.transaction()``, a failure that leaves some of the documents inserted in
        a transaction the server did not abort makes it rollback-only (see :meth:`stored`)."""
        uow = current_unit_of_work()
        self._in_transaction = uow is not None
        deadline = deadline_after(self.timeout)
        try:
            session = operation_session(self.model)  # here, in the calling task: it checks it
            try:
                with executor.write_guard(self.model, "insert_many", self.timeout):
                    await self._insert(session)
            except BaseException as error:
                self._failed = True
                cut_off = outcome_unknown(error)
                self._outcome_unknown = cut_off or self._partly_sent
                if uow is not None:
                    if not self._refused and (self._inserted_count or self._partly_sent):
                        self._roll_back_only(uow, error)
                elif self._answered and not cut_off:
                    await self._learn_sent(time_left(deadline, 0.0))
                if self._too_large is not None:
                    # Raised here, past write_guard, which has told the unit of work that the
                    # server refused a command of its transaction.
                    raise BulkCreateTooLarge(
                        self._too_large_message(), self._bulk_details()
                    ) from error
                raise
        finally:
            self._mark()

    def _over_the_limit(
        self, start: int, stop: int, limit: int = _MAX_DOCUMENT_BYTES
    ) -> tuple[int, int, int | None]:
        """Return the run [start, stop) that failed for a document over ``limit`` bytes, and
        the position of the first such document in it (``None``: not found)."""
        for at, raw in enumerate(self.raws[start:stop], start):
            size = self._encoded_size(raw)  # None: not what is looked for
            if size is not None and size > limit:
                return start, stop, at
        return start, stop, None

    def _too_large_message(self) -> str:
        """Say which document of the list went over the limit, and what was inserted."""
        assert self._too_large is not None
        start, stop, at = self._too_large
        name, total = self.model.__name__, len(self.documents)
        culprit = (
            f"document {at} of the {total}" if at is not None
            else f"a document among {start} to {stop - 1} of the {total}"
        )
        after = self._inserted_after(at)
        if self._in_transaction:
            outcome = "the transaction can only be rolled back"
        elif self._partly_sent or self._outcome_unknown:
            outcome = "the documents before it may have been inserted: is_stored says which"
        elif after:
            # Unordered, the server went on past a document it refused alone (see
            # _first_too_large) to the others of its insert.
            later = f", none after document {stop - 1}" if stop < total else ""
            outcome = (
                f"{self._inserted_count} other documents were inserted, {after} of them "
                f"after it (is_stored says which){later}"
            )
        elif self._inserted_count:
            outcome = (
                f"{self._inserted_count} documents before it were inserted (is_stored says "
                "which), none from it on"
            )
        else:
            outcome = "nothing was inserted"
        return (
            f"{name} bulk_create: {culprit} is larger than MongoDB's 16 MB limit on a "
            f"document; {outcome}{self._earlier_errors_message()}"
        )

    def _inserted_after(self, at: int | None) -> int:
        """Return how many documents after the one too large at ``at`` were inserted (an
        unordered insert the server went on with past it)."""
        if at is None:
            return 0
        left_out = self._missing | self._unconfirmed
        return sum(1 for i in range(at + 1, self._confirmed) if i not in left_out)

    def _earlier_errors_message(self) -> str:
        """Say, for a too-large error's message, which other documents had write errors (an
        unordered insert went on past them): empty when none had."""
        errors = sorted(self._write_errors, key=lambda error: error["index"])
        if not errors:
            return ""
        assert self._too_large is not None
        at = self._too_large[2]
        which = "earlier" if at is None or errors[-1]["index"] < at else "other"
        first = errors[0]
        quoted = str(first.get("errmsg", "")).strip()
        if len(quoted) > _QUOTED_ERROR_CHARS:
            quoted = quoted[:_QUOTED_ERROR_CHARS] + "..."
        more = f", and {len(errors) - 1} more" if len(errors) > 1 else ""
        had = "a write error" if len(errors) == 1 else "write errors"
        return (
            f"; and {len(errors)} {which} document{'s' if len(errors) > 1 else ''} had {had} "
            f"(the error's details list them): document {first['index']}: {quoted}{more}"
        )

    def _mark(self) -> None:
        """Make each document say what the database holds, as ``insert()`` does for one: the
        stored ones take their stored form as their snapshot, and their copies
        (:mod:`odm.models.copies`) learn it too, so that a copy made before or after the call
        diffs against it; inside a transaction the unit of work keeps their state before, for
        an abort, and holds them as the objects of their ids. The documents of unknown outcome
        read the stored document at their next ``save()`` (:func:`odm.outcomes.learn_outcome`).
        """
        documents, raws = self.stored()
        uow = current_unit_of_work() if self._in_transaction else None
        if uow is not None:
            for document in documents:
                uow.remember(document)
        set_snapshots(documents, raws)  # each the very dict that was inserted (or read back)
        self._take_versions(documents, raws)
        copies.written_each(documents, raws)
        if uow is not None:
            for document in documents:
                uow.inserted(document)
        unknown, sent = self.unknown()
        for document, raw in zip(unknown, sent, strict=True):
            unsure(document, "bulk_create", raw, None)
        self._take_versions(unknown, sent)  # they may be stored: as they were sent

    def _roll_back_only(self, uow: Any, error: BaseException) -> None:
        """Make the transaction of ``uow`` rollback-only: ``error`` stopped this insert after
        some of its documents went into it (or may have), and the server did not abort it."""
        name = self.model.__name__
        total = len(self.documents)
        parts = []
        if self._inserted_count:
            parts.append(f"{self._inserted_count} of its {total} documents were")
        if self._partly_sent:
            parts.append(
                f"some of its documents {self._confirmed} to {self._sent - 1} may have been"
            )
        what = (
            f"{name} bulk_create failed ({type(error).__name__}) after "
            + " and ".join(parts)
            + " inserted in this transaction"
        )
        uow.rollback_only(what, error)

    def stored(self) -> tuple[Sequence[Any], Sequence[dict[str, Any]]]:
        """Return the documents the database holds after :meth:`run` and their stored forms
        (two parallel sequences): all of them after a success; after a failure, those of the
        runs the server acknowledged and of the messages a ``BulkWriteError`` reports, less
        the ones its write errors name (with ``ordered=True``: the documents before the first
        failing one) and those whose write concern was not confirmed (:meth:`unknown`), and
        those the read after a failure that named none found stored (:meth:`_learn_sent`,
        with what it found); none after a failure inside a transaction, which can only be
        rolled back then.

        Inside a transaction a failure marks none, not even the acknowledged ones (which an
        abort would put back: ``QuerySet.bulk_create`` has the unit of work remember them
        first), because the transaction cannot commit after it, and "none" is what the
        database holds from the moment the call fails:

        - the server refused a chunk (a write error such as a duplicate key, a command
          error): it aborted the transaction at once, with every document inserted before;
        - a cancellation, a deadline, a lost connection: the unit of work was told that the
          call was cut off (``odm.executor``), so it is rollback-only;
        - any other failure after documents went into the transaction (a later chunk that
          cannot be dumped or encoded, a document the driver cannot encode after it sent part
          of its chunk): the transaction is still open and would commit them while the caller
          was told the call failed, so :meth:`run` makes it rollback-only: the block's next
          operation and its end raise ``odm.TransactionError``, and the abort leaves nothing;
        - a failure before anything was sent: nothing is stored, and the block may go on.

        Marking the acknowledged documents stored would make them claim to be in a
        transaction the server has already aborted (the first case), and would let the block
        commit a part of a call that failed as a whole, of which the documents the driver sent
        before its own encoding error cannot be named (the third)."""
        if self._failed and self._in_transaction:
            return (), ()
        confirmed = self._confirmed
        left_out = self._missing | self._unconfirmed
        if confirmed == len(self.documents) and not left_out:
            return self.documents, self.raws
        kept = [index for index in range(confirmed) if index not in left_out]
        documents = [self.documents[i] for i in kept]
        raws = [self.raws[i] for i in kept]
        for index, raw in sorted(self._learnt.items()):
            if raw is not None:
                documents.append(self.documents[index])
                raws.append(raw)
        return documents, raws

    def unknown(self) -> tuple[Sequence[Any], Sequence[dict[str, Any]]]:
        """Return the documents whose insert ended outside a transaction without telling
        whether it ran, or whether it lasts, with their stored forms (none otherwise):

        - those the server acknowledged with a write concern error (a failover may still
          roll them back: ``insert()`` treats its document so too);
        - those of the run sent but not acknowledged, after a cancellation, a deadline or a
          lost connection (the write may still run on the server);
        - those of a short list the driver split, after a later message of it failed with an
          error that names no document or after a document it could not encode, when the ids
          could not be read back (:meth:`_learn_sent`).

        Each may be stored or not: its next ``save()`` reads the stored document first."""
        if self._in_transaction:
            return (), ()
        indices = sorted(self._unconfirmed)
        if self._failed and self._outcome_unknown:
            skip = self._missing | self._learnt.keys()
            indices += [i for i in range(self._confirmed, self._sent) if i not in skip]
        return [self.documents[i] for i in indices], [self.raws[i] for i in indices]

    async def _learn_sent(self, timeout: float | None) -> None:
        """Read back, on the primary, what is stored under the ids of the documents sent but
        not acknowledged, after a failure that left no message of them running on the server
        (``_answered``): each of them then says whether it is stored, and as what.

        Only on that failure: the call's success costs nothing. The whole documents are read,
        not only their ids: an id the list shares with a document stored before the call (a
        retry of a list changed since) holds that document, not this one, and a document told
        it is stored must know what is (its snapshot is what its next ``save()`` diffs
        against); under ``Meta.optimistic_lock`` it keeps what it sent instead, so that its
        ``save()`` is refused as stale (:func:`odm.models.writes.learnt_insert`). Within what is
        left of ``timeout=``; should the read fail, or not match
        every document it returns to one of the list, the documents stay of unknown outcome.
        """
        if timeout == 0.0:
            return
        sent = [i for i in range(self._confirmed, self._sent) if i not in self._missing]
        learnt: dict[int, dict[str, Any] | None] = dict.fromkeys(sent)
        by_id = _IdIndex({i: self.raws[i][ID_KEY] for i in sent})
        reads = executor.find(
            self.model,
            {ID_KEY: {"$in": [self.raws[i][ID_KEY] for i in sent]}},
            read_preference=ReadPreference.PRIMARY,
            timeout=timeout,
        )
        try:
            async with aclosing(reads) as batches:
                async for batch in batches:
                    for stored in batch:
                        index = by_id.find(stored.get(ID_KEY))
                        if index is None:
                            return  # an id the list cannot match: learn nothing
                        raw = self.raws[index]
                        learnt[index] = (
                            raw if same(stored, raw)
                            else learnt_insert(self.documents[index], raw, stored)
                        )
        except (PyMongoError, OperationTimeout):
            return  # they stay of unknown outcome
        self._learnt = learnt

    # -- the pipeline ----------------------------------------------------------------------

    async def _insert(self, session: Any) -> None:
        total = len(self.documents)
        # A split list is dumped with the cyclic GC paused from start to end (other tasks run
        # meanwhile with it paused too, for as long as a batch of that size takes): re-enabled
        # between slices, it would run full collections over the new documents again and again.
        with paused_gc(total if total > SPLIT_ABOVE else 0):
            await self._pipeline(session, total)

    async def _pipeline(self, session: Any, total: int) -> None:
        start = 0
        raws = await self._prepare(start, chunk_size(start, total))
        pending: asyncio.Task[Any] | None = None
        try:
            while True:
                stop = start + len(raws)
                send = self._send(raws, start, session)
                if stop >= total:  # the last chunk (or the only one): from this task
                    await send
                    break
                pending = asyncio.create_task(send)
                try:
                    following = await self._prepare(
                        stop, chunk_size(stop, total), yielding=True
                    )
                except Exception:
                    # The next chunk could not be dumped: the chunk in flight still counts
                    # (and its own failure, earlier in the list, wins).
                    await pending
                    pending = None
                    raise
                await pending
                pending = None
                start, raws = stop, following
        finally:
            if pending is not None:
                if not pending.done():
                    pending.cancel()  # the caller was cancelled: leave no task behind
                    await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: the error raised here is the caller's
        if self._write_errors or self._concern_errors:
            raise self._bulk_error()

    async def _prepare(self, start: int, size: int, *, yielding: bool = False) -> list[Any]:
        """Dump (and, for a split list, encode) ``size`` documents from ``start``, a slice at
        a time; ``yielding`` lets the event loop run between slices, so that the chunk in
        flight is sent and its reply read meanwhile."""
        stop = min(start + size, len(self.documents))
        raws: list[Any] = []
        at = start
        while at < stop:
            if yielding:
                await asyncio.sleep(0)
            end = min(at + _SLICE, stop)
            raws += self._prepare_slice(at, end)
            at = end
        return raws

    def _prepare_slice(self, start: int, stop: int) -> list[Any]:
        documents = self.documents[start:stop]
        with paused_gc(stop - start):  # dumping, like validating, makes nothing cyclic
            raws = dump(self.model, documents, batch=self._batch)
            self._start_versions(documents, raws)
            # A split list is encoded here too, while the previous chunk is at the server:
            # the driver would encode a chunk only when sending it, after the previous reply.
            payload: list[Any]
            if self._split:
                payload = executor.encode_chunk(self.model, raws)  # depth checked there too
            else:
                check_payload(self.model, raws)  # the driver encodes when it sends
                payload = raws
        self.raws += raws
        return payload

    def _locks(self) -> bool:
        """Tell whether any of the documents may be under ``Meta.optimistic_lock`` (a list
        dumped as a batch is all of ``model``: no need to look at each)."""
        return not self._batch or self.model._meta.optimistic_lock

    def _start_versions(self, documents: Sequence[Any], raws: list[dict[str, Any]]) -> None:
        """Put in each stored form the version its insert starts at, under the lock
        (:func:`odm.models.writes.insert_version`: none an object of an earlier document of
        its id holds)."""
        if self._locks():
            for document, raw in zip(documents, raws, strict=True):
                start_version(document, raw)

    def _take_versions(self, documents: Sequence[Any], raws: Sequence[dict[str, Any]]) -> None:
        """Give each document, under the lock, the version of its new snapshot."""
        if self._locks():
            for document, raw in zip(documents, raws, strict=True):
                take_version(document, raw)

    async def _send(self, payload: list[Any], start: int, session: Any) -> None:
        """Insert ``payload``, the chunk of documents from ``start``, with one ``insert_many``
        per run of it that fits in one message (see :meth:`_messages`), one after the other;
        record each outcome."""
        for low, high in self._messages(payload):
            self._sent = start + high
            insert = executor.insert_chunk(
                self.model, payload[low:high], ordered=self.ordered, session=session
            )
            await self._settle(insert, start + low, start + high)

    def _messages(self, payload: list[Any]) -> list[tuple[int, int]]:
        """Return the runs ``[low, high)`` of ``payload`` to send with one ``insert_many``
        each: for a split list (encoded, so its sizes are known), runs that each fit in one
        message of the driver's (a document too big for one goes alone); for a short one
        (encoded by the driver as it sends it), the whole list."""
        if not self._split:
            return [(0, len(payload))]
        budget = self._message_budget()
        lengths = [len(document.raw) + _PER_DOCUMENT for document in payload]
        if sum(lengths) <= budget:  # nearly always (~0.1 µs a document)
            return [(0, len(payload))]
        runs = []
        low = size = 0
        for at, length in enumerate(lengths):
            if at > low and size + length > budget:
                runs.append((low, at))
                low, size = at, 0
            size += length
        runs.append((low, len(payload)))
        return runs

    def _message_budget(self) -> int:
        """Return how many bytes of encoded documents (counting :data:`_PER_DOCUMENT` for
        each) surely go in one message of the driver's for this model's client."""
        if self._budget is None:
            client = executor.collection(self.model).database.client
            encrypted = client.options.auto_encryption_opts is not None
            size = _ENCRYPTED_MESSAGE_BYTES if encrypted else _MESSAGE_BYTES
            self._budget = size - _COMMAND_ROOM
        return self._budget

    async def _settle(self, insert: Any, start: int, stop: int) -> None:
        """Await the ``insert_many`` of documents [start, stop) and record its outcome; with
        ``ordered=True`` raise at its first write error."""
        try:
            await insert
        except (InvalidDocument, OverflowError, UnicodeEncodeError) as exc:
            # The driver encodes a chunk as it sends it, a message at a time: when the chunk
            # takes more than one, those before the culprit's were sent (and inserted) already.
            self._partly_sent = self._may_have_sent(start, stop, exc)
            # Before the message it could not build, every message sent was answered.
            self._answered = self._partly_sent
            if isinstance(exc, DocumentTooLarge):
                self._too_large = self._over_the_limit(start, stop)
                raise
            # Name the field, as insert() does.
            raise executor.unencodable_error(self.model, self.raws[start:stop], exc) from exc
        except BulkWriteError as exc:
            details: Mapping[str, Any] = exc.details or {}
            errors = details.get("writeErrors") or []
            failed = []
            for error in errors:
                error = dict(error)
                index = start + int(error["index"])
                error["index"] = index
                error["op"] = self.raws[index]  # the stored form, as one insert_many reports it
                self._write_errors.append(error)
                failed.append(index)
            culprit = self._first_too_large(
                [error["index"] for error in errors if error.get("code") == _BAD_VALUE], start
            )
            concern_errors = details.get("writeConcernErrors") or []
            self._concern_errors += concern_errors
            inserted = int(details.get("nInserted", 0))
            self._inserted_count += inserted
            self._refused = True
            self._missing.update(failed)
            # The driver sends a list it split one message after another and reports those it
            # sent: each of their documents was inserted or has a write error. It stops at a
            # write error when ordered, and at a retryable write concern error (after its
            # retry): the documents after those were never sent.
            self._confirmed = min(stop, start + inserted + len(errors))
            if concern_errors and not self._in_transaction:
                # Which message of the run a write concern error came with is not said.
                self._unconfirmed.update(
                    i for i in range(start, self._confirmed) if i not in self._missing
                )
            if culprit is not None:
                # As when the server refuses the command for a document over its parsing
                # limit: run() raises BulkCreateTooLarge, and no later chunk is sent.
                self._too_large = (start, stop, culprit)
                raise self._bulk_error() from None
            # In a transaction the server aborted it at the write error: the next chunk would
            # only fail with NoSuchTransaction (labelled transient, so atomic() would run the
            # body again), hiding this error. So an unordered insert stops there too.
            if (errors and (self.ordered or self._in_transaction)) or self._confirmed < stop:
                raise self._bulk_error() from None
            return
        except OperationFailure as exc:
            self._refused = True
            if exc.code == _BSON_OBJECT_TOO_LARGE:
                # Not the first document over 16 MB: one only slightly over it, earlier in
                # the run, is not what the server refused the command for.
                self._too_large = self._over_the_limit(start, stop, _MAX_COMMAND_DOCUMENT_BYTES)
            # A command error names no document: after earlier messages of a list the driver
            # split, which of them went in is unknown (inside a transaction, the server
            # aborted it).
            self._partly_sent = not self._in_transaction and not self._one_message(start, stop)
            # The server answered the failing message (and every one before it).
            self._answered = self._partly_sent
            raise
        except BaseException as exc:
            # Raised on the client (a closed client...) after earlier messages may have gone.
            # A cut-off or a lost connection leaves the whole run of unknown outcome anyway.
            if not outcome_unknown(exc):
                self._partly_sent = not self._one_message(start, stop)
            raise
        self._inserted_count += stop - start
        self._confirmed = stop

    def _first_too_large(self, failed: Sequence[int], start: int) -> int | None:
        """Return the position in the list of the first document the server refused for being
        over MongoDB's 16 MB limit, among those of its BadValue write errors (``failed``,
        positions in the run from ``start``), and take its write error out of those kept
        (the too-large error says it); ``None`` when there is none.

        Such a document is over the limit by less than 16 KB: the driver lets it through, and
        the server refuses it alone, with a write error (BadValue, "object to insert too
        large"), not the whole command."""
        for index in sorted(start + int(position) for position in failed):
            size = self._encoded_size(self.raws[index])
            if size is not None and size > _MAX_DOCUMENT_BYTES:
                self._write_errors = [e for e in self._write_errors if e["index"] != index]
                return index
        return None

    def _may_have_sent(self, start: int, stop: int, exc: BaseException) -> bool:
        """Tell whether the driver may have sent some of documents [start, stop) before it
        raised ``exc`` on the client: ``False`` only when the documents before the one it
        could not encode fit in one message (a split list's chunks were encoded here, so only
        the driver's ``DocumentTooLarge`` comes from them: the documents before the one over
        the message size went in a message of their own)."""
        if isinstance(exc, DocumentTooLarge):
            return stop - start > 1
        budget = self._message_budget()
        size = 0
        for length in self._sizes(start, stop):
            if size > budget:
                return True
            if length is None:
                return False  # the culprit, reached within the first message
            size += length
        return True  # no culprit found here: assume the worst

    def _one_message(self, start: int, stop: int) -> bool:
        """Tell whether the driver surely sent documents [start, stop) in one message: a
        split list's runs were cut to fit (:meth:`_messages`); a short list is measured."""
        if self._split:
            return True
        if stop - start > _MAX_WRITE_BATCH:
            return False
        budget = self._message_budget()
        size = 0
        for length in self._sizes(start, stop):
            if length is None:
                return False  # cannot be measured: assume the worst
            size += length
            if size > budget:
                return False
        return True

    def _sizes(self, start: int, stop: int) -> Iterator[int | None]:
        """Yield the bytes documents [start, stop) take in a message of the driver's, in
        order, then ``None`` for one it cannot encode (and stop there)."""
        for raw in self.raws[start:stop]:
            size = self._encoded_size(raw)
            if size is None:
                yield None
                return
            yield size + _PER_DOCUMENT

    def _encoded_size(self, raw: dict[str, Any]) -> int | None:
        """Return the bytes of the stored form ``raw`` encoded as BSON (``None``: it cannot
        be encoded)."""
        try:
            (encoded,) = executor.encode_chunk(self.model, [raw])
        except Exception:  # ValidationError, or whatever else stops the encoder
            return None
        return len(encoded.raw)

    def _bulk_error(self) -> BulkWriteError:
        """Return the errors of every chunk as one ``BulkWriteError``, as the driver reports
        one ``insert_many`` (``writeErrors`` sorted, indexes into the whole list)."""
        return BulkWriteError(self._bulk_details())

    def _bulk_details(self) -> dict[str, Any]:
        """Return the errors of every chunk so far as a ``BulkWriteError``'s ``details``."""
        return {
            "writeErrors": sorted(self._write_errors, key=lambda error: error["index"]),
            "writeConcernErrors": list(self._concern_errors),
            "nInserted": self._inserted_count,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }


class _IdIndex:
    """The positions of a list's documents by ``_id``, to match the documents a read returns
    to them: by hash where the id has one, and always as stored values compare
    (:func:`~odm.models.diffing.same`: ``1`` and ``1.0`` hash alike, and the server matches
    them as one id, yet a document stored under ``1.0`` is not the insert of one whose id is
    ``1``)."""

    __slots__ = ("_hashed", "_ids")

    def __init__(self, ids: Mapping[int, Any]) -> None:
        self._ids = ids
        self._hashed: dict[Any, int] = {}
        for index, ident in ids.items():
            with suppress(TypeError):  # an unhashable id (a dict): found by comparison only
                self._hashed.setdefault(ident, index)

    def find(self, ident: Any) -> int | None:
        """Return the position of the document whose ``_id`` is stored as ``ident``, or
        ``None`` when there is none."""
        try:
            index = self._hashed.get(ident)
        except TypeError:
            index = None
        if index is not None and same(self._ids[index], ident):
            return index
        return next((i for i, known in self._ids.items() if same(known, ident)), None)
