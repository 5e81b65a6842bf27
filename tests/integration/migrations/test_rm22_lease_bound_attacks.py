"""Attacks on the lease bound of a mark's writes and on the transaction that finishes a mark
an earlier run left part-way.

- A lease too short for any write: the mark's note was refused before it was sent, so the
  mark says that nothing was changed (was: "whether it was begun cannot be told"), and names
  the lease.
- ``within_lease`` inside a caller's shorter ``pymongo.timeout()``: the caller's deadline ends
  the write, and its error is not called the lease's (was: ``LeaseRanOut``, "did not finish
  within what was left of the lock's lease", with most of a 30 s lease left). Inside a longer
  one, the lease still bounds it.
- The transaction that finishes a mark left part-way failing transiently (a write conflict, on
  a write or on the commit): run again, as a file's transaction is (was: the command stopped,
  "could not be finished ... run the command again").
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.errors import PyMongoError

from odm.exceptions import MigrationError
from odm.migrations import lock as lock_module
from odm.migrations.lock import LeaseRanOut, MigrationLock
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.faults import NOOP, FaultSetup, fault_setup_and_reader
from tests.integration.migrations.test_migrations_lease_bound import (
    leave_a_mark_unfinished,
    stored,
)

pytestmark = pytest.mark.odm_drivers("pymongo")


@pytest.fixture
async def rm_setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[tuple[FaultSetup, Any]]:
    """A database of its own with one migration file, and a fault-free synchronous reader."""
    async with fault_setup_and_reader(odm_uri, tmp_path, "RmLease") as (state, db):
        state.write("0001_a.py", NOOP)
        yield state, db


async def test_Rm_a_lease_too_short_for_any_write_says_nothing_was_changed(
    rm_setup: tuple[FaultSetup, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, db = rm_setup
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    # Counted as over the moment it is extended: no write can be sent within it.
    monkeypatch.setattr(lock_module, "CLOCK_RATE_MARGIN", 1.0)
    with pytest.raises(MigrationError) as failed:
        await state.runner(lock_lease=0.5).mark("0001_a")
    assert str(failed.value) == (
        "mark 0001_a failed, nothing was changed: the lock's lease (0.5 s) ran out before a "
        "write could be sent: another run may hold the lock now, so it was not sent"
    )
    assert stored(db) == ([], [], [])


async def test_Rm_a_callers_shorter_timeout_is_not_called_the_lease_running_out(
    rm_setup: tuple[FaultSetup, Any],
) -> None:
    state, _ = rm_setup
    state.arm(["find"], "rm_held", {"blockConnection": True, "blockTimeMS": 400}, {"times": 2})
    long_lease = MigrationLock(state.db, lease=30.0, timeout=0)
    await long_lease.acquire()
    try:
        started = time.monotonic()
        with (
            pytest.raises(PyMongoError) as caught,
            pymongo.timeout(0.15),
            long_lease.within_lease(),
        ):
            await state.db["rm_held"].find_one({})
        assert not isinstance(caught.value, LeaseRanOut), caught.value
        assert caught.value.timeout and time.monotonic() - started < 5
    finally:
        await long_lease.release()
    # A longer timeout around it does not lift the lease's bound.
    short_lease = MigrationLock(state.db, lease=0.15, timeout=0)
    await short_lease.acquire()
    try:
        with (
            pytest.raises(LeaseRanOut, match=r"lease \(0.15 s\)"),
            pymongo.timeout(30),
            short_lease.within_lease(),
        ):
            await state.db["rm_held"].find_one({})
    finally:
        await short_lease.release()


@pytest.mark.parametrize("command", ["update", "commitTransaction"], ids=["RmWrite", "RmCommit"])
async def test_Rm_finishing_a_mark_runs_again_after_a_write_conflict(
    rm_setup: tuple[FaultSetup, Any], command: str
) -> None:
    state, db = rm_setup
    leave_a_mark_unfinished(state, db, logged=False)
    conflict = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}
    state.arm([command], "", conflict, {"times": 1})
    lines: list[str] = []
    try:
        await state.runner(echo=lines.append, lock_timeout=0).apply()
    finally:
        state.disarm()
    assert stored(db) == (["0001_a"], [], [("mark", "0001_a")])
    assert lines[0].startswith("finishing `mark 0001_a`")
    assert lines[1:] == ["  marked 0001_a as applied", "nothing to apply"]
