"""The few places where PyMongo's async API and Motor differ, behind one small interface.

PyMongo's ``AsyncMongoClient`` is the default driver. Motor (deprecated since May 2025) is
still accepted. Their collection and cursor APIs match for what the ODM uses, except that some
calls are coroutines in one and plain calls in the other; everything that differs is here, so
no other module tests which driver it holds.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from types import CoroutineType, GeneratorType
from typing import Any, Literal

from pymongo.errors import OperationFailure
from pymongo.topology_description import TOPOLOGY_TYPE

from .exceptions import ConfigurationError

DriverName = Literal["pymongo", "motor"]
DRIVERS: tuple[DriverName, ...] = ("pymongo", "motor")


def create_client(uri: str, driver: DriverName, **options: Any) -> Any:
    """Return a new, not yet connected client of ``driver`` for ``uri``."""
    if driver == "pymongo":
        from pymongo import AsyncMongoClient

        return AsyncMongoClient(uri, **options)
    if driver == "motor":
        try:
            from motor.motor_asyncio import AsyncIOMotorClient
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "driver='motor' needs Motor: pip install 'odm-mongo[motor]'"
            ) from exc
        return AsyncIOMotorClient(uri, **options)
    raise ConfigurationError(f"unknown driver {driver!r}: expected one of {', '.join(DRIVERS)}")


def driver_of(client: Any) -> DriverName:
    """Tell which driver a client object belongs to."""
    module = type(client).__module__
    if module.startswith("motor"):
        return "motor"
    if module.startswith("pymongo"):
        return "pymongo"
    raise ConfigurationError(
        f"client of type {type(client).__qualname__} is neither PyMongo's AsyncMongoClient "
        "nor Motor's AsyncIOMotorClient"
    )


#: Types found not to be awaitable. Whether a value is awaitable depends on its type alone
#: (``collections.abc.Awaitable`` looks for ``__await__`` on the type), except for a generator,
#: which a legacy ``types.coroutine`` makes awaitable by its code's flags: generators are never
#: remembered. PyMongo's ``start_session`` returns its session directly on every transaction.
_NOT_AWAITABLE: set[type[Any]] = set()


async def resolve(value: Any) -> Any:
    """Await ``value`` if the driver returned an awaitable, else return it as is."""
    kind = type(value)
    # A coroutine (PyMongo's session calls) is told by its type, without inspect's call.
    if kind is CoroutineType:
        return await value
    if kind not in _NOT_AWAITABLE:
        if inspect.isawaitable(value):
            return await value
        if kind is not GeneratorType:
            _NOT_AWAITABLE.add(kind)
    return value


async def close_client(client: Any) -> None:
    """Close a client of either driver (a coroutine in PyMongo, a plain call in Motor)."""
    await resolve(client.close())


async def aggregate(collection: Any, pipeline: list[dict[str, Any]], **kwargs: Any) -> Any:
    """Start an aggregation and return its async cursor."""
    return await resolve(collection.aggregate(pipeline, **kwargs))


async def watch(target: Any, pipeline: list[dict[str, Any]], **kwargs: Any) -> Any:
    """Open a change stream on a collection, database or client and return it, open: the
    server cursor exists when this returns, so no later change is missed."""
    stream = target.watch(pipeline, **kwargs)
    if inspect.isawaitable(stream):
        return await stream  # PyMongo runs the aggregate before it returns the stream
    # Motor would run it on the first read; entering its ``async with`` runs it now.
    return await stream.__aenter__()


async def start_session(client: Any, **kwargs: Any) -> Any:
    """Start a client session (PyMongo returns it directly, Motor from a coroutine)."""
    return await resolve(client.start_session(**kwargs))


async def start_transaction(session: Any, **kwargs: Any) -> None:
    """Start a transaction on ``session`` (a coroutine in PyMongo >= 4.10, plain in Motor)."""
    await resolve(session.start_transaction(**kwargs))


def _pymongo_session(session: Any) -> Any:
    """The PyMongo session behind ``session``: Motor's wraps one, PyMongo's is its own."""
    return getattr(session, "delegate", session)


async def start_session_as(
    client: Any, session_id: Mapping[str, Any], transaction_number: int
) -> Any | None:
    """Start a session of ``client`` whose commands go in the server session ``session_id``
    (another client's, known only by its id), as if that session's last transaction number
    were ``transaction_number``; ``None`` when the driver's sessions are not built as expected.

    Neither driver sends a command in a server session of the caller's choosing: an ``lsid``
    given in ``db.command(...)`` is replaced by the driver's own implicit session's. So the
    driver's session is made to stand for ``session_id`` (PyMongo's ``_ServerSession``, which
    a Motor session's PyMongo session holds too), and marked dirty so that the driver never
    pools it again: a later operation of this client must not go in the other client's
    session. End it with :func:`end_session`."""
    session = await start_session(client)
    target = _pymongo_session(session)
    try:
        target._materialize()  # the driver takes its server session on first use otherwise
        server_session = target._server_session
        if not hasattr(server_session, "_transaction_id"):
            raise AttributeError("_transaction_id")
        server_session.mark_dirty()  # first: never back in the pool, whatever happens next
        server_session.session_id = dict(session_id)
        server_session._transaction_id = transaction_number
    except AttributeError:
        await end_session(session)
        return None
    except BaseException:
        await end_session(session)
        raise
    return session


async def end_session(session: Any) -> None:
    """End a session of either driver."""
    await resolve(session.end_session())


async def end_session_unpooled(session: Any) -> None:
    """End ``session`` and keep its server session out of the driver's pool, so that no later
    operation of the client goes in it.

    For a session whose id is stored for a later run to kill and fence
    (:func:`odm.server_transactions.end_session_by_id`): that fence numbers its transaction
    beyond any number this client would give the session, after which the server refuses
    every transaction and retryable write of the client in it (``TransactionTooOld``, or
    "a newer transaction ... has already started"). Pooled, the session would be handed to
    a later operation of this process: a migration run again in the same process after a
    failure would fence the session it is about to use. A session the driver never took a
    server session for (no command sent) has nothing to keep out."""
    target = _pymongo_session(session)
    mark_dirty = getattr(getattr(target, "_server_session", None), "mark_dirty", None)
    if mark_dirty is not None:
        mark_dirty()  # the driver's pool discards a dirty server session instead of keeping it
    await end_session(session)


def unstart_unsent_transaction(session: Any) -> None:
    """Undo the driver's start of ``session``'s transaction when no command of it has reached
    the server yet: call it after a command failed on the client (a value BSON cannot hold).

    PyMongo up to 4.20 marks a transaction in progress before it encodes its first command
    (PYTHON-1894, fixed upstream: "client-side errors must not change transaction state"):
    a command it then cannot encode is never sent, yet the next one goes without
    ``startTransaction`` and the server answers ``NoSuchTransaction``, labelled transient, for
    the rest of the block. The driver itself goes back to the starting state the same way when
    the server refuses a first command as overloaded. A driver without these attributes (a
    version that does not need it) is left alone."""
    transaction = getattr(_pymongo_session(session), "_transaction", None)
    if transaction is None or getattr(transaction, "has_completed_command", True):
        return
    set_starting = getattr(transaction, "set_starting", None)
    if set_starting is not None and transaction.active():
        set_starting()


def supports_bind(session: Any) -> bool:
    """Tell whether the driver can bind ``session`` implicitly (PyMongo >= 4.17)."""
    kind = type(session)
    known = _BINDS.get(kind)  # asked once per session class: every transaction asks
    if known is None:
        known = _BINDS[kind] = hasattr(session, "bind") and driver_of(session.client) == "pymongo"
    return known


_BINDS: dict[type[Any], bool] = {}


def leave_binding(session: Any) -> None:
    """Leave, in the current context only, the driver's implicit binding of ``session``
    (PyMongo's ``bind()``, which a transaction block enters): the context is a task spawned
    inside the block, which inherited the binding, and the block has ended since. Left bound,
    the driver would send the task's operations in the block's ended session. A driver
    without that binding (Motor) has nothing to leave."""
    module = sys.modules.get(type(session).__module__)
    binding = getattr(module, "_SESSION", None)
    if isinstance(binding, ContextVar) and binding.get() is session:
        binding.set(None)


async def abort_transaction(session: Any) -> bool:
    """Abort the transaction of ``session``; return whether the abort is known to have ended
    it on the server (its ``abortTransaction`` succeeded, none was needed, or a replica set
    member answered that it holds none: see :func:`_no_such_transaction`).

    The driver ignores abort errors, as the transactions specification says, so its
    ``abort_transaction()`` returns the same whether the server aborted or refused: a
    transaction whose abort failed would hold its locks until the server's lifetime limit.
    So the driver's one call that sends the command (``_finish_transaction_with_retry``, in
    PyMongo's sessions and in the PyMongo session a Motor session wraps) is watched for the
    duration of the abort. A driver without it returns ``False``: the caller cannot tell."""
    target = _pymongo_session(session)
    finish = getattr(target, "_finish_transaction_with_retry", None)
    if finish is None:
        await resolve(session.abort_transaction())
        return False
    failed: list[BaseException] = []
    target._finish_transaction_with_retry = _watched(finish, failed)
    try:
        await resolve(session.abort_transaction())
    finally:
        del target._finish_transaction_with_retry
    return not failed or _no_such_transaction(target, failed[-1])


#: The server's code for "no such transaction": the session has no open transaction of that
#: number (never started there, or aborted already).
NO_SUCH_TRANSACTION = 251


def _no_such_transaction(session: Any, error: BaseException) -> bool:
    """Tell whether ``error``, the answer to an abort, says that the server holds no open
    transaction of ``session``: ``NoSuchTransaction`` from a replica set member, which the
    server answers once it aborted the transaction itself (after a write conflict, a
    failover). That abort did end it. A router's answer is not taken so: it speaks of its own
    record of the transaction, which it may have lost while a shard still holds one."""
    return (
        isinstance(error, OperationFailure)
        and error.code == NO_SUCH_TRANSACTION
        and session.client.topology_description.topology_type != TOPOLOGY_TYPE.Sharded
    )


def _watched(finish: Any, failed: list[BaseException]) -> Any:
    """``finish`` (a driver's coroutine or plain function), appending what it raises to
    ``failed`` before it goes on."""
    if inspect.iscoroutinefunction(finish):

        async def watched_coroutine(*args: Any, **kwargs: Any) -> Any:
            try:
                return await finish(*args, **kwargs)
            except BaseException as error:
                failed.append(error)
                raise

        return watched_coroutine

    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return finish(*args, **kwargs)
        except BaseException as error:
            failed.append(error)
            raise

    return watched


# -- driver calls that run in a thread (Motor) -----------------------------------------------

#: Motor's calls outside any unit of work whose caller was cut off (cancelled) before their
#: thread was done, until it is (a unit of work keeps its own: ``UnitOfWork.outlive``).
_CUT_OFF_THREADS: set[asyncio.Future[Any]] = set()

#: Seconds :func:`thread_calls_finished` waits at most, when its caller gives no time limit.
THREAD_CALLS_WAIT = 10.0


async def outlived(future: asyncio.Future[Any]) -> Any:
    """Await ``future``, a driver call running in a thread (Motor); should the caller be cut
    off first, keep the call until its thread is done, for :func:`thread_calls_finished`.

    Cancelling the caller cancels Motor's future, not its thread: a call cut off (a
    deadline, a cancelled request) may still send its command once the caller has moved on
    (the listeners' ``started`` event comes after the command is built, before it is sent).
    A write cut off so leaves its document unsure of what is stored (:mod:`odm.outcomes`),
    and what that document reads next must come after the write, not before it."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not future.done():
            _CUT_OFF_THREADS.add(future)
            future.add_done_callback(_CUT_OFF_THREADS.discard)
        raise


async def thread_calls_finished(timeout: float | None = None) -> None:
    """Wait until no driver call of this event loop cut off by its caller still runs in a
    thread (:func:`outlived`), at most ``timeout`` seconds (:data:`THREAD_CALLS_WAIT` when
    ``None``). Costs nothing when none runs: PyMongo's calls stop with their caller, and
    Motor's are kept only after a cancellation."""
    if not _CUT_OFF_THREADS:
        return
    loop = asyncio.get_running_loop()
    running = [call for call in _CUT_OFF_THREADS if call.get_loop() is loop]
    if running:
        await asyncio.wait(running, timeout=THREAD_CALLS_WAIT if timeout is None else timeout)
