"""``python -m bench.cpu_paths`` runs without a server and reports every path it measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_paths_reports_each_path() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.cpu_paths"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {
        "build+compile filter_sort_limit (us/query)",
        "filter(id=) (us/call)",
        "load 10k documents (ms)",
        "to_bson 10k documents (ms)",
        "save diff 10k documents (ms)",
    }
    assert all(value > 0 for value in report.values())


def test_a_run_records_the_versions_of_odm_and_its_drivers() -> None:
    """The results name the odm that ran (its distribution is odm-mongo), with its drivers."""
    import odm
    from bench.common import machine_info

    info = machine_info("6.0.5")
    assert info["odm"] == odm.__version__
    assert info["pymongo"] and info["pydantic"] and info["mongod"] == "6.0.5"
