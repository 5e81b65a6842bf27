"""A cancellation that reaches a committed block while its ``on_commit`` callbacks run cuts off
the callback it reaches, as it would any code, and no other: every later callback still runs,
and ``CancelledError`` is raised once all ran, saying the transaction committed.

Before, the cancellation left ``run_callbacks`` at once: the callbacks after the one it reached
never ran, without a word, and the bare ``CancelledError`` did not say the transaction had
committed (under ``asyncio.timeout()``: a ``TimeoutError`` inviting a second run of a
transaction that had committed).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import odm
from tests.properties import server_property


class CbEntry(odm.Document):
    n: int = 0

    class Meta:
        collection = "uow_callbacks_cancelled"


#: Each callback: plain (``None``) or async, taking that many turns of the event loop.
CALLBACKS = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=3)), min_size=1,
                     max_size=5)


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


@server_property(40)
@given(shapes=CALLBACKS, robust=st.lists(st.booleans(), min_size=5, max_size=5),
       target=st.integers(min_value=0, max_value=4), data=st.data())
async def test_a_cancellation_during_the_callbacks_cuts_off_only_the_one_it_reaches(
    odm_database: Any, shapes: list[int | None], robust: list[bool], target: int, data: Any
) -> None:
    target %= len(shapes)
    started: list[int] = []
    ended: list[int] = []
    task: asyncio.Task[Any] | None = None

    def callback(index: int, turns: int | None) -> Any:
        def plain() -> None:
            started.append(index)
            if index == target:
                assert task is not None
                task.cancel()  # reaches the next await, after this callback
            ended.append(index)

        async def awaited() -> None:
            started.append(index)
            if index == target:
                assert task is not None
                task.cancel()
            await _turns(turns or 0)
            ended.append(index)

        return plain if turns is None else awaited

    async def block() -> None:
        async with odm.transaction() as uow:
            await CbEntry(n=len(shapes)).insert()
            for index, turns in enumerate(shapes):
                uow.on_commit(callback(index, turns), robust=robust[index])

    task = asyncio.create_task(block())
    with pytest.raises(asyncio.CancelledError) as cancelled:
        await task
    every = list(range(len(shapes)))
    assert started == every  # none dropped
    # Cut off: the callback the cancellation was delivered in, the first await after it was
    # requested: the target's own when it suspends, else the next that does (an async
    # callback taking no turn of the event loop suspends nowhere).
    cut = next((i for i in every[target:] if shapes[i]), None)
    assert ended == [i for i in every if i != cut]
    if cut is not None:
        assert "the transaction committed" in str(cancelled.value)
    assert await CbEntry.objects.filter(n=len(shapes)).count() == 1
    await CbEntry.objects.all().delete()


async def test_under_a_timeout_the_later_callbacks_run_and_the_timeout_is_raised(
    odm_database: Any,
) -> None:
    ran: list[str] = []

    async def slow() -> None:
        ran.append("slow")
        await asyncio.sleep(30)
        ran.append("never")

    with pytest.raises(TimeoutError) as timed_out:
        async with asyncio.timeout(0.5):
            async with odm.transaction() as uow:
                await CbEntry(n=1).insert()
                uow.on_commit(slow)
                uow.on_commit(lambda: ran.append("receipt"))
    assert ran == ["slow", "receipt"]
    assert "the transaction committed" in str(timed_out.value.__context__)
    assert await CbEntry.objects.count() == 1
