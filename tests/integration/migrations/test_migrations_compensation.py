"""A run stopped while it rolls back the steps done before a failed step (the compensation).

It once left the file's position pointing past steps it had already rolled back: the next
``apply`` resumed after them and recorded the file with their effects missing. Where the
compensation stands is saved now (before it starts and with each rollback), and the next
``apply`` finishes it before starting the file over, whatever moment the run stopped at.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Coroutine
from typing import Any
from typing import Any as Project

import pytest
from pymongo import AsyncMongoClient

from odm.exceptions import MigrationError
from odm.migrations import Runner

PYMONGO_ONLY = pytest.mark.odm_drivers("pymongo")

#: Step 3 fails once (a ``fail`` flag); the rollback of step 1 does what ``stop`` says once.
WITHOUT_TRANSACTION = '''
import os
from odm.migrations import step

__transactional__ = False


async def once(db, flag):
    return (await db.flags.delete_one({"_id": flag})).deleted_count == 1


async def bump_1(db):
    await db.marks.update_one({"_id": 1}, {"$inc": {"n": 1}}, upsert=True)


async def unbump_1(db):
    if await once(db, "stop"):
        if os.environ.get("HOW") == "kill":
            os._exit(9)  # dies on the spot, as a SIGKILL would
        if os.environ.get("HOW") == "fail":
            raise RuntimeError("no rollback today")
        raise KeyboardInterrupt
    await db.marks.update_one({"_id": 1}, {"$inc": {"n": -1}})


async def bump_2(db):
    await db.marks.update_one({"_id": 2}, {"$inc": {"n": 1}}, upsert=True)


async def unbump_2(db):
    await db.marks.update_one({"_id": 2}, {"$inc": {"n": -1}})


async def third(db):
    if await once(db, "fail"):
        raise RuntimeError("boom")


steps = [step(bump_1, unbump_1), step(bump_2, unbump_2), step(third)]
'''

#: Step 1 commits in its transaction before step 2 (an index build, on its own); steps 3 and 4
#: share a transaction that step 4 fails once; step 1's rollback is interrupted in its
#: transaction, once, after its write. Files next to it say what to do once: a flag in the
#: database would come back with the aborted transaction.
WITH_TRANSACTIONS = '''
import pathlib
from odm.migrations import create_index, drop_index, step

HERE = pathlib.Path(__file__).parent


def once(flag):
    if (HERE / flag).exists():
        (HERE / flag).unlink()
        return True
    return False


async def bump_1(db):
    await db.marks.update_one({"_id": 1}, {"$inc": {"n": 1}}, upsert=True)


async def unbump_1(db):
    await db.marks.update_one({"_id": 1}, {"$inc": {"n": -1}})
    if once("stop"):
        raise KeyboardInterrupt


async def bump_3(db):
    await db.marks.update_one({"_id": 3}, {"$inc": {"n": 1}}, upsert=True)


async def fourth(db):
    if once("fail"):
        raise RuntimeError("boom")


steps = [
    step(bump_1, unbump_1),
    step(create_index("marks", "k"), drop_index("marks", "k_1")),
    step(bump_3),
    step(fourth),
]
'''


def run(project: Project, work: Callable[[Runner], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``work`` with a runner of the project in its own event loop.

    Its own loop: a ``KeyboardInterrupt`` leaving a task stops the loop that runs it.
    """
    async def main() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(project.uri)
        try:
            return await work(Runner(client[project.db.name], project.migrations))
        finally:
            await client.close()

    return asyncio.run(main())


def marks(project: Project) -> dict[int, int]:
    return {doc["_id"]: doc["n"] for doc in project.db.marks.find()}


def file_state(project: Project, mid: str) -> dict[str, Any]:
    doc = project.db["_odm_migrations_state"].find_one({"_id": f"file:{mid}"})
    assert doc is not None
    return dict(doc)


@PYMONGO_ONLY
def test_an_interrupted_compensation_is_finished_by_the_next_apply(project: Project) -> None:
    project.write("0001_bump.py", WITHOUT_TRANSACTION)
    project.db.flags.insert_many([{"_id": "fail"}, {"_id": "stop"}])
    with pytest.raises(KeyboardInterrupt):
        run(project, lambda runner: runner.apply())
    # Step 2 rolled back, step 1 not yet: the saved position says so, not "2 steps done".
    assert marks(project) == {1: 1, 2: 0}
    state = file_state(project, "0001_bump")
    assert (state["direction"], state["next_step"], state["undone"]) == ("compensate", 1, [1])
    logged = [e["error"] for e in project.db["_odm_migrations_log"].find({"ok": False})]
    assert logged[-1] == (
        "apply 0001_bump: interrupted (KeyboardInterrupt) while rolling back step 1 after a "
        "failure; the file is not recorded, and the next apply finishes rolling back first"
    )
    assert project.applied() == []
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0

    lines: list[str] = []

    async def again(runner: Runner) -> list[str]:
        runner.echo = lines.append
        return await runner.apply()

    assert run(project, again) == ["0001_bump"]
    assert any("finishing that rollback first" in line for line in lines), lines
    assert marks(project) == {1: 1, 2: 1}  # each step once: none skipped, none repeated
    assert project.db["_odm_migrations_state"].count_documents({}) == 0


