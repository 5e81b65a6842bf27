"""Documents keep pydantic's typed constructor for mypy and pyright, with no plugin (#23).

The sample (tests/typing/sample_constructors.py) must pass; the same models called wrongly must
fail with the messages a plain pydantic model gets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.mypy_cache import shared_cache

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "typing" / "sample_constructors.py"
BIN = Path(sys.executable).parent

WRONG = '''

def wrong() -> None:
    TcCustomer()
    TcCustomer(name="Ann", age="x")
    TcOrder(customer=None, total=1.0, colour="red")
    TcCustomer(name="Ann").nickname
'''


def checked_project(tmp_path: Path, extra: str = "") -> Path:
    """The sample copied out of the tree, so that no configuration (and no plugin) applies."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "sample.py").write_text(SAMPLE.read_text() + extra)
    return project


def mypy(project: Path) -> str:
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--python-executable", sys.executable,
         "--cache-dir", str(shared_cache("--strict", "")), "sample.py"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
    )
    return result.stdout + result.stderr


def pyright(project: Path) -> str:
    found = shutil.which("pyright", path=str(BIN))
    assert found, "pyright is not installed: pip install -e '.[dev]'"
    result = subprocess.run(
        [found, "--pythonpath", sys.executable, "sample.py"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
    )
    return result.stdout + result.stderr


def test_mypy_without_plugin_accepts_the_sample(tmp_path: Path) -> None:
    out = mypy(checked_project(tmp_path))
    assert "Success: no issues found" in out, out


def test_mypy_without_plugin_checks_constructors(tmp_path: Path) -> None:
    out = mypy(checked_project(tmp_path, WRONG))
    assert 'Missing named argument "name" for "TcCustomer"' in out, out
    assert 'Argument "age" to "TcCustomer" has incompatible type "str"; expected "int"' in out, out
    assert 'Unexpected keyword argument "colour" for "TcOrder"' in out, out
    assert '"TcCustomer" has no attribute "nickname"' in out, out


def test_pyright_accepts_the_sample(tmp_path: Path) -> None:
    out = pyright(checked_project(tmp_path))
    assert "0 errors" in out, out


def test_pyright_checks_constructors(tmp_path: Path) -> None:
    out = pyright(checked_project(tmp_path, WRONG))
    assert 'Argument missing for parameter "name"' in out, out
    assert 'No parameter named "colour"' in out, out
    assert 'Cannot access attribute "nickname" for class "TcCustomer"' in out, out
