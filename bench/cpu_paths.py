"""CPU time of odm's own code paths, without a server: ``python -m bench.cpu_paths``.

The peer benchmark (``python -m bench``) times whole operations against a server, in wall-clock
seconds: on a shared machine its ratios move by more than a refactoring changes. This one
measures only the process's CPU time (``time.process_time()``, best of several rounds) of the
paths odm runs between the driver and the user, on the benchmark's own ``Item`` model and rows:

- building and compiling the filter_sort_limit query (per query);
- the filter of ``get(id=...)`` (per call);
- loading 10,000 decoded documents into models (the copy of the raw dicts subtracted);
- ``to_bson()`` of 10,000 documents;
- ``save()``'s change detection over 10,000 loaded documents with one changed field;
- the depth check before a write of a document with free-form fields (a ``dict`` of 1,000
  values, a list of 200 small dicts), per document, beside its ``to_bson()``.

To compare two versions, run it from each checkout in turn (``PYTHONPATH=<checkout> python
-m bench.cpu_paths``), alternating, and compare the best of each (docs/performance-internals.md,
"Changing the code without slowing it").
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import bson

from bench.common import make_queries, make_rows
from bench.impl_odm import Item
from odm import Document
from odm.executor import CODEC_OPTIONS
from odm.models.loading import load_documents
from odm.models.save_plan import changes
from odm.models.tracking import get_snapshot
from odm.nesting import check_payload
from odm.query import compiler

N = 10_000
QUERIES = 2_000
FREE_FORM = 100


class FreeForm(Document):
    """A document whose fields nest freely: every write of it is checked for depth."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]]

    class Meta:
        collection = "cpu_paths_free_form"


def best(work: Callable[[], object], rounds: int = 9) -> float:
    """Return the least CPU time, in seconds, of ``rounds`` runs of ``work``."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return min(times)


def measure() -> dict[str, float]:
    """Return each path's CPU time (µs per call, or ms per 10,000 documents)."""
    rows = make_rows(N)
    documents = [Item(**row) for row in rows]
    # What the driver hands over: decoded BSON with aware datetimes.
    raws = [
        bson.decode(bson.encode(d.to_bson()), codec_options=CODEC_OPTIONS) for d in documents
    ]
    queries = make_queries(QUERIES)
    loaded = load_documents(Item, [dict(raw) for raw in raws], lenient=False)
    for document in loaded:
        document.views += 1
    ids = [raw["_id"] for raw in raws[:QUERIES]]

    def build_and_compile() -> None:
        for category, min_price in queries:
            page = Item.objects.filter(category=category, price__gte=min_price)
            compiler.compile_query(page.order_by("-created_at")[:20].query)

    def id_filters() -> None:
        for ident in ids:
            Item.objects.filter(id=ident)

    def copies() -> None:
        [dict(raw) for raw in raws]

    def load() -> None:
        load_documents(Item, [dict(raw) for raw in raws], lenient=False)

    def dump() -> None:
        for document in documents:
            document.to_bson()

    snapshots = [get_snapshot(document) or {} for document in loaded]

    def diff() -> None:
        for document, snapshot in zip(loaded, snapshots, strict=True):
            changes(document, snapshot)

    free_form = FreeForm(
        meta={f"k{i}": i for i in range(1000)},
        rows=[{"a": i, "b": [i, "x"], "c": {"d": 1.5}} for i in range(200)],
    )
    stored = [free_form.to_bson()]

    def depth_checks() -> None:
        for _ in range(FREE_FORM):
            check_payload(FreeForm, stored)

    def free_form_dumps() -> None:
        for _ in range(FREE_FORM):
            free_form.to_bson()

    return {
        "depth check of a free-form document (us/document)": best(depth_checks) / FREE_FORM * 1e6,
        "to_bson of that document (us/document)": best(free_form_dumps) / FREE_FORM * 1e6,
        "build+compile filter_sort_limit (us/query)": best(build_and_compile) / QUERIES * 1e6,
        "filter(id=) (us/call)": best(id_filters) / QUERIES * 1e6,
        "load 10k documents (ms)": (best(load) - best(copies)) * 1e3,
        "to_bson 10k documents (ms)": best(dump) * 1e3,
        "save diff 10k documents (ms)": best(diff) * 1e3,
    }


if __name__ == "__main__":
    print(json.dumps({k: round(v, 2) for k, v in measure().items()}, indent=2))
