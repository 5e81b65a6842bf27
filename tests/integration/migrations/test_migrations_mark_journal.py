"""``mark`` and ``unmark`` without transactions, cut off at each of their writes.

Without transactions (``ODM_MIGRATIONS_NO_TRANSACTIONS=1``, as on a standalone server) their
writes ran one after the other: a fault between two of them left a record without its log
entry, positions forgotten with nothing recorded, or both ids of a rename recorded, and nothing
told the next run. Now the change is noted as under way before its first write and forgotten
after its last; each write may be made again, and the next command finishes it, saying so.

The first test moves a sticky fault (``failCommand`` with ``skip: k``: the server refuses every
write from the (k+1)-th on) over every write the command makes, and checks that what is stored
is as before, as after, or noted as under way, that the error says which, and that running the
command again leaves the records and the log in agreement. The fail points match only this
module's clients (their ``appName``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from pymongo import monitoring

from odm.exceptions import MigrationError
from odm.migrations import Runner, break_lock
from odm.migrations.loader import checksum
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.faults import (
    NOOP,
    FaultSetup,
    fault_setup_and_reader,
    sync_fault_setup,
)

pytestmark = pytest.mark.odm_drivers("pymongo")


WRITES = ["insert", "update", "delete", "findAndModify"]
BOOKKEEPING = ("_odm_migrations", "_odm_migrations_state", "_odm_migrations_log",
               "_odm_migrations_lock")
#: The ``_id`` of the note of a change under way, in ``_odm_migrations_state``.
CHANGE = "records-change"

#: The records (without when they were written), the positions, the log.
Stored = tuple[list[dict[str, Any]], list[str], list[tuple[str, str]]]


class WriteCounter(monitoring.CommandListener):
    """Counts the write commands a client sends, as the fail point's ``skip`` counts them."""

    def __init__(self) -> None:
        self.writes = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in WRITES:
            self.writes += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Not counted."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Not counted."""


@pytest.fixture
async def setup(
    odm_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FaultSetup, WriteCounter, Any]]:
    """A database of its own, run without transactions by a client whose writes are counted,
    and read through a fault-free synchronous one."""
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    counter = WriteCounter()
    async with fault_setup_and_reader(
        odm_uri, tmp_path, "mig21_journal", event_listeners=[counter]
    ) as (state, db):
        yield state, counter, db


def stored(db: Any) -> Stored:
    """Return what the migrations store (``db``: a synchronous database)."""
    records = [
        {k: v for k, v in doc.items() if k != "applied_at"}
        for doc in db["_odm_migrations"].find({}, sort=[("_id", 1)])
    ]
    positions = sorted(str(doc["_id"]) for doc in db["_odm_migrations_state"].find())
    log = [(doc["action"], doc["migration"]) for doc in db["_odm_migrations_log"].find()]
    return records, positions, log


def under_way(db: Any) -> bool:
    """Tell whether a change of the records is noted as under way."""
    return db["_odm_migrations_state"].find_one({"_id": CHANGE}) is not None


SOMEONE = {"applied_by": "someone", "duration_ms": 7, "marked": False, "depends": []}


class Scenario:
    """One command (``name``) on its starting state, and what it leaves once done."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.mid = "0002_new" if name == "rename" else "0001_a"
        self.path = directory / f"{self.mid}.py"
        self.path.write_text(NOOP)
        self.content = checksum(self.path.read_bytes())

    def prepare(self, db: Any) -> None:
        """Store the starting state: the records, and positions the command forgets."""
        for collection in BOOKKEEPING:
            db[collection].delete_many({})
        ids = [self.mid, *(["0001_old"] if self.name == "rename" else [])]
        db["_odm_migrations_state"].insert_many([
            {"_id": f"{mid}:apply:0:1", "migration": mid, "checksum": self.content}
            for mid in ids
        ])
        record = {
            "rename": {"_id": "0001_old", "checksum": self.content, **SOMEONE},
            "changed": {"_id": self.mid, "checksum": "before-the-edit", **SOMEONE},
            "unmark": {"_id": self.mid, "checksum": self.content, **SOMEONE},
        }.get(self.name)
        if record is not None:
            db["_odm_migrations"].insert_one(record)

    def verb(self) -> str:
        """The command as the runner names it."""
        return f"{'unmark' if self.name == 'unmark' else 'mark'} {self.mid}"

    def command(self, runner: Runner) -> Awaitable[str]:
        """Run the scenario's command."""
        return runner.unmark(self.mid) if self.name == "unmark" else runner.mark(self.mid)

    def after(self) -> Stored:
        """What the command leaves once done."""
        if self.name == "unmark":
            return [], [], [("unmark", self.mid)]
        # Renamed or edited: the record keeps who applied it, and takes the content as it is.
        record = {"_id": self.mid, "checksum": self.content, **SOMEONE}
        action = "rename" if self.name == "rename" else "mark"
        return [record], [], [(action, self.mid)]


