"""`odm migrate` end to end, as a user runs it: a subprocess against a real server."""

from __future__ import annotations

import re
import time
from typing import Any as Project

INITIAL = '''
"""Create customers with an email index."""
from odm.migrations import step, create_collection, drop_collection, create_index, drop_index

steps = [
    step(create_collection("customers"), drop_collection("customers")),
    step(create_index("customers", "email", unique=True, sparse=True),
         drop_index("customers", "email_1")),
]
'''

SEED = '''
from odm.migrations import step

__depends__ = {"0001_initial"}


async def seed(db):
    await db.customers.insert_many([{"name": "ann"}, {"name": "bob"}])


async def unseed(db):
    await db.customers.delete_many({"name": {"$in": ["ann", "bob"]}})


steps = [step(seed, unseed)]
'''

RENAME = '''
from odm.migrations import step, rename_field

__depends__ = {"0002_seed"}
steps = [step(rename_field("customers", "name", "full_name"),
              rename_field("customers", "full_name", "name"))]
'''


def three(project: Project) -> None:
    project.write("0001_initial.py", INITIAL)
    project.write("0002_seed.py", SEED)
    project.write("0003_rename.py", RENAME)


def index_names(project: Project) -> set[str]:
    return {ix["name"] for ix in project.db.customers.list_indexes()}


def test_apply_list_rollback_reapply(project: Project) -> None:
    three(project)
    out = project.ok("list")
    assert out.split() == [
        "0001_initial", "pending", "0002_seed", "pending", "0003_rename", "pending"
    ]

    out = project.ok("apply", "--to", "0002")
    assert "apply 0001_initial" in out and "apply 0002_seed" in out and "0003" not in out
    assert project.applied() == ["0001_initial", "0002_seed"]
    assert "email_1" in index_names(project)

    project.ok("apply")
    assert project.applied() == ["0001_initial", "0002_seed", "0003_rename"]
    assert sorted(d["full_name"] for d in project.db.customers.find()) == ["ann", "bob"]
    record = project.db["_odm_migrations"].find_one({"_id": "0003_rename"})
    assert record is not None and len(record["checksum"]) == 64
    assert "@" in record["applied_by"] and record["duration_ms"] >= 0

    listed = project.ok("list")
    assert listed.count(" applied ") == 3
    assert "nothing to apply" in project.ok("apply")

    project.ok("rollback")  # the last one by default
    assert project.applied() == ["0001_initial", "0002_seed"]
    assert sorted(d["name"] for d in project.db.customers.find()) == ["ann", "bob"]

    project.ok("rollback", "--to", "0001_initial")
    assert project.applied() == ["0001_initial"]
    assert project.db.customers.count_documents({}) == 0

    project.ok("rollback", "--steps", "5")
    assert project.applied() == []
    assert "customers" not in project.db.list_collection_names()

    project.ok("apply")
    assert project.applied() == ["0001_initial", "0002_seed", "0003_rename"]
    actions = [(e["migration"], e["action"]) for e in project.db["_odm_migrations_log"].find()]
    assert actions.count(("0003_rename", "apply")) == 2
    assert actions.count(("0001_initial", "rollback")) == 1


def test_plan_changes_nothing(project: Project) -> None:
    three(project)
    project.ok("apply", "--to", "0001_initial")
    before = {
        name: list(project.db[name].find()) for name in project.db.list_collection_names()
    }
    out = project.ok("plan")
    assert "apply 0002_seed" in out and "apply 0003_rename" in out
    assert "rename field name to full_name in customers" in out
    assert "call seed (line" in out
    assert "in a transaction" in out
    after = {name: list(project.db[name].find()) for name in project.db.list_collection_names()}
    assert after == before


def test_changed_file_is_reported_and_refused(project: Project) -> None:
    three(project)
    project.ok("apply")
    project.write("0002_seed.py", SEED + "\n# edited\n")
    listed = project.ok("list")
    assert re.search(r"0002_seed +changed", listed) and "file changed since applied" in listed

    project.write("0004_more.py", '''
        from odm.migrations import step, create_index, drop_index
        __depends__ = {"0003_rename"}
        steps = [step(create_index("customers", "full_name"),
                      drop_index("customers", "full_name_1"))]
    ''')
    refused = project.run("apply")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "changed since applied: 0002_seed" in lines[0]
    assert "0004_more" not in project.applied()

    project.ok("apply", "--force")
    assert "0004_more" in project.applied()
    assert any(e.get("forced") for e in project.db["_odm_migrations_log"].find())

    # `mark` records the edit: the file is no longer reported as changed.
    project.ok("mark", "0002")
    assert "changed" not in project.ok("list")


def test_mark_unmark_and_missing_file(project: Project) -> None:
    three(project)
    project.ok("mark", "0001_initial")
    assert project.applied() == ["0001_initial"]
    assert "customers" not in project.db.list_collection_names()  # marked, not run
    project.ok("unmark", "0001_initial")
    assert project.applied() == []
    actions = [e["action"] for e in project.db["_odm_migrations_log"].find()]
    assert actions == ["mark", "unmark"]

    project.ok("apply")
    (project.migrations / "0003_rename.py").unlink()
    assert "applied but the file is gone" in project.ok("list")


