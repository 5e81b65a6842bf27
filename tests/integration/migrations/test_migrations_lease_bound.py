"""A mark's or an unmark's writes are bounded by the lock's lease, and finished in a transaction
where the server has them.

Without transactions a mark writes one document after another, each after a proof of the lock.
A write that stalled (here: held on the server by ``failCommand``'s ``blockConnection``) for
longer than the lease used to land whenever it was let go: after another run had taken the lock
over, finished the mark and unmarked the file, bringing the unmarked record back. Each such
write now carries the lease left as its time limit, so the server refuses it once the lease is
over. The fail points match only this module's clients (their ``appName``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from odm.exceptions import MigrationError
from odm.migrations import cleanup
from odm.migrations import lock as lock_module
from odm.migrations.loader import checksum
from odm.migrations.lock import MigrationLock, break_lock, read_lock
from odm.migrations.recorder import log_entry, new_record
from odm.migrations.records_change import RecordsChange
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.faults import (
    NOOP,
    FaultSetup,
    fault_setup_and_reader,
    stalled_heartbeat,
)

pytestmark = pytest.mark.odm_drivers("pymongo")

#: The ``_id`` of the note of a change under way, in ``_odm_migrations_state``.
CHANGE = "records-change"


@pytest.fixture
async def mg_setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[tuple[FaultSetup, Any]]:
    """A database of its own with one migration file, and a fault-free synchronous reader."""
    async with fault_setup_and_reader(odm_uri, tmp_path, "MgLease") as (state, db):
        state.write("0001_a.py", NOOP)
        yield state, db


async def wait_for_expiry(state: FaultSetup, within: float = 5.0) -> None:
    """Return once the server finds the lock's lease over (or the lock gone)."""
    deadline = time.monotonic() + within
    while (doc := await read_lock(state.db)) is not None and doc.get("live"):
        assert time.monotonic() < deadline, doc
        await asyncio.sleep(0.02)


async def cannot_end_it(
    client: Any, session: Any, within: float = 0.0, *, fence_in: str = ""
) -> bool:
    """A run that cannot end its cut-off write on the server (the network to it down)."""
    return False


@pytest.mark.parametrize("ends_it", [True, False], ids=["MgEndsIt", "MgCannotEndIt"])
async def test_MgLease_a_mark_write_stalled_past_the_lease_does_not_land_under_the_next_run(
    mg_setup: tuple[FaultSetup, Any], monkeypatch: pytest.MonkeyPatch, ends_it: bool
) -> None:
    state, db = mg_setup
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    monkeypatch.setattr(MigrationLock, "_beat", stalled_heartbeat)
    if not ends_it:  # then only the server's own time limit keeps it from landing late
        monkeypatch.setattr(cleanup, "ended_on_server", cannot_end_it)
    # The mark's record write is held on the server for longer than the lease.
    held = 0.8
    state.arm(["update"], "_odm_migrations",
              {"blockConnection": True, "blockTimeMS": int(held * 1000)}, {"times": 1})
    let_go = time.monotonic() + held
    first = asyncio.create_task(state.runner(lock_lease=0.25).mark("0001_a"))
    while db["_odm_migrations_state"].find_one({"_id": CHANGE}) is None:
        assert not first.done(), first
        await asyncio.sleep(0.01)
    await wait_for_expiry(state)
    # The next run takes the lock over, finishes the mark and unmarks the file.
    lines: list[str] = []
    await state.runner(echo=lines.append, lock_timeout=0).unmark("0001_a")
    assert lines[0].startswith("finishing `mark 0001_a`") and lines[-1] == "unmarked 0001_a"
    with pytest.raises(MigrationError) as failed:
        await first
    await asyncio.sleep(max(0.0, let_go - time.monotonic()) + 0.1)  # let go on the server
    assert list(db["_odm_migrations"].find()) == []  # not marked again under the next run
    log = [(d["action"], d["migration"]) for d in db["_odm_migrations_log"].find()]
    assert log == [("mark", "0001_a"), ("unmark", "0001_a")]
    assert db["_odm_migrations_state"].find_one({"_id": CHANGE}) is None
    assert str(failed.value).startswith(
        "mark 0001_a stopped part-way: a write did not finish within what was left of the "
        "lock's lease"
    )

WRITES = ["insert", "update", "delete", "findAndModify"]


