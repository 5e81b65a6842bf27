"""Three deployers run `odm migrate apply` at once: each migration is applied exactly once.

Decision (documented in docs/migrations.md): a process that finds the lock held waits up to
--lock-timeout; when the lock frees within that time it takes it, finds nothing left to apply
and exits 0. Only when the wait runs out does it exit 3 naming the holder.
"""

from __future__ import annotations

from typing import Any
from typing import Any as Project

COUNTING = '''
import asyncio
from pymongo import MongoClient
from odm.migrations import step

__depends__ = {depends}

#: The deployers (each process's appName) that must find the lock held.
DEPLOYERS = {deployers!r}


def connected(admin):
    """The deployers with a connection to the server now (asked outside the step's
    transaction, in which $currentOp cannot run)."""
    return {{doc["_id"] for doc in admin.aggregate([
        {{"$currentOp": {{"allUsers": True, "idleConnections": True}}}},
        {{"$match": {{"appName": {{"$in": DEPLOYERS}}}}}},
        {{"$group": {{"_id": "$appName"}}}},
    ])}}


async def count(db):
    # The lock is held until every deployer has connected (on a loaded machine a process may
    # start seconds after the others, find the lock free and never wait), then long enough
    # for the others to find it held.
    seen = set()
    with MongoClient({uri!r}) as client:
        for _ in range(300):
            seen |= connected(client.admin)
            if len(seen) == len(DEPLOYERS):
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep({hold})
    await db.counters.update_one({{"_id": "{name}"}}, {{"$inc": {{"n": 1}}}}, upsert=True)

steps = [step(count)]
'''

DEPLOYERS = ["deployer-0", "deployer-1", "deployer-2"]


def counting(
    project: Project, name: str, depends: str, *, hold: float = 0.7, wait_for: bool = True
) -> str:
    """A migration that counts its runs in ``counters``, holding the lock until every deployer
    has connected (``wait_for``) and ``hold`` seconds more."""
    return COUNTING.format(
        depends=depends, name=name, hold=hold, uri=project.uri,
        deployers=DEPLOYERS if wait_for else [],
    )


def deployers(project: Project, *args: str) -> list[Any]:
    """Start one ``odm migrate`` process per deployer, each named by its appName."""
    joiner = "&" if "?" in project.uri else "?"
    return [
        project.popen(*args, "--uri", f"{project.uri}{joiner}appname={name}")
        for name in DEPLOYERS
    ]


def test_three_concurrent_applies_apply_each_migration_once(project: Project) -> None:
    project.write("0001_one.py", counting(project, "one", "set()"))
    project.write("0002_two.py", counting(project, "two", "{'0001_one'}", wait_for=False))
    processes = deployers(project, "apply", "--lock-timeout", "30", "--lock-lease", "3")
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
    project.write("0001_one.py", counting(project, "one", "set()", hold=2))
    processes = deployers(project, "apply", "--lock-timeout", "0.5", "--lock-lease", "3")
    results = [(p.wait(timeout=60), p.pid, *p.communicate()) for p in processes]
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1 and len(losers) == 2
    for status, _, _, err in losers:
        assert status == 3
        assert err.count("\n") == 1
        assert "migrations lock held by " in err and f":{winners[0][1]} since" in err
    assert project.db.counters.find_one({"_id": "one"})["n"] == 1
