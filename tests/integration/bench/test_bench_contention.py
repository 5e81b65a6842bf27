"""``python -m bench.contention`` runs end to end against the test server (no timing
asserted): each variant moves money between accounts it shares with the others' transfers,
and the report says the totals were kept."""

from __future__ import annotations

import re
from collections.abc import Callable

from bench.contention import VARIANTS

LINE = re.compile(
    r"(?P<name>\S+)\s+(?P<seconds>\d+\.\d+) s\s+(?P<attempts>\d+\.\d) attempts per transfer\s+"
    r"(?P<gave_up>\d+) gave up\s+total (?P<total>\w+)"
)


def test_every_variant_keeps_the_total(odm_uri: str, run_module: Callable[..., str]) -> None:
    out = run_module(
        "bench.contention", "--uri", odm_uri, "--db", "odm_bench_contention_smoke",
        "--transfers", "12", "--accounts", "3", "--timeout", "60",
    )
    heading, *lines = [line for line in out.splitlines() if line.strip()]
    assert heading == "12 transfers at once over 3 accounts"
    found = [LINE.fullmatch(line) for line in lines]
    assert all(found), lines
    assert [m["name"] for m in found if m] == list(VARIANTS)
    for match in found:
        assert match is not None
        assert match["total"] == "kept" and match["gave_up"] == "0", match.string
        assert float(match["attempts"]) >= 1.0  # every transfer ran at least once


def test_only_runs_the_variants_asked_for(odm_uri: str, run_module: Callable[..., str]) -> None:
    out = run_module(
        "bench.contention", "--uri", odm_uri, "--db", "odm_bench_contention_only",
        "--transfers", "4", "--accounts", "2", "--only", "raw,odm",
    )
    assert [line.split()[0] for line in out.splitlines()[1:] if line.strip()] == ["raw", "odm"]
