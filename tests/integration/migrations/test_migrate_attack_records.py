"""Hostile input a run reads: records and positions edited by hand, odd files, odd settings.

Each is refused before anything is written, with an error naming the document (or the file)
and the field, rather than being half-read into a wrong decision:

- a file's saved position edited by hand once made ``apply`` repeat steps (``next_step: -1``
  ran the last step, then every step), record the file with none of its steps run (a step
  count past the file's end), or fail with a bare ``ValueError``;
- an applied record of another shape (an ``_id`` that is not a string, a string date, a NaN
  duration) failed ``list``, ``plan`` and ``apply`` with a bare ``TypeError``/``ValueError``;
- a batched update's position with a count that is not a number failed its step with a bare
  ``ValueError``;
- ``__depends__`` written as a generator lost every dependency (it was read twice), so a
  missing one went unnoticed; ``Step(...)`` built by hand with an action that is not callable
  loaded, and failed only when the run reached it; ``__doc__ = 5`` or a blank docstring broke
  loading with a bare ``AttributeError``/``IndexError``;
- a lock lease of NaN, infinity or 1e20 seconds, and a ``batch_size`` of 2.5, failed at the
  first write with the driver's error, naming nothing.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest

from odm.exceptions import MigrationError
from odm.migrations import MigrationLock, Runner, batched_update
from odm.migrations.loader import checksum, load_file

pytestmark = pytest.mark.odm_drivers("pymongo")

BUMPS = '''
from odm.migrations import step


async def bump_a(db):
    await db.marks.update_one({"_id": "a"}, {"$inc": {"n": 1}}, upsert=True)


async def bump_b(db):
    await db.marks.update_one({"_id": "b"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(bump_a), step(bump_b)]
'''


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


async def marks(db: Any) -> dict[str, int]:
    return {doc["_id"]: doc["n"] async for doc in db.marks.find()}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("next_step", -1),  # ran step 2, then steps 1 and 2: step 2 twice
        ("next_step", 999),  # recorded the file with no step run
        ("next_step", "abc"),
        ("next_step", 1.5),
        ("direction", "sideways"),
        ("undone", "x"),
    ],
)
async def test_a_position_edited_by_hand_is_refused(
    odm_database: Any, tmp_path: Path, field: str, value: Any
) -> None:
    path = write(tmp_path, "0001_bump.py", BUMPS)
    position = {"direction": "apply", "next_step": 1, field: value}
    await odm_database["_odm_migrations_state"].insert_one(
        {"_id": "file:0001_bump", "migration": "0001_bump",
         "checksum": checksum(path.read_bytes()), **position}
    )
    expected = (
        rf"_odm_migrations_state: the saved position 'file:0001_bump' of 0001_bump holds "
        rf"{field} .*; odm did not write it .*--restart 0001_bump"
    )
    runner = Runner(odm_database, tmp_path)
    for verb in (runner.plan, runner.apply):
        with pytest.raises(MigrationError, match=expected):
            await verb()
    assert await marks(odm_database) == {}
    assert await odm_database["_odm_migrations"].count_documents({}) == 0
    # As the error says, starting the file over runs each step once.
    assert await runner.apply(restart=["0001_bump"]) == ["0001_bump"]
    assert await marks(odm_database) == {"a": 1, "b": 1}


async def test_a_whole_number_stored_as_a_double_is_a_position(
    odm_database: Any, tmp_path: Path
) -> None:
    # The mongo shell stores 1 as 1.0: still step 1 done, as odm wrote it.
    path = write(tmp_path, "0001_bump.py", BUMPS)
    await odm_database["_odm_migrations_state"].insert_one(
        {"_id": "file:0001_bump", "migration": "0001_bump", "checksum": checksum(
            path.read_bytes()), "direction": "apply", "next_step": 1.0}
    )
    assert await Runner(odm_database, tmp_path).apply() == ["0001_bump"]
    assert await marks(odm_database) == {"b": 1}


@pytest.mark.parametrize(
    ("record", "culprit"),
    [
        ({"_id": 5, "checksum": "x"}, "a record has _id 5"),
        ({"_id": "0000_old", "checksum": "x", "duration_ms": math.nan}, "duration_ms nan"),
        ({"_id": "0000_old", "checksum": "x", "duration_ms": "12"}, "duration_ms '12'"),
        ({"_id": "0000_old", "checksum": "x", "applied_at": "yesterday"}, "applied_at"),
        ({"_id": "0000_old", "checksum": 7}, "checksum 7"),
        ({"_id": "0000_old", "checksum": "x", "depends": [1]}, r"depends \[1\]"),
    ],
)
async def test_a_record_edited_by_hand_is_refused(
    odm_database: Any, tmp_path: Path, record: dict[str, Any], culprit: str
) -> None:
    write(tmp_path, "0001_bump.py", BUMPS)
    await odm_database["_odm_migrations"].insert_one(record)
    runner = Runner(odm_database, tmp_path)
    for verb in (runner.status, runner.plan, runner.apply, runner.rollback):
        with pytest.raises(MigrationError, match=rf"^_odm_migrations: .*{culprit}.*fix or delete"):
            await verb()
    assert await marks(odm_database) == {}


async def test_a_batched_position_edited_by_hand_is_refused(
    odm_database: Any, tmp_path: Path
) -> None:
    path = write(tmp_path, "0001_fill.py", '''
        from odm.migrations import batched_update, step

        steps = [step(lambda db: batched_update(db.items, {}, {"$inc": {"n": 1}}))]
    ''')
    await odm_database.items.insert_many([{"_id": i, "n": 0} for i in range(3)])
    await odm_database["_odm_migrations_state"].insert_one(
        {"_id": "0001_fill:apply:0:1", "migration": "0001_fill",
         "checksum": checksum(path.read_bytes()), "last_id": 0, "started": True, "done": "1"}
    )
    refused = r"the saved position '0001_fill:apply:0:1' holds done '1', not a count"
    with pytest.raises(MigrationError, match=refused):
        await Runner(odm_database, tmp_path).apply()
    assert [doc["n"] async for doc in odm_database.items.find()] == [0, 0, 0]


# --- files and settings, refused before any server is asked --------------------------------


def test_a_generator_of_dependencies_is_read_once(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.py", "steps = []\n")
    write(tmp_path, "0002_b.py", """
        __depends__ = (name for name in ["0001_a", "0000_gone"])
        steps = []
    """)
    assert load_file(tmp_path / "0002_b.py").depends == {"0001_a", "0000_gone"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from odm.migrations import Step\nsteps = [Step(apply=5)]\n",
         r"0001_a.py: step 1: step\(apply=...\) must be an operation or a callable"),
        ("from odm.migrations import Step\nasync def go(db): pass\n"
         "steps = [Step(apply=go, rollback='drop it')]\n",
         r"0001_a.py: step 1: step\(rollback=...\) must be an operation or a callable"),
    ],
)
def test_a_step_built_by_hand_is_checked_when_loaded(
    tmp_path: Path, source: str, message: str
) -> None:
    write(tmp_path, "0001_a.py", source)
    with pytest.raises(MigrationError, match=message):
        load_file(tmp_path / "0001_a.py")


@pytest.mark.parametrize("doc", ["__doc__ = 5", '"""   """'])
def test_any_docstring_loads(tmp_path: Path, doc: str) -> None:
    write(tmp_path, "0001_a.py", f"{doc}\nsteps = []\n")
    assert load_file(tmp_path / "0001_a.py").doc == ""


@pytest.mark.parametrize("lease", [math.nan, math.inf, 1e20, 1e-9, -1.0])
def test_a_lease_no_date_can_hold_is_refused(lease: float) -> None:
    with pytest.raises(MigrationError, match="the lock lease must be a number of seconds from"):
        MigrationLock({"_odm_migrations_lock": None}, lease=lease)


@pytest.mark.parametrize("size", [2.5, True, 0])
def test_a_batch_size_that_is_not_a_count_is_refused(size: Any) -> None:
    with pytest.raises(MigrationError, match="batch_size must be a whole number of at least 1"):
        batched_update("items", {}, {"$set": {"x": 1}}, batch_size=size)
