"""Typing: mypy --strict accepts tests/typing/sample_querysets.py (``assert_type`` on what
querysets give back), and notices when an expectation is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests" / "typing" / "sample_querysets.py"
MYPY = [sys.executable, "-m", "mypy", "--strict", "--config-file",
        str(ROOT / "pyproject.toml")]


def run_mypy(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MYPY, *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_queryset_types_hold(tmp_path: Path) -> None:
    wrong = tmp_path / "sample_wrong.py"
    wrong.write_text(
        SAMPLE.read_text()
        + "\n\nasync def wrong() -> None:\n"
        "    assert_type(await Customer.objects.all(), list[Order])\n"
        "    assert_type(await Customer.objects.first(), Customer)\n"
    )
    result = run_mypy(SAMPLE, wrong)
    out = result.stdout + result.stderr
    # every error is in the deliberately wrong lines, none in the sample
    assert "sample_querysets.py" not in out, out
    assert out.count("sample_wrong.py") >= 2 and "[assert-type]" in out, out
    assert result.returncode == 1
