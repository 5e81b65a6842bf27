"""What the records know when files are gone or copied.

- ``unmark 0003`` (a number prefix) once failed when the file was gone, though the full id
  worked: the prefix is resolved from the applied records then;
- a pending file depending on an applied migration whose file was deleted blocked every verb,
  ``list`` included, with "missing dependency": ``list`` lists it, the others say that the
  dependency is applied but its file is missing;
- an identical copy of an applied file under a new id was applied again without a word:
  ``plan`` and ``apply`` warn, naming both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any
from typing import Any as Project

import pytest
from pymongo import AsyncMongoClient

from odm.exceptions import MigrationError
from odm.migrations import Runner

pytestmark = pytest.mark.odm_drivers("pymongo")

BUMP = '''
from odm.migrations import step


async def bump(db):
    await db.marks.update_one({"_id": "n"}, {"$inc": {"n": 1}}, upsert=True)


steps = [step(bump)]
'''

LATER = '''
from odm.migrations import step

__depends__ = {"0002_b"}

steps = []
'''


def run(project: Project, work: Callable[[Runner], Coroutine[Any, Any, Any]]) -> Any:
    async def main() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(project.uri)
        try:
            return await work(Runner(client[project.db.name], project.migrations))
        finally:
            await client.close()

    return asyncio.run(main())


def test_unmark_by_prefix_once_the_file_is_gone(project: Project) -> None:
    project.write("0001_a.py", "steps = []\n")
    path = project.write("0003_c.py", "steps = []\n")
    assert run(project, lambda runner: runner.apply()) == ["0001_a", "0003_c"]
    path.unlink()
    assert run(project, lambda runner: runner.unmark("0003")) == "0003_c"
    assert project.applied() == ["0001_a"]
    with pytest.raises(MigrationError, match=r"0004 is not applied"):
        run(project, lambda runner: runner.unmark("0004"))


def test_a_dependency_applied_whose_file_is_gone(project: Project) -> None:
    project.write("0001_a.py", "steps = []\n")
    gone = project.write("0002_b.py", "steps = []\n")
    run(project, lambda runner: runner.apply())
    gone.unlink()
    project.write("0003_c.py", LATER)
    rows = run(project, lambda runner: runner.status())
    assert [(row.id, row.state) for row in rows] == [
        ("0001_a", "applied"), ("0003_c", "pending"), ("0002_b", "missing"),
    ]
    assert "0002_b  missing" in project.ok("list")
    for verb in ("plan", "apply"):
        with pytest.raises(MigrationError) as err:
            run(project, lambda runner, verb=verb: getattr(runner, verb)())
        assert "0003_c depends on 0002_b, which is applied but its file is missing" in str(
            err.value
        )
    assert project.applied() == ["0001_a", "0002_b"]


def test_an_identical_copy_of_an_applied_file_is_named(project: Project) -> None:
    project.write("0002_b.py", BUMP)
    run(project, lambda runner: runner.apply())
    project.write("0003_copy.py", BUMP)
    for verb in ("plan", "apply"):
        lines: list[str] = []

        async def work(runner: Runner, verb: str = verb, lines: list[str] = lines) -> Any:
            runner.echo = lines.append
            return await getattr(runner, verb)()

        run(project, work)
        assert (
            "warning: 0003_copy (0003_copy.py) has the same content (checksum) as 0002_b, which "
            "is applied: applying it runs the same steps again"
        ) in lines, lines
    assert project.db.marks.find_one()["n"] == 2  # warned, not refused
