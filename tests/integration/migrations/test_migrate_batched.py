"""A batched update killed with SIGKILL mid-way resumes and updates every document once.

Run twice: with per-batch transactions (the replica set) and with the marker strategy used on
servers without transactions (forced through ODM_MIGRATIONS_NO_TRANSACTIONS). Also, in-process:
_ids of mixed BSON types, positions kept by a failed run of a file edited since, compensation.
"""

from __future__ import annotations

import asyncio
import signal
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from typing import Any as Project

import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Timestamp

from odm.cli import main
from odm.exceptions import MigrationError
from odm.migrations import Runner, batched
from odm.migrations.loader import checksum
from odm.migrations.runner import NO_TRANSACTIONS_ENV

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


# --- _ids of mixed BSON types, in-process (no CLI subprocess) --------------------------------

#: One _id of each type an _id can have, in MongoDB's sort order; with batches of one, each is
#: the position a batch resumes after (null and NaN included: nothing is $gt either).
MIXED_IDS: list[Any] = [
    MinKey(), None, float("nan"), -3, 2.5, Int64(7), Decimal128("8.5"), "", "b", {"k": 1},
    Binary(b"\x01"), uuid.UUID(int=1), ObjectId(), ObjectId(), False, True,
    datetime(2020, 1, 1, tzinfo=UTC), Timestamp(1, 1), Code("x"), Code("y", {"s": 1}), MaxKey(),
]

#: One driver is enough for the in-process runs: under Motor (no transactions) the runner takes
#: the markers' path, which the "markers" variants cover with PyMongo.
PYMONGO_ONLY = pytest.mark.odm_drivers("pymongo")

BUMP = '''
from odm.migrations import batched_update, step

steps = [step(lambda db: batched_update(db.items, {}, {"$inc": {"n": 1}}, batch_size=SIZE))]
'''


def write(directory: Path, name: str, source: str) -> None:
    (directory / name).write_text(textwrap.dedent(source))


