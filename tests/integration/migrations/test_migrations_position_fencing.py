"""A run that lost its lock cannot move the file's saved position under the new holder.

Run A stalls in step 1 (outside a transaction) past its lease; run B takes the lock over, does
steps 1 and 2 and is in step 3 when A wakes up. A once saved "step 1 done" all the same, moving
the position back: B then dying in step 3 made the next run repeat step 2 (an ``$inc``). The
position is written only by the run that claimed it now (a compare-and-set on its lock token),
with or without transactions, and A stops with the lock-lost error.
"""

from __future__ import annotations

import asyncio
import sys
import types
from datetime import UTC, datetime
from typing import Any
from typing import Any as Project

import pytest
from pymongo import AsyncMongoClient

from odm.migrations import LockLost, Runner
from odm.migrations.runner import NO_TRANSACTIONS_ENV

pytestmark = pytest.mark.odm_drivers("pymongo")

#: Steps 1 and 2 are operations that never join a transaction; step 3 does when it can.
FILE = '''
import position_fence_coordination as fence
from odm.migrations import Operation, step

__transactional__ = TRANSACTIONAL


class Bump(Operation):
    """Count one in marks; run A's step 1 stalls until the test lets it go, counting nothing."""

    def __init__(self, key):
        self.key = key

    def describe(self):
        return f"bump {self.key}"

    async def run(self, context):
        if self.key == 1:
            fence.calls += 1
            if fence.calls == 1:
                fence.a_in_step.set()
                await fence.release_a.wait()
                return
        await context.database.marks.update_one(
            {"_id": self.key}, {"$inc": {"n": 1}}, upsert=True
        )


async def third(db):
    if fence.crash:  # run B dies here, once A has tried to save its position
        fence.b_in_step_3.set()
        await fence.a_done.wait()
        raise fence.Crash()


steps = [step(Bump(1)), step(Bump(2)), step(third)]
'''


class Crash(BaseException):
    """Run B dying in step 3 (as a kill would: nothing undone, positions kept)."""


def coordination() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        calls=0, crash=True, Crash=Crash, a_in_step=asyncio.Event(),
        release_a=asyncio.Event(), b_in_step_3=asyncio.Event(), a_done=asyncio.Event(),
    )


async def scenario(db: Any, directory: Any) -> tuple[LockLost, dict[int, int], list[str]]:
    fence = sys.modules["position_fence_coordination"] = coordination()
    try:
        a = asyncio.create_task(Runner(db, directory).apply())
        await asyncio.wait_for(fence.a_in_step.wait(), 10)
        # A stalls past its lease: B may take the lock over.
        await db["_odm_migrations_lock"].update_one(
            {}, {"$set": {"expires_at": datetime(2000, 1, 1, tzinfo=UTC)}}
        )
        b = asyncio.create_task(Runner(db, directory, lock_timeout=5).apply())
        await asyncio.wait_for(fence.b_in_step_3.wait(), 10)
        fence.release_a.set()
        with pytest.raises(LockLost) as lost:
            await asyncio.wait_for(a, 10)
        fence.a_done.set()
        with pytest.raises(Crash):
            await asyncio.wait_for(b, 10)
        fence.crash = False
        done = await Runner(db, directory).apply()
        marks = {doc["_id"]: doc["n"] async for doc in db.marks.find()}
        return lost.value, marks, done
    finally:
        del sys.modules["position_fence_coordination"]


@pytest.mark.parametrize("mode", ["transaction file", "no-transaction file", "no transactions"])
def test_a_run_that_lost_its_lock_cannot_move_the_position_back(
    project: Project, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("0001_fence.py", FILE.replace("TRANSACTIONAL", str(mode == "transaction file")))
    if mode == "no transactions":
        monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")

    async def main() -> tuple[LockLost, dict[int, int], list[str]]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(project.uri)
        try:
            return await scenario(client[project.db.name], project.migrations)
        finally:
            await client.close()

    lost, marks, done = asyncio.run(main())
    assert "the migrations lock was lost: it is now held by" in str(lost)
    assert "with nothing undone and nothing recorded" in str(lost)
    # B's position (2 steps done) stood: the third run resumed at step 3, repeating nothing.
    assert done == ["0001_fence"]
    assert marks == {1: 1, 2: 1}
    assert project.db["_odm_migrations_state"].count_documents({}) == 0
