"""The peer benchmark: seed the data, run every workload of every implementation, report.

Implementations are the modules ``bench.impl_<name>``; a module that is missing or fails to
import, or whose ``WORKLOADS`` lacks a workload, is reported "n/a" with the reason. Repeats are
interleaved (round r runs every implementation once, starting one implementation later than
round r - 1) so that drift on a busy machine, and the server work one implementation leaves
behind, hit every column alike; each cell is the median of ``repeat`` rounds.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import random
import statistics
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from .common import (
    ACCOUNT_COUNT,
    ACCOUNTS,
    INITIAL_BALANCE,
    ITEMS,
    STREAM_ITEMS,
    WORKLOAD_NAMES,
    Context,
    Counts,
    make_queries,
    make_rows,
    make_transfers,
)
from .profiling import Profiles, profiled


@dataclass
class Implementation:
    """One column: the module (or why there is none) and its context."""

    name: str
    module: ModuleType | None = None
    reason: str = ""
    ctx: Context | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def workload(self, name: str) -> tuple[Any, str]:
        """The workload function, or ``None`` and why not."""
        if self.module is None:
            return None, self.reason
        fn = getattr(self.module, "WORKLOADS", {}).get(name)
        if fn is None:
            unsupported = getattr(self.module, "UNSUPPORTED", {})
            return None, unsupported.get(name, f"bench.impl_{self.name} has no {name!r} workload")
        return fn, ""


def load_implementation(name: str) -> Implementation:
    """Import ``bench.impl_<name>``; a failure becomes the "n/a" reason."""
    try:
        module = importlib.import_module(f"bench.impl_{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.impl_{name}":
            return Implementation(name, reason=f"bench/impl_{name}.py not written yet")
        return Implementation(name, reason=f"import failed: {exc}")
    except Exception as exc:  # any error in a peer's import must not stop the run
        return Implementation(name, reason=f"import failed: {type(exc).__name__}: {exc}")
    return Implementation(name, module=module, description=getattr(module, "DESCRIPTION", name))


def _expected(workload: str, ctx: Context, active: int) -> int | None:
    counts = ctx.counts
    return {
        "insert_many": counts.n,
        "find_all": counts.n,
        "get_by_id": len(ctx.ids),
        "update_many": active,
        "aggregate_group": None,
        "filter_sort_limit": None,
        "save_changed_field": len(ctx.save_ids),
        "transaction_transfer": len(ctx.transfers),
    }.get(workload)


class Seeder:
    """Puts the shared data in place with a raw client, outside every timing."""

    def __init__(self, uri: str, db_name: str, counts: Counts) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        self.db = self.client[db_name]
        self.counts = counts
        self.rows = make_rows(counts.n)
        self.item_ids = [ObjectId() for _ in self.rows]
        self.active = sum(1 for r in self.rows if r["active"])
        self.items_seeded = False

    async def reset_items(self, seed: bool) -> None:
        """Drop ``items``, recreate its indexes, insert the canonical rows if ``seed``."""
        coll = self.db[ITEMS]
        await coll.drop()
        await coll.create_index([("category", ASCENDING), ("created_at", DESCENDING)])
        if seed:
            docs = [dict(row, _id=_id) for row, _id in zip(self.rows, self.item_ids, strict=True)]
            await coll.insert_many(docs)
        self.items_seeded = seed

    async def seed_accounts(self) -> list[ObjectId]:
        """(Re)create the accounts, all with the same balance."""
        coll = self.db[ACCOUNTS]
        await coll.drop()
        await self.db.create_collection(ACCOUNTS)  # transactions cannot create collections
        ids = [ObjectId() for _ in range(ACCOUNT_COUNT)]
        await coll.insert_many(
            [
                {"_id": i, "owner": f"owner-{n}", "balance": INITIAL_BALANCE}
                for n, i in enumerate(ids)
            ]
        )
        return ids

    async def seed_stream(self, count: int) -> None:
        """Fill ``stream_items`` with ``count`` documents of the items shape."""
        coll = self.db[STREAM_ITEMS]
        await coll.drop()
        batch = make_rows(min(count, 10_000), seed=99)
        done = 0
        while done < count:
            chunk = batch[: count - done]
            await coll.insert_many([dict(row) for row in chunk])
            done += len(chunk)

    async def close(self, drop: bool = True) -> None:
        """Drop the benchmark database and close the client."""
        if drop:
            await self.client.drop_database(self.db.name)
        await self.client.close()


def _pick(ids: list[ObjectId], count: int, seed: int) -> list[ObjectId]:
    rng = random.Random(seed)
    return [rng.choice(ids) for _ in range(count)]


async def _timed(
    fn: Any, ctx: Context, profiling: AbstractContextManager[None]
) -> tuple[float, float, int]:
    """Run ``fn(ctx)``: its wall time, the CPU time of this process (the client's own work,
    every thread; not the server's, and far less moved than wall time by other processes
    sharing the machine) and its result."""
    gc.collect()
    with profiling:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await fn(ctx)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return elapsed, cpu, int(result)


def _run_stream_worker(
    impl: str, uri: str, db: str, expected: int, workload: str = "stream_memory"
) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.stream_worker", impl, uri, db, str(expected), workload],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"stream worker failed: {tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


async def run_workloads(
    uri: str,
    db_name: str,
    counts: Counts,
    repeat: int,
    peers: list[str],
    only: list[str] | None,
    log: Any = print,
    profiles: Profiles | None = None,
) -> dict[str, Any]:
    """Run the selected workloads for ``peers`` (``raw`` first); return the JSON section.
    With ``profiles``, the timed calls of its implementation are profiled."""
    workloads = [w for w in WORKLOAD_NAMES if only is None or w in only]
    seeder = Seeder(uri, db_name, counts)
    await seeder.reset_items(seed=False)
    account_ids = await seeder.seed_accounts()
    base = Context(
        uri=uri,
        db_name=db_name,
        counts=counts,
        rows=seeder.rows,
        ids=_pick(seeder.item_ids, counts.get_by_id, 1),
        save_ids=_pick(seeder.item_ids, counts.save_changed_field, 2),
        queries=make_queries(counts.filter_sort_limit),
        transfers=make_transfers(account_ids, counts.transaction_transfer),
    )
    impls = [load_implementation(name) for name in peers]
    for impl in impls:
        if impl.module is None:
            continue
        impl.ctx = Context(**{**base.__dict__, "state": {}})
        try:
            await impl.module.setup(impl.ctx)
        except Exception as exc:
            impl.reason = f"setup failed: {type(exc).__name__}: {exc}"
            impl.module = None
            impl.ctx = None

    results: dict[str, dict[str, Any]] = {}
    try:
        for workload in workloads:
            log(f"  {workload} ...")
            if workload == "stream_memory":
                results[workload] = await _stream(seeder, impls, uri, db_name, counts, log)
                continue
            results[workload] = await _one_workload(workload, seeder, impls, repeat, profiles)
    finally:
        for impl in impls:
            if impl.module is not None and impl.ctx is not None:
                try:
                    await impl.module.teardown(impl.ctx)
                except Exception as exc:  # a peer's teardown must not lose the results
                    log(f"  (teardown of {impl.name} failed: {exc})")
        await seeder.close()

    _add_ratios(results)
    return {
        "params": {
            "n": counts.n,
            "repeat": repeat,
            "get_by_id": counts.get_by_id,
            "filter_sort_limit": counts.filter_sort_limit,
            "save_changed_field": counts.save_changed_field,
            "transaction_transfer": counts.transaction_transfer,
            "stream_docs": counts.stream,
            "write_concern": "w=1",
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


async def _one_workload(
    workload: str,
    seeder: Seeder,
    impls: list[Implementation],
    repeat: int,
    profiles: Profiles | None,
) -> dict[str, Any]:
    cells: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = {}
    cpu_times: dict[str, list[float]] = {}
    runnable = []
    for impl in impls:
        fn, reason = impl.workload(workload)
        if fn is None:
            cells[impl.name] = {"status": "n/a", "reason": reason}
        else:
            runnable.append((impl, fn))
            times[impl.name] = []
            cpu_times[impl.name] = []
    if workload != "insert_many" and not seeder.items_seeded:
        await seeder.reset_items(seed=True)
    for round_index in range(repeat):
        # Each round starts one implementation later, so that the server work one leaves
        # behind (10,000 documents just written, a collection dropped) does not always land
        # on the same next implementation.
        shift = round_index % len(runnable) if runnable else 0
        for impl, fn in runnable[shift:] + runnable[:shift]:
            if impl.name in cells:  # failed in an earlier round
                continue
            if workload == "insert_many":
                await seeder.reset_items(seed=False)
            assert impl.ctx is not None
            try:
                seconds, cpu, count = await _timed(
                    fn, impl.ctx, profiled(profiles, impl.name, workload)
                )
            except Exception as exc:
                cells[impl.name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                continue
            expected = _expected(workload, impl.ctx, seeder.active)
            if expected is not None and count != expected:
                cells[impl.name] = {
                    "status": "error",
                    "reason": f"returned {count}, expected {expected}",
                }
                continue
            times[impl.name].append(seconds)
            cpu_times[impl.name].append(cpu)
    if workload == "insert_many":
        await seeder.reset_items(seed=True)
    for impl, _fn in runnable:
        if impl.name not in cells:
            samples = times[impl.name]
            cells[impl.name] = {
                "status": "ok",
                "median_s": statistics.median(samples),
                "times_s": [round(t, 6) for t in samples],
                "cpu_median_s": statistics.median(cpu_times[impl.name]),
            }
    return {name: cells[name] for name in [i.name for i in impls]}


async def _stream(
    seeder: Seeder,
    impls: list[Implementation],
    uri: str,
    db_name: str,
    counts: Counts,
    log: Any,
) -> dict[str, Any]:
    await seeder.seed_stream(counts.stream)
    cells: dict[str, Any] = {}
    for impl in impls:
        fn, reason = impl.workload("stream_memory")
        if fn is None:
            cells[impl.name] = {"status": "n/a", "reason": reason}
            continue
        try:
            measured = await asyncio.to_thread(
                _run_stream_worker, impl.name, uri, db_name, counts.stream
            )
        except Exception as exc:
            cells[impl.name] = {"status": "error", "reason": str(exc)}
            continue
        if measured["count"] != counts.stream:
            cells[impl.name] = {
                "status": "error",
                "reason": f"streamed {measured['count']}, expected {counts.stream}",
            }
            continue
        cells[impl.name] = {"status": "ok", **measured}
    await seeder.db[STREAM_ITEMS].drop()
    return cells


def _add_ratios(results: dict[str, dict[str, Any]]) -> None:
    for workload, cells in results.items():
        key = "growth_mb" if workload == "stream_memory" else "median_s"
        raw = cells.get("raw", {})
        if raw.get("status") != "ok" or not raw.get(key):
            continue
        for cell in cells.values():
            if cell.get("status") == "ok":
                cell["ratio_to_raw"] = round(cell[key] / raw[key], 3)


def format_table(section: dict[str, Any]) -> str:
    """The stdout table: median seconds (ratio to raw) per workload per implementation."""
    impls = list(section["implementations"])
    headers = ["workload", *impls]
    rows = []
    notes: list[str] = []
    for workload, cells in section["results"].items():
        row = [workload]
        for name in impls:
            cell = cells.get(name, {"status": "n/a", "reason": ""})
            if cell["status"] != "ok":
                row.append(cell["status"])
                if section["implementations"][name]["available"]:
                    notes.append(f"{workload}/{name}: {cell['status']} - {cell.get('reason')}")
            elif workload == "stream_memory":
                row.append(f"+{cell['growth_mb']:.1f} MB ({cell['seconds']:.2f} s)")
            else:
                ratio = cell.get("ratio_to_raw")
                ratio_text = f" {ratio:.2f}x" if ratio is not None else ""
                row.append(f"{cell['median_s']:.4f} s{ratio_text}")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
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
