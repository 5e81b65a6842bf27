"""A batched update killed with SIGKILL mid-way resumes and updates every document once.

Run twice: with per-batch transactions (the replica set) and with the marker strategy used on
servers without transactions (forced through ODM_MIGRATIONS_NO_TRANSACTIONS).
"""

from __future__ import annotations

import signal
import time
from typing import Any as Project

import pytest

DOCUMENTS = 3000

SLOW_BATCHES = '''
import os
import time
from odm.migrations import step, batched_update

async def first(db):
    await db.runs.update_one({"_id": "first"}, {"$inc": {"n": 1}}, upsert=True)

def bump(doc):
    if os.environ.get("SLOW_BUMP"):
        time.sleep(0.0007)  # slow enough to be killed mid-way
    return {"$inc": {"n": 1}}

steps = [
    step(first),
    step(lambda db: batched_update(db.items, {}, bump, batch_size=50)),
]
'''


@pytest.mark.parametrize("strategy", ["transactions", "markers"])
def test_killed_batched_update_resumes_exactly_once(project: Project, strategy: str) -> None:
    env = {"ODM_MIGRATIONS_NO_TRANSACTIONS": "1"} if strategy == "markers" else {}
    project.db.items.insert_many([{"_id": i, "n": 0} for i in range(DOCUMENTS)])
    project.write("0001_bump.py", SLOW_BATCHES)

    first = project.popen("apply", "--lock-lease", "1", SLOW_BUMP="1", **env)
    deadline = time.monotonic() + 30
    while True:
        state = project.db["_odm_migrations_state"].find_one({"_id": {"$regex": "^0001_bump:"}})
        if state and state.get("done", 0) >= 600:
            break
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the batched update made no progress"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert project.applied() == []
    updated = project.db.items.count_documents({"n": 1})
    assert 600 <= updated < DOCUMENTS

    # The dead process's lease (1 s) expires; the second run takes over and resumes.
    out = project.ok("apply", "--lock-timeout", "20", **env)
    assert "resuming at step 2" in out and "resuming items after" in out
    assert project.applied() == ["0001_bump"]
    counts = {doc["n"] for doc in project.db.items.find()}
    assert counts == {1}, f"documents updated {counts} times"
    assert project.db.runs.find_one({"_id": "first"})["n"] == 1
    assert project.db.items.count_documents({"_odm_batch": {"$exists": True}}) == 0
    assert project.db["_odm_migrations_state"].count_documents({}) == 0

    # Rolled back (no rollback: nothing to undo) and re-applied, it runs from the start again.
    project.ok("rollback")
    project.ok("apply", **env)
    assert {doc["n"] for doc in project.db.items.find()} == {2}
