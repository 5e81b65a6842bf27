"""Writes made without a transaction, cut off on their way, must not land under the next run;
a change of the records noted as under way is finished only under the lock, and only as odm
wrote it.

- A ``batched_update`` cancelled (Ctrl-C) while its batch's ``bulk_write`` was on the server,
  then resumed at once in the same process (the interrupted run releases the lock): the cut-off
  batch went on running on the server, and, once the resumed run had removed the guards
  (``_odm_batch``), its late ``$inc`` matched again: those documents were incremented twice.
- An ``unmark`` cancelled while its delete was on the server, then a ``mark``: the late delete
  removed the record the mark had just written, the log saying it was marked.
- A ``mark`` (or the finishing of one) proved the lock once, then made all its writes: a run
  whose lock was broken or taken over between them went on writing under the new holder.
- A note of the change under way holding what odm never writes (a field of another version, a
  record put for another id, fields set that no record holds, a record removed that it does
  not name) was finished as it stood, writing it into the records.
- Logging a run recorded and not logged failed with the driver's bare error.

As on a standalone server (no transactions), the clients send no retryable-write numbers
(``retryWrites=false``): a replica set refuses a late write whose number the session has
passed, which hid the late writes by chance. The fail points match only this module's clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import monitoring

from odm.exceptions import MigrationError
from odm.migrations.loader import checksum
from odm.migrations.recorder import log_entry, new_record
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.faults import (
    NOOP,
    FaultSetup,
    fault_setup_and_reader,
    until_held,
    until_none_left,
)

pytestmark = pytest.mark.odm_drivers("pymongo")


BUMP = '''
from odm.migrations import batched_update, step

steps = [step(lambda db: batched_update(db.rv3_items, {}, {"$inc": {"n": 1}}, batch_size=4))]
'''

STATE = "_odm_migrations_state"
CHANGE = "records-change"


class LockBreaker(monitoring.CommandListener):
    """Removes the migrations lock (as ``break-lock --force`` would) just before the first
    command sent to ``namespace`` matching ``selector``, through the fault-free ``db``."""

    def __init__(self) -> None:
        self.db: Any = None
        self.selector: tuple[str, str, Any] | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.selector is None:
            return
        name, collection, first_id = self.selector
        command = event.command
        deletes = command.get("deletes") or [{}]
        if event.command_name == name and command.get(name) == collection and (
            deletes[0].get("q", {}).get("_id") == first_id
        ):
            self.selector = None
            self.db["_odm_migrations_lock"].delete_many({})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Not watched."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Not watched."""


@pytest.fixture
async def setup(
    odm_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FaultSetup, Any, LockBreaker]]:
    """A database of its own, run without transactions by a client that (as on a standalone
    server) sends no retryable-write numbers, and read through a fault-free one."""
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    breaker = LockBreaker()
    async with fault_setup_and_reader(
        odm_uri, tmp_path, "rv3_cut", retryWrites=False, event_listeners=[breaker]
    ) as (state, db):
        breaker.db = db
        yield state, db, breaker


async def cancel_while_blocked(
    state: FaultSetup, db: Any, work: Any, name: str, collection: str
) -> list[str]:
    """Run ``work(echo)`` in a task, cancel it while its ``name`` command on ``collection`` is
    held on the server, and return what it said."""
    state.arm([name], collection, {"blockConnection": True, "blockTimeMS": 400}, {"times": 1})
    lines: list[str] = []
    task = asyncio.create_task(work(lines.append))
    await until_held(db, state.app, name, collection)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return lines


async def test_a_batched_update_cut_off_mid_batch_and_resumed_at_once_updates_each_once(
    setup: tuple[FaultSetup, Any, LockBreaker],
) -> None:
    state, db, _ = setup
    db.rv3_items.insert_many([{"_id": i, "n": 0} for i in range(10)])
    state.write("0001_bump.py", BUMP)
    lines = await cancel_while_blocked(
        state, db, lambda echo: state.runner(echo=echo).apply(), "update", "rv3_items"
    )
    assert lines[-1].startswith("apply 0001_bump: interrupted (cancelled) in step 1")
    assert await state.runner().apply() == ["0001_bump"]
    await until_none_left(db, state.app, "update", "rv3_items")
    assert [doc["n"] for doc in db.rv3_items.find()] == [1] * 10


async def test_an_unmark_cut_off_mid_write_cannot_undo_the_mark_after_it(
    setup: tuple[FaultSetup, Any, LockBreaker],
) -> None:
    state, db, _ = setup
    state.write("0001_a.py", NOOP)
    await state.runner().mark("0001_a")
    lines = await cancel_while_blocked(
        state, db, lambda echo: state.runner(echo=echo).unmark("0001_a"), "delete",
        "_odm_migrations",
    )
    assert lines == [
        "unmark 0001_a: interrupted part-way; it is noted as under way (_odm_migrations_state "
        "'records-change'), and the next `odm migrate apply`, `rollback`, `mark` or `unmark` "
        "finishes it first (`plan` and `list` show it)"
    ]
    said: list[str] = []
    await state.runner(echo=said.append).mark("0001_a")
    assert said[1:] == ["  unmarked 0001_a", "marked 0001_a as applied"]
    await until_none_left(db, state.app, "delete", "_odm_migrations")
    assert [doc["_id"] for doc in db["_odm_migrations"].find()] == ["0001_a"]
    log = [doc["action"] for doc in db["_odm_migrations_log"].find()]
    assert log == ["mark", "unmark", "mark"]


