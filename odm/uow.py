"""The unit of work: ``odm.transaction()``, ``odm.atomic`` and ``odm.run_in_transaction``.

``transaction()`` starts a driver session and a transaction and binds both in context variables
(:mod:`odm.session`), so every ODM operation inside runs in it without a ``session=`` argument;
with PyMongo >= 4.17 it also enters the driver's own ``AsyncClientSession.bind()`` so raw driver
calls inside join the transaction too. Leaving the block flushes the changes of tracked documents
(one ``bulk_write`` per collection, only the changed fields), commits, and then runs the
``on_commit`` callbacks; an exception aborts and drops them.

Concurrency rule: operations of a transaction must run in the task that opened it. A task
spawned inside the block (``asyncio.gather``, ``create_task``) inherits the context, and the
executor refuses its operations with :class:`odm.TransactionError` instead of interleaving them
on one session, which the server cannot order and which SQLAlchemy documents as unsafe too.

Retries follow the driver specification of the convenient transactions API: ``atomic`` re-runs
the whole body on ``TransientTransactionError`` (from the body or the commit), retries only the
commit on ``UnknownTransactionCommitResult`` (not after ``MaxTimeMSExpired``), aborts before
retrying, backs off ``jitter * min(5 ms * 1.5**attempt, 500 ms)`` and gives up at a time limit
(120 s, or ``timeout=``). The plain ``transaction()`` block cannot re-run its body: it retries the
commit only.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext, suppress
from typing import Any, ParamSpec, TypeVar, overload

import pymongo
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from . import drivers
from .connection import DEFAULT_ALIAS, get_client
from .exceptions import StaleDocument, TransactionError, TransactionsNotSupported
from .identity import IdentityMap
from .session import _bound_session, _bound_uow, current_unit_of_work
from .timeouts import operation_timeout

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TIME_LIMIT = 120.0
MAX_TIME_MS_EXPIRED = 50
_supports_transactions: dict[int, bool] = {}


def backoff_delay(attempt: int) -> float:
    """Seconds to sleep before retry number ``attempt`` (1-based), per the driver spec."""
    return random.random() * min(0.005 * 1.5**attempt, 0.5)


class UnitOfWork:
    """One transaction's state: its session, identity map, and callbacks to run after commit."""

    def __init__(self, session: Any, alias: str) -> None:
        self.session = session
        self.alias = alias
        self.identity = IdentityMap()
        self.owner: asyncio.Task[Any] | None = asyncio.current_task()
        self._on_commit: list[Callable[[], Any]] = []

    def track(self, document: Any) -> Any:
        """Return the canonical object for ``document`` within this unit of work."""
        return self.identity.add(document)

    def inserted(self, document: Any) -> None:
        """Track ``document``, just inserted, as the object of its id (replacing one held
        for a document deleted earlier in the block)."""
        self.identity.replace(document)

    def forget(self, document: Any) -> None:
        """Stop tracking ``document`` (it was deleted)."""
        self.identity.discard(document)

    def on_commit(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` (sync or async, no arguments) after a successful commit only."""
        self._on_commit.append(callback)

    def check_task(self) -> None:
        """Refuse an operation coming from a task other than the one that opened the block."""
        if self.owner is not None and asyncio.current_task() is not self.owner:
            raise TransactionError(
                "an ODM operation ran in a task spawned inside odm.transaction() (asyncio.gather "
                "or create_task): operations of one transaction must run in the task that "
                "opened it, one after another; await them in sequence, or give each task its "
                "own odm.transaction()"
            )

    async def flush(self) -> int:
        """Write the changes of every tracked document: one ``bulk_write`` per collection.

        Return the number of documents written. Documents are marked clean only after their
        collection's write succeeded.
        """
        if not len(self.identity):
            return 0
        from . import executor
        from .models import tracking

        pending: dict[tuple[type[Any], str], list[tuple[Any, Any]]] = defaultdict(list)
        for document in self.identity:
            operation = tracking.pending_update(document)
            if operation is not None:
                root = tracking.collection_model(type(document))
                pending[(root, root._meta.collection)].append((document, operation))
        written = 0
        for (model, _collection), items in pending.items():
            result = await executor.bulk_write(model, [op for _, op in items], ordered=True)
            if result.acknowledged and result.matched_count != len(items):
                raise _flush_mismatch(model, len(items), result.matched_count)
            for document, _ in items:
                tracking.mark_clean(document)
            written += len(items)
        return written

    async def _run_callbacks(self) -> None:
        for callback in self._on_commit:
            result = callback()
            if inspect.isawaitable(result):
                await result


def _flush_mismatch(model: type[Any], expected: int, matched: int) -> Exception:
    missing = expected - matched
    what = (
        f"{missing} of {expected} changed {model.__name__} document(s) could not be written at "
        "commit: "
    )
    if model._meta.optimistic_lock:
        return StaleDocument(what + "changed or deleted by someone else since they were loaded")
    return model.DoesNotExist(what + "deleted since they were loaded")  # type: ignore[no-any-return]


async def _check_transactions_supported(client: Any) -> None:
    key = id(client)
    supported = _supports_transactions.get(key)
    if supported is None:
        hello = await client.admin.command("hello")
        supported = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        _supports_transactions[key] = supported
    if not supported:
        raise TransactionsNotSupported(
            "this MongoDB server is a standalone mongod, which cannot run multi-document "
            "transactions; run it as a replica set (even a single-node one: `odm server`, or "
            "mongod --replSet rs0 then rs.initiate()) or use the writes without transaction()"
        )


def _is_unknown_commit(exc: PyMongoError) -> bool:
    if not exc.has_error_label("UnknownTransactionCommitResult"):
        return False
    return not (isinstance(exc, OperationFailure) and exc.code == MAX_TIME_MS_EXPIRED)


async def _commit(session: Any, deadline: float, bounded: bool) -> None:
    """Commit, retrying an unknown commit result until ``deadline``; ``bounded``: the caller
    gave a timeout, so each attempt runs under what is left of it (as with the driver's own
    ``with_transaction``, an attempt is otherwise not timed: a client-side deadline costs
    ~25 µs per commit)."""
    attempt = 0
    while True:
        try:
            if bounded:
                left = max(deadline - time.monotonic(), 0.001)
                with operation_timeout(left, "commitTransaction"):
                    await drivers.resolve(session.commit_transaction())
            else:
                await drivers.resolve(session.commit_transaction())
            return
        except PyMongoError as exc:
            attempt += 1
            if _is_unknown_commit(exc) and time.monotonic() < deadline:
                # The driver's commit retry already upgraded the write concern to majority;
                # trying again is safe because a commit is idempotent.
                await asyncio.sleep(backoff_delay(attempt))
                continue
            raise


def _concern(value: Any, kind: type[Any]) -> Any:
    if value is None or isinstance(value, kind):
        return value
    if kind is ReadConcern:
        return ReadConcern(str(value))
    return WriteConcern(w=value)


@asynccontextmanager
async def transaction(
    alias: str = DEFAULT_ALIAS,
    *,
    read_concern: ReadConcern | str | None = None,
    write_concern: WriteConcern | str | int | None = None,
    read_preference: Any = None,
    max_commit_time_ms: int | None = None,
    timeout: float | None = None,
) -> AsyncIterator[UnitOfWork]:
    """Run the block in one transaction; yield its :class:`UnitOfWork`.

    A nested ``transaction()`` joins the enclosing one. ``timeout`` bounds every operation of
    the block and the commit (:class:`odm.OperationTimeout` past it, and the transaction is
    aborted). The commit is retried on ``UnknownTransactionCommitResult`` until ``timeout``
    (default 120 s); the body is never re-run here (use :func:`atomic` for that).
    """
    outer = current_unit_of_work()
    if outer is not None:
        if outer.alias != alias:
            raise TransactionError(
                f"a transaction on alias {outer.alias!r} is open; a transaction cannot span "
                f"two clients (asked for alias {alias!r})"
            )
        yield outer
        return
    client = get_client(alias)
    await _check_transactions_supported(client)
    deadline = time.monotonic() + (timeout or DEFAULT_TIME_LIMIT)
    session = await drivers.start_session(client)
    uow = UnitOfWork(session, alias)
    options: dict[str, Any] = {
        "read_concern": _concern(read_concern, ReadConcern),
        "write_concern": _concern(write_concern, WriteConcern),
        "read_preference": read_preference,
        "max_commit_time_ms": max_commit_time_ms,
    }
    async with AsyncExitStack() as stack:
        stack.push_async_callback(drivers.end_session, session)
        await drivers.start_transaction(session, **{k: v for k, v in options.items() if v})
        session_token = _bound_session.set(session)
        uow_token = _bound_uow.set(uow)
        try:
            if drivers.supports_bind(session):
                await stack.enter_async_context(session.bind(end_session=False))
            try:
                # timeout= bounds every operation of the block and the commit (CSOT-style);
                # the abort below runs outside it, so that a late block still aborts at once.
                with operation_timeout(timeout, "transaction") if timeout else nullcontext():
                    yield uow
                    await uow.flush()
                    await _commit(session, deadline, bounded=bool(timeout))
            except BaseException:
                await _abort_quietly(session)
                raise
        finally:
            _bound_uow.reset(uow_token)
            _bound_session.reset(session_token)
    await uow._run_callbacks()


async def _abort_quietly(session: Any) -> None:
    # The spec ignores abort errors: the original exception is the one the caller must see.
    if session.in_transaction:
        with suppress(PyMongoError):
            await drivers.resolve(session.abort_transaction())
        return
    # The commit itself failed or timed out: the driver will not abort after a commit, and the
    # server would hold the transaction's locks until its lifetime limit (a minute or more).
    # Killing the server session ends it now; a commit that did go through stays committed.
    with suppress(PyMongoError), pymongo.timeout(5):
        await session.client.admin.command("killSessions", [session.session_id])


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


async def run_in_transaction(
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    retries: int = 5,
    timeout: float = DEFAULT_TIME_LIMIT,
    alias: str = DEFAULT_ALIAS,
    **kwargs: Any,
) -> R:
    """Run ``await fn(*args, **kwargs)`` in a transaction, re-running it on transient errors.

    The body may run more than once: keep side effects out of it, or put them in
    ``uow.on_commit``. Inside an enclosing transaction it simply joins it (no retry there).
    """
    if current_unit_of_work() is not None:
        async with transaction(alias):
            return await fn(*args, **kwargs)
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            async with transaction(alias, timeout=max(deadline - time.monotonic(), 0.001)):
                return await fn(*args, **kwargs)
        except PyMongoError as exc:
            if not _is_transient(exc) or attempt > retries or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(backoff_delay(attempt))


@overload
def atomic(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


@overload
def atomic(
    *, retries: int = 5, timeout: float = DEFAULT_TIME_LIMIT, alias: str = DEFAULT_ALIAS
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def atomic(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    retries: int = 5,
    timeout: float = DEFAULT_TIME_LIMIT,
    alias: str = DEFAULT_ALIAS,
) -> Any:
    """Decorate an async function to run in a transaction, re-run on transient errors.

    Use as ``@odm.atomic`` or ``@odm.atomic(retries=5, timeout=30)``. The body may run more
    than once (see :func:`run_in_transaction`).
    """

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await run_in_transaction(
                func, *args, retries=retries, timeout=timeout, alias=alias, **kwargs
            )

        return wrapper

    return decorate(fn) if fn is not None else decorate
