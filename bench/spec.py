"""Runs the MongoDB ODM Performance Benchmark tasks (see :mod:`bench.spec_common`).

Score = bytes per operation x operations / median iteration time, in MB/s (10^6 bytes); the
nearest-rank percentiles of the spec are kept in the JSON. The implementations of a task run
iteration by iteration in turn, each in its own database (``<db>_<implementation>``), each
round starting with the next implementation, as the workloads' rounds are interleaved: a
drift of the machine's speed, or a server still busy with the previous implementation's
writes, hits them alike. Modes:

- default: ``ops`` = 2,000, 3 iterations (the issue's setting), ``large_ops`` = 100 (LARGE_DOC
  is 3.2 MB: 2,000 of them would write 6.4 GB per iteration);
- ``quick``: 20 ops, 2 large ops, 1 iteration (CI);
- ``full`` (the spec v1.0): 10,000 ops (large too), iterate for at least 30 s, then stop at
  10 iterations or 60 s cumulative, whichever comes first.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from .harness import Implementation, load_implementation
from .profiling import Profiles, profiled
from .spec_common import (
    TASKS,
    SpecContext,
    SpecTaskInfo,
    data_dir,
    dataset_bytes,
    load_dataset,
    task_bytes_per_op,
)

SPEC_COLLECTIONS = ["small_doc", "small_doc_fk", "foreign_key", "large_doc", "large_doc_nested"]
PERCENTILES = [10, 25, 50, 75, 90, 95, 98, 99]


@dataclass
class SpecMode:
    """How much work each task does."""

    name: str
    ops: int
    large_ops: int
    iterations: int
    min_seconds: float = 0.0
    max_seconds: float = float("inf")

    @classmethod
    def make(
        cls,
        mode: str,
        ops: int | None = None,
        large_ops: int | None = None,
        iterations: int | None = None,
    ) -> SpecMode:
        """``quick``, ``default`` or ``full``, with optional overrides."""
        if mode == "quick":
            base = cls("quick", 20, 2, 1)
        elif mode == "full":
            base = cls("full", 10_000, 10_000, 10, min_seconds=30.0, max_seconds=60.0)
        else:
            base = cls("default", 2000, 100, 3)
        if ops is not None:
            base.ops = ops
        if large_ops is not None:
            base.large_ops = large_ops
        if iterations is not None:
            base.iterations = iterations
        return base

    def done(self, count: int, elapsed: float) -> bool:
        """Whether to stop iterating after ``count`` iterations and ``elapsed`` seconds."""
        if self.min_seconds and elapsed < self.min_seconds:
            return False
        return count >= self.iterations or elapsed >= self.max_seconds


def percentile(sorted_times: list[float], p: int) -> float:
    """The spec's nearest-rank percentile: index ``int(N * p / 100) - 1`` (at least 0)."""
    index = max(int(len(sorted_times) * p / 100) - 1, 0)
    return sorted_times[index]


