"""``python -m bench.cpu_paths`` runs without a server and reports every path it measures."""

from __future__ import annotations

import json
from collections.abc import Callable


def test_cpu_paths_reports_each_path(run_module: Callable[..., str]) -> None:
    report = json.loads(run_module("bench.cpu_paths"))
    assert set(report) == {
        "build+compile filter_sort_limit (us/query)",
        "filter(id=) (us/call)",
        "load 10k documents (ms)",
        "to_bson 10k documents (ms)",
        "save diff 10k documents (ms)",
        "depth check of a free-form document (us/document)",
        "to_bson of that document (us/document)",
    }
    assert all(value > 0 for value in report.values())


def test_a_run_records_the_versions_of_odm_and_its_drivers() -> None:
    """The results name the odm that ran (its distribution is odm-mongo), with its drivers."""
    import odm
    from bench.common import machine_info

    info = machine_info("6.0.5")
    assert info["odm"] == odm.__version__
    assert info["pymongo"] and info["pydantic"] and info["mongod"] == "6.0.5"


def test_cold_paths_reports_each_piece_warm_and_cold(run_module: Callable[..., str]) -> None:
    """``python -m bench.cold_paths`` (no server) times the floor's and odm's per-operation
    pieces warm and after evicting the caches; a short run reports every piece."""
    report = json.loads(run_module("bench.cold_paths", "--calls", "3", "--eviction", "1000"))
    assert set(report) == {
        "floor: validate 1 document",
        "odm: load 1 document",
        "odm: get(id=) filter",
        "floor: validate 20 documents",
        "odm: load 20 documents",
        "odm: filter_sort_limit query, built and compiled",
        "odm: transfer's update(), built and compiled",
        "odm: save() change detection",
    }
    assert all(set(times) == {"warm", "cold"} for times in report.values())
    assert all(value > 0 for times in report.values() for value in times.values())