@PYMONGO_ONLY
def test_a_rollback_in_a_transaction_is_counted_with_its_position(project: Project) -> None:
    project.write("0001_bump.py", WITH_TRANSACTIONS)
    (project.migrations / "stop").touch()
    (project.migrations / "fail").touch()
    with pytest.raises(KeyboardInterrupt):
        run(project, lambda runner: runner.apply())
    # The index (step 2) is dropped; step 1's rollback was aborted with its transaction.
    assert marks(project) == {1: 1}
    assert "k_1" not in project.db.marks.index_information()
    state = file_state(project, "0001_bump")
    assert (state["direction"], state["next_step"], state["undone"]) == ("compensate", 1, [1])

    assert run(project, lambda runner: runner.apply()) == ["0001_bump"]
    assert marks(project) == {1: 1, 3: 1}
    assert "k_1" in project.db.marks.index_information()  # step 2 applied again, not skipped


def test_a_run_killed_while_compensating_leaves_the_truth(project: Project) -> None:
    project.write("0001_bump.py", WITHOUT_TRANSACTION)
    project.db.flags.insert_many([{"_id": "fail"}, {"_id": "stop"}])
    killed = project.run("apply", "--lock-lease", "1", HOW="kill")
    assert killed.returncode == 9, killed.stdout + killed.stderr
    assert marks(project) == {1: 1, 2: 0}
    assert file_state(project, "0001_bump")["direction"] == "compensate"
    out = project.ok("apply", "--lock-timeout", "10")  # once the dead run's lease ran out
    assert "finishing that rollback first" in out
    assert marks(project) == {1: 1, 2: 1}
    assert project.applied() == ["0001_bump"]


@PYMONGO_ONLY
def test_a_failed_compensation_is_tried_again_before_the_file(project: Project) -> None:
    project.write("0001_bump.py", WITHOUT_TRANSACTION)
    project.db.flags.insert_many([{"_id": "fail"}, {"_id": "stop"}])
    failed: subprocess.CompletedProcess[str] = project.run("apply", HOW="fail")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert (
        "failed at step 3: RuntimeError: boom; rolling back step 1 also failed (RuntimeError: "
        "no rollback today): the database is partly migrated; the next apply tries rolling "
        "back from step 1 again"
    ) in failed.stderr
    assert marks(project) == {1: 1, 2: 0}
    # Starting the file over now would run step 1 a second time: it is rolled back first.
    assert run(project, lambda runner: runner.apply()) == ["0001_bump"]
    assert marks(project) == {1: 1, 2: 1}


@PYMONGO_ONLY
def test_a_compensation_interrupted_again_is_still_finished(project: Project) -> None:
    project.write("0001_bump.py", WITHOUT_TRANSACTION)
    project.db.flags.insert_many([{"_id": "fail"}, {"_id": "stop"}])
    with pytest.raises(KeyboardInterrupt):
        run(project, lambda runner: runner.apply())
    project.db.flags.insert_one({"_id": "stop"})  # interrupted again while finishing it
    with pytest.raises(KeyboardInterrupt):
        run(project, lambda runner: runner.apply())
    state = file_state(project, "0001_bump")
    assert (state["direction"], state["next_step"], state["undone"]) == ("compensate", 1, [1])
    assert project.applied() == [] and marks(project) == {1: 1, 2: 0}
    assert run(project, lambda runner: runner.apply()) == ["0001_bump"]
    assert marks(project) == {1: 1, 2: 1}


@PYMONGO_ONLY
def test_plan_says_the_rollback_is_finished_first(project: Project) -> None:
    project.write("0001_bump.py", WITHOUT_TRANSACTION)
    project.db.flags.insert_many([{"_id": "fail"}, {"_id": "stop"}])
    with pytest.raises(KeyboardInterrupt):
        run(project, lambda runner: runner.apply())
    out = project.ok("plan")
    assert "first finishes rolling back step(s) 1" in out, out
    with pytest.raises(MigrationError, match="changed since an earlier apply"):
        project.write("0001_bump.py", WITHOUT_TRANSACTION + "\n# edited\n")
        run(project, lambda runner: runner.apply())
