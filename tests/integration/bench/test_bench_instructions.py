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
