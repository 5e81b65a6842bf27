"""``python -m bench.instructions``: its counted processes run every variant of
``bench.layers`` against the test server, and callgrind's count is read and turned into
instructions per operation (no count asserted but its shape: counts depend on the machine)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable

import pytest
from test_bench_layers import VARIANTS  # the same directory (pytest puts it on the path)

from bench import instructions


def test_the_counted_process_runs_each_workload(
    odm_uri: str, run_module: Callable[..., str]
) -> None:
    db = "odm_bench_instructions_smoke"
    run_module("bench.instructions", "--seed-only", "--uri", odm_uri, "--db", db, "--n", "50")
    # Every workload once (each variant also runs in test_bench_layers, in one process).
    for workload, variants in VARIANTS.items():
        run_module("bench.instructions", "--child", workload, variants[1], "2",
                   "--uri", odm_uri, "--db", db)


def test_callgrinds_report_is_read() -> None:
    report = (
        "==4915== Events    : Ir\n==4915== Collected : 1856683636\n==4915== \n"
        "==4915== I   refs:      1,856,683,636\n"
    )
    assert instructions.collected(report) == 1_856_683_636
    with pytest.raises(RuntimeError, match="no instruction count"):
        instructions.collected("==1== valgrind: failed to start tool\n")


def test_callgrinds_report_with_the_cache_simulation_is_read() -> None:
    report = (
        "==7== Events    : Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
        "==7== Collected : 29478332 7805540 4313957 170046 379914 73889 23301 135743 48065\n"
    )
    events = instructions.collected_events(report)
    assert events["Ir"] == 29_478_332 and instructions.collected(report) == 29_478_332
    assert events["D1mr"] == 379_914
    assert instructions.l2_misses(events) == 23_301 + 135_743 + 48_065
    with pytest.raises(RuntimeError, match="events and counts do not match"):
        instructions.collected_events("==7== Events    : Ir Dr\n==7== Collected : 5\n")


def test_instructions_per_operation_take_the_short_run_away() -> None:
    assert instructions.per_operation(1_000_000, 1_500_000, 100) == 5000.0


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_count_repeats_and_grows_with_the_work() -> None:
    """The hash seed is fixed, so the same program counts the same; more work counts more."""
    def program(loops: int) -> list[str]:
        return [sys.executable, "-S", "-c", f"for i in range({loops}): str(i)"]

    first, again = instructions.count(program(1000)), instructions.count(program(1000))
    assert first == again
    assert instructions.count(program(50_000)) > first + 1_000_000


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_failing_program_is_reported() -> None:
    with pytest.raises(RuntimeError, match="failed under callgrind"):
        instructions.count([sys.executable, "-S", "-c", "raise SystemExit(3)"])


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_misses_repeat_and_grow_with_the_data_touched() -> None:
    """The same program misses the same; walking dicts again misses in the simulated L2 when
    they do not fit in it, so every walk over them fetches each dict again."""
    def program(size: int) -> list[str]:
        walk = f"d = [{{'k': i}} for i in range({size})]\nfor _ in range(8): sum(x['k'] for x in d)"
        return [sys.executable, "-S", "-c", walk]

    small = instructions.count_events(program(500), misses=True)
    assert small == instructions.count_events(program(500), misses=True)
    large = instructions.count_events(program(50_000), misses=True)
    assert instructions.l2_misses(small) > 0
    # 50,000 dicts (several MB) do not fit in 512 KB: each of the eight walks fetches every
    # dict again (at least one line each).
    grown = instructions.l2_misses(large) - instructions.l2_misses(small)
    assert grown > 8 * 50_000