def refuse_writes(db: Any, app: str, mode: Any) -> None:
    """Arm (or turn ``"off"``) the fail point refusing the writes of the clients named ``app``,
    through the fault-free client of ``db``."""
    data = {"failCommands": WRITES, "appName": app, "errorCode": 2}
    db.client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})


def check_honest(error: str | None, left: Stored, before: Stored, after: Stored,
                 noted: bool, where: str) -> None:
    """What is left is as before, as after, or noted as under way, and the error says which."""
    if error is None:
        assert (left, noted) == (after, False), where
    elif "nothing was changed" in error:
        assert (left, noted) == (before, False), where
    elif "stopped part-way" in error:
        assert noted and "finishes it first" in error, where
    elif "cannot be told" in error:
        assert noted or left == before, where
    else:  # failed before the change began (taking the lock)
        assert (left, noted) == (before, False), where


#: A rename makes every kind of write a mark makes (positions of two ids forgotten, a record put,
#: one removed, the log), so a mark of a new file is not faulted apart, and "changed" (a record
#: updated) is faulted once, by the command-line test below.
@pytest.mark.parametrize("name", ["rename", "unmark"])
async def test_a_fault_at_any_write_leaves_nothing_the_next_run_cannot_finish(
    setup: tuple[FaultSetup, WriteCounter, Any], name: str
) -> None:
    state, counter, db = setup
    scenario = Scenario(name, state.dir)
    # Without faults: what it leaves, and how many writes it makes (the positions to fault).
    scenario.prepare(db)
    before = stored(db)
    counter.writes = 0
    await scenario.command(state.runner())
    total = counter.writes
    assert (stored(db), under_way(db)) == (scenario.after(), False)
    notes = 0
    for k in range(1, total):  # from the first write after taking the lock
        scenario.prepare(db)
        refuse_writes(db, state.app, {"skip": k})
        try:
            await scenario.command(state.runner(lock_timeout=0))
            error = None
        except Exception as exc:
            error = str(exc)
        finally:
            refuse_writes(db, state.app, "off")
        where = f"{name}, writes refused from the {k + 1}th of {total}: {error}"
        noted = under_way(db)
        notes += noted
        check_honest(error, stored(db), before, scenario.after(), noted, where)
        if error is None or (stored(db), noted) == (before, False):
            continue  # done (only the lock's release was refused), or nothing was begun
        # The run cut off may still hold the lock (its release was refused): as break-lock.
        await break_lock(state.db, force=True)
        lines: list[str] = []
        await scenario.command(state.runner(echo=lines.append))
        assert (stored(db), under_way(db)) == (scenario.after(), False), where
        if noted:
            assert lines[0].startswith(f"finishing `{scenario.verb()}`, which "), where
            assert lines[1:] == [lines[1]], lines  # said done once, not "already applied"
    assert notes >= 3, notes  # cut off between the change's own writes, not only around them


