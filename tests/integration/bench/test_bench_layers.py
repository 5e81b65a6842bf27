"""``python -m bench.layers`` runs end to end against the test server (no timing asserted):
every one-at-a-time workload is reported with each of its variants, over its own floor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

VARIANTS = {
    "get_by_id": ["floor", "odm", "no queryset", "no executor"],
    "filter_sort_limit": ["floor", "odm", "no queryset", "no executor"],
    "save_changed_field": ["floor", "odm", "prepare_update", "$set written out"],
    "transaction_transfer": ["floor", "odm", "no queryset", "no executor"],
}


def run_layers(uri: str, db: str, *args: str) -> list[str]:
    """Run the tool on the test server; return its report's lines (the heading left out)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.layers", "--uri", uri, "--db", db, "--rounds", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines()[1:] if line.strip()]


def test_every_workload_is_reported_with_its_layers(odm_uri: str) -> None:
    report = run_layers(odm_uri, "odm_bench_layers_smoke", "--ops", "3", "--n", "100")
    lines = {line.split()[0]: line for line in report}
    assert set(lines) == set(VARIANTS)
    for workload, names in VARIANTS.items():
        found = re.findall(r"([a-z_$ ]+?) (\d+\.\d+) \((\d+\.\d+)\)", lines[workload][22:])
        assert [name.strip() for name, _, _ in found] == names
        assert found[0][1:] == ("1.000", "1.000")  # each workload over its own floor
        assert all(float(wall) > 0 and float(cpu) > 0 for _, wall, cpu in found)


def test_only_runs_the_workloads_asked_for(odm_uri: str) -> None:
    report = run_layers(
        odm_uri, "odm_bench_layers_only", "--ops", "2", "--n", "50", "--only", "get_by_id"
    )
    assert [line.split()[0] for line in report] == ["get_by_id"]