@pytest.fixture(params=["transactions", "markers"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with per-batch transactions, then with the standalone servers' markers."""
    if request.param == "markers":
        monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    return str(request.param)


@PYMONGO_ONLY
async def test_ids_of_every_type_are_all_updated(
    odm_database: Any, tmp_path: Path, strategy: str
) -> None:
    await odm_database.items.insert_many([{"_id": value, "n": 0} for value in MIXED_IDS])
    write(tmp_path, "0001_bump.py", BUMP.replace("SIZE", "1"))
    async with asyncio.timeout(10):  # resuming "after null" once meant starting over, for ever
        assert await Runner(odm_database, tmp_path).apply() == ["0001_bump"]
    counts = [doc["n"] async for doc in odm_database.items.find({}, sort=[("_id", 1)])]
    assert counts == [1] * len(MIXED_IDS)
    assert await odm_database.items.count_documents({"_odm_batch": {"$exists": True}}) == 0


@PYMONGO_ONLY
async def test_a_document_left_behind_fails_the_step(
    odm_database: Any, tmp_path: Path, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The resume condition of old: the last _id's own type only, which never reaches "a".
    monkeypatch.setattr(batched, "_after", lambda last_id: {"_id": {"$gt": last_id}})
    await odm_database.items.insert_many([{"_id": i, "n": 0} for i in (1, 2, "a")])
    write(tmp_path, "0001_bump.py", BUMP.replace("SIZE", "2"))
    with pytest.raises(MigrationError) as failed:
        await Runner(odm_database, tmp_path).apply()
    assert str(failed.value).startswith(
        "apply 0001_bump failed at step 1: batched update of items matching {} in batches of 2: "
        "the document with _id 'a' matches and sorts after the last one done (_id 2) but was "
        "never reached"
    )
    assert await odm_database["_odm_migrations"].count_documents({}) == 0
    assert await odm_database.items.find_one({"_id": "a"}) == {"_id": "a", "n": 0}


# --- positions saved by a failed run belong to the file's content ----------------------------

FAILING_V1 = '''
from odm.migrations import batched_update, step

async def broken(db):
    raise RuntimeError("bug in step 2")

steps = [
    step(lambda db: batched_update(db.items, {}, {"$inc": {"n": 1}}, batch_size=2)),
    step(broken),
]
'''

FIXED_V2 = '''
from odm.migrations import batched_update, step

steps = [
    step(lambda db: batched_update(db.items, {}, {"$set": {"flag": True}}, batch_size=2)),
    step(lambda db: batched_update(db.items, {}, {"$inc": {"n": 1}}, batch_size=2)),
]
'''


def migrate(project: Project, verb: str, *args: str) -> int:
    """Run `odm migrate VERB` in this process (a subprocess costs more than the run itself)."""
    return main(["migrate", verb, "--uri", project.uri, "--dir", str(project.migrations), *args])


def test_a_file_edited_after_a_failed_run_starts_over_only_when_told(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    def state() -> dict[str, Any]:
        return {
            "n": sorted({doc["n"] for doc in project.db.items.find()}),
            "flagged": project.db.items.count_documents({"flag": True}),
            "applied": project.applied(),
        }

    project.db.items.insert_many([{"_id": i, "n": 0} for i in range(5)])
    project.write("0001_bump.py", FAILING_V1)
    assert migrate(project, "apply") == 1
    # The same content resumes: the finished update is not done again.
    assert migrate(project, "apply") == 1
    assert state() == {"n": [1], "flagged": 0, "applied": []}
    capsys.readouterr()

    project.write("0001_bump.py", FIXED_V2)  # a new first step: old positions would shift
    assert migrate(project, "plan") == 1 and migrate(project, "apply") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2
    assert "changed since an earlier apply of it stopped part-way: 0001_bump (" in err
    assert "run `odm migrate apply` again with `--restart 0001_bump`" in err
    assert state() == {"n": [1], "flagged": 0, "applied": []}

    assert migrate(project, "apply", "--restart", "0001") == 0
    assert state() == {"n": [2], "flagged": 5, "applied": ["0001_bump"]}
    assert project.db["_odm_migrations_state"].count_documents({}) == 0


def test_a_position_saved_without_checksum_is_not_resumed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project.write("0001_bump.py", FIXED_V2)
    applied = {"_id": "0001_bump", "checksum": checksum(path.read_bytes())}
    project.db["_odm_migrations"].insert_one(applied)
    # Left by a killed rollback of a version that kept no checksums: nothing says which content.
    project.db["_odm_migrations_state"].insert_one(
        {"_id": "file:0001_bump", "migration": "0001_bump", "direction": "rollback", "next_step": 1}
    )
    assert migrate(project, "rollback") == 1
    err = capsys.readouterr().err
    assert "its checksum differs, or was not recorded" in err
    assert "run `odm migrate rollback` again with `--restart 0001_bump`" in err
    assert migrate(project, "rollback", "--restart", "0001_bump") == 0
    assert project.applied() == []
    assert project.db["_odm_migrations_state"].count_documents({}) == 0


COMPENSATED = '''
from odm.migrations import batched_update, step

__transactional__ = False  # step 1 commits on its own, so a failure compensates it

async def tag(db):
    await db.items.update_many({}, {"$set": {"tagged": True}})

async def boom(db):
    raise RuntimeError("boom")

steps = [
    step(tag, lambda db: batched_update(db.items, {}, {"$inc": {"undone": 1}}, batch_size=2)),
    step(boom),
]
'''


@PYMONGO_ONLY
async def test_each_failure_runs_the_compensating_batched_rollback(
    odm_database: Any, tmp_path: Path
) -> None:
    await odm_database.items.insert_many([{"_id": i} for i in range(3)])
    write(tmp_path, "0001_tag.py", COMPENSATED)
    for attempt in (1, 2):
        with pytest.raises(MigrationError, match="rolled back step"):
            await Runner(odm_database, tmp_path).apply()
        undone = {doc["undone"] async for doc in odm_database.items.find()}
        assert undone == {attempt}, f"attempt {attempt}: the rollback ran {undone} time(s)"
