"""``python -m bench.layers`` runs end to end against the test server (no timing asserted):
every one-at-a-time workload is reported with each of its variants, over its own floor."""

from __future__ import annotations

import re
from collections.abc import Callable

VARIANTS = {
    "get_by_id": ["floor", "odm", "no queryset", "no executor"],
    "filter_sort_limit": ["floor", "odm", "no queryset", "no executor"],
    "save_changed_field": ["floor", "odm", "prepare_update", "$set written out"],
    "transaction_transfer": ["floor", "odm", "no queryset", "no executor"],
}


def report_of(run_module: Callable[..., str], uri: str, db: str, *args: str) -> list[str]:
    """Run the tool on the test server; return its report's lines (the heading left out)."""
    out = run_module("bench.layers", "--uri", uri, "--db", db, "--rounds", "1", *args)
    return [line for line in out.splitlines()[1:] if line.strip()]


def test_every_workload_is_reported_with_its_layers(
    odm_uri: str, run_module: Callable[..., str]
) -> None:
    report = report_of(run_module, odm_uri, "odm_bench_layers_smoke", "--ops", "3", "--n", "100")
    lines = {line.split()[0]: line for line in report}
    assert set(lines) == set(VARIANTS)
    for workload, names in VARIANTS.items():
        found = re.findall(r"([a-z_$ ]+?) (\d+\.\d+) \((\d+\.\d+)\)", lines[workload][22:])
        assert [name.strip() for name, _, _ in found] == names
        assert found[0][1:] == ("1.000", "1.000")  # each workload over its own floor
        assert all(float(wall) > 0 and float(cpu) > 0 for _, wall, cpu in found)


def test_only_runs_the_workloads_asked_for(odm_uri: str, run_module: Callable[..., str]) -> None:
    report = report_of(
        run_module, odm_uri, "odm_bench_layers_only", "--ops", "2", "--n", "50", "--only",
        "get_by_id",
    )
    assert [line.split()[0] for line in report] == ["get_by_id"]
