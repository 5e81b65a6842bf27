"""What ``LockHeld`` and ``LockLost`` advise is true of the lock they name.

- a lock whose lease never expires (an ``expires_at`` that sorts after every date: a timestamp,
  ``MaxKey``, a date past year 9999) was met with "try again later, or run `odm migrate
  break-lock`": it never frees itself, and ``break-lock`` without ``--force`` refuses it;
- a live lease too was told "run `odm migrate break-lock` if that process is gone", which
  refuses an unexpired lease;
- a ten-year lease was shown in seconds (``315359999 s``);
- a lock found gone was said to be removed by ``break-lock``, though a run that took it over
  once its lease expired, and finished, removes it too.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bson import DatetimeMS, MaxKey, Timestamp

from odm.migrations import LockHeld, LockLost, MigrationLock, break_lock
from odm.migrations.lock import MAX_LEASE
from tests.integration.migrations.faults import FaultSetup, fault_setup

pytestmark = pytest.mark.odm_drivers("pymongo")


@pytest.fixture
async def setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[FaultSetup]:
    async with fault_setup(odm_uri, tmp_path, "mig21_lock") as state:
        yield state


async def hand_written_lock(db: Any, expires_at: Any) -> None:
    """Store a lock document as a hand (or a hostile process) may have written it."""
    await db["_odm_migrations_lock"].insert_one({
        "_id": "migrations",
        "holder": "someone@host:1",
        "token": "t",
        "acquired_at": datetime.datetime.now(datetime.UTC),
        "expires_at": expires_at,
    })


@pytest.mark.parametrize(
    "expires_at",
    [pytest.param(Timestamp(1, 1), id="timestamp"), pytest.param(MaxKey(), id="maxkey"),
     pytest.param(DatetimeMS(2**62), id="date-past-year-9999")],
)
async def test_a_lock_that_never_expires_is_not_said_to(setup: FaultSetup, expires_at: Any) -> None:
    await hand_written_lock(setup.db, expires_at)
    lines: list[str] = []
    with pytest.raises(LockHeld) as held:
        await MigrationLock(setup.db, timeout=0.2, poll=0.05, echo=lines.append).acquire()
    message = str(held.value)
    assert held.value.never_expires
    assert message.startswith("migrations lock held by someone@host:1 since ")
    assert "(its lease never expires); it will not free itself" in message
    assert "`odm migrate break-lock --force` once that process is gone" in message
    assert "try again later" not in message
    assert lines == ["waiting up to 0.2 s for the migrations lock held by someone@host:1 (its "
                     "lease never expires: only its holder frees it)"]
    with pytest.raises(LockHeld) as refused:
        await break_lock(setup.db)
    assert "it never expires by itself" in str(refused.value)
    assert "wait for it" not in str(refused.value)


async def test_a_live_lease_is_not_told_to_run_a_break_lock_that_refuses_it(
    setup: FaultSetup,
) -> None:
    async with MigrationLock(setup.db, holder="deploy@web-1:42"):
        with pytest.raises(LockHeld) as held:
            await MigrationLock(setup.db, timeout=0).acquire()
        with pytest.raises(LockHeld, match="its lease has not expired"):
            await break_lock(setup.db)
    message = str(held.value)
    assert not held.value.never_expires
    assert "(lease expires in 60 s); try again later: if that process is gone, the lock frees " \
           "itself when its lease expires, or `odm migrate break-lock --force` removes it now" \
           in message


async def test_a_ten_year_lease_is_shown_in_days(setup: FaultSetup) -> None:
    async with MigrationLock(setup.db, lease=MAX_LEASE):
        with pytest.raises(LockHeld, match=r"\(lease expires in 3650 days\)"):
            await MigrationLock(setup.db, timeout=0).acquire()


async def test_a_lock_found_gone_is_not_said_to_be_broken_only(setup: FaultSetup) -> None:
    lock = MigrationLock(setup.db)
    async with lock:
        # Taken over once its lease expired, by a run that is done: the document is gone.
        await setup.db["_odm_migrations_lock"].delete_one({"_id": "migrations"})
        with pytest.raises(LockLost) as lost:
            await lock.prove()
    assert lost.value.holder is None
    assert str(lost.value) == (
        "the migrations lock was lost: nobody holds it now (`odm migrate break-lock` removed "
        "it, or another run took it over once its lease expired, and is done)"
    )
