"""A run's writes made without a transaction, bounded by the lock's lease: cancelled as they
are sent, and made after the lock was lost.

- A rollback cancelled (Ctrl-C) just as its record write was sent, bounded by the lease: on
  Python 3.11 the cancellation was lost (``asyncio.wait_for``, through which PyMongo sends a
  command that has a time limit, returns normally when cancelled as its send finishes): the run
  waited for the write held on the server, said ``done`` and went on.
- After a failed step, a run whose lock was taken over while it logged the failure: its
  failure entry landed in the log under the new holder, and its clearing of positions (the
  rollbacks' and those of the steps it rolled back) deleted the new holder's.

The clients send no retryable-write numbers (as on a standalone server); the fail points match
only this module's clients (``appName``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import monitoring

from odm.exceptions import MigrationError
from odm.migrations.lock import MigrationLock, break_lock
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

pytestmark = pytest.mark.odm_drivers("pymongo")

RECORDS = "_odm_migrations"
LOG = "_odm_migrations_log"
STATE = "_odm_migrations_state"

FAILS_AFTER_ONE = '''
from odm.migrations import step


async def noop(db):
    pass


async def boom(db):
    raise RuntimeError("boom")


steps = [step(noop, noop), step(boom)]
'''


@pytest.fixture
async def setup(
    odm_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FaultSetup, Any, CommandHook]]:
    """A database of its own, run without transactions by a client whose commands a test may
    hook, read through a fault-free one."""
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    hook = CommandHook()
    async with fault_setup_and_reader(
        odm_uri, tmp_path, "mr23", retryWrites=False, event_listeners=[hook]
    ) as (state, db):
        yield state, db, hook
    assert not hook.errors, hook.errors  # a hook that failed did not do what the test says


def later(turns: int, call: Callable[[], Any]) -> None:
    """Call ``call`` once the event loop has turned ``turns`` times (0: now)."""
    if turns == 0:
        call()
    else:
        asyncio.get_running_loop().call_soon(later, turns - 1, call)


async def test_mr23_a_rollback_cancelled_as_its_record_write_is_sent_stops(
    setup: tuple[FaultSetup, Any, CommandHook],
) -> None:
    state, db, hook = setup
    state.write("0001_a.py", NOOP)
    await state.runner().apply()
    for turns in range(6):  # the cancellation comes that many loop turns after the send began
        state.arm(["delete"], RECORDS, {"blockConnection": True, "blockTimeMS": 300}, {"times": 1})
        lines: list[str] = []
        task = asyncio.create_task(state.runner(echo=lines.append).rollback())

        def cut(
            event: monitoring.CommandStartedEvent, turns: int = turns, task: Any = task
        ) -> None:
            if event.command_name == "delete" and event.command.get("delete") == RECORDS:
                later(turns, task.cancel)

        hook.hook = cut
        try:
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            hook.hook = None
        assert lines[-1] == (
            "rollback 0001_a: interrupted (cancelled) while recording it; nothing undone and "
            "nothing recorded: the next rollback only records it"
        ), (turns, lines)
        assert [doc["_id"] for doc in db[RECORDS].find()] == ["0001_a"], turns
        state.disarm()


async def test_mr23_a_run_that_lost_its_lock_while_failing_leaves_the_new_holder_alone(
    setup: tuple[FaultSetup, Any, CommandHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, db, _ = setup
    monkeypatch.setattr(MigrationLock, "_beat", stalled_heartbeat)
    state.write("0001_a.py", FAILS_AFTER_ONE)
    # The failure's log entry held on the server past the lease.
    state.arm(["insert"], LOG, {"blockConnection": True, "blockTimeMS": 700}, {"times": 1})
    first = asyncio.create_task(state.runner(lock_lease=0.3).apply())
    await until_held(db, state.app, "insert", LOG, first)
    # Meanwhile another deployer takes the lock over and resumes a batched update of step 1.
    await break_lock(state.db, force=True)
    other = MigrationLock(state.db, lease=30.0, timeout=0)
    await other.acquire()
    try:
        theirs = {"_id": "0001_a:apply:0:1", "migration": "0001_a", "last_id": 3, "done": 4}
        db[STATE].insert_one(theirs)
        with pytest.raises(MigrationError, match=r"^apply 0001_a failed at step 2: "):
            await first
        await until_none_left(db, state.app, "insert", LOG)
        assert db[STATE].find_one({"_id": theirs["_id"]}) == theirs
        assert list(db[LOG].find()) == []  # nothing of the old run's among the new holder's
    finally:
        await other.release()
