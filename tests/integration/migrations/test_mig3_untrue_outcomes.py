"""Two outcomes a run said untruly.

- Without transactions, a file's own record write (its applied record inserted after its steps,
  or removed after a rollback's) cancelled (Ctrl-C) while held on the server: the run read the
  record back at once, said "nothing recorded", and the write landed afterwards.
- ``rollback`` (by count: ``--steps`` or the default) right after an ``unmark`` of the last
  migration that stopped part-way finished the unmark, then rolled back the migration before it,
  which the user never asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from odm.exceptions import MigrationError
from odm.migrations.loader import checksum
from odm.migrations.recorder import log_entry
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.faults import NOOP, FaultSetup, fault_setup_and_reader, until_held

pytestmark = pytest.mark.odm_drivers("pymongo")

RECORDS = "_odm_migrations"
STATE = "_odm_migrations_state"


@pytest.fixture
async def setup(
    odm_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FaultSetup, Any]]:
    """A database of its own, run without transactions by a client that (as on a standalone
    server) sends no retryable-write numbers, and read through a fault-free one."""
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    async with fault_setup_and_reader(odm_uri, tmp_path, "mig3", retryWrites=False) as pair:
        yield pair


async def cancel_record_write(state: FaultSetup, db: Any, work: Any, name: str) -> list[str]:
    """Run ``work(echo)``, cancel it while its ``name`` command on the records is held on the
    server (for 400 ms), wait past that hold, and return what it said."""
    state.arm([name], RECORDS, {"blockConnection": True, "blockTimeMS": 400}, {"times": 1})
    lines: list[str] = []
    task = asyncio.create_task(work(lines.append))
    await until_held(db, state.app, name, RECORDS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.55)  # a write left running would have landed by now
    return lines


async def test_mig3_an_apply_cut_off_while_recording_says_what_the_records_hold(
    setup: tuple[FaultSetup, Any],
) -> None:
    state, db = setup
    state.write("0001_a.py", NOOP)
    lines = await cancel_record_write(
        state, db, lambda echo: state.runner(echo=echo).apply(), "update"
    )
    assert lines[-1] == (
        "apply 0001_a: interrupted (cancelled) while recording it; nothing undone and nothing "
        "recorded: the next apply only records it"
    )
    assert list(db[RECORDS].find()) == []
    assert await state.runner().apply() == ["0001_a"]


async def test_mig3_a_rollback_cut_off_while_recording_says_what_the_records_hold(
    setup: tuple[FaultSetup, Any],
) -> None:
    state, db = setup
    state.write("0001_a.py", NOOP)
    await state.runner().apply()
    lines = await cancel_record_write(
        state, db, lambda echo: state.runner(echo=echo).rollback(), "delete"
    )
    assert lines[-1] == (
        "rollback 0001_a: interrupted (cancelled) while recording it; nothing undone and "
        "nothing recorded: the next rollback only records it"
    )
    assert [doc["_id"] for doc in db[RECORDS].find()] == ["0001_a"]
    assert await state.runner().rollback() == ["0001_a"]


def unmark_note(mid: str) -> dict[str, Any]:
    """The note of an unmark of ``mid`` left part-way, as odm writes it."""
    return {
        "_id": "records-change", "action": "unmark", "target": mid,
        "log": log_entry(mid, "unmark", checksum=checksum(NOOP.encode())),
        "forget_positions": [mid], "put": None, "update": None, "remove": [mid],
    }


async def applied_with_unmark_left(state: FaultSetup, db: Any, names: list[str]) -> None:
    """Apply ``names``, then leave an unmark of the last one part-way (noted, not written)."""
    for name in names:
        state.write(f"{name}.py", NOOP)
    await state.runner().apply()
    db[STATE].insert_one(unmark_note(names[-1]))


@pytest.mark.parametrize("steps", [None, 1])
async def test_mig3_a_rollback_by_count_stops_after_finishing_an_unmark(
    setup: tuple[FaultSetup, Any], steps: int | None
) -> None:
    state, db = setup
    await applied_with_unmark_left(state, db, ["0001_a", "0002_b"])
    lines: list[str] = []
    with pytest.raises(MigrationError, match=(
        r"^rollback stopped after finishing `unmark 0002_b`, which changed which migrations "
        r"are applied, so the last applied migration may not be what you meant: nothing was "
        r"rolled back; check `odm migrate list` and run the command again$"
    )):
        await state.runner(echo=lines.append).rollback(steps=steps)
    assert lines[1:] == ["  unmarked 0002_b"]
    assert [doc["_id"] for doc in db[RECORDS].find()] == ["0001_a"]
    assert await state.runner().rollback(steps=steps) == ["0001_a"]


async def test_mig3_a_rollback_to_a_target_goes_on_after_finishing_an_unmark(
    setup: tuple[FaultSetup, Any],
) -> None:
    state, db = setup
    await applied_with_unmark_left(state, db, ["0001_a", "0002_b", "0003_c"])
    assert await state.runner().rollback(to="0001_a") == ["0002_b"]
    assert [doc["_id"] for doc in db[RECORDS].find()] == ["0001_a"]


async def test_mig3_an_apply_goes_on_after_finishing_an_unmark(
    setup: tuple[FaultSetup, Any],
) -> None:
    state, db = setup
    await applied_with_unmark_left(state, db, ["0001_a", "0002_b"])
    assert await state.runner().apply() == ["0002_b"]
    assert [doc["_id"] for doc in db[RECORDS].find()] == ["0001_a", "0002_b"]
