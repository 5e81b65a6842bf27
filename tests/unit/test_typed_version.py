"""The optimistic lock's counter is typed (#23 item 2).

Declared (``version: int = 0``, tests/typing/sample_version_declared.py), it is an ``int`` to
mypy --strict and pyright without a plugin, and to mypy with ``odm.mypy``. Left out
(tests/typing/sample_version_plugin.py), ``odm.mypy`` adds it as the metaclass does, following
``Meta.version_field`` and inheritance; plain mypy does not know it. Each sample is checked
outside the source tree, so that only the configuration written here applies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.mypy_cache import shared_cache

ROOT = Path(__file__).resolve().parents[2]
TYPING = ROOT / "tests" / "typing"
DECLARED = TYPING / "sample_version_declared.py"
PLUGIN = TYPING / "sample_version_plugin.py"
BIN = Path(sys.executable).parent
EXPECTED = re.compile(r"#\s*error:\s*(?P<message>.+)$")
NEEDS_PLUGIN = "# needs the plugin"


def project(tmp_path: Path, sample: Path, plugin: bool) -> Path:
    """``sample`` copied to an empty directory, with a mypy configuration naming ``odm.mypy``
    or none at all."""
    directory = tmp_path / ("with-plugin" if plugin else "plain")
    directory.mkdir()
    (directory / "sample.py").write_text(sample.read_text())
    if plugin:
        (directory / "mypy.ini").write_text("[mypy]\nstrict = True\nplugins = odm.mypy\n")
    return directory


def config_of(directory: Path) -> str:
    """The text of ``directory``'s mypy configuration ("" when it has none)."""
    config = directory / "mypy.ini"
    return config.read_text() if config.exists() else ""


def mypy(directory: Path) -> tuple[str, dict[int, str]]:
    """Run mypy --strict in ``directory``; return its output and its errors by line."""
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--python-executable", sys.executable,
         "--cache-dir", str(shared_cache("--strict", config_of(directory))), "sample.py"],
        cwd=directory, capture_output=True, text=True, timeout=600, check=False,
    )
    out = result.stdout + result.stderr
    errors: dict[int, str] = {}
    for line in out.splitlines():
        match = re.match(r"sample\.py:(\d+): error: (.*)$", line)
        if match:
            number = int(match.group(1))
            errors[number] = errors.get(number, "") + match.group(2)
    return out, errors


def pyright(directory: Path) -> str:
    found = shutil.which("pyright", path=str(BIN))
    assert found, "pyright is not installed: pip install -e '.[dev]'"
    result = subprocess.run(
        [found, "--pythonpath", sys.executable, "sample.py"],
        cwd=directory, capture_output=True, text=True, timeout=600, check=False,
    )
    return result.stdout + result.stderr


def marked(sample: Path, pattern: re.Pattern[str] | str) -> dict[int, str]:
    """The lines of ``sample`` carrying ``pattern`` (a regex with a ``message`` group, or a
    plain marker), by line number."""
    found: dict[int, str] = {}
    for number, line in enumerate(sample.read_text().splitlines(), 1):
        if isinstance(pattern, str):
            if pattern in line:
                found[number] = line
        elif match := pattern.search(line):
            found[number] = match.group("message").strip()
    return found


def test_a_declared_version_is_typed_for_plain_mypy(tmp_path: Path) -> None:
    out, errors = mypy(project(tmp_path, DECLARED, plugin=False))
    assert not errors and "Success: no issues found" in out, out


def test_a_declared_version_is_typed_for_pyright(tmp_path: Path) -> None:
    out = pyright(project(tmp_path, DECLARED, plugin=False))
    assert "0 errors" in out, out


def test_a_declared_version_is_typed_with_the_plugin(tmp_path: Path) -> None:
    out, errors = mypy(project(tmp_path, DECLARED, plugin=True))
    assert not errors and "Success: no issues found" in out, out


def test_the_plugin_adds_the_version_the_metaclass_adds(tmp_path: Path) -> None:
    out, errors = mypy(project(tmp_path, PLUGIN, plugin=True))
    expected = marked(PLUGIN, EXPECTED)
    assert len(expected) == 4
    assert set(errors) == set(expected), out
    for number, message in expected.items():
        assert message in errors[number], (number, errors[number])


def test_without_the_plugin_an_undeclared_version_is_unknown(tmp_path: Path) -> None:
    out, errors = mypy(project(tmp_path, PLUGIN, plugin=False))
    needing = marked(PLUGIN, NEEDS_PLUGIN)
    assert len(needing) == 3
    for number, line in needing.items():
        name = "revision" if ".revision" in line else "version"
        assert number in errors, out
        assert re.search(rf'"Pv\w+" has no attribute "{name}"', errors[number]), errors[number]
