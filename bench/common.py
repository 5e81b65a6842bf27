"""What every implementation module shares: the document shape, the run context, the data.

The peer benchmark works on one document shape, the same for every implementation. A document
of the ``items`` collection (about 300 bytes of BSON)::

    {
        "_id": ObjectId,
        "name": str,                  # "item-000042"
        "sku": str,                   # "SKU-00000042"
        "category": str,              # one of CATEGORIES ("cat-00" .. "cat-19")
        "price": float,               # 1.0 .. 500.0
        "stock": int,                 # 0 .. 999
        "active": bool,               # about 3 in 4 are True
        "views": int,                 # 0 at first; update_many $inc's it
        "tags": list[str],            # 1 to 4 of TAGS
        "created_at": datetime,       # UTC, millisecond precision (what BSON keeps)
        "dimensions": {               # an embedded document
            "width": float, "height": float, "depth": float, "unit": str,
        },
    }

The ``accounts`` collection (transaction_transfer) holds ``{"_id": ObjectId, "owner": str,
"balance": int}``; ``stream_items`` (the memory workload) holds documents of the ``items`` shape.

Every implementation gets the same :class:`Context`, built by the harness; see
``bench/README.md`` for the interface an implementation module follows.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from bson import ObjectId

ITEMS = "items"
ACCOUNTS = "accounts"
STREAM_ITEMS = "stream_items"

CATEGORIES = [f"cat-{i:02d}" for i in range(20)]
TAGS = ["red", "green", "blue", "sale", "new", "eco", "premium", "bulk"]
UNITS = ["cm", "mm", "in"]
PAGE_SIZE = 20  # filter_sort_limit's limit
ACCOUNT_COUNT = 100
INITIAL_BALANCE = 1_000_000

#: The workloads of the peer benchmark, in the order they run and print.
WORKLOAD_NAMES = [
    "insert_many",
    "find_all",
    "get_by_id",
    "filter_sort_limit",
    "update_many",
    "aggregate_group",
    "save_changed_field",
    "transaction_transfer",
    "stream_memory",
]
#: The implementations, in column order; ``raw`` is the baseline of every ratio, ``pydantic``
#: (raw plus plain pydantic models) the floor of an ODM that hands out validated models.
IMPLEMENTATIONS = ["raw", "pydantic", "motor", "odm", "beanie", "odmantic"]

#: The aggregate_group pipeline every implementation runs (an ODM may build it its own way,
#: but must ask the server for the same thing).
GROUP_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"active": True}},
    {
        "$group": {
            "_id": "$category",
            "count": {"$sum": 1},
            "avg_price": {"$avg": "$price"},
            "total_stock": {"$sum": "$stock"},
        }
    },
    {"$sort": {"_id": 1}},
]


@dataclass
class Counts:
    """How many operations each workload does (the issue's defaults; ``--quick`` shrinks them)."""

    n: int = 10_000
    get_by_id: int = 2000
    filter_sort_limit: int = 300
    save_changed_field: int = 2000
    transaction_transfer: int = 200
    stream: int = 200_000

    @classmethod
    def quick(cls) -> Counts:
        """Tiny sizes for the CI smoke test."""
        return cls(
            n=200, get_by_id=30, filter_sort_limit=10, save_changed_field=30,
            transaction_transfer=10, stream=2000,
        )


@dataclass
class Context:
    """Everything a workload function may use; built once per run by the harness.

    ``rows`` are plain dicts without ``_id`` (insert_many builds its documents from them and
    must not mutate them); ``ids`` are ``_id`` values of seeded ``items`` (get_by_id);
    ``save_ids`` likewise (save_changed_field); ``queries`` are ``(category, min_price)``
    pairs (filter_sort_limit); ``transfers`` are ``(from_id, to_id, amount)`` between
    ``accounts``. ``state`` is the implementation's own scratch space (clients, models).
    """

    uri: str
    db_name: str
    counts: Counts
    rows: list[dict[str, Any]] = field(default_factory=list)
    ids: list[ObjectId] = field(default_factory=list)
    save_ids: list[ObjectId] = field(default_factory=list)
    queries: list[tuple[str, float]] = field(default_factory=list)
    transfers: list[tuple[ObjectId, ObjectId, int]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def make_rows(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """Return ``n`` deterministic item rows (no ``_id``)."""
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        created = base + timedelta(seconds=rng.randrange(0, 365 * 86400), milliseconds=i % 1000)
        rows.append(
            {
                "name": f"item-{i:06d}",
                "sku": f"SKU-{i:08d}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "price": round(rng.uniform(1.0, 500.0), 2),
                "stock": rng.randrange(0, 1000),
                "active": rng.random() < 0.75,
                "views": 0,
                "tags": rng.sample(TAGS, rng.randint(1, 4)),
                "created_at": created,
                "dimensions": {
                    "width": round(rng.uniform(1, 100), 1),
                    "height": round(rng.uniform(1, 100), 1),
                    "depth": round(rng.uniform(1, 100), 1),
                    "unit": UNITS[i % len(UNITS)],
                },
            }
        )
    return rows


def make_queries(count: int, seed: int = 7) -> list[tuple[str, float]]:
    """Return ``count`` ``(category, min_price)`` filters for filter_sort_limit."""
    rng = random.Random(seed)
    return [(rng.choice(CATEGORIES), float(rng.randrange(0, 400))) for _ in range(count)]


def make_transfers(
    account_ids: list[ObjectId], count: int, seed: int = 11
) -> list[tuple[ObjectId, ObjectId, int]]:
    """Return ``count`` transfers between distinct accounts."""
    rng = random.Random(seed)
    transfers = []
    for _ in range(count):
        a, b = rng.sample(account_ids, 2)
        transfers.append((a, b, rng.randint(1, 100)))
    return transfers


def with_write_concern(uri: str, w: int = 1) -> str:
    """Return ``uri`` with ``w=<w>`` in its options (every implementation connects with it)."""
    if "?" in uri:
        if re.search(r"[?&]w=", uri):
            return uri
        return f"{uri}&w={w}"
    rest = uri.split("://", 1)[-1]
    return f"{uri}?w={w}" if "/" in rest else f"{uri}/?w={w}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(mongod_version: str | None) -> dict[str, Any]:
    """Describe the machine and the software versions of this run."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _mem_total_gb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "pymongo": _version("pymongo"),
        "pydantic": _version("pydantic"),
        "motor": _version("motor"),
        "beanie": _version("beanie"),
        "odmantic": _version("odmantic"),
        # Distributed as odm-mongo (the name odm on the package index is another project's).
        "odm": _version("odm-mongo"),
        "mongod": mongod_version,
    }


T = TypeVar("T")


def on_server(uri: str | None, work: Callable[[str], T]) -> T:
    """Return ``work(uri)``; without ``uri``, ``work`` gets the URI of a throwaway single-node
    replica set (``odm.server.LocalServer``), stopped when it returns."""
    if uri:
        return work(uri)
    from odm.server import LocalServer

    with LocalServer(cache_size_gb=1.0) as server:
        return work(server.uri)


def add_data_options(parser: argparse.ArgumentParser, db: str) -> None:
    """The options of a tool on the seeded data: ``--uri``, ``--db`` (default ``db``), ``--n``
    and ``--only``."""
    parser.add_argument("--uri", help="MongoDB replica set URI (else start a LocalServer)")
    parser.add_argument("--db", default=db)
    parser.add_argument("--n", type=int, default=3000, help="items seeded (3,000)")
    parser.add_argument("--only", help="comma-separated workloads")
