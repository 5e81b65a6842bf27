"""The migrations' last unsafe spots, attacked with faults (``failCommand``) on the server.

- ``mark`` of a renamed file moved its record in several writes, and ``unmark`` forgot it in
  several: a fault between them left two records (or none), positions forgotten, no log;
- a transaction failing transiently (a write conflict with a transaction a killed run left
  open) was not run again: the file failed and its steps were rolled back;
- a batched update's transaction failing transiently was retried by the driver for 120 s,
  whatever the lock's lease;
- ``plan`` takes no lock, and said nothing while a run held it.

The fail points only match this module's clients (their ``appName``) and database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from odm.exceptions import MigrationError
from odm.migrations import Runner
from odm.migrations.loader import checksum
from odm.migrations.lock import MigrationLock
from tests.integration.migrations.faults import NOOP, fault_setup, sync_fault_setup
from tests.integration.migrations.faults import FaultSetup as Setup

pytestmark = pytest.mark.odm_drivers("pymongo")


#: Two steps in one transaction, each bumping its own collection.
BUMP_TWO = '''
from odm.migrations import step


async def bump_a(db):
    await db.marks_a.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


async def bump_b(db):
    await db.marks_b.update_one({"_id": "b"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(bump_a), step(bump_b)]
'''

BATCHED = '''
from odm.migrations import batched_update, step

steps = [step(lambda db: batched_update(db.items, {}, {"$set": {"done": True}}, batch_size=2))]
'''

#: What a conflict with another transaction answers (the server labels it transient).
WRITE_CONFLICT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}
#: The commit happens, then its answer says the write concern was not met.
LOST_ANSWER = {"writeConcernError": {"code": 64, "errmsg": "wtimeout", "errInfo": {"wtimeout": 1}}}


@pytest.fixture
def sync_setup(odm_uri: str, tmp_path: Path) -> Iterator[Setup]:
    """For the CLI (which runs its own event loop): a synchronous client."""
    with sync_fault_setup(odm_uri, tmp_path, "odm_gap") as state:
        yield state


@pytest.fixture
async def setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with fault_setup(odm_uri, tmp_path, "odm_gap") as state:
        yield state


def stored(db: Any) -> tuple[list[dict[str, Any]], list[str], list[tuple[str, str]]]:
    """Return what the migrations store: the applied records, the positions, the log."""
    return (
        list(db["_odm_migrations"].find({}, sort=[("_id", 1)])),
        sorted(doc["_id"] for doc in db["_odm_migrations_state"].find()),
        [(doc["action"], doc["migration"]) for doc in db["_odm_migrations_log"].find()],
    )


def renamed_file(setup: Setup) -> None:
    """0002_new is the content of 0001_old (applied, with a position left), renamed."""
    content = checksum(setup.write("0002_new.py", NOOP).read_bytes())
    setup.db["_odm_migrations"].insert_one(
        {"_id": "0001_old", "checksum": content, "applied_by": "someone", "duration_ms": 7}
    )
    setup.db["_odm_migrations_state"].insert_many([
        {"_id": "0001_old:apply:0:1", "migration": "0001_old", "checksum": content},
        {"_id": "0002_new:apply:0:1", "migration": "0002_new", "checksum": content},
    ])


#: Each write of a mark of a renamed file, and its commit, faulted in turn.
MARK_FAULTS = [
    pytest.param(["delete"], "_odm_migrations_state", {"errorCode": 2}, {"skip": 3},
                 id="last-position-forgotten"),
    pytest.param(["update"], "_odm_migrations", {"errorCode": 2}, {"times": 1},
                 id="record-copied"),
    pytest.param(["delete"], "_odm_migrations", {"errorCode": 2}, {"times": 1},
                 id="old-record-removed"),
    pytest.param(["insert"], "_odm_migrations_log", {"errorCode": 2}, {"times": 1},
                 id="logged"),
    pytest.param(["commitTransaction"], "", {"closeConnection": True}, {"times": 2},
                 id="commit-lost"),
]


@pytest.mark.parametrize(("commands", "collection", "data", "mode"), MARK_FAULTS)
def test_mark_of_a_renamed_file_is_all_or_nothing(
    sync_setup: Setup, capsys: pytest.CaptureFixture[str],
    commands: list[str], collection: str, data: dict[str, Any], mode: Any,
) -> None:
    renamed_file(sync_setup)
    before = stored(sync_setup.db)
    sync_setup.arm(commands, collection, data, mode)
    failed = sync_setup.cli("mark", "0002_new")
    assert stored(sync_setup.db) == before
    assert failed == 1
    assert "mark 0002_new failed, nothing was changed" in capsys.readouterr().err
    sync_setup.disarm()
    assert sync_setup.cli("mark", "0002_new") == 0
    assert "recorded 0001_old as renamed to 0002_new" in capsys.readouterr().out
    records, positions, log = stored(sync_setup.db)
    assert [{**r, "_id": "0001_old"} for r in records] == before[0]
    assert (positions, log) == ([], [("rename", "0002_new")])


def test_mark_whose_commit_answer_is_lost_says_it_is_done(
    sync_setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed_file(sync_setup)
    sync_setup.arm(["commitTransaction"], "", LOST_ANSWER, {"times": 2})
    assert sync_setup.cli("mark", "0002_new") == 0
    assert "recorded 0001_old as renamed to 0002_new" in capsys.readouterr().out
    records, positions, log = stored(sync_setup.db)
    assert ([r["_id"] for r in records], positions, log) == (
        ["0002_new"], [], [("rename", "0002_new")]
    )


def test_unmark_is_all_or_nothing(sync_setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    content = checksum(sync_setup.write("0001_a.py", NOOP).read_bytes())
    sync_setup.db["_odm_migrations"].insert_one({"_id": "0001_a", "checksum": content})
    sync_setup.db["_odm_migrations_state"].insert_one(
        {"_id": "0001_a:apply:0:1", "migration": "0001_a", "checksum": content}
    )
    before = stored(sync_setup.db)
    # Its last write, the log entry, after its positions and its record are forgotten.
    sync_setup.arm(["insert"], "_odm_migrations_log", {"errorCode": 2}, {"times": 1})
    failed = sync_setup.cli("unmark", "0001_a")
    assert stored(sync_setup.db) == before
    assert failed == 1
    assert "unmark 0001_a failed, nothing was changed" in capsys.readouterr().err
    sync_setup.disarm()
    assert sync_setup.cli("unmark", "0001_a") == 0
    assert stored(sync_setup.db) == ([], [], [("unmark", "0001_a")])


async def counts(db: Any) -> dict[str, int]:
    found = {}
    for name in ("marks_a", "marks_b"):
        found.update({doc["_id"]: doc["n"] async for doc in db[name].find()})
    return found


async def test_a_transaction_that_conflicts_runs_again(setup: Setup) -> None:
    setup.write("0001_bump.py", BUMP_TWO)
    # Step 2 conflicts twice (as with a transaction a killed run left open), then passes.
    setup.arm(["update"], "marks_b", WRITE_CONFLICT, {"times": 2})
    lines: list[str] = []
    assert await Runner(setup.db, setup.dir, echo=lines.append).apply() == ["0001_bump"]
    # The whole transaction ran again, from step 1: its first attempts left nothing.
    assert await counts(setup.db) == {"a": 1, "b": 1}
    assert "  TransientTransactionError: running the transaction again from step 1" in lines


async def test_a_lasting_conflict_stops_within_the_lease_and_says_what_to_do(
    setup: Setup,
) -> None:
    setup.write("0001_bump.py", BUMP_TWO)
    setup.arm(["update"], "marks_b", WRITE_CONFLICT, "alwaysOn")
    begun = time.monotonic()
    with pytest.raises(MigrationError) as failed:
        async with asyncio.timeout(10):
            await Runner(setup.db, setup.dir, lock_lease=0.6).apply()
    assert time.monotonic() - begun < 2
    message = str(failed.value)
    assert message.startswith("apply 0001_bump failed at step 2: its transaction kept failing")
    assert "before the lock's lease may run out" in message
    assert "run the command again" in message
    assert await counts(setup.db) == {}
    assert not [doc async for doc in setup.db["_odm_migrations"].find()]


async def test_batched_retries_stop_before_the_lease_runs_out(setup: Setup) -> None:
    setup.write("0001_batched.py", BATCHED)
    await setup.db.items.insert_many([{"_id": i} for i in range(4)])
    setup.arm(["update"], "items", WRITE_CONFLICT, "alwaysOn")
    begun = time.monotonic()
    with pytest.raises(MigrationError) as failed:
        # The driver alone retries for 120 s.
        async with asyncio.timeout(5):
            await Runner(setup.db, setup.dir, lock_lease=0.6).apply()
    assert time.monotonic() - begun < 2
    assert "batched update of items kept failing: OperationFailure" in str(failed.value)
    assert "before the lock's lease may run out" in str(failed.value)
    setup.disarm()
    # The next run resumes (nothing was written) and finishes.
    assert await Runner(setup.db, setup.dir).apply() == ["0001_batched"]
    assert await setup.db.items.count_documents({"done": True}) == 4


async def test_plan_says_when_a_run_holds_the_lock(setup: Setup) -> None:
    setup.write("0001_a.py", NOOP)
    lines: list[str] = []
    await Runner(setup.db, setup.dir, echo=lines.append).plan()
    assert not [line for line in lines if line.startswith("note:")]
    lock = MigrationLock(setup.db, holder="deployer@elsewhere:1")
    async with lock:
        lines.clear()
        assert [m.id for m in await Runner(setup.db, setup.dir, echo=lines.append).plan()] == [
            "0001_a"
        ]
    assert lines[0] == (
        "note: the migrations lock is held by deployer@elsewhere:1: a run may be applying or "
        "rolling back now, and this plan shows what is recorded before it ends"
    )
