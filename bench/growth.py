"""``--growth``: how the cost of the bulk workloads grows with the collection's size N.

For each N (default 1,000, 10,000 and 100,000) the collections are seeded with N documents and
``insert_many``, ``find_all``, ``filter_sort_limit`` and ``stream_memory`` run for each
implementation:

- **time**: the workloads' own harness (:func:`bench.harness.run_workloads`: interleaved
  rounds, median, ratio to raw in the same run); ``stream_memory`` is timed in its subprocess
  (one run per implementation);
- **peak memory**: one call in a fresh subprocess per implementation (``bench.stream_worker``),
  the growth of the resident set over the process's size before the call. A first call in a
  process, so it includes what the implementation builds once (validators, plans: a few MB at
  most), which shows as a constant part at small N.

The unit of each row is what should stay flat if the cost is linear: time and memory per
document for ``insert_many``, ``find_all`` and ``stream_memory`` (N documents each), time per
query for ``filter_sort_limit`` (a fixed number of indexed queries of 20 documents, on a
collection of N: it should not grow at all). ``stream_memory``'s memory should not grow with
N either (one batch at a time), so its row shows MB, not MB per document.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .common import STREAM_ITEMS, Counts
from .harness import Seeder, _run_stream_worker, run_workloads

GROWTH_WORKLOADS = ["insert_many", "find_all", "filter_sort_limit", "stream_memory"]
DEFAULT_SIZES = [1_000, 10_000, 100_000]
QUICK_SIZES = [100, 300]
#: Workloads whose cost is per document (N of them); the others are per query.
PER_DOCUMENT = {"insert_many", "find_all", "stream_memory"}
#: Workloads whose peak memory is expected to stay flat whatever N is.
FLAT_MEMORY = {"filter_sort_limit", "stream_memory"}


def growth_counts(n: int, quick: bool) -> Counts:
    """The workload sizes for one N: N documents in ``items`` and in ``stream_items``."""
    counts = Counts.quick() if quick else Counts()
    counts.n = n
    counts.stream = n
    return counts


async def _memory(
    seeder: Seeder, impl: str, uri: str, db_name: str, n: int, workload: str
) -> dict[str, Any]:
    """Peak memory of one call of ``workload`` in a fresh process (an error: the reason)."""
    if workload == "insert_many":
        await seeder.reset_items(seed=False)
    try:
        measured = await asyncio.to_thread(_run_stream_worker, impl, uri, db_name, n, workload)
    except Exception as exc:
        return {"status": "error", "reason": str(exc)}
    return {"status": "ok", **measured}


async def run_growth(
    uri: str,
    db_name: str,
    sizes: list[int],
    peers: list[str],
    repeat: int,
    quick: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Run the growth workloads at each size; return the JSON section (``sizes`` and, per
    workload, per N, per implementation: ``median_s``, ``ratio_to_raw``, ``peak_growth_mb``,
    ``unit_us`` and ``unit_kb``)."""
    results: dict[str, dict[str, dict[str, Any]]] = {w: {} for w in GROWTH_WORKLOADS}
    available: dict[str, str] = {}
    for n in sizes:
        log(f"N = {n:,}")
        counts = growth_counts(n, quick)
        section = await run_workloads(uri, db_name, counts, repeat, peers, GROWTH_WORKLOADS, log)
        for name, info in section["implementations"].items():
            available.setdefault(name, "" if info["available"] else info["reason"])
        seeder = Seeder(uri, db_name, counts)
        try:
            await seeder.reset_items(seed=True)
            await seeder.seed_stream(counts.stream)
            for workload in GROWTH_WORKLOADS:
                row: dict[str, Any] = {}
                for impl in peers:
                    cell = dict(section["results"][workload][impl])
                    if cell["status"] == "ok" and workload != "stream_memory":
                        log(f"  {workload} {impl}: peak memory ...")
                        memory = await _memory(seeder, impl, uri, db_name, n, workload)
                        if memory["status"] == "ok":
                            cell["peak_growth_mb"] = memory["growth_mb"]
                        else:
                            cell["memory_error"] = memory["reason"]
                    elif cell["status"] == "ok":
                        cell["median_s"] = cell["seconds"]
                        cell["cpu_median_s"] = cell["cpu_s"]
                        cell["peak_growth_mb"] = cell["growth_mb"]
                    _per_unit(cell, workload, counts)
                    row[impl] = cell
                if workload == "insert_many":
                    await seeder.reset_items(seed=True)
                results[workload][str(n)] = row
            await seeder.db[STREAM_ITEMS].drop()
        finally:
            await seeder.close()
    _stream_ratios(results)
    return {
        "params": {"sizes": sizes, "repeat": repeat, "peers": peers, "write_concern": "w=1"},
        "implementations": {
            name: {"available": not reason, "reason": reason} for name, reason in available.items()
        },
        "results": results,
    }


