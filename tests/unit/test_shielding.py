"""odm.shielding: an operation runs to its end whatever cancellation reaches its caller, in a
task of its own whose first step runs at once (an eager task on Python 3.12+, and the same done
by hand on 3.11).

Hypothesis draws operations as sequences of steps (finish, suspend on a future, set a context
variable, fail) and cancellations of the caller at each suspension; whatever the draw, the
operation runs every step, the caller learns whether it was cancelled, and the caller's context
variables are never changed by the operation.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odm import shielding
from odm.shielding import shielded

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="caller's")


async def test_the_operation_runs_in_a_task_of_its_own_at_once() -> None:
    """The operation's current task is never the caller (a timeout it starts must cut off the
    operation, not its caller), its first step runs before the event loop turns, and an
    operation that waits on nothing leaves no task behind once the loop turned."""
    caller = asyncio.current_task()
    loop_turned: list[bool] = []
    seen: dict[str, Any] = {}

    async def operation() -> str:
        seen["task"] = asyncio.current_task()
        seen["turned"] = bool(loop_turned)
        marker.set("operation's")
        return "done"

    tasks_before = len(asyncio.all_tasks())
    asyncio.get_running_loop().call_soon(loop_turned.append, True)
    assert await shielded(operation()) is False
    assert seen["task"] is not None and seen["task"] is not caller
    assert seen["turned"] is False
    assert loop_turned == []  # the caller did not wait for the loop either
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before
    # It ran in a copy of the caller's context, as a task does.
    assert marker.get() == "caller's"


async def test_the_first_step_and_the_next_run_as_one_task_in_one_context() -> None:
    """What the first step sets in its context is there in the steps after it, which run in
    the same task (as they would in a task started the usual way); the caller's context and
    current task stay its own, also while the operation waits."""
    caller = asyncio.current_task()
    seen: dict[str, Any] = {}
    gate = asyncio.get_running_loop().create_future()

    async def operation() -> int:
        seen["first"] = asyncio.current_task()
        marker.set("operation's")
        await gate
        seen["next"] = asyncio.current_task()
        seen["marker"] = marker.get()
        return 7

    async def open_gate() -> None:
        seen["caller's while waiting"] = (asyncio.current_task() is not caller, marker.get())
        gate.set_result(None)

    opener = asyncio.create_task(open_gate())
    task = asyncio.ensure_future(shielded(operation()))
    assert await task is False
    await opener
    assert seen["first"] is seen["next"] and seen["first"] not in (caller, task)
    assert seen["marker"] == "operation's"
    assert seen["caller's while waiting"] == (True, "caller's")
    assert marker.get() == "caller's" and asyncio.current_task() is caller


async def test_a_timeout_started_in_the_first_step_cuts_off_the_operation_not_its_caller() -> None:
    """The driver starts timeouts inside its operations (``asyncio.wait_for`` is built on
    ``asyncio.timeout`` since 3.12): one started in the first step belongs to the operation's
    task, so it ends the operation with ``TimeoutError`` and never cancels the caller."""

    async def operation() -> None:
        async with asyncio.timeout(0.02):
            await asyncio.sleep(5)

    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await shielded(operation())
    assert asyncio.get_running_loop().time() - started < 2
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_the_caller_runs_again_in_the_turn_after_the_operation_ends() -> None:
    """The operation's task wakes its caller itself, as its last step: the caller runs again
    in the very next turn of the event loop (through ``asyncio.shield`` and a done callback
    it took two), also after a cancellation it survived."""
    loop = asyncio.get_running_loop()
    turns = [0]
    ticking = [True]

    def tick() -> None:  # runs once per turn of the event loop
        turns[0] += 1
        if ticking[0]:
            loop.call_soon(tick)

    ended_at: list[int] = []

    async def operation() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        ended_at.append(turns[0])

    loop.call_soon(tick)
    try:
        assert await shielded(operation()) is False
        assert turns[0] - ended_at[-1] == 1

        async def cancelled_caller() -> tuple[bool, int]:
            cancelled = await shielded(operation())
            return cancelled, turns[0]

        caller = asyncio.create_task(cancelled_caller())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        caller.cancel()
        cancelled, resumed_at = await caller
        assert cancelled is True
        assert resumed_at - ended_at[-1] == 1
    finally:
        ticking[0] = False


async def test_an_error_raised_before_any_wait_propagates_as_is() -> None:
    async def fails() -> None:
        raise KeyError("early")

    with pytest.raises(KeyError, match="early"):
        await shielded(fails())


async def test_a_shielded_operation_stopped_by_its_loop_says_so() -> None:
    """When the operation under the shield is cancelled (not the caller: its loop is closing),
    the caller gets a ``CancelledError`` saying so."""
    operation = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(operation.cancel)
    with pytest.raises(asyncio.CancelledError) as caught:
        await shielded(operation)
    assert str(caught.value) == "the operation was cancelled"


async def test_an_operation_whose_future_is_cancelled_by_its_loop_says_so_too() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def waits() -> None:
        await gate

    asyncio.get_running_loop().call_soon(gate.cancel)
    with pytest.raises(asyncio.CancelledError) as caught:
        await shielded(waits())
    assert str(caught.value) == "the operation was cancelled"


async def test_a_shielded_operation_failing_after_an_interruption_raises_it() -> None:
    """The caller is cancelled while the shielded operation runs; the operation then fails:
    the caller gets a ``CancelledError`` (it was cancelled) whose cause is the failure."""
    operation = asyncio.get_running_loop().create_future()
    seen: list[BaseException] = []

    async def call() -> None:
        try:
            await shielded(operation)
        except BaseException as exc:
            seen.append(exc)
            raise

    caller = asyncio.create_task(call())
    await asyncio.sleep(0)  # the caller now waits on the shield
    caller.cancel()
    await asyncio.sleep(0)  # the cancel is delivered; the caller waits again
    operation.set_exception(ValueError("failed late"))
    with pytest.raises(asyncio.CancelledError):
        await caller
    (error,) = seen
    assert type(error) is asyncio.CancelledError
    assert str(error) == "cancelled while an operation finished"
    assert type(error.__cause__) is ValueError


async def test_a_failed_future_the_operation_awaits_is_its_to_handle() -> None:
    """The future the operation waits on fails: its task throws the error in (as a task does
    when it wakes up from a failed future), and the operation catches it and returns."""
    gate = asyncio.get_running_loop().create_future()
    caught: list[str] = []

    async def waits() -> None:
        try:
            await gate
        except LookupError as exc:
            caught.append(str(exc))

    asyncio.get_running_loop().call_soon(gate.set_exception, LookupError("from the gate"))
    assert await shielded(waits()) is False
    assert caught == ["from the gate"]


async def test_a_cancellation_of_the_continuing_task_reaches_the_coroutine() -> None:
    """The task that runs the operation is cancelled between two steps (as when its loop
    closes): the cancellation is thrown into the operation, not lost, and the caller is told."""
    seen: list[str] = []

    async def steps() -> None:
        try:
            for _ in range(50):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    before = asyncio.all_tasks()

    async def cancel_the_new_task() -> None:
        await asyncio.sleep(0)
        (continuing,) = asyncio.all_tasks() - before - {asyncio.current_task()}
        continuing.cancel()

    canceller = asyncio.create_task(cancel_the_new_task())
    with pytest.raises(asyncio.CancelledError) as caught:
        await shielded(steps())
    await canceller
    assert str(caught.value) == "the operation was cancelled"
    assert seen == ["cancelled"]


async def test_a_cancellation_before_the_task_runs_again_reaches_the_operation() -> None:
    """The task that goes on with the operation is cancelled in the very turn that started it
    (before it ran again): the cancellation is thrown in where the operation waits, as into a
    task cancelled while it waits, never dropped with the operation left hanging."""
    gate = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def operation() -> None:
        seen.append("first step")
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled where it waits")
            raise

    task = shielding._start(operation())
    assert seen == ["first step"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["first step", "cancelled where it waits"]
    assert gate.cancelled()  # as a task cancelled while it waits cancels what it waits on


async def test_an_operation_ended_in_its_first_step_leaves_a_task_with_nothing_to_report() -> None:
    """Its outcome is the caller's at once; the task that would have gone on with it ends in
    its turn without a result or an error of its own (none is reported twice)."""
    before = asyncio.all_tasks()

    async def fails() -> None:
        raise KeyError("early")

    outcome = shielding._start(fails())
    assert outcome.done() and isinstance(outcome.exception(), KeyError)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


# -- any operation, any cancellations ----------------------------------------------------------

STEP = st.sampled_from(["wait", "sleep0", "set_marker", "work"])


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(STEP, max_size=6),
    ending=st.sampled_from(["return", "raise"]),
    cancels=st.lists(st.booleans(), max_size=6),
)
def test_every_step_runs_and_the_caller_learns_of_its_cancellations(
    steps: list[str], ending: str, cancels: list[bool]
) -> None:
    asyncio.run(_scenario(steps, ending, cancels))


async def _scenario(steps: list[str], ending: str, cancels: list[bool]) -> None:
    loop = asyncio.get_running_loop()
    ran: list[int] = []
    gates: list[asyncio.Future[None]] = []

    async def operation() -> str:
        for index, step in enumerate(steps):
            if step == "wait":
                gate = loop.create_future()
                gates.append(gate)
                await gate
            elif step == "sleep0":
                await asyncio.sleep(0)
            elif step == "set_marker":
                marker.set(f"operation's {index}")
            ran.append(index)
        if ending == "raise":
            raise ValueError("the operation failed")
        return "done"

    outcome: dict[str, Any] = {}

    async def caller() -> None:
        try:
            outcome["cancelled"] = await shielded(operation())
        except BaseException as exc:
            outcome["error"] = exc
        outcome["marker"] = marker.get()

    task = asyncio.create_task(caller())
    delivered = 0
    for round_ in range(len(steps) + 2):
        await asyncio.sleep(0)
        if round_ < len(cancels) and cancels[round_] and not task.done():
            task.cancel()
            delivered += 1
        for gate in gates:
            if not gate.done():
                gate.set_result(None)
        await asyncio.sleep(0)
    await task

    assert ran == list(range(len(steps))), "every step of the operation ran"
    assert outcome["marker"] == "caller's", "the operation's context stayed its own"
    # A cancellation can only be delivered while the caller waits, which is while the
    # operation suspends (its first step runs at once). One delivered then is reported, never
    # swallowed.
    suspends = any(step in ("wait", "sleep0") for step in steps)
    error = outcome.get("error")
    if ending == "raise":
        assert error is not None
        if isinstance(error, asyncio.CancelledError):
            assert suspends and delivered
            assert type(error.__cause__) is ValueError
        else:
            assert type(error) is ValueError
    else:
        assert error is None
        if outcome["cancelled"]:
            assert suspends and delivered
        if not suspends:
            assert outcome["cancelled"] is False
