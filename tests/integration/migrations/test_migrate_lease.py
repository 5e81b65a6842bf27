"""A run that lost its lock (broken, or its lease expired and taken over) stops at once.

Each scenario runs two real `odm migrate apply` processes. The slow part of a step waits for a
file the test creates, so the order is set by the test, not by sleeps: the first run is inside
the step when its lock is broken (or it is stopped with SIGSTOP until its lease expires and the
second run takes over); the second run is then inside the same step, and only after the first
run has been let go (and has stopped) is the second one let go. Each step and each document
must be applied once, by the second run, and the first must say who holds the lock now.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any as Project

import pytest

WAIT = '''
import os
import pathlib
import time


def wait_for_go():
    """Say the step is here, then wait (at most 30 s) for the test to let it go on."""
    pathlib.Path(os.environ["STARTED"]).touch()
    go = pathlib.Path(os.environ["GO"])
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never let this step go on")
        time.sleep(0.02)
'''

SLOW_STEP = '''
import asyncio
from odm.migrations import step
from waiting import wait_for_go


async def slow(db):
    await asyncio.to_thread(wait_for_go)
    await db.marks.update_one({"_id": "slow"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(slow)]
'''

AFTER = '''
from odm.migrations import step

__depends__ = {"0001_slow"}


async def after(db):
    await db.marks.update_one({"_id": "after"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(after)]
'''

BATCHED = '''
from odm.migrations import batched_update, step
from waiting import wait_for_go


def bump(doc):
    if doc["_id"] == 50:
        wait_for_go()
    return {"$inc": {"n": 1}}


steps = [step(apply=lambda db: batched_update(db.items, {}, bump, batch_size=10))]
'''


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def start(project: Project, name: str, *args: str) -> tuple[subprocess.Popen[str], Path, Path]:
    started, go = project.root / f"{name}.started", project.root / f"{name}.go"
    process = project.popen(
        "apply", "--lock-timeout", "30", *args, STARTED=str(started), GO=str(go)
    )
    return process, started, go


def lose_the_lock(project: Project, how: str) -> subprocess.Popen[str]:
    """Run the first apply into its slow part, take its lock away, start the second one."""
    first, started, go = start(project, "first", "--lock-lease", "30" if how == "break" else "1")
    wait_for(started, first)
    if how == "break":
        refused = project.run("break-lock")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert f":{first.pid} since" in refused.stderr and "--force" in refused.stderr
        assert refused.stderr.count("\n") == 1
        assert f":{first.pid}" in project.ok("break-lock", "--force")
    else:
        first.send_signal(signal.SIGSTOP)  # a stalled holder: its lease (1 s) runs out
    second, second_started, second_go = start(project, "second")
    try:
        wait_for(second_started, second)  # it holds the lock and is inside the same step
        if how == "takeover":
            first.send_signal(signal.SIGCONT)
        go.touch()
        out, err = first.communicate(timeout=30)
        assert first.returncode == 1, out + err
        assert err.count("\n") == 1, err
        assert "the migrations lock was lost: it is now held by" in err, err
        assert f":{second.pid} since" in err and "stopped before" in err, err
        second_go.touch()
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0, out + err
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait(timeout=10)
    return second


def successful_appliers(project: Project) -> dict[str, list[str]]:
    appliers: dict[str, list[str]] = {}
    for entry in project.db["_odm_migrations_log"].find({"action": "apply", "ok": True}):
        appliers.setdefault(entry["migration"], []).append(entry["by"])
    return appliers


@pytest.mark.parametrize("how", ["break", "takeover"])
def test_lost_lock_during_a_slow_step(project: Project, how: str) -> None:
    (project.root / "waiting.py").write_text(WAIT)
    project.write("0001_slow.py", SLOW_STEP)
    project.write("0002_after.py", AFTER)
    second = lose_the_lock(project, how)
    # The first run's step ran in a transaction that could not prove the lock: aborted.
    assert {d["_id"]: d["n"] for d in project.db.marks.find()} == {"slow": 1, "after": 1}
    assert project.applied() == ["0001_slow", "0002_after"]
    appliers = successful_appliers(project)
    assert sorted(appliers) == ["0001_slow", "0002_after"]
    assert all(by == [by[0]] and by[0].endswith(f":{second.pid}") for by in appliers.values())
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0


@pytest.mark.parametrize("how", ["break", "takeover"])
def test_lost_lock_during_a_batched_update(project: Project, how: str) -> None:
    (project.root / "waiting.py").write_text(WAIT)
    project.db.items.insert_many([{"_id": i, "n": 0} for i in range(100)])
    project.write("0001_bump.py", BATCHED)
    second = lose_the_lock(project, how)
    assert [d["n"] for d in project.db.items.find()] == [1] * 100
    assert project.applied() == ["0001_bump"]
    appliers = successful_appliers(project)
    assert list(appliers) == ["0001_bump"] and len(appliers["0001_bump"]) == 1
    assert appliers["0001_bump"][0].endswith(f":{second.pid}")
    assert project.db["_odm_migrations_state"].count_documents({}) == 0