async def test_a_mark_whose_lock_is_broken_between_writes_makes_no_more(
    setup: tuple[FaultSetup, Any, LockBreaker],
) -> None:
    state, db, breaker = setup
    state.write("0001_a.py", NOOP)
    # The lock is removed as the mark forgets the file's positions, after noting itself.
    breaker.selector = ("delete", STATE, "file:0001_a")
    with pytest.raises(MigrationError, match=r"mark 0001_a stopped part-way: the migrations "
                                             r"lock was lost: nobody holds it now.*finishes it"):
        await state.runner().mark("0001_a")
    assert list(db["_odm_migrations"].find()) == []
    assert list(db["_odm_migrations_log"].find()) == []
    assert db[STATE].find_one({"_id": CHANGE}) is not None
    lines: list[str] = []
    assert await state.runner(echo=lines.append).apply() == []
    assert lines[1:] == ["  marked 0001_a as applied", "nothing to apply"]
    assert [doc["_id"] for doc in db["_odm_migrations"].find()] == ["0001_a"]


async def test_finishing_a_change_whose_lock_is_broken_between_writes_makes_no_more(
    setup: tuple[FaultSetup, Any, LockBreaker],
) -> None:
    state, db, breaker = setup
    state.write("0001_a.py", NOOP)
    db[STATE].insert_one(note("0001_a", "unmark"))
    db["_odm_migrations"].insert_one(record("0001_a"))
    breaker.selector = ("delete", STATE, "file:0001_a")
    with pytest.raises(MigrationError, match=r"`unmark 0001_a`, which .* could not be finished: "
                                             r"the migrations lock was lost"):
        await state.runner().apply()
    assert [doc["_id"] for doc in db["_odm_migrations"].find()] == ["0001_a"]
    assert db[STATE].find_one({"_id": CHANGE}) is not None


def record(mid: str, content: str = NOOP) -> dict[str, Any]:
    """The applied record of ``mid`` (its file holding ``content``), as odm writes it."""
    return new_record(mid, checksum(content.encode()), 0, marked=True, depends=[])


def note(mid: str, action: str = "mark", **fields: Any) -> dict[str, Any]:
    """The note of a mark (of a pending file) or an unmark of ``mid``, as odm writes it, with
    ``fields`` changed."""
    marking = action == "mark"
    return {
        "_id": CHANGE, "action": action, "target": mid,
        "log": log_entry(mid, action, checksum=checksum(NOOP.encode())),
        "forget_positions": [mid], "put": record(mid) if marking else None, "update": None,
        "remove": [] if marking else [mid], **fields,
    }


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        pytest.param({"also_set": {"x": 1}}, "a field this version of odm does not know "
                     "(['also_set']", id="field-of-another-version"),
        pytest.param({"put": record("0009_z")}, "has put {", id="record-of-another-id"),
        pytest.param({"put": None, "update": {"checksum": 5, "depends": []}}, "has update {",
                     id="update-no-record-holds"),
        pytest.param({"put": None, "update": {"applied_by": "x", "checksum": "c", "depends": []}},
                     "has update {", id="update-of-other-fields"),
        pytest.param({"remove": ["0000_other"]}, "has remove ['0000_other'], not []",
                     id="removes-another-record"),
        pytest.param({"log": log_entry("0000_other", "mark")}, "has log {",
                     id="log-of-another-file"),
    ],
)
async def test_a_note_odm_never_writes_is_refused_by_name_and_nothing_written(
    setup: tuple[FaultSetup, Any, LockBreaker], fields: dict[str, Any], named: str
) -> None:
    state, db, _ = setup
    state.write("0001_a.py", NOOP)
    db["_odm_migrations"].insert_many([record("0000_other"), record("0001_a")])
    db[STATE].insert_one(note("0001_a", **fields))
    with pytest.raises(MigrationError) as refused:
        await state.runner().apply()
    message = str(refused.value)
    assert message.startswith("_odm_migrations_state: the change under way 'records-change' ")
    assert named in message and "fix or delete that document" in message
    kept = [{**doc, "applied_at": None} for doc in db["_odm_migrations"].find()]
    assert kept == [{**record(mid), "applied_at": None} for mid in ("0000_other", "0001_a")]
    assert list(db["_odm_migrations_log"].find()) == []


async def test_logging_a_run_recorded_and_not_logged_says_what_failed(
    setup: tuple[FaultSetup, Any, LockBreaker],
) -> None:
    state, db, _ = setup
    state.write("0001_a.py", NOOP)
    db["_odm_migrations"].insert_one(record("0001_a"))
    entry = log_entry("0001_a", "apply", checksum=checksum(NOOP.encode()))
    db[STATE].insert_one({"_id": "file:0001_a", "migration": "0001_a", "logging": entry})
    state.arm(["insert"], "_odm_migrations_log", {"errorCode": 2}, {"times": 1})
    with pytest.raises(MigrationError, match=r"^logging `apply 0001_a` failed: OperationFailure"
                                             r".*nothing else was done: run the command again"):
        await state.runner().apply()
    assert await state.runner().apply() == []
    assert [doc["_id"] for doc in db["_odm_migrations_log"].find()] == [entry["_id"]]
