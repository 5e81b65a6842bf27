"""Applied migrations whose file is missing or renamed, and what `plan` says about each step."""

from __future__ import annotations

import re
from typing import Any as Project

COUNTER = '''
from odm.migrations import step

__depends__ = {depends}


async def up(db):
    await db.counters.update_one({{"_id": "{name}"}}, {{"$inc": {{"n": 1}}}}, upsert=True)


async def down(db):
    await db.counters.update_one({{"_id": "{name}"}}, {{"$inc": {{"n": -1}}}})


steps = [step(up, down)]
'''


def chain(project: Project, *names: str) -> None:
    """Write 0001_a, 0002_b, ...: each depends on the one before and counts its runs."""
    previous = None
    for number, name in enumerate(names, 1):
        depends = f"{{'{previous}'}}" if previous else "set()"
        previous = f"{number:04d}_{name}"
        project.write(f"{previous}.py", COUNTER.format(depends=depends, name=name))


def counters(project: Project) -> dict[str, int]:
    return {d["_id"]: d["n"] for d in project.db.counters.find()}


def refused(project: Project, *args: str) -> str:
    result = project.run(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_rollback_refuses_while_an_applied_file_is_missing(project: Project) -> None:
    chain(project, "a", "b", "c")
    project.ok("apply")
    (project.migrations / "0003_c.py").unlink()
    before = (project.applied(), counters(project))

    for args in (("rollback",), ("rollback", "--steps", "2"), ("rollback", "--to", "0001")):
        err = refused(project, *args)
        assert "applied but the file is missing: 0003_c" in err
    # --force goes on past the missing file, but never under a migration that needs it.
    err = refused(project, "rollback", "--force")
    assert "cannot roll back 0002_b: 0003_c (file missing), which stays applied, depends on it" in (
        err
    )
    # A record from before dependencies were kept: applied later, so it may depend on it.
    project.db["_odm_migrations"].update_one({"_id": "0003_c"}, {"$unset": {"depends": ""}})
    err = refused(project, "rollback", "--force")
    assert "cannot roll back 0002_b: 0003_c (file missing)" in err and "applied after it" in err
    assert (project.applied(), counters(project)) == before

    project.ok("unmark", "0003_c")
    project.ok("rollback")
    assert project.applied() == ["0001_a"]
    assert counters(project) == {"a": 1, "b": 0, "c": 1}


def test_renamed_file_is_recognised_and_never_applied_twice(project: Project) -> None:
    chain(project, "a", "b")
    project.ok("apply")
    (project.migrations / "0002_b.py").rename(project.migrations / "0002_b_renamed.py")

    listed = project.ok("list")
    assert re.search(r"0002_b_renamed +renamed .*applied as 0002_b", listed), listed
    assert "missing" not in listed and "mark 0002_b_renamed" in listed
    for args in (("plan",), ("apply",), ("apply", "--force")):
        err = refused(project, *args)
        assert "renamed since applied: 0002_b_renamed (applied as 0002_b)" in err
        assert "odm migrate mark 0002_b_renamed" in err
    assert "0002_b (its file renamed to 0002_b_renamed)" in refused(project, "rollback")
    assert counters(project) == {"a": 1, "b": 1}

    out = project.ok("mark", "0002_b_renamed")
    assert "recorded 0002_b as renamed to 0002_b_renamed" in out
    assert project.applied() == ["0001_a", "0002_b_renamed"]
    entry = project.db["_odm_migrations_log"].find_one({"action": "rename"})
    assert entry["migration"] == "0002_b_renamed" and entry["renamed_from"] == "0002_b"
    assert "nothing to apply" in project.ok("apply")
    assert counters(project) == {"a": 1, "b": 1}
    project.ok("rollback")
    assert project.applied() == ["0001_a"] and counters(project) == {"a": 1, "b": 0}


PLANNED = '''
from odm.migrations import (
    batched_update, create_index, drop_index, run_pipeline, step,
)


async def seed(db):
    await db.customers.insert_one({"name": "ann"})


steps = [
    step(create_index("customers", "email"), drop_index("customers", "email_1")),
    step(seed),
    step(apply=lambda db: batched_update(db.customers, {"email": {"$exists": False}},
                                         lambda d: {"$set": {"email": None}}, batch_size=500)),
    step(lambda db: db.customers.insert_one({"name": "bob"})),
    step(run_pipeline("customers", [{"$match": {}}])),
    step(run_pipeline("customers", [{"$match": {}}, {"$out": "copy"}])),
]
'''

NO_TRANSACTION = '''
from odm.migrations import batched_update, step

__transactional__ = False
__depends__ = {"0001_planned"}

steps = [step(lambda db: batched_update(db["orders"], {}, {"$set": {"x": 1}}))]
'''


def test_plan_shows_what_runs_and_where(project: Project) -> None:
    project.write("0001_planned.py", PLANNED)
    project.write("0002_plain.py", NO_TRANSACTION)
    lines = project.ok("plan").splitlines()
    assert lines[0] == (
        "apply 0001_planned (6 step(s), transactional: each step says whether it runs in "
        "the transaction)"
    )
    outside = "[outside a transaction: MongoDB refuses it in one; the steps before it commit "
    assert lines[1] == (
        f"  1. create index email_1 on customers [('email', 1)] {outside}first and it runs on "
        "its own]"
    )
    assert lines[2] == "  2. call seed (line 7) [in a transaction]"
    assert lines[3] == (
        "  3. batched update of customers matching {'email': {'$exists': False}} in batches of "
        "500 (built by <lambda>, line 14) [outside a transaction: each batch commits on its "
        "own, with its position]"
    )
    assert lines[4].startswith("  4. call <lambda> (line 16) [in a transaction, unless it")
    assert lines[5] == "  5. run pipeline on customers [$match] [in a transaction]"
    assert lines[6].startswith(f"  6. run pipeline on customers [$match, $out] {outside}")
    assert lines[7] == "apply 0002_plain (1 step(s), no transaction: __transactional__ = False)"
    assert lines[8] == (
        "  1. batched update of orders matching {} in batches of 1000 (built by <lambda>, "
        "line 7) [no transaction]"
    )
    # Planning ran no step: not the async def, not the driver call in the lambda.
    assert project.db.list_collection_names() == []
