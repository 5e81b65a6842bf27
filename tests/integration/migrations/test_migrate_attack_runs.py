"""A run stopped, faulted or half undone must leave records that tell the truth.

- Interrupted (a cancelled task, Ctrl-C) once its record was stored, a run said and logged
  "nothing recorded", logged no success, and left its positions behind;
- a lock taken by a write whose answer was lost stayed held (for its whole lease) though the
  run gave up; a lock that could not be released turned a finished run into an error;
- after a failed step was compensated, forgetting its positions was cut short by a fault: the
  positions of the step rolled back survived the file's own, and the next ``apply`` skipped
  that step (a finished batched update) and recorded the file with its effect missing;
- a rollback that stopped part-way left its file "applied": ``apply`` then applied the files
  depending on it on top, ``plan`` and ``list`` said nothing;
- ``mark`` of a file already applied rewrote its record as marked (never run), losing when and
  by whom it was applied; ``mark`` waiting for an ``apply`` of the file did so too, and
  ``unmark`` waiting for its ``rollback`` logged an unmark of what was no longer applied;
- an abort whose connection dropped (the driver ignores it) left the transaction open on the
  server, holding the lock's document: the failed run's clean-up and release hung until the
  server reaped it.

The fail points only match this module's client (its ``appName``) and database.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from odm.cli import main
from odm.exceptions import MigrationError
from odm.migrations.loader import checksum
from tests.integration.migrations.faults import FaultSetup as Setup
from tests.integration.migrations.faults import fault_setup

pytestmark = pytest.mark.odm_drivers("pymongo")

BUMP = '''
from odm.migrations import step

__transactional__ = False


async def bump(db):
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(bump)]
'''

#: The commit (or write) happens, then its answer says the write concern was not met.
LOST_ANSWER = {"writeConcernError": {"code": 64, "errmsg": "wtimeout", "errInfo": {"wtimeout": 1}}}


@pytest.fixture
async def setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with fault_setup(odm_uri, tmp_path, "odm_atk") as state:
        yield state


async def test_interrupted_once_recorded_says_so(setup: Setup) -> None:
    setup.write("0001_bump.py", BUMP)
    # The log entry after the record hangs: the run is interrupted right there.
    setup.arm(["insert"], "_odm_migrations_log", {"blockConnection": True, "blockTimeMS": 700},
              {"times": 1})
    lines: list[str] = []
    task = asyncio.create_task(setup.runner(echo=lines.append).apply())
    async with asyncio.timeout(10):
        while not await setup.ids("_odm_migrations"):
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lines[-1] == "apply 0001_bump: interrupted (cancelled) once recorded as done"
    log = [(entry["action"], entry["ok"]) async for entry in setup.db["_odm_migrations_log"].find()]
    assert log and set(log) == {("apply", True)}
    assert await setup.ids("_odm_migrations_state") == []
    assert await setup.ids("_odm_migrations_lock") == []
    assert await setup.runner().apply() == []


async def test_a_lock_taken_by_a_write_whose_answer_was_lost_is_given_back(
    setup: Setup,
) -> None:
    setup.write("0001_bump.py", BUMP)
    setup.arm(["findAndModify"], "_odm_migrations_lock", LOST_ANSWER, {"times": 1})
    with pytest.raises(PyMongoError):
        await setup.runner().apply()
    assert await setup.ids("_odm_migrations_lock") == []
    assert await setup.runner(lock_timeout=0).apply() == ["0001_bump"]


async def test_a_lock_that_cannot_be_released_fails_nothing(setup: Setup) -> None:
    setup.write("0001_bump.py", BUMP)
    setup.arm(["delete"], "_odm_migrations_lock", {"errorCode": 2}, {"times": 1})
    lines: list[str] = []
    assert await setup.runner(echo=lines.append, lock_lease=1).apply() == ["0001_bump"]
    assert lines[-1].startswith("warning: the migrations lock could not be released")
    assert await setup.ids("_odm_migrations") == ["0001_bump"]


FAILS_ONCE = '''
import os
from odm.migrations import batched_update, step


async def fail_once(db):
    if not os.path.exists(os.environ["FAILED_ONCE"]):
        open(os.environ["FAILED_ONCE"], "w").close()
        raise RuntimeError("first time")


steps = [
    step(lambda db: batched_update(db.items, {}, {"$inc": {"n": 1}}, batch_size=2),
         lambda db: batched_update(db.items, {}, {"$inc": {"n": -1}}, batch_size=2)),
    step(fail_once),
]
'''


async def test_forgetting_a_compensated_run_cut_short_repeats_what_was_undone(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILED_ONCE", str(setup.dir / "failed_once"))
    setup.write("0001_fill.py", FAILS_ONCE)
    await setup.db.items.insert_many([{"_id": i, "n": 0} for i in range(3)])
    # The first delete of positions passes, every later one fails: the forgetting stops there.
    setup.arm(["delete"], "_odm_migrations_state", {"errorCode": 2}, {"skip": 1})
    with pytest.raises(MigrationError, match=r"failed at step 2: .*rolled back step\(s\) 1"):
        await setup.runner().apply()
    setup.disarm()
    assert [doc["n"] async for doc in setup.db.items.find()] == [0, 0, 0]
    assert await setup.runner().apply() == ["0001_fill"]
    assert [doc["n"] async for doc in setup.db.items.find()] == [1, 1, 1]
    assert await setup.ids("_odm_migrations_state") == []


HALF_UNDONE = '''
import os
from odm.migrations import create_index, drop_index, step


async def bump_a(db):
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


async def unbump_a(db):
    if os.environ.get("BROKEN_ROLLBACK"):
        raise RuntimeError("rollback of step 1 is broken")
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": -1}})


async def bump_c(db):
    await db.marks.update_one({"_id": "c"}, {"$inc": {"n": 1}}, upsert=True)


async def unbump_c(db):
    await db.marks.update_one({"_id": "c"}, {"$inc": {"n": -1}})


steps = [
    step(bump_a, unbump_a),
    step(create_index("marks", "k"), drop_index("marks", "k_1")),
    step(bump_c, unbump_c),
]
'''

ON_TOP = '''
from odm.migrations import step

__depends__ = {"0001_base"}


async def bump_d(db):
    await db.marks.update_one({"_id": "d"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(bump_d)]
'''


async def test_a_rollback_stopped_part_way_is_not_built_upon(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.write("0001_base.py", HALF_UNDONE)
    assert await setup.runner().apply() == ["0001_base"]
    monkeypatch.setenv("BROKEN_ROLLBACK", "1")
    with pytest.raises(MigrationError, match="re-run rollback to resume after step 2"):
        await setup.runner().rollback()
    monkeypatch.delenv("BROKEN_ROLLBACK")
    setup.write("0002_on_top.py", ON_TOP)
    stopped = r"an earlier rollback stopped part-way: 0001_base \(2 step\(s\) rolled back\)"
    for verb in (setup.runner().apply, setup.runner().plan):
        with pytest.raises(MigrationError, match=stopped):
            await verb()
    assert await setup.ids("_odm_migrations") == ["0001_base"]
    rows = {row.id: row for row in await setup.runner().status()}
    assert (rows["0001_base"].state, rows["0001_base"].rolled_back) == ("applied", 2)
    # Finishing the rollback (it resumes at step 1), then applying, builds on all of it.
    assert await setup.runner().rollback() == ["0001_base"]
    assert await setup.runner().apply() == ["0001_base", "0002_on_top"]
    marks = {doc["_id"]: doc["n"] async for doc in setup.db.marks.find()}
    assert marks == {"a": 1, "c": 1, "d": 1}


async def test_marking_an_applied_file_keeps_its_record(setup: Setup) -> None:
    setup.write("0001_bump.py", BUMP)
    await setup.runner().apply()
    before = await setup.db["_odm_migrations"].find_one({})
    lines: list[str] = []
    assert await setup.runner(echo=lines.append).mark("0001") == "0001_bump"
    assert lines == ["0001_bump is already applied (nothing to mark)"]
    assert await setup.db["_odm_migrations"].find_one({}) == before
    # Edited since it was applied: the record takes the new content, and keeps the rest.
    setup.write("0001_bump.py", BUMP + "\n# reworded\n")
    await setup.runner().mark("0001")
    after = await setup.db["_odm_migrations"].find_one({})
    assert after["checksum"] != before["checksum"]
    assert {k: v for k, v in after.items() if k != "checksum"} == {
        k: v for k, v in before.items() if k != "checksum"
    }
    assert [row.state for row in await setup.runner().status()] == ["applied"]


GATED = '''
import attack_gate
from odm.migrations import step


async def bump(db):
    await attack_gate.wait()
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


async def unbump(db):
    await attack_gate.wait()
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": -1}})


steps = [step(bump, unbump)]
'''


class Gate:
    """Holds a run inside its step until the test opens it; says when the run got there."""

    def __init__(self) -> None:
        self.reached, self.opened = asyncio.Event(), asyncio.Event()

    async def wait(self) -> None:
        self.reached.set()
        await self.opened.wait()


async def while_held(
    setup: Setup, verb: str, other: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Run ``verb`` (apply or rollback) into its step, start ``other`` (it waits for the lock),
    then let ``verb`` finish; return what ``other`` raised or returned."""
    gate = Gate()
    monkeypatch.setitem(sys.modules, "attack_gate", gate)
    holder = asyncio.create_task(getattr(setup.runner(), verb)())
    async with asyncio.timeout(10):
        await gate.reached.wait()
        waiter = asyncio.create_task(other(setup.runner(lock_timeout=10)))
        await asyncio.sleep(0.3)  # the waiter has read the records and waits for the lock
        gate.opened.set()
        await holder
        try:
            return await waiter
        except MigrationError as exc:
            return exc


