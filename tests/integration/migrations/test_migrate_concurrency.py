"""Three deployers run `odm migrate apply` at once: each migration is applied exactly once.

Decision (documented in docs/migrations.md): a process that finds the lock held waits up to
--lock-timeout; when the lock frees within that time it takes it, finds nothing left to apply
and exits 0. Only when the wait runs out does it exit 3 naming the holder.
"""

from __future__ import annotations

from typing import Any as Project

COUNTING = '''
import asyncio
from odm.migrations import step

__depends__ = {depends}

async def count(db):
    await asyncio.sleep(0.7)  # long enough for the others to find the lock held
    await db.counters.update_one({{"_id": "{name}"}}, {{"$inc": {{"n": 1}}}}, upsert=True)

steps = [step(count)]
'''


def test_three_concurrent_applies_apply_each_migration_once(project: Project) -> None:
    project.write("0001_one.py", COUNTING.format(depends="set()", name="one"))
    project.write("0002_two.py", COUNTING.format(depends="{'0001_one'}", name="two"))
    processes = [
        project.popen("apply", "--lock-timeout", "30", "--lock-lease", "3") for _ in range(3)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in processes]
    for status, out, err in results:
        assert status == 0, out + err
    assert {d["_id"]: d["n"] for d in project.db.counters.find()} == {"one": 1, "two": 1}
    applies = [e["migration"] for e in project.db["_odm_migrations_log"].find()]
    assert sorted(applies) == ["0001_one", "0002_two"]
    outputs = [out for _, out, _ in results]
    assert sum("nothing to apply" in out for out in outputs) == 2
    assert sum("waiting up to 30 s for the migrations lock held by" in out for out in outputs) == 2
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0


def test_waiters_give_up_after_lock_timeout(project: Project) -> None:
    project.write("0001_one.py", COUNTING.format(depends="set()", name="one").replace(
        "0.7", "2"
    ))
    processes = [
        project.popen("apply", "--lock-timeout", "0.5", "--lock-lease", "3") for _ in range(3)
    ]
    results = [(p.wait(timeout=60), p.pid, *p.communicate()) for p in processes]
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1 and len(losers) == 2
    for status, _, _, err in losers:
        assert status == 3
        assert err.count("\n") == 1
        assert "migrations lock held by " in err and f":{winners[0][1]} since" in err
    assert project.db.counters.find_one({"_id": "one"})["n"] == 1
