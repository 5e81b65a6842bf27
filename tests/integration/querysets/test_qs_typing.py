"""Typing: mypy --strict accepts tests/typing/sample_querysets.py (``assert_type`` on what
querysets give back), and notices when an expectation is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests" / "typing" / "sample_querysets.py"
# A cache per interpreter: the nox sessions of .ci/run check the same tree at the same time, and
# pyproject's python_version would point them all at one cache, which mypy does not share safely.
CACHE = ROOT / ".mypy_cache" / f"tests-{sys.version_info.major}.{sys.version_info.minor}"
MYPY = [sys.executable, "-m", "mypy", "--strict", "--config-file",
        str(ROOT / "pyproject.toml"), "--cache-dir", str(CACHE)]


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


def test_sync_use_of_a_queryset_is_a_type_error(tmp_path: Path) -> None:
    """``for``/``list``/``len``/``in`` on a queryset fail at run time (TypeError, issue #21
    item 4) and are flagged by mypy before that."""
    wrong = tmp_path / "sample_sync.py"
    lines = [
        "for c in Customer.objects.all():\n        print(c)",
        "print(list(Customer.objects.all()))",
        "print(len(Customer.objects.filter(age=1)))",
        "print(Customer(name='a') in Customer.objects.all())",
        "print([*Shopper.objects.adults()])",
    ]
    wrong.write_text(
        "from sample_querysets import Customer, Shopper\n\n\ndef wrong() -> None:\n"
        + "".join(f"    {line}\n" for line in lines)
    )
    result = subprocess.run(
        [*MYPY, str(wrong)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MYPYPATH": str(SAMPLE.parent)},
    )
    out = result.stdout + result.stderr
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if "sample_sync.py:" in line}
    assert flagged == {5, 7, 8, 9, 10}, out