def stored(db: Any) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The ids of the records, of the positions (the note among them), and the log."""
    records = sorted(doc["_id"] for doc in db["_odm_migrations"].find())
    positions = sorted(str(doc["_id"]) for doc in db["_odm_migrations_state"].find())
    log = [(doc["action"], doc["migration"]) for doc in db["_odm_migrations_log"].find()]
    return records, positions, log


def leave_a_mark_unfinished(state: FaultSetup, db: Any, *, logged: bool) -> None:
    """Store what a mark of 0001_a cut off without a transaction leaves: its note, a position
    it has to forget, and (``logged``) its log entry, written before it was cut off."""
    for name in ("_odm_migrations", "_odm_migrations_state", "_odm_migrations_log",
                 "_odm_migrations_lock"):
        db[name].delete_many({})
    content = checksum((state.dir / "0001_a.py").read_bytes())
    entry = log_entry("0001_a", "mark", checksum=content)
    record = new_record("0001_a", content, 0, marked=True, depends=())
    change = RecordsChange("mark", "0001_a", entry, forget_positions=("0001_a",), put=record)
    db["_odm_migrations_state"].insert_many([
        change.document(),
        {"_id": "0001_a:apply:0:1", "migration": "0001_a", "checksum": content},
    ])
    if logged:
        db["_odm_migrations_log"].insert_one(entry)


async def test_MgLease_an_unfinished_mark_is_finished_all_or_nothing_in_a_transaction(
    mg_setup: tuple[FaultSetup, Any],
) -> None:
    state, db = mg_setup
    before: Any = ([], ["0001_a:apply:0:1", CHANGE], [])
    after: Any = (["0001_a"], [], [("mark", "0001_a")])
    finished = 0
    # The k-th write of `apply` is refused, and every one after it, for each write it makes.
    for k in range(10):
        leave_a_mark_unfinished(state, db, logged=False)
        state.arm(WRITES, "", {"errorCode": 2}, {"skip": k})
        try:
            await state.runner(lock_timeout=0).apply()
            error = None
        except MigrationError as exc:
            error = str(exc)
        except PyMongoError:  # taking the lock was refused: nothing was begun
            error = "lock"
        finally:
            state.disarm()
        where = f"writes refused from the {k + 1}th: {error}"
        assert stored(db) in (before, after), where
        if stored(db) == after:
            finished += 1
        elif error != "lock":
            assert error is not None, where
            assert "could not be finished" in error and "run the command again" in error, where
        await break_lock(state.db, force=True)
    assert finished >= 1, finished  # the last runs were refused only the lock's release


async def test_MgLease_a_mark_logged_before_it_was_cut_off_is_finished_in_a_transaction(
    mg_setup: tuple[FaultSetup, Any],
) -> None:
    state, db = mg_setup
    leave_a_mark_unfinished(state, db, logged=True)
    lines: list[str] = []
    await state.runner(echo=lines.append).apply()
    assert stored(db) == (["0001_a"], [], [("mark", "0001_a")])
    assert lines[1:] == ["  marked 0001_a as applied", "nothing to apply"]


class FrozenClock:
    """This machine's monotonic clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        """The clock's time."""
        return self.now


async def test_MgLease_the_time_left_never_outlasts_the_lease_the_server_stored(
    mg_setup: tuple[FaultSetup, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = mg_setup
    clock = FrozenClock()
    monkeypatch.setattr(lock_module, "time", clock)
    # Stored in whole milliseconds from the server's $$NOW: 10.999 s.
    lock = MigrationLock(state.db, lease=10.9999, timeout=0)
    await lock.acquire()
    try:
        doc = await read_lock(state.db)
        assert doc is not None
        stored = (doc["expires_at"] - doc["acquired_at"]).total_seconds()
        assert stored == 10.999
        # No time has passed since before the acquire was sent, by this machine's clock: what
        # is left is all the lease, counted no longer than the server counts it.
        assert 0.99 * stored < lock.lease_left() < stored
        clock.now += 4.0
        assert 0.99 * stored - 4.0 < lock.lease_left() < stored - 4.0
        clock.now += stored
        assert lock.lease_left() == 0.0
        with (
            pytest.raises(MigrationError, match="ran out before a write could be sent"),
            lock.within_lease(),
        ):
            pytest.fail("the block runs")
    finally:
        await lock.release()


async def test_MgLease_a_lease_longer_than_the_servers_longest_time_limit_still_marks(
    mg_setup: tuple[FaultSetup, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, db = mg_setup
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    # Thirty days: more milliseconds than a write's maxTimeMS may hold.
    await state.runner(lock_lease=30 * 86400.0).mark("0001_a")
    assert stored(db) == (["0001_a"], [], [("mark", "0001_a")])
