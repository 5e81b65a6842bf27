"""A run that lost its lock must not keep writing: the writes made without a transaction are
bounded by the lock's lease, and what a run cut off says (and leaves) is the truth.

- A file's record write without a transaction, held on the server past the lease (its
  heartbeat stalled, the lock then taken by another deployer): it landed whenever it was let
  go, after the next run had recorded the file and rolled it back, bringing the record back.
- A ``batched_update`` batch without a transaction, held likewise: it landed after the next run
  had resumed the operation, finished it and removed the guards, so its ``$inc`` was applied
  twice to the documents of that batch.
- A client's own ``timeoutMS`` shorter than the lease was lifted by the lease's
  ``pymongo.timeout()`` (a write then waited for the whole lease).
- Ctrl-C at any point of a batched step (a cancellation delivered as any command is sent), with
  or without transactions: the lock is released, and a rerun finishes it exactly once.
- Two deployers started together on machines whose clocks disagree: each migration runs once.

The clients send no retryable-write numbers (``retryWrites=false``, as on a standalone
server): a replica set refuses a late write whose number its session has passed, which would
hide a late write by chance. The fail points match only this module's clients (``appName``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo import monitoring
from pymongo.errors import PyMongoError

from odm.exceptions import MigrationError
from odm.migrations import lock as lock_module
from odm.migrations.lock import (
    LeaseRanOut,
    MigrationLock,
    break_lock,
    read_lock,
    seconds_between,
)
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.faults import (
    NOOP,
    CommandHook,
    FaultSetup,
    fault_setup_and_reader,
    stalled_heartbeat,
    until_held,
    until_none_left,
)
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")

ITEMS = "mg23_items"

BUMP = f'''
from odm.migrations import batched_update, step

steps = [step(lambda db: batched_update(db.{ITEMS}, {{}}, {{"$inc": {{"n": 1}}}}, batch_size=2))]
'''

#: How long a held write waits on the server before it is let go, in milliseconds: longer than
#: the lease, and than the next run's whole work.
HELD_MS = 1000


@pytest.fixture
async def setup(
    odm_uri: str, tmp_path: Path
) -> AsyncIterator[tuple[FaultSetup, Any, CommandHook]]:
    """A database of its own, on a client that sends no retryable-write numbers and whose
    commands a test may hook, read through a fault-free one."""
    hook = CommandHook()
    async with fault_setup_and_reader(
        odm_uri, tmp_path, "Mg23", retryWrites=False, event_listeners=[hook]
    ) as (state, db):
        yield state, db, hook
    assert not hook.errors, hook.errors  # a hook that failed did not do what the test says


def ok_log(db: Any) -> list[tuple[str, str]]:
    """The actions the log says were done, in order."""
    return [(d["action"], d["migration"]) for d in db["_odm_migrations_log"].find({"ok": True})]


async def test_Mg23_a_record_write_held_past_the_lease_never_lands_under_the_next_run(
    setup: tuple[FaultSetup, Any, CommandHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, db, _ = setup
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    monkeypatch.setattr(MigrationLock, "_beat", stalled_heartbeat)
    state.write("0001_a.py", NOOP)
    state.arm(["update"], "_odm_migrations",
              {"blockConnection": True, "blockTimeMS": HELD_MS}, {"times": 1})
    first = asyncio.create_task(state.runner(lock_lease=0.3).apply())
    await until_held(db, state.app, "update", "_odm_migrations", first)
    # Another deployer takes the lock (its lease past, or broken), records the file that the
    # first run had run every step of, and rolls it back.
    await break_lock(state.db, force=True)
    assert await state.runner(lock_timeout=0).apply() == ["0001_a"]
    assert await state.runner(lock_timeout=0).rollback() == ["0001_a"]
    with pytest.raises(MigrationError) as failed:
        await first
    await until_none_left(db, state.app, "update", "_odm_migrations")
    assert list(db["_odm_migrations"].find()) == []  # not recorded again under the next run
    assert ok_log(db) == [("apply", "0001_a"), ("rollback", "0001_a")]
    message = str(failed.value)
    assert message.startswith(
        "apply 0001_a: a write did not finish within what was left of the lock's lease (0.3 s)"
    ), message
    assert "the record write landed before the lease ended or not at all" in message, message


async def test_Mg23_a_batch_held_past_the_lease_is_not_applied_twice_and_resumes(
    setup: tuple[FaultSetup, Any, CommandHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, db, hook = setup
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    monkeypatch.setattr(MigrationLock, "_beat", stalled_heartbeat)
    state.write("0001_bump.py", BUMP)
    db[ITEMS].insert_many([{"_id": i, "n": 0} for i in range(6)])
    # The second batch is held: armed before the run, so that nothing slow happens between its
    # proof of the lock and the batch (the lease is short), and turned off once it is held.
    state.arm(["update"], ITEMS, {"blockConnection": True, "blockTimeMS": HELD_MS}, {"skip": 1})
    batches = 0

    def take_the_lock_at_the_second_batch(event: monitoring.CommandStartedEvent) -> None:
        nonlocal batches
        if event.command_name == "update" and event.command.get("update") == ITEMS:
            batches += 1
            if batches == 2:
                # Taken over (`break-lock --force`) as the batch goes out, before its lease can
                # run out: a run slowed down here must not find its lock still its own.
                db["_odm_migrations_lock"].delete_many({})

    hook.hook = take_the_lock_at_the_second_batch
    first = asyncio.create_task(state.runner(lock_lease=0.3).apply())
    await until_held(db, state.app, "update", ITEMS, first)
    state.disarm()
    hook.hook = None
    # The next run ends the session the first one noted, which stops the batch if it runs on
    # the server by then; one still on its way in the network would run after: as here.
    db["_odm_migrations_state"].update_many({}, {"$unset": {"lsid": ""}})
    lines: list[str] = []
    assert await state.runner(echo=lines.append, lock_timeout=0).apply() == ["0001_bump"]
    assert f"0001_bump: resuming {ITEMS} after 2 document(s)" in lines
    with pytest.raises(MigrationError) as failed:
        await first
    await until_none_left(db, state.app, "update", ITEMS)
    assert [doc["n"] for doc in db[ITEMS].find()] == [1] * 6  # each document once
    assert db[ITEMS].count_documents({"_odm_batch": {"$exists": True}}) == 0
    assert [doc["_id"] for doc in db["_odm_migrations"].find()] == ["0001_bump"]
    assert ok_log(db) == [("apply", "0001_bump")]
    message = str(failed.value)
    assert message.startswith(
        f"apply 0001_bump: batched update of {ITEMS} matching {{}} in batches of 2: 2 "
        "document(s) done and stored as done; the next batch (2 document(s)) was cut off and "
        "may be partly written: each document it updated carries the marker '_odm_batch', so "
        "no run updates it again; the next run resumes after the last stored: a write did not "
        "finish within what was left of the lock's lease (0.3 s)"
    ), message


async def test_Mg23_a_clients_own_shorter_timeout_is_not_lifted_by_the_lease(
    odm_uri: str, tmp_path: Path
) -> None:
    async with fault_setup_and_reader(odm_uri, tmp_path, "Mg23T", timeoutMS=200) as (state, _):
        # The client finds its server first, with time to: on a loaded machine that can take
        # longer than its own 200 ms, which this test is not about.
        with pymongo.timeout(30):
            await state.db.command("ping")
        state.arm(["find"], "mg23_held", {"blockConnection": True, "blockTimeMS": 500},
                  {"times": 2})
        # A lease longer than the client's timeoutMS: the client's ends the read, as its own.
        long_lease = MigrationLock(state.db, lease=30.0, timeout=0)
        await long_lease.acquire()
        try:
            started = time.monotonic()
            with pytest.raises(PyMongoError) as caught, long_lease.within_lease():
                await state.db["mg23_held"].find_one({})
            assert time.monotonic() - started < 0.45
            assert caught.value.timeout and not isinstance(caught.value, LeaseRanOut)
        finally:
            await long_lease.release()
        # A lease shorter than it: the lease ends it, said as the lease's.
        short_lease = MigrationLock(state.db, lease=0.1, timeout=0)
        await short_lease.acquire()
        try:
            started = time.monotonic()
            with pytest.raises(LeaseRanOut, match=r"lease \(0.1 s\)"), short_lease.within_lease():
                await state.db["mg23_held"].find_one({})
            assert time.monotonic() - started < 0.45  # not the held read's 0.5 s
        finally:
            await short_lease.release()


class Cut:
    """Cancels ``task`` as the ``at``-th command of the hooked client is about to be sent: a
    Ctrl-C delivered at that point of the run."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.task: asyncio.Task[Any] | None = None

    def __call__(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen += 1
        if self.seen == self.at and self.task is not None:
            self.task.cancel()


def reset(db: Any) -> None:
    """Start over: no records, positions, log or lock, every document at ``n == 0``."""
    for name in ("_odm_migrations", "_odm_migrations_state", "_odm_migrations_log",
                 "_odm_migrations_lock"):
        db[name].delete_many({})
    db[ITEMS].update_many({}, {"$set": {"n": 0}, "$unset": {"_odm_batch": ""}})


@server_property(8)
@given(at=st.integers(min_value=1, max_value=45), transactions=st.booleans())
async def test_Mg23_ctrl_c_anywhere_in_a_batched_step_then_a_rerun_applies_it_once(
    setup: tuple[FaultSetup, Any, CommandHook], at: int, transactions: bool
) -> None:
    state, db, hook = setup
    if not (state.dir / "0001_bump.py").exists():
        state.write("0001_bump.py", BUMP)
        db[ITEMS].insert_many([{"_id": i, "n": 0} for i in range(5)])
    reset(db)
    if transactions:
        os.environ.pop(NO_TRANSACTIONS_ENV, None)
    else:
        os.environ[NO_TRANSACTIONS_ENV] = "1"
    try:
        cut = Cut(at)
        hook.hook = cut
        cut.task = asyncio.create_task(state.runner(lock_lease=1.0).apply())
        with contextlib.suppress(asyncio.CancelledError):
            await cut.task
        hook.hook = None
        where = f"cut at command {at} of {cut.seen}, transactions={transactions}"
        # Released, or (cut in its very release) expiring with its lease.
        lock = await read_lock(state.db)
        left = None if lock is None else seconds_between(lock["expires_at"], lock["server_now"])
        assert lock is None or (left is not None and left <= 1.0), (where, lock)
        await state.runner(lock_timeout=3).apply()
    finally:
        hook.hook = None
        os.environ.pop(NO_TRANSACTIONS_ENV, None)
    assert [doc["n"] for doc in db[ITEMS].find()] == [1] * 5, where
    assert db[ITEMS].count_documents({"_odm_batch": {"$exists": True}}) == 0, where
    assert [doc["_id"] for doc in db["_odm_migrations"].find()] == ["0001_bump"], where
    assert ok_log(db) == [("apply", "0001_bump")], where
    assert list(db["_odm_migrations_state"].find()) == [], where
    assert await read_lock(state.db) is None, where


#: The offset of this task's clock from the machine's (a deploy machine of its own).
_SKEW: contextvars.ContextVar[float] = contextvars.ContextVar("mg23_skew", default=0.0)


class SkewedClocks:
    """``time`` as each deploy machine (task) reads it: off from the others by its skew."""

    @staticmethod
    def monotonic() -> float:
        """This machine's monotonic clock, moved by its skew."""
        return time.monotonic() + _SKEW.get()

    @staticmethod
    def time() -> float:
        """This machine's wall clock, moved by its skew."""
        return time.time() + _SKEW.get()


async def test_Mg23_two_deployers_whose_clocks_disagree_apply_each_file_once(
    setup: tuple[FaultSetup, Any, CommandHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, db, _ = setup
    monkeypatch.setattr(lock_module, "time", SkewedClocks)
    state.write("0001_bump.py", BUMP)
    db[ITEMS].insert_many([{"_id": i, "n": 0} for i in range(4)])

    async def deploy(skew: float) -> list[str]:
        _SKEW.set(skew)
        return await state.runner(lock_lease=0.5, lock_timeout=5).apply()

    applied = await asyncio.gather(deploy(3600.0), deploy(-3600.0))
    assert sorted(applied) == [[], ["0001_bump"]]
    assert [doc["n"] for doc in db[ITEMS].find()] == [1] * 4
    assert ok_log(db) == [("apply", "0001_bump")]
    assert await read_lock(state.db) is None
