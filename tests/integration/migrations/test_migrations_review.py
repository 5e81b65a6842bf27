"""The transient retries, the lease bound and ``plan``'s lock note, attacked once more.

- the retry budget of one transaction was spent by another: a file whose first transaction
  was retried once gave up at once when a later transaction of it (after a DDL step) failed
  transiently, with "kept failing", though it had failed once;
- an error that is no conflict, raised by an attempt after a transient failure, was reported as
  the transaction "kept failing" until the lease ran out;
- ``plan`` printed a lock document's holder as stored: a newline in it printed lines of its own;
- a lock document's ``expires_at`` that is no date but sorts after every date (so no takeover
  ever takes the lock) was not noted by ``plan``, and ``break-lock`` said "no lock was held"; a
  date past year 9999 failed ``plan``, ``apply`` and ``break-lock`` with ``InvalidBSON``.

The fail points only match this module's clients (their ``appName``) and database.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bson import DatetimeMS, MaxKey, Timestamp

from odm.exceptions import MigrationError
from odm.migrations import LockHeld, Runner, break_lock
from tests.integration.migrations.faults import NOOP, fault_setup
from tests.integration.migrations.faults import FaultSetup as Setup

pytestmark = pytest.mark.odm_drivers("pymongo")

#: What a conflict with another transaction answers (the server labels it transient).
WRITE_CONFLICT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}

#: Two transactions split by a DDL step; the first one's step takes a while.
TWO_TRANSACTIONS = '''
import asyncio

from odm.migrations import create_index, step


async def slow_bump_a(db):
    await asyncio.sleep(0.3)
    await db.marks_a.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


async def bump_b(db):
    await db.marks_b.update_one({"_id": "b"}, {"$inc": {"n": 1}}, upsert=True)


steps = [
    step(slow_bump_a),
    step(lambda db: create_index(db.marks_c, "k")),
    step(bump_b),
]
'''


#: A step inserting the same document twice: a duplicate key, once its first insert passes.
DUPLICATE = '''
from odm.migrations import step


async def twice(db):
    await db.marks_c.insert_one({"_id": 1})
    await db.marks_c.insert_one({"_id": 1})


steps = [step(twice)]
'''


@pytest.fixture
async def setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with fault_setup(odm_uri, tmp_path, "odm_rev", tz_aware=False) as state:
        yield state


async def stored(db: Any) -> tuple[list[str], list[str], list[tuple[str, str, bool]]]:
    """Return what the migrations store: the applied ids, the positions, the log."""
    return (
        [doc["_id"] async for doc in db["_odm_migrations"].find({}, sort=[("_id", 1)])],
        sorted([doc["_id"] async for doc in db["_odm_migrations_state"].find()]),
        [
            (doc["action"], doc["migration"], doc.get("ok", True))
            async for doc in db["_odm_migrations_log"].find()
        ],
    )


async def test_each_transaction_of_a_file_has_its_own_retry_budget(setup: Setup) -> None:
    setup.write("0001_two.py", TWO_TRANSACTIONS)
    # The first transaction conflicts once, late in the lease; the second one once, later on.
    setup.arm(["update"], "marks_a", WRITE_CONFLICT, {"times": 1})
    lines: list[str] = []
    runner = Runner(setup.db, setup.dir, echo=lines.append, lock_lease=0.5)

    # Armed once the first transaction is retried (the fail point on marks_a is used up).
    original = runner.echo

    def echo(line: str) -> None:
        original(line)
        if line.endswith("from step 1"):
            setup.arm(["update"], "marks_b", WRITE_CONFLICT, {"times": 1})

    runner.echo = echo
    assert await runner.apply() == ["0001_two"]
    assert [doc async for doc in setup.db.marks_a.find()] == [{"_id": "a", "n": 1}]
    assert [doc async for doc in setup.db.marks_b.find()] == [{"_id": "b", "n": 1}]
    assert await stored(setup.db) == (["0001_two"], [], [("apply", "0001_two", True)])
    again = "  TransientTransactionError: running the transaction again from step 3"
    assert lines.count(again) == 1


async def test_an_error_after_a_conflict_is_named_as_itself(setup: Setup) -> None:
    setup.write("0001_dup.py", DUPLICATE)
    setup.arm(["insert"], "marks_c", WRITE_CONFLICT, {"times": 1})
    with pytest.raises(MigrationError) as failed:
        await Runner(setup.db, setup.dir).apply()
    message = str(failed.value)
    assert message.startswith("apply 0001_dup failed at step 1: DuplicateKeyError"), message
    assert "kept failing" not in message
    assert "gave up" not in message
    assert [doc async for doc in setup.db.marks_c.find()] == []
    assert await stored(setup.db) == ([], [], [("apply", "0001_dup", False)])


async def test_plan_shows_a_hostile_holder_on_one_line(setup: Setup) -> None:
    setup.write("0001_a.py", DUPLICATE)
    now = datetime.datetime.now(datetime.UTC)
    await setup.db["_odm_migrations_lock"].insert_one({
        "_id": "migrations",
        "holder": "evil\nnothing to apply\r\x1b[2K" + "x" * 5000,
        "token": "t",
        "acquired_at": now,
        "expires_at": now + datetime.timedelta(seconds=60),
    })
    lines: list[str] = []
    await Runner(setup.db, setup.dir, echo=lines.append).plan()
    note = lines[0]
    shown = "'evil\\nnothing to apply\\r\\x1b[2K"
    assert note.startswith(f"note: the migrations lock is held by {shown}")
    assert note.isprintable()
    assert len(note) < 600
    assert "nothing to apply" not in lines[1:]


async def hand_written_lock(db: Any, expires_at: Any) -> None:
    """Store a lock document as a hand (or a hostile process) may have written it."""
    await db["_odm_migrations_lock"].insert_one({
        "_id": "migrations",
        "holder": "someone",
        "token": "t",
        "acquired_at": datetime.datetime.now(datetime.UTC),
        "expires_at": expires_at,
    })


#: Values no takeover ever finds expired: they sort after every date.
NEVER_EXPIRES = [
    pytest.param(Timestamp(1, 1), id="timestamp"),
    pytest.param(MaxKey(), id="maxkey"),
    pytest.param(DatetimeMS(2**62), id="date-past-year-9999"),
]


@pytest.mark.parametrize("expires_at", NEVER_EXPIRES)
async def test_plan_and_break_lock_tell_of_a_lock_no_takeover_can_take(
    setup: Setup, expires_at: Any
) -> None:
    setup.write("0001_a.py", DUPLICATE)
    await hand_written_lock(setup.db, expires_at)
    lines: list[str] = []
    await Runner(setup.db, setup.dir, echo=lines.append).plan()
    assert lines[0].startswith("note: the migrations lock is held by someone: ")
    with pytest.raises(LockHeld):
        await Runner(setup.db, setup.dir, lock_timeout=0).apply()
    with pytest.raises(LockHeld, match="pass --force"):
        await break_lock(setup.db)
    removed = await break_lock(setup.db, force=True)
    assert removed is not None and removed["holder"] == "someone"
    assert await setup.db["_odm_migrations_lock"].count_documents({}) == 0


@pytest.mark.parametrize("expires_at", ["soon", None])
async def test_plan_says_nothing_of_a_lock_a_takeover_takes(setup: Setup, expires_at: Any) -> None:
    setup.write("0001_a.py", NOOP)
    await hand_written_lock(setup.db, expires_at)
    lines: list[str] = []
    await Runner(setup.db, setup.dir, echo=lines.append).plan()
    assert not [line for line in lines if line.startswith("note:")]
    assert await Runner(setup.db, setup.dir, lock_timeout=0).apply() == ["0001_a"]
