"""The blocks that open a unit of work: ``odm.transaction()``, ``odm.atomic`` and
``odm.run_in_transaction``.

``transaction()`` starts a driver session and a transaction and binds both in context variables
(:mod:`odm.session`), so every ODM operation inside runs in it without a ``session=`` argument;
with PyMongo >= 4.17 it also enters the driver's own ``AsyncClientSession.bind()`` so raw driver
calls inside join the transaction too. Leaving the block flushes the changes of tracked documents
(one ``bulk_write`` per collection, only the changed fields), commits, and then runs the
``on_commit`` callbacks; an exception aborts and drops them.

Operations of a transaction must run in the task that opened it (the concurrency rule of
:mod:`odm.uow`).

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
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncContextDecorator
from typing import Any, Final, ParamSpec, TypeVar, overload

from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from . import drivers
from .connection import DEFAULT_ALIAS, get_client
from .exceptions import TransactionError
from .holders import async_generator_holding
from .server_transactions import (
    DEFAULT_TIME_LIMIT,
    backoff_delay,
    check_transactions_supported,
    commit,
    is_transient,
    known_support,
)
from .session import _bound_session, _bound_uow, current_unit_of_work
from .shielding import shielded
from .timeouts import check_timeout, operation_timeout
from .uow import COMMITTED, UnitOfWork

P = ParamSpec("P")
R = TypeVar("R")


#: ``transaction()``'s options, none given (``write_concern=0`` is one: not a falsy test).
_NO_OPTIONS: Final = (None, None, None, None)


def _transaction_options(
    read_concern: ReadConcern | str | None,
    write_concern: WriteConcern | str | int | None,
    read_preference: Any,
    max_commit_time_ms: int | None,
) -> dict[str, Any]:
    """The driver's ``start_transaction`` keywords for the options given (``None``: left out)."""
    options = {
        "read_concern": _concern(read_concern, ReadConcern),
        "write_concern": _concern(write_concern, WriteConcern),
        "read_preference": read_preference,
        "max_commit_time_ms": max_commit_time_ms,
    }
    return {k: v for k, v in options.items() if v is not None}


def _concern(value: Any, kind: type[Any]) -> Any:
    if value is None or isinstance(value, kind):
        return value
    if kind is ReadConcern:
        return ReadConcern(str(value))
    return WriteConcern(w=value)


