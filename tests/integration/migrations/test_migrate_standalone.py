"""`odm migrate` on a standalone server (no transactions): apply, rollback, a failing step and
a batched update killed with SIGKILL, end to end."""

from __future__ import annotations

import signal
import time
from typing import Any as Project


def test_apply_rollback_and_failure_without_transactions(solo: Project) -> None:
    solo.write("0001_initial.py", '''
        from odm.migrations import (
            step, create_collection, drop_collection, create_index, drop_index,
        )

        async def seed(db):
            await db.people.insert_many([{"name": "ann"}, {"name": "bob"}])

        async def unseed(db):
            await db.people.delete_many({})

        steps = [
            step(create_collection("people"), drop_collection("people")),
            step(create_index("people", "name"), drop_index("people", "name_1")),
            step(seed, unseed),
        ]
    ''')
    assert "no transaction: the server does not support them" in solo.ok("plan")
    solo.ok("apply")
    assert solo.applied() == ["0001_initial"] and solo.db.people.count_documents({}) == 2
    assert "0001_initial  applied" in solo.ok("list")
    solo.ok("rollback")
    assert solo.applied() == [] and "people" not in solo.db.list_collection_names()
    solo.ok("apply")
    assert solo.db.people.count_documents({}) == 2

    solo.write("0002_broken.py", '''
        from odm.migrations import step

        __depends__ = {"0001_initial"}

        async def tag(db):
            await db.people.update_many({}, {"$set": {"tag": 1}})

        async def untag(db):
            await db.people.update_many({}, {"$unset": {"tag": ""}})

        async def boom(db):
            raise RuntimeError("boom")

        steps = [step(tag, untag), step(boom)]
    ''')
    failed = solo.run("apply")
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    assert "failed at step 2: RuntimeError: boom; rolled back step(s) 1" in failed.stderr
    assert solo.db.people.count_documents({"tag": {"$exists": True}}) == 0
    assert solo.applied() == ["0001_initial"]


SLOW_BATCHES = '''
import time
from odm.migrations import step, batched_update


def bump(doc):
    time.sleep(0.001)
    return {"$inc": {"n": 1}}


steps = [step(lambda db: batched_update(db.items, {}, bump, batch_size=25))]
'''


def test_killed_batched_update_resumes_exactly_once(solo: Project) -> None:
    solo.db.items.insert_many([{"_id": i, "n": 0} for i in range(1500)])
    solo.write("0001_bump.py", SLOW_BATCHES)
    first = solo.popen("apply", "--lock-lease", "1")
    deadline = time.monotonic() + 30
    while True:
        state = solo.db["_odm_migrations_state"].find_one({"_id": {"$regex": "^0001_bump:"}})
        if state and state.get("done", 0) >= 300:
            break
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the batched update made no progress"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert 300 <= solo.db.items.count_documents({"n": 1}) < 1500

    out = solo.ok("apply", "--lock-timeout", "20")
    assert "resuming items after" in out
    assert {d["n"] for d in solo.db.items.find()} == {1}
    assert solo.db.items.count_documents({"_odm_batch": {"$exists": True}}) == 0
    assert solo.applied() == ["0001_bump"]
