"""Review findings: lock loss mid-file, resume edge cases, failed batches, the console script."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any as Project

import pytest

from odm.migrations.loader import checksum

LOSES_ITS_LOCK = '''
import asyncio
from odm.migrations import step

__transactional__ = False


async def first(db):
    await db.marks.update_one({"_id": "first"}, {"$inc": {"n": 1}}, upsert=True)


async def undo_first(db):
    await db.marks.delete_one({"_id": "first"})


async def slow(db):
    # Runs until the test has broken the lock (whatever the machine's load), 20 s at most.
    for _ in range(1000):
        if await db.signals.find_one({"_id": "go"}) is not None:
            return
        await asyncio.sleep(0.02)


async def third(db):
    await db.marks.update_one({"_id": "third"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(first, undo_first), step(slow), step(third)]
'''


def test_break_lock_while_holder_runs_undoes_nothing_and_resumes(project: Project) -> None:
    project.write("0001_lose.py", LOSES_ITS_LOCK)
    holder = project.popen("apply", "--lock-lease", "0.6")
    deadline = time.monotonic() + 20
    while project.db.marks.find_one({"_id": "first"}) is None:
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "removed the lock held by" in project.ok("break-lock", "--force")
    project.db.signals.insert_one({"_id": "go"})
    out, err = holder.communicate(timeout=20)
    assert holder.returncode == 1, out + err
    assert err.count("\n") == 1 and "lock" in err and "lost" in err, err
    # Another deployer may have taken over and be resuming this file: the loser must neither
    # undo step 1 nor forget the position.
    assert project.db.marks.find_one({"_id": "first"}) == {"_id": "first", "n": 1}
    assert project.db["_odm_migrations_state"].find_one({"_id": "file:0001_lose"}) is not None

    out = project.ok("apply")
    assert "resuming at step 3" in out
    assert {d["_id"]: d["n"] for d in project.db.marks.find()} == {"first": 1, "third": 1}
    assert project.applied() == ["0001_lose"]


def test_resume_when_every_step_was_done_but_not_recorded(project: Project) -> None:
    path = project.write("0001_done.py", '''
        from odm.migrations import step

        async def count(db):
            await db.marks.update_one({"_id": "x"}, {"$inc": {"n": 1}}, upsert=True)

        steps = [step(count), step(count)]
    ''')
    # What a run killed between its last step and its record leaves behind.
    project.db.marks.insert_one({"_id": "x", "n": 2})
    project.db["_odm_migrations_state"].insert_one({
        "_id": "file:0001_done", "direction": "apply", "next_step": 2, "migration": "0001_done",
        "checksum": checksum(path.read_bytes()),
    })
    result = project.run("apply")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.applied() == ["0001_done"]
    assert project.db.marks.find_one({"_id": "x"})["n"] == 2


FAILING_BATCH = '''
import os
from odm.migrations import step, batched_update


def bump(doc):
    if doc["_id"] == 70 and os.environ.get("FAIL_AT_70"):
        raise ValueError("bad document 70")
    return {"$inc": {"n": 1}}


async def after(db):
    if os.environ.get("FAIL_AFTER"):
        raise ValueError("later step failed")


steps = [
    step(lambda db: batched_update(db.items, {}, bump, batch_size=10)),
    step(after),
]
'''


@pytest.mark.parametrize("strategy", ["transactions", "markers"])
def test_failed_batched_update_reapplied_updates_no_document_twice(
    project: Project, strategy: str
) -> None:
    env = {"ODM_MIGRATIONS_NO_TRANSACTIONS": "1"} if strategy == "markers" else {}
    project.db.items.insert_many([{"_id": i, "n": 0} for i in range(100)])
    project.write("0001_bump.py", FAILING_BATCH)

    failed = project.run("apply", FAIL_AT_70="1", **env)
    assert failed.returncode == 1 and "bad document 70" in failed.stderr
    assert project.db.items.count_documents({"n": 1}) == 70
    project.ok("apply", **env)
    assert {d["n"] for d in project.db.items.find()} == {1}

    # A later step fails: the finished batched update (no rollback) is left applied, and a
    # re-run does not repeat it.
    project.ok("rollback")
    project.db.items.update_many({}, {"$set": {"n": 0}})
    failed = project.run("apply", FAIL_AFTER="1", **env)
    assert failed.returncode == 1 and "later step failed" in failed.stderr
    project.ok("apply", **env)
    assert {d["n"] for d in project.db.items.find()} == {1}
    assert project.db.items.count_documents({"_odm_batch": {"$exists": True}}) == 0
    assert project.db["_odm_migrations_state"].count_documents({}) == 0


def test_console_script_imports_the_projects_models(project: Project) -> None:
    """`odm` (the console script, not `python -m odm`) finds modules of the current directory."""
    (project.root / "shop").mkdir()
    (project.root / "shop" / "__init__.py").write_text("")
    (project.root / "shop" / "models.py").write_text(
        "from odm import Document\n\n\nclass Shopper(Document):\n    name: str\n"
    )
    project.write("0001_seed.py", '''
        from odm.migrations import step
        from shop.models import Shopper

        async def seed(db):
            await db[Shopper._meta.collection].insert_one({"name": "ann"})

        steps = [step(seed)]
    ''')
    env = dict(os.environ)
    env.pop("MONGODB_URI", None)
    env.pop("PYTHONPATH", None)
    script = Path(sys.executable).parent / "odm"
    result = subprocess.run(
        [str(script), "migrate", "apply", "--uri", project.uri, "--dir", "migrations"],
        cwd=project.root, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.applied() == ["0001_seed"]


def test_progress_bar_on_a_terminal_stays_off_piped_stdout(project: Project) -> None:
    project.db.items.insert_many([{"_id": i} for i in range(30)])
    project.write("0001_tag.py", '''
        from odm.migrations import step, batched_update
        steps = [step(lambda db: batched_update(db.items, {}, {"$set": {"t": 1}}, batch_size=7))]
    ''')
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            project.command("apply"), cwd=project.root, env=project.env(), stdout=subprocess.PIPE,
            stderr=follower, text=True, timeout=60, check=False,
        )
        os.close(follower)
        terminal = b""
        while select.select([leader], [], [], 0.2)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(leader)
    assert result.returncode == 0, result.stdout + terminal.decode(errors="replace")
    assert "updating items" not in result.stdout and "\x1b[" not in result.stdout
    assert b"updating items" in terminal
    assert project.db.items.count_documents({"t": 1}) == 30