class transaction(AsyncContextDecorator):  # lower case: used as a function (contextlib.suppress)
    """Run the block in one transaction; ``async with odm.transaction() as uow`` gives its
    :class:`UnitOfWork`.

    A nested ``transaction()`` joins the enclosing one (one entered in a task spawned inside
    the block is a transaction of that task's own); an exception leaving it makes the whole
    transaction rollback-only (MongoDB has no savepoints): it is aborted at once, and anything
    else in the outer block, or leaving it normally, raises :class:`odm.TransactionError`.
    ``timeout`` bounds every operation of the block and the commit (:class:`odm.OperationTimeout`
    past it, and the transaction is aborted). The commit is retried on
    ``UnknownTransactionCommitResult`` until ``timeout`` (default 120 s); the body is never
    re-run here (use :func:`atomic` for that). Whatever ends the block, the documents it
    wrote say what the database holds afterwards (see docs/unit-of-work.md).

    One object serves one block at a time; as a decorator (``@odm.transaction()``) each call
    of the function gets a block of its own.
    """

    # A class rather than an @asynccontextmanager generator with an AsyncExitStack: the
    # generator's frames and the stack's bookkeeping cost each transaction ~18 µs of CPU in
    # a loop of transfers (docs/performance-internals.md). The exits below keep that stack's order.
    __slots__ = (
        "_alias", "_bind", "_deadline", "_ending", "_options", "_outer", "_scope",
        "_session_token", "_timeout", "_uow", "_uow_token",
    )

    def __init__(
        self,
        alias: str = DEFAULT_ALIAS,
        *,
        read_concern: ReadConcern | str | None = None,
        write_concern: WriteConcern | str | int | None = None,
        read_preference: Any = None,
        max_commit_time_ms: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self._alias = alias
        self._timeout = timeout
        self._options = (read_concern, write_concern, read_preference, max_commit_time_ms)
        self._outer: UnitOfWork | None = None
        self._uow: UnitOfWork | None = None

    def _recreate_cm(self) -> transaction:
        """A block of its own for each call of a decorated function."""
        read_concern, write_concern, read_preference, max_commit_time_ms = self._options
        return transaction(
            self._alias, read_concern=read_concern, write_concern=write_concern,
            read_preference=read_preference, max_commit_time_ms=max_commit_time_ms,
            timeout=self._timeout,
        )

    async def __aenter__(self) -> UnitOfWork:
        timeout = self._timeout
        check_timeout(timeout)
        generator = async_generator_holding(sys._getframe(1))
        if generator is not None:
            raise TransactionError(
                f"odm.transaction() cannot be held open by the async generator {generator}(): "
                "while it waits at a yield inside the block, the code consuming it would run in "
                "the transaction, and a consumer that stops early would leave the block open; "
                "open the transaction around the loop in the consumer, or in a coroutine that "
                "the generator awaits (an @asynccontextmanager around odm.transaction() is "
                "fine)"
            )
        if self._uow is not None or self._outer is not None:
            raise RuntimeError(
                "this odm.transaction() object is in use by another block; call "
                "odm.transaction() again for each block"
            )
        alias = self._alias
        outer: UnitOfWork | None = current_unit_of_work()
        if outer is not None and outer.owner is not asyncio.current_task():
            # A task spawned inside a block inherited its context: its own transaction() is a
            # transaction of its own (joining would run two tasks' operations on one session).
            outer = None
        if outer is not None:
            if outer.alias != alias:
                raise TransactionError(
                    f"a transaction on alias {outer.alias!r} is open; a transaction cannot span "
                    f"two clients (asked for alias {alias!r})"
                )
            outer.check_usable()
            self._outer = outer
            return outer
        client = get_client(alias)
        if known_support(client) is not True:  # asked once per client
            await check_transactions_supported(client)
        self._deadline = time.monotonic() + (timeout or DEFAULT_TIME_LIMIT)
        session = await drivers.start_session(client)
        try:
            # Most blocks give no option: no dict to build and filter for them.
            given = self._options != _NO_OPTIONS
            options = _transaction_options(*self._options) if given else {}
            await drivers.start_transaction(session, **options)
        except BaseException:
            await shielded(drivers.end_session(session))
            raise
        uow = UnitOfWork(session, alias, options)
        # Ended last, shielded: a cancellation cannot leave the server session half-closed.
        ending = self._ending = _SessionEnd(session)
        self._session_token = _bound_session.set(session)
        self._uow_token = _bound_uow.set(uow)
        self._bind = self._scope = None
        try:
            if drivers.supports_bind(session):
                bind = session.bind(end_session=False)
                await bind.__aenter__()
                self._bind = bind
            if timeout:
                # timeout= bounds every operation of the block and the commit (CSOT-style);
                # the abort runs outside it, so that a late block still aborts at once.
                scope = operation_timeout(timeout, "transaction")
                scope.__enter__()
                self._scope = scope
        except BaseException as error:
            _bound_uow.reset(self._uow_token)
            _bound_session.reset(self._session_token)
            uow.end(f"it failed to start: {type(error).__name__}")
            await self._unbind(error)
            await ending.run(type(error), error, error.__traceback__)
            raise
        self._uow = uow
        return uow

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        outer = self._outer
        if outer is not None:  # a nested block: the enclosing one commits
            self._outer = None
            if exc is not None and not isinstance(exc, GeneratorExit):
                try:
                    await outer.fail(exc, inner=True)
                finally:
                    await outer.fence()  # the outer block may go on: see UnitOfWork.fence
            return False
        uow = self._uow
        if uow is None:
            raise RuntimeError("odm.transaction() left without being entered")
        self._uow = None
        ending = self._ending
        cancelled_at_commit = False
        committed = False
        # Each try below is one layer of the block, innermost first: the timeout scope, the
        # abort on failure, the context variables, the driver's bind, the session end, the
        # documents read back. The block's own error is raised again in the innermost layer
        # (never out of this frame: a StopIteration would turn into a RuntimeError), so that
        # every layer sees what ends the block as the generator form did.
        try:
            try:
                try:
                    try:
                        try:
                            try:
                                if exc is not None:
                                    raise exc
                                uow.check_usable()
                                if len(uow.identity):  # nothing tracked: nothing to flush
                                    await uow.flush()
                                # Once sent, the commit's outcome is awaited and honoured,
                                # whatever cancellation comes meanwhile (asyncio's convention:
                                # it is re-raised after the callbacks of the committed
                                # transaction ran).
                                cancelled_at_commit = await shielded(
                                    ending.after_commit(
                                        commit(uow.session, self._deadline, bool(self._timeout))
                                    )
                                )
                                committed = True
                            except BaseException as error:
                                scope = self._scope
                                if scope is None or not scope.__exit__(
                                    type(error), error, error.__traceback__
                                ):
                                    raise
                            else:
                                if self._scope is not None:
                                    self._scope.__exit__(None, None, None)
                        except GeneratorExit:
                            raise
                        except BaseException as error:
                            await uow.fail(error)
                            raise
                    finally:
                        _bound_uow.reset(self._uow_token)
                        _bound_session.reset(self._session_token)
                        uow.end(_how_it_ended(uow, committed))
                except BaseException as error:
                    try:
                        await self._unbind(error)
                    except BaseException as replaced:
                        await ending.run(type(replaced), replaced, replaced.__traceback__)
                        raise
                    await ending.run(type(error), error, error.__traceback__)
                    raise
                await self._unbind(None)
                await ending.run()
            except GeneratorExit:
                raise
            except BaseException:
                if len(uow.journal):  # documents whose truth must be read back, now unbound
                    await shielded(uow.journal.reload())
                raise
        except BaseException as final:
            if final is exc:  # the block's own error, unchanged: let it go on as it was
                exc.__traceback__ = tb
                return False
            raise
        uow.journal.clear()
        try:
            if uow.has_callbacks:
                await uow.run_callbacks()
        finally:
            if cancelled_at_commit or ending.cancelled:
                raise asyncio.CancelledError("cancelled while the transaction committed")
        return False

    async def _unbind(self, error: BaseException | None) -> None:
        """Leave the driver's implicit session binding, if the block entered it."""
        bind, self._bind = self._bind, None
        if bind is not None:
            await bind.__aexit__(
                type(error) if error is not None else None,
                error,
                error.__traceback__ if error is not None else None,
            )


def _how_it_ended(uow: UnitOfWork, committed: bool) -> str:
    """Say how the block of ``uow`` ended, for :meth:`UnitOfWork.end`."""
    if committed:
        return COMMITTED
    if uow.failure is not None:
        return f"it failed: {uow.failure}"
    return "it did not commit"


class _SessionEnd:
    """Ends a transaction's session, shielded, remembering a cancellation that came meanwhile:
    after a commit it is re-raised only once the callbacks ran; after a failure at once.

    After a commit the session is ended by the commit's own task (:meth:`after_commit`): one
    shielded task instead of two, which on Python 3.11 (no eager tasks) saves the event loop
    turns of scheduling and waking up from a second one."""

    __slots__ = ("cancelled", "ended", "session")

    def __init__(self, session: Any) -> None:
        self.session = session
        self.cancelled = False
        self.ended = False

    async def after_commit(self, commit: Awaitable[None]) -> None:
        """Await ``commit``, then end the session. Whatever stops the session end (an error,
        or this task cancelled as its event loop closes) is no failure of the commit, which
        went through: it is left to :meth:`run`, which tries again where a session end always
        did, and reports what stops it there."""
        await commit
        try:
            await drivers.end_session(self.session)
        except BaseException:  # not the commit's failure: run() tries again (see above)
            return
        self.ended = True

    async def run(
        self, exc_type: Any = None, exc: BaseException | None = None, tb: Any = None
    ) -> None:
        if self.ended:
            return
        self.cancelled = await shielded(drivers.end_session(self.session))
        if self.cancelled and exc is not None and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError("cancelled while the session ended") from exc


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
    check_timeout(timeout)
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
            if not is_transient(exc) or attempt > retries or time.monotonic() >= deadline:
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
    check_timeout(timeout)  # at decoration, not at the first call

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await run_in_transaction(
                func, *args, retries=retries, timeout=timeout, alias=alias, **kwargs
            )

        return wrapper

    return decorate(fn) if fn is not None else decorate
