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

The task's first step runs at once, in the caller's turn of the event loop, with the task as
the current task (so that a timeout the operation starts there cuts off the operation, not its
caller): a commit is sent now, not after every other callback ready in the loop, which under
load is what decides how long the transaction holds its writes. On Python 3.12 and later the
task is an eager one. Python 3.11 has no eager tasks: :func:`_started_now` does there what an
eager start does (the step run in the task's context, the task made the current one for it),
and the task goes on from where that step left the operation. An operation that waits on
nothing then costs no turn of the event loop on 3.12 (on 3.11, the turn in which its task
ends; its caller does not wait for it).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from asyncio.tasks import _enter_task, _leave_task  # what an eager task does, for 3.11
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

__all__ = ["shielded"]


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


def _start(operation: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Return the task that runs ``operation``, whose first step has already run (as an
    eager task's: done already if the operation ended there; on 3.11 a future of its outcome
    then)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):  # asyncio.Task(eager_start=...)
        return asyncio.Task(operation, loop=loop, eager_start=True)
    return _started_now(loop, operation)


#: What :class:`_Resumed` holds in place of what its operation waits on: nothing left of the
#: first step (handed to the task already, or not yet run), or an operation that ended in it.
_GONE = object()
_ENDED = object()


def _started_now(
    loop: asyncio.AbstractEventLoop, operation: Coroutine[Any, Any, Any]
) -> asyncio.Future[Any]:
    """Python 3.11's stand-in for an eager task: the task of ``operation``, whose first step
    runs now, as the task's own (its context, and the task as the current one), not one turn
    of the event loop later.

    Under load that turn is long: every callback ready in the loop runs first. A commit sent a
    turn late holds the transaction's writes that much longer, and every transaction touching
    them meanwhile fails with a write conflict: 400 transfers at once over 8 accounts, each an
    ``odm.transaction()`` re-run with backoff, had more than half give up after a minute on
    3.11 with the commit a turn late, and none with it sent at once (``bench.contention``)."""
    context = contextvars.copy_context()
    resumed = _Resumed(operation)
    task = loop.create_task(resumed, context=context)
    caller = asyncio.current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, task)
    try:
        resumed.left = context.run(operation.send, None)
    except BaseException as ended:  # StopIteration too: the operation ended in this step
        resumed.left = _ENDED
        # Here, so that no frame the error's traceback holds keeps it (a reference cycle).
        return _outcome_now(loop, ended)
    finally:
        _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)
    return task


def _outcome_now(loop: asyncio.AbstractEventLoop, ended: BaseException) -> asyncio.Future[Any]:
    """How an operation ended in its first step, in a future done now, as an eager task
    would be (the operation's task ends in its turn with nothing to report; the operation
    woke no one, since nobody waited yet)."""
    if isinstance(ended, KeyboardInterrupt | SystemExit):
        raise ended  # as an eager task's first step raises them to its starter
    done: asyncio.Future[Any] = loop.create_future()
    if isinstance(ended, StopIteration):
        done.set_result(ended.value)
    elif isinstance(ended, asyncio.CancelledError):
        done.cancel()
    else:
        done.set_exception(ended)
    return done


class _Resumed(Coroutine[Any, Any, Any]):
    """What the task of an operation started by :func:`_started_now` runs: the operation,
    from where its first step left it, as ``await`` would go on with it. The task's own first
    step hands it what the operation waits on (:attr:`left`); what the task sends or throws in
    after that (a cancellation too, even one that came before that first step) goes to the
    operation."""

    __slots__ = ("_operation", "left")

    def __init__(self, operation: Coroutine[Any, Any, Any]) -> None:
        self._operation = operation
        #: What the first step left: the awaitable the operation waits on, or ``_ENDED``.
        self.left: Any = _GONE

    def _take_left(self) -> Any:
        left, self.left = self.left, _GONE
        return left

    def send(self, value: Any) -> Any:
        """Go on with the operation (the task's first step: what it waits on already)."""
        left = self._take_left()
        if left is _GONE:
            return self._operation.send(value)
        if left is _ENDED:  # its outcome went to the caller (see _outcome_now)
            raise StopIteration(None)
        return left

    def throw(self, error: Any, value: Any = None, traceback: Any = None) -> Any:
        """Throw ``error`` (a cancellation of the task) into the operation where it waits."""
        left = self._take_left()
        if left is _ENDED:
            raise error if value is None else value
        if asyncio.isfuture(left):  # as a task cancelled while it waits cancels it
            left.cancel()
        if value is None and traceback is None:
            return self._operation.throw(error)
        return self._operation.throw(error, value, traceback)  # the old signature

    def close(self) -> None:
        """Close the operation (the task is dropped)."""
        self.left = _GONE
        self._operation.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        raise TypeError("awaited only by its task")
