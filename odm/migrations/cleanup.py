"""Cleaning up after a step or a write that failed, without hiding why it failed, and saying
why in a line a person reads."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pymongo.errors import OperationFailure

from .. import drivers
from ..server_transactions import fence_session

T = TypeVar("T")

#: What PyMongo puts between a server error's message and the whole reply it appends (cluster
#: times, signatures, the command's other fields): noise in a message meant for a person.
_FULL_REPLY = ", full error:"


def error_text(exc: BaseException) -> str:
    """Return the class of ``exc`` and what it says (:func:`server_message`), as an error
    message shows a failure it did not raise itself."""
    return f"{type(exc).__name__}: {server_message(exc)}"


def server_message(exc: BaseException) -> str:
    """Return what ``exc`` says, without the server's full reply that PyMongo appends: for a
    server's error, its message and its code."""
    if not isinstance(exc, OperationFailure):
        return _before_full_reply(exc)
    said, code = _said_by_server(exc)
    said = said or _before_full_reply(exc)
    return said if code is None else f"{said} (code {code})"


def _said_by_server(exc: OperationFailure) -> tuple[str | None, Any]:
    """Return the server's message and code of ``exc``: a bulk write's are those of its first
    refused write, since its own message says only that a batch failed."""
    details: Any = exc.details or {}
    refused = details.get("writeErrors") or details.get("writeConcernErrors")
    if refused and isinstance(refused[0], dict) and refused[0].get("errmsg"):
        return refused[0]["errmsg"], refused[0].get("code")
    return details.get("errmsg"), exc.code


def _before_full_reply(exc: BaseException) -> str:
    return str(exc).split(_FULL_REPLY, 1)[0]


async def quietly(awaitable: Any) -> None:
    """Await a cleanup (an abort, a log entry), ignoring its own failure.

    A cleanup must not hide the error that caused it.
    """
    with contextlib.suppress(Exception):
        await awaitable


def discard(target: Any) -> None:
    """Close a step's coroutine that will not run now, rather than leave it never awaited."""
    if inspect.iscoroutine(target):
        target.close()


#: How long a task told to stop (:func:`cancellable`) is given before it is told again, in
#: seconds: a driver call that lost the first cancellation has sent its command by then.
CANCEL_AGAIN_AFTER = 0.02


async def cancellable(work: Awaitable[T]) -> T:
    """Await ``work`` in a task of its own, so that a cancellation of the caller is never lost:
    passed on to that task (again, while it has not stopped), then raised.

    Python 3.11's ``asyncio.wait_for`` (fixed in 3.12) returns normally when it is cancelled
    as what it waits for finishes, and PyMongo sends each command of a call bounded by a
    timeout (``pymongo.timeout()``, ``timeoutMS``) through it: a Ctrl-C that came just as the
    command was sent was lost, and the call waited for the server's answer (a write held there,
    for as long as it was held) and returned as if nothing had happened, so the run went on. A
    cancellation told again reaches the call in its next wait.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        await _stopped(task)
        raise
    return task.result()


async def _stopped(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` until it has stopped; a further cancellation of the caller meanwhile is
    the one being raised already."""
    while not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=CANCEL_AGAIN_AFTER)
    if not task.cancelled():
        task.exception()  # retrieved: the caller's cancellation is what is raised


#: How long a run waits for the operations of a session it ended on the server to stop there.
SETTLE_WAIT = 10.0

#: What a run says when it could not see the operations of a session it ended stop running.
STILL_RUNNING = (
    "warning: a write this run sent may still be running on the server (it could not be seen "
    "to stop): wait a moment before running odm migrate again"
)


async def ended_on_server(
    client: Any, session: Any, within: float = SETTLE_WAIT, *, fence_in: str
) -> bool:
    """End ``session`` on the server, wait (up to ``within`` seconds) until none of its
    operations runs there any more, then fence it in the database named ``fence_in``
    (:func:`fence_session`); tell whether its operations were seen to stop.

    A write whose request was cut off on its way (an error, Ctrl-C, a cancelled task) goes on
    running on the server: without this it could land after the lock is released, under the
    next run, and undo what that run did (a late ``$inc`` matching again once its guard is
    removed, a late delete of a record written since). The kill and ``$currentOp`` see only
    what has reached the server: a write still on its way (unread in the socket the driver
    closed) would run when it arrives, after the run read back what it stored. A retryable
    write carries the session's transaction number, and once the fence has run the server
    refuses any older one. Quiet: used on error paths only.
    """
    try:
        await client.admin.command({"killSessions": [session.session_id]})
        deadline = time.monotonic() + within
        while await _running_on_server(client, session):
            if time.monotonic() >= deadline:
                # Not fenced: the fence would wait for the session until that operation ends,
                # and the caller says that a write may still land anyway.
                return False
            await asyncio.sleep(0.01)
    except Exception:
        return False
    await fence_session(session, fence_in)
    return True


async def _running_on_server(client: Any, session: Any) -> bool:
    """Tell whether an operation of ``session`` is running on the server (its own, which any
    user may see)."""
    reply = await client.admin.command({
        "aggregate": 1,
        "pipeline": [
            {"$currentOp": {"allUsers": False}},
            {"$match": {"lsid.id": session.session_id["id"]}},
            {"$limit": 1},
            {"$project": {"_id": 0, "opid": 1}},
        ],
        "cursor": {},
    })
    return bool(reply["cursor"]["firstBatch"])


@asynccontextmanager
async def settled_session(
    client: Any,
    echo: Callable[[str], None],
    still_running: Callable[[], None] | None = None,
    *,
    fence_in: str,
) -> AsyncIterator[Any]:
    """Yield a session for writes made without a transaction; should the block be cut off (an
    error, Ctrl-C, a cancelled task), its operations are ended on the server and the session
    fenced in the database named ``fence_in`` before the block's exception goes on, so that
    none lands after the run's lock is released.

    ``still_running`` is called when they could not be seen to stop: what is read back after
    then may change still.
    """
    session = await drivers.start_session(client)
    try:
        yield session
    except BaseException:
        await settle(client, session, echo, still_running, fence_in=fence_in)
        raise
    finally:
        await quietly(drivers.end_session(session))


async def settle(
    client: Any,
    session: Any,
    echo: Callable[[str], None],
    still_running: Callable[[], None] | None = None,
    *,
    fence_in: str,
) -> None:
    """End the operations of ``session``, whose writes were cut off, on the server and fence
    it in the database named ``fence_in`` (:func:`ended_on_server`); when they could not be
    seen to stop, say so and call ``still_running``."""
    if not await ended_on_server(client, session, fence_in=fence_in):
        echo(STILL_RUNNING)
        if still_running is not None:
            still_running()
