"""The benchmark cannot rot: ``python -m bench --quick`` runs end to end against the test server.

No timing is asserted; only that every workload / spec task and every implementation shows up
in the table and the JSON, and that the peers that can run a workload did.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Spelled out (not imported from bench/) so that dropping a workload fails here.
WORKLOAD_NAMES = [
    "insert_many", "find_all", "get_by_id", "filter_sort_limit", "update_many",
    "aggregate_group", "save_changed_field", "transaction_transfer", "stream_memory",
]
TASK_NAMES = [
    "small_create", "small_update", "small_find_by_id", "small_find_foreign_key",
    "large_create", "large_update", "nested_create", "nested_update", "nested_find",
    "nested_find_array",
]
PEERS = ["raw", "pydantic", "motor", "odm", "beanie", "odmantic"]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    return tmp_path / "results.json"


def test_quick_workloads(odm_uri: str, results_path: Path) -> None:
    proc = run_bench(
        "--quick", "--uri", odm_uri, "--db", "odm_bench_smoke",
        "--peers", ",".join(PEERS), "--json", str(results_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in WORKLOAD_NAMES + PEERS:
        assert name in proc.stdout
    data = json.loads(results_path.read_text())
    assert data["machine"]["mongod"]
    section = data["workloads"]
    assert list(section["implementations"]) == PEERS
    assert list(section["results"]) == WORKLOAD_NAMES
    for workload, cells in section["results"].items():
        assert set(cells) == set(PEERS)
        for peer in ("raw", "pydantic", "motor", "odm", "beanie"):
            assert cells[peer]["status"] == "ok", (workload, peer, cells[peer])
        assert cells["raw"]["ratio_to_raw"] == 1.0
        # odmantic lacks update_many / aggregate_group (n/a with a reason)
        assert cells["odmantic"]["status"] in ("ok", "n/a"), (workload, cells["odmantic"])
        if cells["odmantic"]["status"] == "n/a":
            assert cells["odmantic"]["reason"]


def test_quick_spec(odm_uri: str, results_path: Path) -> None:
    proc = run_bench(
        "--spec", "--quick", "--uri", odm_uri, "--db", "odm_bench_spec_smoke",
        "--json", str(results_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MB/s" in proc.stdout
    section = json.loads(results_path.read_text())["spec"]
    assert list(section["results"]) == TASK_NAMES
    for task, cells in section["results"].items():
        assert set(cells) == {"raw", "pydantic", "odm", "beanie"}
        for peer in ("raw", "pydantic", "odm", "beanie"):
            assert cells[peer]["status"] == "ok", (task, peer, cells[peer])
            assert cells[peer]["mb_per_s"] > 0


def test_growth_reports_time_and_memory_per_size(odm_uri: str, results_path: Path) -> None:
    proc = run_bench(
        "--growth", "--quick", "--growth-sizes", "40,80", "--uri", odm_uri,
        "--db", "odm_bench_growth_smoke", "--peers", "raw,odm", "--json", str(results_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    section = json.loads(results_path.read_text())["growth"]
    assert section["params"]["sizes"] == [40, 80]
    assert list(section["results"]) == [
        "insert_many", "find_all", "filter_sort_limit", "stream_memory",
    ]
    for workload, by_n in section["results"].items():
        assert list(by_n) == ["40", "80"]
        for n, cells in by_n.items():
            assert set(cells) == {"raw", "odm"}
            for peer, cell in cells.items():
                assert cell["status"] == "ok", (workload, n, peer, cell)
                # per document for the bulk workloads, per query for filter_sort_limit
                assert cell["units"] == (10 if workload == "filter_sort_limit" else int(n))
                assert cell["unit_us"] > 0 and cell["unit_cpu_us"] >= 0
                assert "memory_error" not in cell
                assert cell["peak_growth_mb"] >= 0
            assert cells["raw"]["ratio_to_raw"] == 1.0
    # Memory per document where it should grow with N; a flat number where it should not.
    assert "unit_kb" in section["results"]["find_all"]["80"]["odm"]
    assert "unit_kb" not in section["results"]["stream_memory"]["80"]["odm"]
    assert "find_all" in proc.stdout and "KB/doc" in proc.stdout


def test_profile_writes_a_tree_per_workload_of_the_profiled_implementation(
    odm_uri: str, results_path: Path, tmp_path: Path
) -> None:
    profile_dir = tmp_path / "profiles"
    proc = run_bench(
        "--all", "--quick", "--uri", odm_uri, "--db", "odm_bench_profile_smoke",
        "--only", "find_all,get_by_id,nested_find", "--peers", "raw,odm",
        "--profile", "odm", "--profile-dir", str(profile_dir), "--json", str(results_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(path.name for path in profile_dir.iterdir())
    # Only odm's timed calls are profiled, one tree per workload / task that ran.
    assert written == ["odm-find_all.txt", "odm-get_by_id.txt", "odm-nested_find.txt"]
    find_all = (profile_dir / "odm-find_all.txt").read_text()
    # The tree reaches into the workload's own code (bench/impl_odm.py) and odm's.
    assert "find_all" in find_all and "impl_odm.py" in find_all
    assert "include pyinstrument's overhead" in proc.stdout


def test_plot_draws_the_ratios_of_a_run(odm_uri: str, results_path: Path, tmp_path: Path) -> None:
    chart = tmp_path / "img" / "bench.png"
    proc = run_bench(
        "--all", "--quick", "--uri", odm_uri, "--db", "odm_bench_plot_smoke",
        "--only", "find_all,update_many,nested_find", "--peers", "raw,pydantic,odm,odmantic",
        "--json", str(results_path), "--plot", str(chart),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Drawn again from the results file alone, without a server.
    again = tmp_path / "again.png"
    proc = run_bench("--plot-from", str(results_path), "--plot", str(again))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_ratios_put_every_row_as_cost_relative_to_raw() -> None:
    from bench.plot import cost_ratios

    results = {
        "workloads": {"results": {
            "find_all": {
                "raw": {"status": "ok", "median_s": 0.05, "ratio_to_raw": 1.0},
                "odm": {"status": "ok", "median_s": 0.1, "ratio_to_raw": 2.0},
                "odmantic": {"status": "n/a", "reason": "no API"},
            },
        }},
        "spec": {"results": {
            "nested_find": {
                "raw": {"status": "ok", "mb_per_s": 10.0},
                "odm": {"status": "ok", "mb_per_s": 8.0},
            },
        }},
    }
    # Workloads: time / raw's; spec tasks: raw's MB/s / the implementation's (lower is better
    # on every row); cells that did not run have no bar.
    assert cost_ratios(results) == {
        "find_all": {"raw": 1.0, "odm": 2.0},
        "spec: nested_find": {"raw": 1.0, "odm": 1.25},
    }
