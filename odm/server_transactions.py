"""What odm asks of a server's transactions: whether it runs them, the commit with its
retries, the abort that always ends the server transaction, and how to read the errors that
end one.

Shared by the unit of work (:mod:`odm.uow`, which aborts), the blocks that open one
(:mod:`odm.blocks`, which commit) and the migrations' transactions (which abort); none of it
holds state of a block.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, WriteConcernError

from . import drivers
from .exceptions import OperationTimeout, TransactionsNotSupported
from .timeouts import is_timeout, operation_timeout, time_left

#: Seconds a block (with its retries, and its commit's) may take unless ``timeout=`` says.
DEFAULT_TIME_LIMIT = 120.0
#: The server's code for an operation past its ``maxTimeMS``: a commit that hit it is not
#: retried.
MAX_TIME_MS_EXPIRED = 50
# id(client) -> (a weak reference to that client, whether its server runs transactions).
# The reference must still point at the client asked about: an id() can be reused by a later
# client once the first is gone (a standalone after a replica set) and would answer for the
# wrong server. Not a WeakKeyDictionary: its lookups hash the client, which PyMongo does in
# Python (several calls), and every transaction asks.
_supports_transactions: dict[int, tuple[weakref.ref[Any], bool]] = {}


def known_support(client: Any) -> bool | None:
    """Whether ``client``'s server was found to run transactions (``None``: not asked yet)."""
    known = _supports_transactions.get(id(client))
    if known is None or known[0]() is not client:
        return None
    return known[1]


def remember_support(client: Any, supported: bool) -> None:
    """Remember whether ``client``'s server runs transactions, for as long as ``client``
    lives."""
    key = id(client)

    def forget(_ref: weakref.ref[Any]) -> None:
        # Only this client's entry: a later client with the same id may have replaced it.
        if _supports_transactions.get(key, (None,))[0] is _ref:
            del _supports_transactions[key]

    _supports_transactions[key] = (weakref.ref(client, forget), supported)


def backoff_delay(attempt: int) -> float:
    """Seconds to sleep before retry number ``attempt`` (1-based), per the driver spec."""
    return random.random() * min(0.005 * 1.5**attempt, 0.5)


async def check_transactions_supported(client: Any) -> None:
    """Raise :class:`odm.TransactionsNotSupported` when ``client``'s server is a standalone
    ``mongod`` (asked once per client, with ``hello``)."""
    supported = known_support(client)
    if supported is None:
        hello = await client.admin.command("hello")
        supported = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        remember_support(client, supported)
    if not supported:
        raise TransactionsNotSupported(
            "this MongoDB server is a standalone mongod, which cannot run multi-document "
            "transactions; run it as a replica set (even a single-node one: `odm server`, or "
            "mongod --replSet rs0 then rs.initiate()) or use the writes without transaction()"
        )


def is_unknown_commit(exc: PyMongoError) -> bool:
    """Tell whether the commit that raised ``exc`` may be tried again: its outcome is unknown
    (``UnknownTransactionCommitResult``), and not because its own time limit ran out."""
    if not exc.has_error_label("UnknownTransactionCommitResult"):
        return False
    return not (isinstance(exc, OperationFailure) and exc.code == MAX_TIME_MS_EXPIRED)


async def commit(session: Any, deadline: float, bounded: bool) -> None:
    """Commit, retrying an unknown commit result until ``deadline``; ``bounded``: the caller
    gave a timeout, so each attempt runs under what is left of it (as with the driver's own
    ``with_transaction``, an attempt is otherwise not timed: a client-side deadline costs
    ~25 µs per commit)."""
    attempt = 0
    while True:
        try:
            if bounded:
                left = time_left(deadline, 0.001)
                with operation_timeout(left, "commitTransaction"):
                    await drivers.resolve(session.commit_transaction())
            else:
                await drivers.resolve(session.commit_transaction())
            return
        except PyMongoError as exc:
            attempt += 1
            if is_unknown_commit(exc) and time.monotonic() < deadline:
                # The driver's commit retry already upgraded the write concern to majority;
                # trying again is safe because a commit is idempotent.
                await asyncio.sleep(backoff_delay(attempt))
                continue
            raise


def commit_outcome_unknown(exc: BaseException) -> bool:
    """Tell whether ``exc``, which ended a transaction, may hide a commit that went through."""
    seen: BaseException | None = exc
    while isinstance(seen, OperationTimeout | asyncio.CancelledError):
        seen = seen.__cause__
    if not isinstance(seen, PyMongoError):
        return False
    if isinstance(seen, WriteConcernError):
        # The commit was applied where it ran and only its acknowledgement failed; the driver
        # labels that UnknownTransactionCommitResult except for a write concern the set can
        # never satisfy (UnsatisfiableWriteConcern, UnknownReplWriteConcern), which commits
        # all the same. (Inside a transaction only the commit carries a write concern.)
        return True
    if isinstance(seen, OperationFailure) and not is_timeout(seen):
        return seen.has_error_label("UnknownTransactionCommitResult")
    return (
        seen.has_error_label("UnknownTransactionCommitResult")
        or is_timeout(seen)
        or isinstance(seen, ConnectionFailure)
    )


