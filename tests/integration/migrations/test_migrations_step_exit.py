"""A step that exits or is interrupted: ``sys.exit()`` fails the step, Ctrl-C stops the run.

A ``SystemExit`` raised while a step runs (by the step, its update function or the lambda that
builds it) once ended ``odm migrate`` with the step's status (``sys.exit(3)`` read as "lock
held") and skipped the failure handling. It is a failure of that step now. A Ctrl-C (or a
``KeyboardInterrupt`` raised in a step) stops the run as a killed one would, undoing nothing and
keeping the saved position, but says where it stopped, logs it and releases the lock.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from typing import Any as Project

import pytest
from pymongo import AsyncMongoClient

from odm.exceptions import MigrationError
from odm.migrations import Runner

PYMONGO_ONLY = pytest.mark.odm_drivers("pymongo")

#: Step 1 (with a rollback) writes; step 2 exits in the way EXIT names.
EXITING = '''
import sys
from odm.migrations import batched_update, step

__transactional__ = False  # step 1 commits on its own, so the failure must roll it back


async def mark(db):
    await db.marks.insert_one({"_id": "first"})


async def unmark(db):
    await db.marks.delete_one({"_id": "first"})


async def exits(db):
    sys.exit(3)


def exits_in_batch(doc):
    sys.exit(3)


STEP_2 = {
    "async def": step(exits),
    "update function": step(lambda db: batched_update(db.items, {}, exits_in_batch)),
    "lambda": step(lambda db: sys.exit(3)),
}

steps = [step(mark, unmark), STEP_2[EXIT]]
'''

AFTER = '''
from odm.migrations import step

__depends__ = {"0001_exit"}


async def after(db):
    await db.marks.insert_one({"_id": "after"})


steps = [step(after)]
'''


def exiting(exit: str) -> str:
    return EXITING.replace("STEP_2[EXIT]", f"STEP_2[{exit!r}]")


def assert_failed_cleanly(db: Any, error: str) -> None:
    """Step 1 rolled back, nothing recorded, the failure logged, the lock and positions gone."""
    assert list(db.marks.find()) == []
    assert list(db["_odm_migrations"].find()) == []
    logged = [(e["migration"], e["ok"], e["error"]) for e in db["_odm_migrations_log"].find()]
    assert logged == [("0001_exit", False, error)]
    assert db["_odm_migrations_lock"].count_documents({}) == 0
    # The file starts over (a batched update keeps its own position, to resume half-way).
    assert db["_odm_migrations_state"].count_documents({"_id": "file:0001_exit"}) == 0


def test_sys_exit_in_a_step_is_a_failure_of_the_migration(project: Project) -> None:
    path = project.write("0001_exit.py", exiting("async def"))
    project.write("0002_after.py", AFTER)
    result = project.run("apply")
    assert result.returncode == 1, result.stdout + result.stderr  # not the step's 3
    line = path.read_text().splitlines().index("    sys.exit(3)") + 1
    expected = (
        f"apply 0001_exit failed at step 2: the step called sys.exit(3) ({path}:{line}); a step "
        "fails by raising an exception, it must not exit; rolled back step(s) 1"
    )
    assert result.stderr == f"odm migrate: error: {expected}\n"
    assert_failed_cleanly(project.db, expected)


@PYMONGO_ONLY
@pytest.mark.parametrize("exit", ["async def", "update function", "lambda"])
async def test_sys_exit_anywhere_in_a_step_fails_it_through_the_api(
    odm_database: Any, project: Project, exit: str
) -> None:
    project.write("0001_exit.py", exiting(exit))
    runner = Runner(odm_database.client[project.db.name], project.migrations)
    await runner.database.items.insert_one({"_id": 1})
    await runner.plan()  # builds the lambda with a stand-in database: no exit either
    with pytest.raises(MigrationError, match=r"failed at step 2: the step called sys\.exit") as err:
        await runner.apply()
    assert_failed_cleanly(project.db, str(err.value))


ROLLBACK_EXITS = '''
import sys
from odm.migrations import step

__transactional__ = False


async def mark(db):
    await db.marks.insert_one({"_id": "first"})


async def fails(db):
    raise RuntimeError("boom")


steps = [step(mark, lambda db: sys.exit(5)), step(fails)]
'''


@PYMONGO_ONLY
async def test_sys_exit_in_a_compensating_rollback_is_reported(
    odm_database: Any, project: Project
) -> None:
    project.write("0001_exit.py", ROLLBACK_EXITS)
    runner = Runner(odm_database.client[project.db.name], project.migrations)
    with pytest.raises(MigrationError) as err:
        await runner.apply()
    assert "failed at step 2: RuntimeError: boom; rolling back step 1 also failed" in str(err.value)
    assert "the step called sys.exit(5)" in str(err.value)
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0
    assert project.applied() == []


# --- Ctrl-C ----------------------------------------------------------------------------------

#: Step 1 (in a transaction) counts, step 2 (a batched update) commits on its own, step 3 (in a
#: new transaction) counts, then waits for the test's GO file: Ctrl-C comes there.
WAITING = '''
import asyncio
import os
import pathlib
from odm.migrations import batched_update, step


async def first(db):
    await db.marks.update_one({"_id": "first"}, {"$inc": {"n": 1}}, upsert=True)


async def third(db):
    await db.marks.update_one({"_id": "third"}, {"$inc": {"n": 1}}, upsert=True)
    pathlib.Path(os.environ["STARTED"]).touch()
    while not pathlib.Path(os.environ["GO"]).exists():
        await asyncio.sleep(0.02)


steps = [
    step(first),
    step(lambda db: batched_update(db.items, {}, {"$inc": {"n": 1}}, batch_size=2)),
    step(third),
]
'''


def interrupt_in_step_3(project: Project, started: Path, go: Path) -> tuple[int, str, str]:
    process = subprocess.Popen(
        project.command("apply"), cwd=project.root, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=project.env(STARTED=str(started), GO=str(go)),
        # A shell's background job ignores SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "step 3 never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    return process.returncode, out, err


def test_ctrl_c_stops_the_run_as_a_kill_would_and_says_where(project: Project) -> None:
    project.db.items.insert_many([{"_id": i, "n": 0} for i in range(5)])
    project.write("0001_wait.py", WAITING)
    started, go = project.root / "started", project.root / "go"
    status, out, err = interrupt_in_step_3(project, started, go)
    assert status == 130, out + err
    assert err == "odm migrate: error: interrupted\n"
    message = (
        "apply 0001_wait: interrupted (cancelled) in step 3; nothing undone and nothing "
        "recorded: the next apply resumes at step 3"
    )
    assert message in out.splitlines()
    # Nothing undone, step 3's transaction aborted, the position kept, the lock released.
    assert {d["_id"]: d["n"] for d in project.db.marks.find()} == {"first": 1}
    assert project.applied() == []
    logged = [(e["ok"], e["error"]) for e in project.db["_odm_migrations_log"].find()]
    assert logged == [(False, message)]
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0

    go.touch()
    assert "resuming at step 3" in project.ok("apply", STARTED=str(started), GO=str(go))
    assert {d["_id"]: d["n"] for d in project.db.marks.find()} == {"first": 1, "third": 1}
    assert [d["n"] for d in project.db.items.find()] == [1] * 5
    assert project.applied() == ["0001_wait"]


KEYBOARD_INTERRUPT = '''
from odm.migrations import step

__transactional__ = False


async def mark(db):
    await db.marks.insert_one({"_id": "first"})


async def unmark(db):
    await db.marks.delete_one({"_id": "first"})


async def interrupted(db):
    raise KeyboardInterrupt


steps = [step(mark, unmark), step(interrupted)]
'''


def test_keyboard_interrupt_in_a_step_stops_the_run_without_undoing(project: Project) -> None:
    project.write("0001_stop.py", KEYBOARD_INTERRUPT)

    async def apply() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(project.uri)
        try:
            await Runner(client[project.db.name], project.migrations).apply()
        finally:
            await client.close()

    # Its own event loop: a KeyboardInterrupt leaving a task stops the loop that runs it.
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(apply())
    assert [d["_id"] for d in project.db.marks.find()] == ["first"]  # not rolled back
    assert project.applied() == []
    state = project.db["_odm_migrations_state"].find_one({"_id": "file:0001_stop"})
    assert state is not None and state["next_step"] == 1
    logged = [e["error"] for e in project.db["_odm_migrations_log"].find({"ok": False})]
    assert logged == [
        "apply 0001_stop: interrupted (KeyboardInterrupt) in step 2; nothing undone and nothing "
        "recorded: the next apply resumes at step 2"
    ]
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0
