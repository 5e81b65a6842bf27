"""A mark's or an unmark's own transaction failing transiently, and the shape of a failing
apply's message.

- The transaction of ``odm migrate mark`` / ``unmark`` failing with a write conflict (on one of
  its writes, or on the commit): run again while the lease lasts, as a file's transaction and
  the finishing of a left-over note are (was: "mark 0001_a failed, nothing was changed:
  OperationFailure: ..."). Every write lands once: one record, one log entry.
- One that keeps failing gives up before the lease may run out, having changed nothing.
- A failing step's error says the server's message, its class and code, without PyMongo's
  full server reply (was: ", full error: {...}" with cluster times and signatures).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from odm.exceptions import MigrationError
from tests.integration.migrations.faults import NOOP, FaultSetup, fault_setup_and_reader
from tests.integration.migrations.test_migrations_lease_bound import stored

pytestmark = pytest.mark.odm_drivers("pymongo")

#: A write conflict, as the server labels it: the whole transaction may run again.
CONFLICT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}

#: A migration file whose step fails on the server (a duplicate ``_id``).
FAILING = '''
from odm.migrations import step


async def up(db):
    await db["ha_target"].insert_one({"_id": 1})
    await db["ha_target"].insert_one({"_id": 1})


steps = [step(up)]
'''


@pytest.fixture
async def ha_setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[tuple[FaultSetup, Any]]:
    """A database of its own with one migration file, and a fault-free synchronous reader."""
    async with fault_setup_and_reader(odm_uri, tmp_path, "HaMark") as (state, db):
        state.write("0001_a.py", NOOP)
        yield state, db


def with_a_position(db: Any) -> None:
    """Store a resume position of 0001_a, which a mark or an unmark forgets."""
    db["_odm_migrations_state"].insert_one({"_id": "0001_a:apply:0:1", "migration": "0001_a"})


@pytest.mark.parametrize(
    ("command", "collection"),
    [
        ("delete", "_odm_migrations_state"),
        ("update", "_odm_migrations"),
        ("insert", "_odm_migrations_log"),
        ("commitTransaction", ""),
    ],
    ids=["HaForget", "HaRecord", "HaLog", "HaCommit"],
)
async def test_Ha_a_mark_runs_its_transaction_again_after_a_write_conflict(
    ha_setup: tuple[FaultSetup, Any], command: str, collection: str
) -> None:
    state, db = ha_setup
    with_a_position(db)
    state.arm([command], collection, CONFLICT, {"times": 1})
    lines: list[str] = []
    try:
        await state.runner(echo=lines.append, lock_timeout=0).mark("0001_a")
    finally:
        state.disarm()
    assert stored(db) == (["0001_a"], [], [("mark", "0001_a")])
    assert lines == ["marked 0001_a as applied"]


@pytest.mark.parametrize(
    ("command", "collection"),
    [("delete", "_odm_migrations"), ("commitTransaction", "")],
    ids=["HaRemove", "HaCommit"],
)
async def test_Ha_an_unmark_runs_its_transaction_again_after_a_write_conflict(
    ha_setup: tuple[FaultSetup, Any], command: str, collection: str
) -> None:
    state, db = ha_setup
    await state.runner(lock_timeout=0).mark("0001_a")
    with_a_position(db)
    state.arm([command], collection, CONFLICT, {"times": 1})
    try:
        await state.runner(lock_timeout=0).unmark("0001_a")
    finally:
        state.disarm()
    assert stored(db) == ([], [], [("mark", "0001_a"), ("unmark", "0001_a")])


async def test_Ha_a_mark_whose_transaction_keeps_conflicting_gives_up_changing_nothing(
    ha_setup: tuple[FaultSetup, Any],
) -> None:
    state, db = ha_setup
    with_a_position(db)
    state.arm(["update"], "_odm_migrations", CONFLICT, "alwaysOn")
    try:
        with pytest.raises(MigrationError) as failed:
            await state.runner(lock_timeout=0, lock_lease=1.0).mark("0001_a")
    finally:
        state.disarm()
    message = str(failed.value)
    assert message.startswith(
        "mark 0001_a failed, nothing was changed: its transaction kept failing: "
        "OperationFailure: Failing command via 'failCommand' failpoint (code 112); gave up "
        "after "
    ), message
    assert "full error" not in message
    assert stored(db) == ([], ["0001_a:apply:0:1"], [])


async def test_Ha_a_failing_step_says_the_servers_message_not_its_full_reply(
    ha_setup: tuple[FaultSetup, Any],
) -> None:
    state, db = ha_setup
    state.write("0002_b.py", FAILING)
    with pytest.raises(MigrationError) as failed:
        await state.runner(echo=lambda _: None, lock_timeout=0).apply()
    message = str(failed.value)
    assert "full error" not in message and "clusterTime" not in message, message
    assert (
        f"DuplicateKeyError: E11000 duplicate key error collection: {db.name}.ha_target "
        "index: _id_ dup key: { _id: 1 } (code 11000)"
    ) in message, message