async def _drop_all(uri: str, db_name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        for name in SPEC_COLLECTIONS:
            await client[db_name][name].drop()
    finally:
        await client.close()


@dataclass
class _Run:
    """One implementation's run of one task: its task object, context and samples."""

    task: Any
    sctx: SpecContext
    times: list[float]
    elapsed: float = 0.0


async def _run_task(
    info: SpecTaskInfo,
    impls: list[Implementation],
    contexts: dict[str, SpecContext],
    mode: SpecMode,
    profiles: Profiles | None = None,
) -> dict[str, dict[str, Any]]:
    """Run one task for every implementation, iteration by iteration in turn (each in its own
    database; each round starting with the next implementation), so that a drift of the
    machine's speed hits every implementation alike; each one stops when ``mode`` says so for
    its own iterations. With ``profiles``, the timed ``do`` of its implementation is
    profiled."""
    cells: dict[str, dict[str, Any]] = {}
    active: dict[str, _Run] = {}
    for impl in impls:
        if impl.module is None:
            cells[impl.name] = {"status": "n/a", "reason": impl.reason}
            continue
        task_cls = getattr(impl.module, "SPEC_TASKS", {}).get(info.name)
        if task_cls is None:
            cells[impl.name] = {
                "status": "n/a",
                "reason": f"bench.impl_{impl.name} has no spec task",
            }
            continue
        sctx = contexts[impl.name]
        run = _Run(task_cls(), sctx, [])
        try:
            await run.task.setup(sctx)
        except Exception as exc:
            cells[impl.name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            await _drop_all(sctx.uri, sctx.db_name)
            continue
        active[impl.name] = run
    turn = 0
    while active:
        # Each round starts one implementation later: a task that leaves the server busy
        # (3.2 MB documents written, a collection dropped) would otherwise always slow the
        # same next implementation.
        order = list(active.items())
        shift = turn % len(order)
        turn += 1
        for name, run in order[shift:] + order[:shift]:
            task, sctx = run.task, run.sctx
            try:
                began = time.perf_counter()
                await task.before(sctx)
                gc.collect()
                with profiled(profiles, name, info.name):
                    t0 = time.perf_counter()
                    await task.do(sctx)
                    run.times.append(time.perf_counter() - t0)
                await task.after(sctx)
                run.elapsed += time.perf_counter() - began
                if not mode.done(len(run.times), run.elapsed):
                    continue
                await task.teardown(sctx)
                cells[name] = _cell(info, mode, run.times)
            except Exception as exc:
                cells[name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            del active[name]
            await _drop_all(sctx.uri, sctx.db_name)
    return {impl.name: cells[impl.name] for impl in impls}


def _cell(info: SpecTaskInfo, mode: SpecMode, times: list[float]) -> dict[str, Any]:
    ops = mode.large_ops if info.large else mode.ops
    ordered = sorted(times)
    median = percentile(ordered, 50)
    size = task_bytes_per_op(info) * ops
    return {
        "status": "ok",
        "ops": ops,
        "iterations": len(times),
        "bytes": size,
        "median_s": median,
        "mb_per_s": size / median / 1e6,
        "times_s": [round(t, 6) for t in times],
        "percentiles_s": {str(p): percentile(ordered, p) for p in PERCENTILES},
    }


async def run_spec(
    uri: str,
    db_name: str,
    mode: SpecMode,
    peers: list[str],
    only: list[str] | None,
    log: Any = print,
    profiles: Profiles | None = None,
) -> dict[str, Any]:
    """Run the spec tasks for each implementation that has ``SPEC_TASKS`` (profiling the
    timed iterations of ``profiles``' implementation, if given)."""
    small = load_dataset("small_doc.json")
    large = load_dataset("large_doc.json")
    nested = load_dataset("large_doc_nested.json")
    impls = [load_implementation(name) for name in peers]
    contexts: dict[str, SpecContext] = {}
    for impl in impls:
        if impl.module is None:
            continue
        if not hasattr(impl.module, "SPEC_TASKS"):
            impl.reason = f"bench.impl_{impl.name} has no SPEC_TASKS"
            impl.module = None
            continue
        # Each implementation in its own database: their iterations run in turn.
        sctx = SpecContext(
            uri, f"{db_name}_{impl.name}", mode.ops, mode.large_ops, small, large, nested
        )
        try:
            await impl.module.spec_setup(sctx)
        except Exception as exc:
            impl.reason = f"spec_setup failed: {type(exc).__name__}: {exc}"
            impl.module = None
            continue
        contexts[impl.name] = sctx
        await _drop_all(uri, sctx.db_name)
    tasks = [t for t in TASKS if only is None or t.name in only]
    results: dict[str, dict[str, Any]] = {}
    try:
        for info in tasks:
            log(f"  {info.name} ...")
            cells = await _run_task(info, impls, contexts, mode, profiles)
            raw = cells.get("raw", {})
            for cell in cells.values():
                if cell.get("status") == "ok" and raw.get("status") == "ok":
                    cell["ratio_to_raw"] = round(cell["mb_per_s"] / raw["mb_per_s"], 3)
            results[info.name] = cells
    finally:
        for impl in impls:
            if impl.module is not None:
                try:
                    await impl.module.spec_teardown(contexts[impl.name])
                except Exception as exc:
                    log(f"  (spec_teardown of {impl.name} failed: {exc})")
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        for sctx in contexts.values():
            await client.drop_database(sctx.db_name)
        await client.close()
    return {
        "params": {
            "mode": mode.name,
            "ops": mode.ops,
            "large_ops": mode.large_ops,
            "iterations": mode.iterations,
            "min_seconds": mode.min_seconds,
            "max_seconds": None if mode.max_seconds == float("inf") else mode.max_seconds,
            "write_concern": "w=1",
            "data_dir": str(data_dir()),
            "dataset_bytes": {
                name: dataset_bytes(name)
                for name in ("small_doc.json", "large_doc.json", "large_doc_nested.json")
            },
        },
        "implementations": {
            impl.name: {
                "available": impl.module is not None,
                "description": impl.description,
                "reason": impl.reason,
            }
            for impl in impls
        },
        "results": results,
    }


def format_spec_table(section: dict[str, Any]) -> str:
    """The stdout table: MB/s (ratio to raw) per task per implementation."""
    impls = list(section["implementations"])
    titles = {t.name: t.title for t in TASKS}
    headers = ["task", *impls]
    rows = []
    notes = []
    for task, cells in section["results"].items():
        row = [f"{task} ({titles.get(task, '')})"]
        for name in impls:
            cell = cells[name]
            if cell["status"] != "ok":
                row.append(cell["status"])
                if section["implementations"][name]["available"]:
                    notes.append(f"{task}/{name}: {cell['status']} - {cell.get('reason')}")
                continue
            ratio = cell.get("ratio_to_raw")
            row.append(f"{cell['mb_per_s']:.4g} MB/s" + (f" {ratio:.2f}x" if ratio else ""))
        rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [
        f"  {name}: n/a - {info['reason']}"
        for name, info in section["implementations"].items()
        if not info["available"]
    ]
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)
