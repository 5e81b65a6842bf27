"""Migration files and their dependency graph, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from odm.exceptions import MigrationError
from odm.migrations import create_index, drop_index, step
from odm.migrations.loader import (
    ancestors,
    checksum,
    find_cycle,
    leaves,
    load,
    load_file,
    next_number,
    resolve_id,
    slugify,
)
from odm.migrations.operations import Step


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(source)
    return path


def test_load_file_reads_steps_depends_and_transactional(tmp_path: Path) -> None:
    path = write(tmp_path, "0002_email.py", (
        '"""Add the email index."""\n'
        "from odm.migrations import step, create_index, drop_index\n"
        "__depends__ = {'0001_initial'}\n"
        "__transactional__ = False\n"
        "steps = [step(create_index('c', 'email', unique=True), drop_index('c', 'email_1')),\n"
        "         create_index('c', '-created')]\n"
    ))
    migration = load_file(path)
    assert migration.id == "0002_email"
    assert migration.depends == frozenset({"0001_initial"})
    assert migration.transactional is False
    assert migration.doc == "Add the email index."
    assert [s.describe() for s in migration.steps] == [
        "create index email_1 on c [('email', 1)], unique=True",
        "create index created_-1 on c [('created', -1)]",
    ]
    assert migration.steps[1].rollback is None
    assert migration.checksum == checksum(path.read_bytes())


def test_checksum_ignores_line_endings_but_not_content() -> None:
    assert checksum(b"a\r\nb\n") == checksum(b"a\nb\n")
    assert checksum(b"a\nb\n") != checksum(b"a\nc\n")


def test_syntax_error_names_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "0001_bad.py", "steps = [\n  step(\n")
    with pytest.raises(MigrationError, match=r"0001_bad\.py:\d+: syntax error"):
        load_file(path)


def test_error_while_loading_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "0001_bad.py", "x = 1\nsteps = [undefined_name]\n")
    with pytest.raises(MigrationError, match=r"0001_bad\.py:2: NameError"):
        load_file(path)


def test_file_without_steps_or_with_bad_steps(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="no `steps`"):
        load_file(write(tmp_path, "0001_a.py", "x = 1\n"))
    with pytest.raises(MigrationError, match="step 1 is a int"):
        load_file(write(tmp_path, "0001_a.py", "steps = [1]\n"))


def test_misnamed_file_is_refused_and_helpers_are_allowed(tmp_path: Path) -> None:
    write(tmp_path, "_helpers.py", "X = 1\n")
    write(tmp_path, "0001_ok.py", "steps = []\n")
    assert [m.id for m in load(tmp_path)] == ["0001_ok"]
    write(tmp_path, "add-index.py", "steps = []\n")
    with pytest.raises(MigrationError, match="not a migration file name"):
        load(tmp_path)


def test_order_follows_dependencies_then_ids(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.py", "steps = []\n")
    write(tmp_path, "0002_b.py", "__depends__ = {'0003_c'}\nsteps = []\n")
    write(tmp_path, "0003_c.py", "__depends__ = {'0001_a'}\nsteps = []\n")
    write(tmp_path, "0004_d.py", "steps = []\n")
    ordered = [m.id for m in load(tmp_path)]
    assert ordered == ["0001_a", "0003_c", "0002_b", "0004_d"]
    migrations = load(tmp_path)
    assert ancestors(migrations, "0002_b") == {"0001_a", "0003_c"}
    assert leaves(migrations) == ["0002_b", "0004_d"]


def test_missing_dependency(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.py", "__depends__ = {'0000_gone'}\nsteps = []\n")
    with pytest.raises(MigrationError, match="missing dependency: 0001_a depends on 0000_gone"):
        load(tmp_path)


def test_cycle_is_named(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.py", "__depends__ = {'0003_c'}\nsteps = []\n")
    write(tmp_path, "0002_b.py", "__depends__ = {'0001_a'}\nsteps = []\n")
    write(tmp_path, "0003_c.py", "__depends__ = {'0002_b'}\nsteps = []\n")
    cycle = "dependency cycle: 0001_a -> 0003_c -> 0002_b -> 0001_a"
    with pytest.raises(MigrationError, match=cycle):
        load(tmp_path)
    assert find_cycle({"x": frozenset({"x"})}) == ["x", "x"]
    assert find_cycle({"x": frozenset(), "y": frozenset({"x"})}) == []


def test_resolve_id_by_number_prefix_or_name(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.py", "steps = []\n")
    write(tmp_path, "0002_b.py", "steps = []\n")
    migrations = load(tmp_path)
    assert resolve_id(migrations, "0002") == "0002_b"
    assert resolve_id(migrations, "0001_a.py") == "0001_a"
    with pytest.raises(MigrationError, match="ambiguous"):
        resolve_id(migrations, "000")
    with pytest.raises(MigrationError, match="no migration"):
        resolve_id(migrations, "0009")


def test_new_file_names(tmp_path: Path) -> None:
    assert slugify("Add email index!") == "add_email_index"
    assert slugify("???") == "migration"
    assert next_number(tmp_path / "missing") == 1
    write(tmp_path, "0007_x.py", "steps = []\n")
    assert next_number(tmp_path) == 8


def test_step_refuses_what_it_cannot_run() -> None:
    assert isinstance(step(create_index("c", "a"), drop_index("c", "a_1")), Step)
    with pytest.raises(MigrationError, match="must be an operation or a callable"):
        step("create index")  # type: ignore[arg-type]
    assert drop_index("c", [("a", 1), ("b", -1)]).index == "a_1_b_-1"


def test_resolve_id_prefers_the_exact_number_over_longer_numbers() -> None:
    from pathlib import Path

    from odm.migrations.loader import Migration, resolve_id

    migrations = [Migration(id=mid, path=Path(mid), steps=[]) for mid in ("0001_a", "00010_b")]
    assert resolve_id(migrations, "0001") == "0001_a"
    assert resolve_id(migrations, "00010") == "00010_b"