def test_failing_step_rolls_back_earlier_steps(project: Project) -> None:
    project.write("0001_broken.py", '''
        from odm.migrations import step, create_index, drop_index

        async def boom(db):
            raise RuntimeError("disk on fire")

        steps = [
            step(create_index("things", "a"), drop_index("things", "a_1")),
            step(boom),
        ]
    ''')
    result = project.run("apply")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "0001_broken failed at step 2: RuntimeError: disk on fire" in result.stderr
    assert "rolled back step(s) 1" in result.stderr
    assert project.applied() == []
    assert "a_1" not in {ix["name"] for ix in project.db.things.list_indexes()}
    failure = project.db["_odm_migrations_log"].find_one({"ok": False})
    assert failure is not None and "disk on fire" in failure["error"]


def test_transaction_undoes_data_steps(project: Project) -> None:
    project.write("0001_half.py", '''
        from odm.migrations import step

        async def write(db):
            await db.things.insert_one({"x": 1})

        async def fail(db):
            raise ValueError("nope")

        steps = [step(write), step(fail)]
    ''')
    project.db.create_collection("things")  # collections are created outside transactions
    result = project.run("apply")
    assert result.returncode == 1
    # Both steps ran in one transaction: the insert was aborted, with no rollback needed.
    assert project.db.things.count_documents({}) == 0


def test_errors_are_one_line(project: Project) -> None:
    project.write("0001_bad.py", "from odm.migrations import step\nsteps = [\n    step(\n")
    result = project.run("list")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "0001_bad.py:3" in result.stderr and "syntax error" in result.stderr

    (project.migrations / "0001_bad.py").unlink()
    project.write("0001_a.py", "__depends__ = {'0000_gone'}\nsteps = []\n")
    result = project.run("apply")
    assert result.returncode == 1 and "missing dependency: 0001_a depends on 0000_gone" in (
        result.stderr
    )

    project.write("0001_a.py", "__depends__ = {'0002_b'}\nsteps = []\n")
    project.write("0002_b.py", "__depends__ = {'0001_a'}\nsteps = []\n")
    result = project.run("plan")
    assert result.returncode == 1 and "dependency cycle: 0001_a -> 0002_b -> 0001_a" in (
        result.stderr
    )


def test_server_unreachable(project: Project) -> None:
    project.write("0001_a.py", "steps = []\n")
    result = project.run(
        "apply", "--uri", "mongodb://127.0.0.1:9/db", "--connect-timeout", "1.5"
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "could not connect to MongoDB at 127.0.0.1:9" in result.stderr


def test_new_writes_a_file_depending_on_the_latest(project: Project) -> None:
    out = project.ok("new", "Initial")
    assert "0001_initial.py" in out
    out = project.ok("new", "Add email index!")
    created = project.migrations / "0002_add_email_index.py"
    assert str(created) in out
    assert "__depends__ = {'0001_initial'}" in created.read_text()
    project.ok("apply")
    assert project.applied() == ["0001_initial", "0002_add_email_index"]


def test_uri_from_environment_and_pyproject(project: Project) -> None:
    project.write("0001_a.py", "steps = []\n")
    base = [
        "migrate", "list",
    ]
    import subprocess
    import sys

    env = project.env(MONGODB_URI=project.uri)
    listed = subprocess.run(
        [sys.executable, "-m", "odm", *base], cwd=project.root, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert listed.returncode == 0 and "0001_a  pending" in listed.stdout, listed.stderr

    (project.root / "pyproject.toml").write_text(
        f'[tool.odm]\nuri = "{project.uri}"\nmigrations = "migrations"\n'
    )
    listed = subprocess.run(
        [sys.executable, "-m", "odm", *base], cwd=project.root, env=project.env(),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert listed.returncode == 0 and "0001_a  pending" in listed.stdout, listed.stderr


def test_lock_held_names_the_holder_and_break_lock(project: Project) -> None:
    # The first run holds the lock until the test lets its step finish, with a lease long
    # enough that no delay of its heartbeat on a loaded machine lets the second run take over
    # (a 2 s lease and a 2.5 s step did, with two test runs side by side on 2 cores).
    go = project.root / "go"
    project.write("0001_slow.py", f'''
        import asyncio, pathlib
        from odm.migrations import step

        async def slow(db):
            while not pathlib.Path({str(go)!r}).exists():
                await asyncio.sleep(0.05)

        steps = [step(slow)]
    ''')
    first = project.popen("apply", "--lock-lease", "60")
    try:
        deadline = time.monotonic() + 20
        while project.db["_odm_migrations_lock"].find_one() is None:
            assert time.monotonic() < deadline, "the first apply never took the lock"
            time.sleep(0.05)
        second = project.run("apply", "--lock-timeout", "0.5")
        assert second.returncode == 3
        assert second.stderr.count("\n") == 1
        assert "migrations lock held by" in second.stderr
        assert f":{first.pid} since" in second.stderr
    finally:
        go.touch()  # whatever happened, the first run finishes instead of waiting for ever
    assert first.wait(timeout=60) == 0
    assert project.applied() == ["0001_slow"]
    assert project.db["_odm_migrations_lock"].count_documents({}) == 0

    # A lock left by a dead process: break-lock removes it and names the holder.
    project.db["_odm_migrations_lock"].insert_one(
        {"_id": "migrations", "holder": "ghost@nowhere:1", "token": "x",
         "expires_at": __import__("datetime").datetime(2999, 1, 1)}
    )
    assert "ghost@nowhere:1" in project.run("apply", "--lock-timeout", "0").stderr
    refused = project.run("break-lock")
    assert refused.returncode == 3 and "ghost@nowhere:1" in refused.stderr
    assert "--force" in refused.stderr and refused.stderr.count("\n") == 1
    assert "removed the lock held by ghost@nowhere:1" in project.ok("break-lock", "--force")
    assert "no lock was held" in project.ok("break-lock")