async def abort_server_transaction(
    session: Any, *, kill: bool = False, fence_in: str | None = None
) -> None:
    """End the server transaction of ``session`` now, whatever state it is in.

    The driver ignores abort errors (as its spec says), will not abort after a commit was sent,
    and does not know of an operation it was cut off from (a cancellation); a transaction
    left so would hold its locks on the server until its lifetime limit (a minute or more).
    So when the abort fails (the driver swallows its error: :func:`odm.drivers.abort_transaction`
    tells), a commit was sent (and failed, or its outcome is unknown), or ``kill`` is given (an
    operation was interrupted), the server session is killed, which ends its transaction at
    once (a commit that did go through stays committed), and then fenced
    (:func:`fence_session`, in the database named ``fence_in``). An abort that succeeds costs
    nothing more."""
    if session.in_transaction:
        try:
            with pymongo.timeout(ABORT_TIME_LIMIT):
                ended = await drivers.abort_transaction(session)
            if ended and not kill:
                return
        except PyMongoError:
            pass
    if await _killed(session.client, session.session_id) and fence_in is not None:
        await fence_session(session, fence_in)


async def end_session_by_id(client: Any, session_id: Mapping[str, Any], *, fence_in: str) -> None:
    """Kill the server session ``session_id`` (another process's, known only by its id: a
    killed migration run's), which ends a transaction it left open and a command of it still
    running, then fence it in the database named ``fence_in`` (:func:`fence_session_id`)
    against a command of it still on its way. Quiet, as :func:`abort_server_transaction`'s
    kill and fence."""
    if await _killed(client, session_id):
        await fence_session_id(client, session_id, fence_in)


async def _killed(client: Any, session_id: Mapping[str, Any]) -> bool:
    """Send ``killSessions`` for ``session_id`` (within :data:`ABORT_TIME_LIMIT`); tell whether
    the server was reached. ``False``: it is out of reach, and a fence after the kill would
    wait as long again, and fail alike."""
    try:
        with pymongo.timeout(ABORT_TIME_LIMIT):
            await client.admin.command("killSessions", [session_id])
    except ConnectionFailure:
        return False
    except PyMongoError:
        pass
    return True


async def fence_session(session: Any, database: str) -> None:
    """Make the server refuse every command of ``session`` still on its way that carries a
    transaction number (a transaction's, a retryable write's): run one more transaction on it
    (a read, in ``database``), then abort that.

    A command cut off on the client (a cancellation, a deadline, a dropped connection) may
    reach the server after the abort and the ``killSessions`` that were to end its work: still
    unread in the socket of the connection the driver closed, it had no operation on the server
    to kill. It then runs: it starts or continues its transaction, which holds its locks until
    the server's lifetime limit (seen in CI: a transaction opened ~10 ms after its block had
    been aborted), or, a retryable write, it lands. A server refuses a command whose
    transaction number is older than its session's newest (``TransactionTooOld``), and starting
    a newer transaction aborts an older one still open; so once this fence has run, nothing
    numbered before it can run or stay open. Writes with no number (``update_many``,
    ``delete_many``) are not fenced. Quiet: a failure leaves the session as the kill left it."""
    with suppress(PyMongoError), pymongo.timeout(ABORT_TIME_LIMIT):
        if session.in_transaction:
            await drivers.resolve(session.abort_transaction())
        await drivers.start_transaction(session)
        try:
            await session.client[database][FENCE_COLLECTION].find_one({}, session=session)
        finally:
            await drivers.resolve(session.abort_transaction())


async def fence_session_id(client: Any, session_id: Mapping[str, Any], database: str) -> None:
    """Fence the server session ``session_id`` as :func:`fence_session` fences a session of
    this process: for a session known only by its id, a dead process's (a killed migration
    run's, whose id it stored), in which a command it sent may still be on its way.

    The fence's transaction is numbered :data:`FENCE_TRANSACTION_NUMBER`: the dead client's
    last number is not known, and the server refuses only what is older than the session's
    newest. The session is sent through ``client``'s own driver session made to
    stand for ``session_id`` (:func:`odm.drivers.start_session_as`: neither driver sends an
    ``lsid`` given in a command), never pooled again. Call it after ``killSessions``, which ends
    a command of that session already running; quiet, as :func:`fence_session` (a driver whose
    sessions are not built as expected fences nothing)."""
    with suppress(PyMongoError):
        session = await drivers.start_session_as(
            client, session_id, FENCE_TRANSACTION_NUMBER - 1
        )
        if session is None:
            return
        try:
            await fence_session(session, database)
        finally:
            await drivers.end_session(session)


#: The transaction number of :func:`fence_session_id`'s fence. A driver numbers a session's
#: transactions and retryable writes from 1, one more for each: no client can have reached
#: 2**62 (a million a second for 146,000 years), so every command the dead client sent is
#: older; and it is well within an Int64 (at most 2**63 - 1).
#: A second fence of the same session (a run that died after fencing it, before storing its
#: own session) is numbered the same and refused: quiet, and the first fence still stands.
FENCE_TRANSACTION_NUMBER = 2**62


#: The collection the fence of :func:`fence_session` reads (no such collection is needed: a
#: read of a missing collection starts the transaction all the same).
FENCE_COLLECTION = "odm.fence"


#: Seconds an abort (or the killSessions after it) may take.
ABORT_TIME_LIMIT = 10.0


def is_transient(exc: BaseException) -> bool:
    """Tell whether ``exc`` labels the whole transaction worth running again
    (``TransientTransactionError``)."""
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")
