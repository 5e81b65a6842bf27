"""The per-operation pieces of odm and of the floor, warm and with cold caches:
``python -m bench.cold_paths``.

One operation at a time, odm's CPU time over the floor's is several times what its pieces
cost when timed in a loop (``python -m bench.cpu_paths``), and callgrind's instruction counts
under-state it too. Between two operations the driver, the event loop and the socket code run
and push odm's code and data out of the processor's caches, so each piece pays for fetching
them again. This module times each piece per call twice: right after a call of the same piece
(warm), and right after walking a list of dicts larger than the processor's L2 cache (cold: that
cache refilled with other data, as a round trip does, when the server and the kernel's network
code run on the same cores). No server is needed.

The pieces are those of the benchmark's one-at-a-time workloads, the floor's beside odm's:
validating or loading one document and a page of 20, the filter of ``get(id=...)``, building
and compiling the filter_sort_limit query and the transfer's ``update()``, and ``save()``'s
change detection. Each is reported as the median over many calls, in µs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import bson

from bench.common import make_queries, make_rows
from bench.impl_odm import Account, Item
from bench.impl_pydantic import ITEM_LIST
from bench.impl_pydantic import Item as FloorItem
from odm import F
from odm.executor import CODEC_OPTIONS
from odm.models.loading import load_documents
from odm.models.save_plan import changes
from odm.models.tracking import get_snapshot
from odm.query import compiler
from odm.query.where import id_filter

#: Dicts walked between two calls: some 8 MB, twice the L2 caches of the machines we run on
#: (2 MB per core); ``--eviction 15000`` stays within them and changes little.
EVICTION_DICTS = 40_000
#: The page of filter_sort_limit (its query takes 20 documents).
PAGE = 20


def _evictor(size: int) -> Callable[[], int]:
    junk = [{f"k{i}": i} for i in range(size)]

    def evict() -> int:
        total = 0
        for item in junk:
            total += len(item)
        return total

    return evict


def timed(piece: Callable[[], object], evict: Callable[[], int], calls: int) -> tuple[float, float]:
    """Return the median µs of ``piece`` per call: warm (after a call of itself), cold (after
    ``evict()``)."""
    warm, cold = [], []
    for _ in range(calls):
        piece()
        start = time.perf_counter_ns()
        piece()
        warm.append(time.perf_counter_ns() - start)
        evict()
        start = time.perf_counter_ns()
        piece()
        cold.append(time.perf_counter_ns() - start)
    return statistics.median(warm) / 1000, statistics.median(cold) / 1000


def pieces() -> dict[str, Callable[[], Any]]:
    """Return the pieces by name, on the benchmark's own models and rows."""
    rows = make_rows(PAGE)
    # What the driver hands over: decoded BSON with aware datetimes.
    page = [
        bson.decode(bson.encode(Item(**row).to_bson()), codec_options=CODEC_OPTIONS)
        for row in rows
    ]
    one = page[0]
    ident = one["_id"]
    (category, min_price), = make_queries(1)
    document = load_documents(Item, [dict(one)], lenient=False)[0]
    snapshot = get_snapshot(document) or {}
    document.stock += 1

    def page_query() -> None:
        query = Item.objects.filter(category=category, price__gte=min_price)
        compiler.compile_query(query.order_by("-created_at")[:PAGE].query)

    def update() -> None:
        compiler.compile_update_spec(Account, {"balance": F("balance") + 5})
        compiler.compile_write(Account.objects.filter(id=ident).query)

    def get_filter() -> None:
        Item.objects._by_id_only()
        id_filter(Item, "id", ident)

    return {
        "floor: validate 1 document": lambda: FloorItem.model_validate(one),
        "odm: load 1 document": lambda: load_documents(Item, [one], lenient=False),
        "odm: get(id=) filter": get_filter,
        f"floor: validate {PAGE} documents": lambda: ITEM_LIST.validate_python(page),
        f"odm: load {PAGE} documents": lambda: load_documents(Item, page, lenient=False),
        "odm: filter_sort_limit query, built and compiled": page_query,
        "odm: transfer's update(), built and compiled": update,
        "odm: save() change detection": lambda: changes(document, snapshot),
    }


def measure(calls: int = 400, eviction: int = EVICTION_DICTS) -> dict[str, dict[str, float]]:
    """Return ``{piece: {"warm": µs, "cold": µs}}``."""
    evict = _evictor(eviction)
    report = {}
    for name, piece in pieces().items():
        warm, cold = timed(piece, evict, calls)
        report[name] = {"warm": round(warm, 2), "cold": round(cold, 2)}
    return report


def main() -> None:
    """Print the report as JSON (``--calls`` and ``--eviction`` make a quick run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per piece (400)")
    parser.add_argument(
        "--eviction", type=int, default=EVICTION_DICTS, help="dicts walked to evict (40,000)"
    )
    options = parser.parse_args()
    print(json.dumps(measure(options.calls, options.eviction), indent=2))


if __name__ == "__main__":
    main()