def _per_unit(cell: dict[str, Any], workload: str, counts: Counts) -> None:
    if cell.get("status") != "ok":
        return
    units = counts.n if workload in PER_DOCUMENT else counts.filter_sort_limit
    cell["units"] = units
    cell["unit_us"] = round(cell["median_s"] / units * 1e6, 3)
    cell["unit_cpu_us"] = round(cell["cpu_median_s"] / units * 1e6, 3)
    if "peak_growth_mb" in cell and workload not in FLAT_MEMORY:
        cell["unit_kb"] = round(cell["peak_growth_mb"] * 1024 / units, 3)


def _stream_ratios(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    # run_workloads gives stream_memory a memory ratio; here ratio_to_raw is one of wall time
    # for every workload, and cpu_ratio_to_raw one of the client's CPU time.
    for workload, by_n in results.items():
        for row in by_n.values():
            raw = row.get("raw", {})
            if raw.get("status") != "ok":
                continue
            for cell in row.values():
                if cell.get("status") != "ok":
                    continue
                if workload == "stream_memory":
                    cell["ratio_to_raw"] = round(cell["median_s"] / raw["median_s"], 3)
                if raw["cpu_median_s"] > 0:
                    cell["cpu_ratio_to_raw"] = round(
                        cell["cpu_median_s"] / raw["cpu_median_s"], 3
                    )


def format_growth_table(section: dict[str, Any]) -> str:
    """The stdout tables: one per workload, a row per N and implementation: wall and client
    CPU time per unit (each with its ratio to raw at that N) and the peak memory growth (and
    per document, where it should grow linearly)."""
    impls = list(section["params"]["peers"])
    lines: list[str] = []
    for workload, by_n in section["results"].items():
        unit = "doc" if workload in PER_DOCUMENT else "query"
        lines.append(workload)
        headers = ["N", "impl", f"wall/{unit}", "x raw", f"cpu/{unit}", "x raw", "peak memory"]
        rows = []
        for n, cells in by_n.items():
            for name in impls:
                cell = cells.get(name, {"status": "n/a"})
                if cell["status"] != "ok":
                    rows.append([f"{int(n):,}", name, cell["status"], "", "", "", ""])
                    continue
                memory = ""
                if "peak_growth_mb" in cell:
                    memory = f"{cell['peak_growth_mb']:+.1f} MB"
                    if "unit_kb" in cell:
                        memory += f" ({cell['unit_kb']:.2f} KB/doc)"
                rows.append([
                    f"{int(n):,}",
                    name,
                    f"{cell['unit_us']:.2f} us",
                    f"{cell.get('ratio_to_raw', 0):.2f}x",
                    f"{cell['unit_cpu_us']:.2f} us",
                    f"{cell.get('cpu_ratio_to_raw', 0):.2f}x",
                    memory,
                ])
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        lines.append("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.append("")
    lines += [
        f"  {name}: n/a - {info['reason']}"
        for name, info in section["implementations"].items()
        if not info["available"]
    ]
    return "\n".join(lines).rstrip()


__all__ = [
    "DEFAULT_SIZES",
    "GROWTH_WORKLOADS",
    "QUICK_SIZES",
    "format_growth_table",
    "growth_counts",
    "run_growth",
]
