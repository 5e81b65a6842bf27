"""Migration file names: ASCII digits only, and a ``.py`` suffix in another case is refused.

``FILE_PATTERN`` once took any Unicode digit (``٠٠٠٢_b.py``), and ``0002_b.Py`` was skipped
without a word, so the migration never ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from odm.exceptions import MigrationError
from odm.migrations import loader

STEP = "from odm.migrations import step\n\nsteps = []\n"


# Arabic-Indic and fullwidth digits, written as escapes so that the source shows what they are.
@pytest.mark.parametrize("name", ["\u0660\u0660\u0660\u0662_b.py", "\uff10\uff10\uff10\uff12_b.py"])
def test_only_ascii_digits_number_a_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(STEP, encoding="utf-8")
    with pytest.raises(MigrationError, match="not a migration file name"):
        loader.discover(tmp_path)


@pytest.mark.parametrize("name", ["0002_b.Py", "0002_b.PY"])
def test_a_py_suffix_in_another_case_is_refused_by_name(tmp_path: Path, name: str) -> None:
    (tmp_path / "0001_a.py").write_text(STEP)
    (tmp_path / name).write_text(STEP)
    with pytest.raises(MigrationError) as err:
        loader.discover(tmp_path)
    assert str(tmp_path / name) in str(err.value) and "lower case" in str(err.value)


def test_other_files_are_still_ignored(tmp_path: Path) -> None:
    (tmp_path / "0001_a.py").write_text(STEP)
    for other in ("README.md", "_helpers.py", "notes.pyc", "stop"):
        (tmp_path / other).write_text("")
    assert [path.name for path in loader.discover(tmp_path)] == ["0001_a.py"]


def test_a_dependency_applied_but_gone_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "0003_c.py").write_text('__depends__ = {"0002_b"}\n' + STEP)
    with pytest.raises(MigrationError, match="applied but its file is missing"):
        loader.load(tmp_path, applied={"0002_b"})
    with pytest.raises(MigrationError, match=r"0002_b, which is not in"):
        loader.load(tmp_path)
    loaded = loader.load(tmp_path, applied={"0002_b"}, allow_applied_missing=True)
    assert [m.id for m in loaded] == ["0003_c"]
