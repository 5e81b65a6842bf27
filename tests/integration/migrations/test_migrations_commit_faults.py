"""Faults injected (``failCommand``) just where a run stores what it did.

Nothing may be recorded as done that was not done, nor undone while recorded as done, and the
next run must not repeat a step that is not safe to repeat (``$inc``):

- a commit whose answer is lost after it happened (a write concern error) is a commit: the
  steps committed before it are not rolled back under a record that says "applied";
- a commit that failed leaves no open transaction behind to block the rollback's DDL;
- a step outside a transaction whose position could not be saved is rolled back with the rest;
- a record stored without a transaction despite an error is read back and kept; a failure
  after it (writing the log) undoes nothing.

The fail points only match this test's client (its ``appName``) and database.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from odm.exceptions import MigrationError
from odm.migrations import Runner

pytestmark = pytest.mark.odm_drivers("pymongo")

#: The fail point is armed by step 2, after its work, for the commands that follow it.
FILE = '''
import json
import os
from pymongo import MongoClient
from odm.migrations import create_index, drop_index, step

__transactional__ = TRANSACTIONAL


def arm():
    if os.environ.get("ARM"):
        with MongoClient(os.environ["URI"]) as client:
            client.admin.command(json.loads(os.environ["ARM"]))


async def bump_1(db):
    await db.marks.update_one({"_id": 1}, {"$inc": {"n": 1}}, upsert=True)


async def unbump_1(db):
    await db.marks.update_one({"_id": 1}, {"$inc": {"n": -1}})


async def bump_2(db):
    await db.marks.update_one({"_id": 2}, {"$inc": {"n": 1}}, upsert=True)
    arm()


async def unbump_2(db):
    await db.marks.update_one({"_id": 2}, {"$inc": {"n": -1}})


steps = [
    step(create_index("marks", "k"), drop_index("marks", "k_1")),
    step(bump_1, unbump_1),
    step(bump_2, unbump_2),
]
'''

#: The commit (or write) happens, then its answer says the write concern was not met.
LOST_ANSWER = {"writeConcernError": {"code": 64, "errmsg": "wtimeout", "errInfo": {"wtimeout": 1}}}
REFUSED = {"errorCode": 2}


@pytest.fixture
async def setup(
    odm_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """A database, a client whose ``appName`` the fail points match, and a way to arm them."""
    app, name = f"odm_s17_{uuid.uuid4().hex[:8]}", f"odm_s17_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        odm_uri, appname=app, tz_aware=True
    )
    monkeypatch.setenv("URI", odm_uri)

    def arm(
        commands: list[str], collection: str | None, data: dict[str, Any], times: int = 1
    ) -> None:
        scope: dict[str, Any] = {"failCommands": commands, "appName": app}
        if collection is not None:
            scope["namespace"] = f"{name}.{collection}"
        command = {"configureFailPoint": "failCommand", "mode": {"times": times},
                   "data": {**scope, **data}}
        monkeypatch.setenv("ARM", json.dumps(command))

    def disarm() -> None:
        monkeypatch.delenv("ARM", raising=False)
        with MongoClient(odm_uri) as sync:
            sync.admin.command({"configureFailPoint": "failCommand", "mode": "off"})

    state = type("Setup", (), {
        "db": client[name], "dir": tmp_path, "arm": staticmethod(arm),
        "disarm": staticmethod(disarm),
    })
    try:
        yield state
    finally:
        disarm()
        with MongoClient(odm_uri) as sync:
            sync.drop_database(name)
        await client.close()


def write(directory: Path, transactional: bool) -> None:
    source = FILE.replace("TRANSACTIONAL", str(transactional))
    (directory / "0001_bump.py").write_text(textwrap.dedent(source))


async def marks(db: Any) -> dict[int, int]:
    return {doc["_id"]: doc["n"] async for doc in db.marks.find()}


async def indexed(db: Any) -> bool:
    return "k_1" in [ix["name"] async for ix in await db.marks.list_indexes()]


async def applied(db: Any) -> list[str]:
    return [doc["_id"] async for doc in db["_odm_migrations"].find()]


async def test_a_commit_whose_answer_is_lost_is_kept(setup: Any) -> None:
    write(setup.dir, transactional=True)
    setup.arm(["commitTransaction"], None, LOST_ANSWER, times=2)  # its retry too
    assert await Runner(setup.db, setup.dir).apply() == ["0001_bump"]
    # The index of step 1 (committed before the transaction) stays with its record.
    assert await indexed(setup.db) and await marks(setup.db) == {1: 1, 2: 1}
    assert await applied(setup.db) == ["0001_bump"]
    setup.disarm()
    assert await Runner(setup.db, setup.dir).apply() == []


async def test_a_refused_commit_is_rolled_back_and_blocks_nothing(setup: Any) -> None:
    write(setup.dir, transactional=True)
    setup.arm(["commitTransaction"], None, REFUSED)
    # The refused transaction, left open, once held the lock drop_index waits for (60 s).
    async with asyncio.timeout(20):
        with pytest.raises(MigrationError, match=r"failed at step 3: .*rolled back step\(s\) 1"):
            await Runner(setup.db, setup.dir).apply()
    assert not await indexed(setup.db) and await marks(setup.db) == {}
    assert await applied(setup.db) == []
    setup.disarm()
    assert await Runner(setup.db, setup.dir).apply() == ["0001_bump"]
    assert await indexed(setup.db) and await marks(setup.db) == {1: 1, 2: 1}


async def test_a_step_whose_position_was_not_saved_is_rolled_back_too(setup: Any) -> None:
    write(setup.dir, transactional=False)
    setup.arm(["update"], "_odm_migrations_state", REFUSED)
    with pytest.raises(MigrationError, match=r"rolled back step\(s\) 3, 2, 1"):
        await Runner(setup.db, setup.dir).apply()
    assert await marks(setup.db) == {1: 0, 2: 0}
    setup.disarm()
    assert await Runner(setup.db, setup.dir).apply() == ["0001_bump"]
    assert await marks(setup.db) == {1: 1, 2: 1}  # step 3 once, not twice


async def test_a_record_stored_despite_an_error_is_kept(setup: Any) -> None:
    write(setup.dir, transactional=False)
    setup.arm(["update"], "_odm_migrations", LOST_ANSWER)
    assert await Runner(setup.db, setup.dir).apply() == ["0001_bump"]
    assert await indexed(setup.db) and await marks(setup.db) == {1: 1, 2: 1}
    assert await applied(setup.db) == ["0001_bump"]
    assert await setup.db["_odm_migrations_state"].count_documents({}) == 0


async def test_a_failure_after_the_record_undoes_nothing(setup: Any) -> None:
    write(setup.dir, transactional=False)
    setup.arm(["insert"], "_odm_migrations_log", REFUSED)
    with pytest.raises(MigrationError, match="done and recorded, but what follows the record"):
        await Runner(setup.db, setup.dir).apply()
    assert await indexed(setup.db) and await marks(setup.db) == {1: 1, 2: 1}
    assert await applied(setup.db) == ["0001_bump"]
    assert await setup.db["_odm_migrations_state"].count_documents({}) == 0