async def test_mark_while_the_file_is_applied_changes_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.write("0001_gated.py", GATED)
    result = await while_held(setup, "apply", lambda runner: runner.mark("0001"), monkeypatch)
    assert result == "0001_gated"
    record = await setup.db["_odm_migrations"].find_one({})
    assert record["marked"] is False  # it ran: the record says so
    actions = [entry["action"] async for entry in setup.db["_odm_migrations_log"].find()]
    assert actions == ["apply"]


async def test_unmark_while_the_file_is_rolled_back_logs_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.write("0001_gated.py", GATED)
    open_gate = Gate()
    open_gate.opened.set()
    monkeypatch.setitem(sys.modules, "attack_gate", open_gate)
    assert await setup.runner().apply() == ["0001_gated"]
    result = await while_held(
        setup, "rollback", lambda runner: runner.unmark("0001_gated"), monkeypatch
    )
    assert isinstance(result, MigrationError) and str(result) == "0001_gated is not applied"
    actions = [entry["action"] async for entry in setup.db["_odm_migrations_log"].find()]
    assert actions == ["apply", "rollback"]


def test_list_shows_a_rollback_stopped_part_way(
    project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = project.write("0001_base.py", HALF_UNDONE)
    content = checksum(path.read_bytes())
    project.db["_odm_migrations"].insert_one({"_id": "0001_base", "checksum": content})
    project.db["_odm_migrations_state"].insert_one(
        {"_id": "file:0001_base", "migration": "0001_base", "checksum": content,
         "direction": "rollback", "next_step": 1}
    )
    command = ["migrate", "list", "--uri", project.uri, "--dir", str(project.migrations)]
    assert main(command) == 0
    assert "0001_base  applied  <- an earlier rollback stopped part-way (1 step(s) rolled " \
        "back); `odm migrate rollback` resumes it" in capsys.readouterr().out


FAILS_IN_ITS_TRANSACTION = '''
import os
from pymongo import MongoClient
from odm.migrations import batched_update, step


async def bump(db):
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


async def boom(db):
    raise RuntimeError("boom")


def move_the_position(doc):
    """Another writer moves the batch's stored position: its transaction fails and aborts."""
    with MongoClient(os.environ["URI"]) as client:
        client[os.environ["DB"]]["_odm_migrations_state"].update_one(
            {"_id": "0001_broken:apply:0:1"}, {"$set": {"last_id": -1}}
        )
    return {"$inc": {"n": 1}}


steps = STEPS
'''


@pytest.mark.parametrize(
    ("steps", "failure"),
    [
        ("[step(bump), step(boom)]", "failed at step 2: RuntimeError: boom"),
        ("[step(lambda db: batched_update(db.items, {}, move_the_position))]",
         "the stored position moved under this run"),
    ],
    ids=["file transaction", "batch transaction"],
)
async def test_an_abort_that_fails_leaves_no_transaction_behind(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, steps: str, failure: str
) -> None:
    monkeypatch.setenv("URI", setup.uri)
    monkeypatch.setenv("DB", setup.db.name)
    setup.write("0001_broken.py", FAILS_IN_ITS_TRANSACTION.replace("STEPS", steps))
    await setup.db.items.insert_one({"_id": 1, "n": 0})
    # The abort's connection drops (and its retry's; the driver ignores that): left open on the
    # server, the transaction held the lock's document (and the position) until reaped, a
    # minute or two later, and the run's clean-up and its release of the lock waited for that.
    setup.arm(["abortTransaction"], "", {"closeConnection": True}, {"times": 2})
    async with asyncio.timeout(20):
        with pytest.raises(MigrationError, match=failure):
            await setup.runner().apply()
    assert await setup.ids("_odm_migrations_lock") == []
    assert await setup.ids("_odm_migrations") == []
