"""Running an operation to its end whatever cancellation reaches its caller meanwhile.

A transaction's commit, abort and session end must not be cut off half-way by a cancelled
request: once sent, their outcome is awaited and honoured. :func:`shielded` runs the operation
in a task of its own (a cancellation of the caller does not reach it) and tells the caller
whether it was cancelled meanwhile, so that it re-raises the cancellation once the outcome is
handled.

The caller waits on a future of its own, which the operation's task resolves as its last
step: a cancellation of the caller cancels that future, never the task, and the caller runs
again in the next turn of the event loop (``asyncio.shield`` wakes it through a done callback,
one turn later).

On Python 3.12 and later the task is an eager one: its first step runs at once, in the
caller's turn of the event loop, with the task as the current task (so that a timeout the
operation starts there cuts off the operation, not its caller). An operation that waits on
nothing then costs no turn of the event loop at all. Python 3.11 has no eager tasks, and
running the first step in the caller's own task instead would make it the current task of that
step: an ``asyncio.timeout()`` the driver starts there (its ``wait_for``, since 3.12) would
cancel the caller.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any

__all__ = ["EAGER_TASKS", "shielded"]

#: Whether tasks can run their first step at once (``asyncio.Task(..., eager_start=True)``,
#: Python 3.12 and later).
EAGER_TASKS = sys.version_info >= (3, 12)


async def shielded(operation: Awaitable[Any]) -> bool:
    """Run ``operation`` to its end even if the calling task is cancelled meanwhile; return
    whether it was (the caller re-raises the cancellation once it has honoured the outcome).

    When the operation fails after a cancellation, ``CancelledError`` is raised from its error;
    otherwise its error is raised as usual. When the operation itself is cancelled (its event
    loop is closing), ``CancelledError("the operation was cancelled")`` is raised.
    """
    handoff = _Handoff()
    task = _start(_run(operation, handoff))
    cancelled = False
    while not task.done():
        waiter = handoff.waiter = task.get_loop().create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            # Also when the operation finished just before the cancellation was delivered.
            cancelled = True
    if task.cancelled():
        raise asyncio.CancelledError("the operation was cancelled")
    error = task.exception()
    if error is not None:
        if cancelled:
            raise asyncio.CancelledError("cancelled while an operation finished") from error
        raise error
    return cancelled


class _Handoff:
    """The future the caller waits on, woken by the operation's task as its last step.

    A cancellation of the caller cancels this future, never the task; and the task wakes the
    caller itself instead of through a done callback (as ``asyncio.shield`` does), which
    would cost the event loop one more turn before the caller runs again."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        """Wake the caller if it waits (a cancelled wait is not woken: it was, by its
        cancellation)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def _run(operation: Awaitable[Any], handoff: _Handoff) -> Any:
    try:
        return await operation
    finally:
        handoff.wake()


def _start(operation: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Return the task that runs ``operation``; where the interpreter has eager tasks, its
    first step has already run (the task may be done)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):  # EAGER_TASKS, spelled so that type checkers follow it
        return asyncio.Task(operation, loop=loop, eager_start=True)
    return loop.create_task(operation)
