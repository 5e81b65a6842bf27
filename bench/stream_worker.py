"""The memory workload, run in a subprocess per implementation so peaks do not mix.

``python -m bench.stream_worker IMPL URI DB EXPECTED`` sets the implementation up, measures the
resident set size, streams ``stream_items`` through the implementation's ``stream_memory``
workload (``async for``) and prints one JSON line: ``rss_before_mb``, ``peak_mb``,
``growth_mb``, ``seconds``, ``cpu_s`` (this process's CPU time), ``count``, ``method``.

``python -m bench.stream_worker IMPL URI DB N WORKLOAD`` measures another workload the same
way, once, in a fresh process (``--growth``: the peak memory of ``find_all``, ``insert_many``
and ``filter_sort_limit`` on a collection of N documents); ``insert_many`` gets N rows of
:func:`bench.common.make_rows` (made before the baseline is taken) and expects an empty
``items``, ``filter_sort_limit`` its usual queries.

The peak is the kernel's ``VmHWM`` after resetting it (``/proc/self/clear_refs``), else the
maximum of ``VmRSS`` sampled every 2 ms by a thread.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import sys
import threading
import time
from pathlib import Path

from .common import Context, Counts, make_queries, make_rows


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = _status_kb("VmRSS") or 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.002):
            rss = _status_kb("VmRSS") or 0
            self.peak_kb = max(self.peak_kb, rss)


async def _main(
    impl: str, uri: str, db: str, expected: int, workload: str = "stream_memory"
) -> dict[str, object]:
    module = importlib.import_module(f"bench.impl_{impl}")
    counts = Counts(n=expected, stream=expected)
    ctx = Context(uri=uri, db_name=db, counts=counts)
    if workload == "insert_many":
        ctx.rows = make_rows(expected)
    elif workload == "filter_sort_limit":
        ctx.queries = make_queries(counts.filter_sort_limit)
    await module.setup(ctx)
    try:
        gc.collect()
        before_kb = _status_kb("VmRSS") or 0
        hwm_reset = _reset_peak() and (_status_kb("VmHWM") or 0) <= before_kb + 1024
        sampler = _Sampler()
        sampler.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        count = await module.WORKLOADS[workload](ctx)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        sampler.stop.set()
        sampler.join()
        hwm_kb = _status_kb("VmHWM") or 0
        peak_kb = max(hwm_kb, sampler.peak_kb) if hwm_reset else sampler.peak_kb
    finally:
        await module.teardown(ctx)
    return {
        "rss_before_mb": round(before_kb / 1024, 1),
        "peak_mb": round(peak_kb / 1024, 1),
        "growth_mb": round((peak_kb - before_kb) / 1024, 1),
        "seconds": round(seconds, 6),
        "cpu_s": round(cpu, 6),
        "count": count,
        "method": "VmHWM (reset via clear_refs)" if hwm_reset else "VmRSS sampled every 2 ms",
    }


def main(argv: list[str]) -> None:
    """Entry point: ``IMPL URI DB EXPECTED [WORKLOAD]``."""
    impl, uri, db, expected, *workload = argv
    result = asyncio.run(_main(impl, uri, db, int(expected), *workload))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