def test_the_command_line_says_what_is_under_way_and_apply_finishes_it(
    odm_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    with sync_fault_setup(odm_uri, tmp_path, "mig21_journal_cli") as state:
        # 0001_a is applied and edited since: marking it records its content as it is now.
        scenario = Scenario("changed", state.dir)
        insert = NOOP.replace("pass", "await db.mig21_b.insert_one({})")
        (state.dir / "0002_b.py").write_text(insert)
        scenario.prepare(state.db)
        # Noted as under way and its positions forgotten; then the record's update is refused.
        state.arm(["update"], "_odm_migrations", {"errorCode": 2}, {"times": 1})
        assert state.cli("mark", "0001_a") == 1
        err = capsys.readouterr().err
        assert "mark 0001_a stopped part-way" in err and "finishes it first" in err
        state.disarm()
        assert stored(state.db)[0][0]["checksum"] == "before-the-edit"
        assert state.cli("list") == 0
        assert "note: `mark 0001_a`, which " in capsys.readouterr().out
        assert state.cli("plan") == 0
        plan = capsys.readouterr().out
        # As apply will see it once the mark is finished: 0001_a no longer changed, and only
        # 0002_b to apply (the records as they stand would refuse the plan: 0001_a changed).
        assert "this plan shows the records as that leaves them" in plan
        assert "apply 0002_b" in plan and "apply 0001_a" not in plan
        assert state.cli("apply") == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("finishing `mark 0001_a`, which ")
        assert out[1] == "  marked 0001_a as applied"
        records, positions, log = stored(state.db)
        assert (records[0], positions) == (scenario.after()[0][0], [])
        assert [r["_id"] for r in records] == ["0001_a", "0002_b"]
        assert log == [("mark", "0001_a"), ("apply", "0002_b")]
        assert state.db.mig21_b.count_documents({}) == 1


async def test_a_note_refused_when_written_changes_nothing(
    setup: tuple[FaultSetup, WriteCounter, Any],
) -> None:
    state, _, db = setup
    scenario = Scenario("rename", state.dir)
    scenario.prepare(db)
    before = stored(db)
    state.arm(["insert"], "_odm_migrations_state", {"errorCode": 2}, {"times": 1})
    with pytest.raises(MigrationError, match="mark 0002_new failed, nothing was changed"):
        await scenario.command(state.runner())
    assert (stored(db), under_way(db)) == (before, False)


async def test_a_note_of_a_shape_odm_never_writes_is_refused_by_name(
    setup: tuple[FaultSetup, WriteCounter, Any],
) -> None:
    state, _, db = setup
    Scenario("new", state.dir).prepare(db)
    db["_odm_migrations_state"].insert_one({"_id": CHANGE, "action": "drop", "target": "x"})
    with pytest.raises(MigrationError, match=r"_odm_migrations_state: the change under way "
                                             r"'records-change' has action 'drop', not mark"):
        await state.runner().apply()
    assert stored(db)[0] == []


async def test_a_fault_while_finishing_leaves_it_noted_for_the_next_run(
    setup: tuple[FaultSetup, WriteCounter, Any],
) -> None:
    state, _, db = setup
    scenario = Scenario("rename", state.dir)
    scenario.prepare(db)
    # Cut off after its note, both positions forgotten and the record copied: two records (the
    # lock taken and proven, the note, then each write after a proof of the lock).
    refuse_writes(db, state.app, {"skip": 11})
    with pytest.raises(MigrationError, match="stopped part-way"):
        await scenario.command(state.runner())
    refuse_writes(db, state.app, "off")
    assert [r["_id"] for r in stored(db)[0]] == ["0001_old", "0002_new"] and under_way(db)
    await break_lock(state.db, force=True)
    # The next run is cut off too, while finishing it: it says so, and does nothing else.
    refuse_writes(db, state.app, {"skip": 3})
    with pytest.raises(MigrationError, match=r"`mark 0002_new`, which .* began at .*, could "
                                             r"not be finished: .*nothing else was done"):
        await state.runner().apply()
    refuse_writes(db, state.app, "off")
    assert under_way(db)
    await break_lock(state.db, force=True)
    lines: list[str] = []
    await scenario.command(state.runner(echo=lines.append))
    assert (stored(db), under_way(db)) == (scenario.after(), False)
    assert lines[1:] == ["  recorded 0001_old as renamed to 0002_new (already applied)"]


STEP = '''
from odm.migrations import step


async def up(db):
    await db.mig21_steps.update_one({"_id": 1}, {"$set": {"done": True}}, upsert=True)


async def down(db):
    await db.mig21_steps.delete_one({"_id": 1})


steps = [step(up, down)]
'''


def logged_done(db: Any) -> list[tuple[str, str]]:
    """The log's entries of runs done (failures left out)."""
    entries = db["_odm_migrations_log"].find({"ok": True})
    return [(doc["action"], doc["migration"]) for doc in entries]


async def test_an_apply_cut_off_at_any_write_is_logged_once_recorded(
    setup: tuple[FaultSetup, WriteCounter, Any],
) -> None:
    """An apply without a transaction recorded its file, then was cut off before logging it:
    the log never said it was applied."""
    state, counter, db = setup
    (state.dir / "0001_a.py").write_text(STEP)
    counter.writes = 0
    await state.runner().apply()
    total = counter.writes
    told = 0
    # From its last proof of the lock on: the writes that record the file (the steps' own are
    # faulted by the other tests of runs cut off).
    for k in range(total - 7, total):
        for collection in (*BOOKKEEPING, "mig21_steps"):
            db[collection].delete_many({})
        refuse_writes(db, state.app, {"skip": k})
        try:
            await state.runner(lock_timeout=0).apply()
        except Exception:
            pass
        finally:
            refuse_writes(db, state.app, "off")
        await break_lock(state.db, force=True)
        lines: list[str] = []
        await state.runner(echo=lines.append).apply()
        where = f"writes refused from the {k + 1}th of {total}: {lines}"
        records, positions, _ = stored(db)
        assert ([r["_id"] for r in records], positions) == (["0001_a"], []), where
        assert logged_done(db) == [("apply", "0001_a")], where
        assert db.mig21_steps.find_one() == {"_id": 1, "done": True}, where
        told += "logging `apply 0001_a`, recorded by an earlier run that was cut off before " \
                "logging it" in lines
    assert told >= 1, told  # cut off between its record and its log entry at least once
