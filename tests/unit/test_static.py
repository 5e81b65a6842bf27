"""Style and types hold from the first commit: ruff and mypy (strict) on odm/ and contrib/."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINTED = ("odm", "contrib", "tests", "bench", "examples", "noxfile.py")


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed next to {sys.executable}: pip install -e '.[dev]'"
    return found


def test_ruff_check() -> None:
    result = subprocess.run(
        [tool("ruff"), "check", *(d for d in LINTED if (ROOT / d).exists())],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run(
        # A cache per interpreter: .ci/run's nox sessions check this tree side by side.
        [tool("mypy"), "--cache-dir", str(ROOT / ".mypy_cache" / f"tests-{sys.version_info[0]}"
         f".{sys.version_info[1]}"), "odm", "contrib"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
