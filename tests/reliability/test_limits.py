"""Limits: a document over 16 MB, 100,000 inserts, 1,000-deep nesting, 500 concurrent requests.

Each ends in a success or a clear error, never a hang (every call runs under a deadline), and
nothing half-written. The HTTP load checks the app leaks no pooled connection (CMAP events:
every checkout checked in) and leaves no transaction open (``$currentOp`` with idle sessions).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import TCPConnector
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from pymongo import monitoring
from pymongo.errors import DocumentTooLarge, OperationFailure

import odm
from odm.document import Document
from odm.exceptions import OdmError

Recorder = Callable[..., None]
pytestmark = pytest.mark.odm_drivers("pymongo")


class LBlob(Document):
    data: str = ""
    n: int = 0
    meta: dict[str, Any] = {}

    class Meta:
        collection = "rel_limit_blobs"


@pytest.fixture
async def db(odm_database: Any) -> Any:
    odm.connection.get_connection().models.append(LBlob)
    odm.connection._model_aliases[LBlob] = "default"
    return odm_database


async def test_document_over_16mb_is_refused_and_nothing_written(
    db: Any, figures: Recorder
) -> None:
    with pytest.raises(DocumentTooLarge, match="too large"):
        await LBlob(data="x" * 17_000_000).insert(timeout=30)
    small = await LBlob(data="x").insert()
    small.data = "y" * 17_000_000
    with pytest.raises((DocumentTooLarge, OperationFailure), match=r"too large|larger"):
        await small.save(timeout=30)
    stored = [d async for d in db["rel_limit_blobs"].find({})]
    assert [d["data"] for d in stored] == ["x"]
    figures("limits.too_large", insert="DocumentTooLarge (driver, before sending)",
            update="DocumentTooLarge (driver, before sending)", written=len(stored) - 1)


async def test_bulk_create_100k(db: Any, figures: Recorder, odm_long: bool) -> None:
    count = 100_000
    began = time.monotonic()
    await LBlob.objects.bulk_create([LBlob(n=i) for i in range(count)])
    took = time.monotonic() - began
    stored = await db["rel_limit_blobs"].count_documents({})
    assert stored == count
    figures("limits.bulk", documents=count, seconds=round(took, 1), stored=stored)
    assert took < 120


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_thousand_deep_nesting_is_a_clear_error(db: Any, figures: Recorder) -> None:
    deep = nested(1000)
    outcomes: dict[str, str] = {}
    began = time.monotonic()
    try:
        doc = LBlob(meta=deep)
        outcomes["model"] = "accepted (pydantic)"
    except ValidationError:
        outcomes["model"] = "ValidationError"
        doc = LBlob()
    # Typed, before anything is sent (issue #19, item 5): never a RecursionError or the
    # server's untyped depth error.
    errors = (OdmError, ValidationError)
    with pytest.raises(errors) as caught:
        await LBlob(meta=deep).insert(timeout=30)
    outcomes["insert"] = f"{type(caught.value).__name__} (nothing written)"
    with pytest.raises(errors) as caught:
        await LBlob.objects.filter(meta=deep).timeout(30)
    outcomes["filter"] = type(caught.value).__name__
    q = odm.Q(data="0")
    for i in range(1000):
        q = (q | odm.Q(data=str(i))) if i % 2 else (q & odm.Q(data=str(i)))
    with pytest.raises(errors) as caught:
        await LBlob.objects.filter(q).timeout(30)
    outcomes["q"] = type(caught.value).__name__
    assert time.monotonic() - began < 60
    assert await db["rel_limit_blobs"].count_documents({}) == 0
    del doc
    figures("limits.deep", **outcomes)


class Pool(monitoring.ConnectionPoolListener):
    """Counts connection checkouts and checkins of every client (a global listener)."""

    def __init__(self) -> None:
        self.out = 0
        self.back = 0

    def connection_checked_out(self, event: Any) -> None:
        self.out += 1

    def connection_checked_in(self, event: Any) -> None:
        self.back += 1

    def _ignore(self, event: Any) -> None:
        pass

    pool_created = pool_ready = pool_cleared = pool_closed = _ignore
    connection_created = connection_ready = connection_closed = _ignore
    connection_check_out_started = connection_check_out_failed = _ignore


class Txns(monitoring.CommandListener):
    """Transactions started and finished, from the command log."""

    def __init__(self) -> None:
        self.started_txns: set[tuple[bytes, int]] = set()
        self.finished: set[tuple[bytes, int]] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        cmd = event.command
        if "lsid" not in cmd or "txnNumber" not in cmd:
            return
        key = (bytes(cmd["lsid"]["id"]), int(cmd["txnNumber"]))
        if cmd.get("startTransaction"):
            self.started_txns.add(key)
        if event.command_name in ("commitTransaction", "abortTransaction"):
            self.finished.add(key)

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def test_shop_holds_500_concurrent_requests(
    odm_uri: str, figures: Recorder, odm_long: bool
) -> None:
    from examples.shop import create_app, seed

    pool, txns = Pool(), Txns()
    monitoring.register(pool)
    monitoring.register(txns)
    name = f"odm_load_{uuid.uuid4().hex[:10]}"
    app = create_app(odm_uri, db=name, timeout=30.0)
    client: TestClient[Any, Any] = TestClient(TestServer(app), connector=TCPConnector(limit=0))
    concurrency = 500
    duration = 30.0 if odm_long else 4.0
    statuses: dict[int, int] = {}
    requests = 0
    try:
        await client.start_server()
        ids = await seed()
        # One customer per slot: transfers and orders of one wave never touch the same one.
        made = await asyncio.gather(*[
            client.post("/customers", json={"email": f"c{i}@x.io", "name": f"C{i}",
                                             "balance": 1_000_000}) for i in range(concurrency)])
        slots = [(await r.json())["id"] for r in made]
        assert all(r.status == 201 for r in made)

        async def one(i: int, wave: int) -> int:
            # Slots go in pairs (2k, 2k+1) that share a kind: in a wave, no customer is written
            # by two requests (which would be a write conflict, a legitimate 409).
            kind = (i // 2 + wave) % 4
            me, other = slots[i], slots[i ^ 1]
            if kind == 0 or (kind == 2 and i % 2 == 1):
                r = await client.get(f"/customers/{me}")
            elif kind == 1:
                r = await client.get(f"/customers/{ids['ann'].id!s}/orders")
            elif kind == 2:
                r = await client.post("/transfers", json={"source": me, "target": other,
                                                          "amount": 1})
            else:
                r = await client.post(f"/customers/{me}/orders", json={"total": 1})
            await r.read()
            return r.status

        began = time.monotonic()
        wave = 0
        while time.monotonic() - began < duration:
            for status in await asyncio.gather(*[one(i, wave) for i in range(concurrency)]):
                statuses[status] = statuses.get(status, 0) + 1
                requests += 1
            wave += 1
        elapsed = time.monotonic() - began
        admin = odm.get_client().admin
        open_txns = [op async for op in await admin.aggregate([
            {"$currentOp": {"allUsers": True, "idleSessions": True}},
            {"$match": {"transaction": {"$exists": True}, "ns": {"$regex": f"^{name}"}}},
        ])]
        leaked = pool.out - pool.back
        await odm.get_client().drop_database(name)
    finally:
        await client.close()
        monitoring._LISTENERS.command_listeners.remove(txns)  # type: ignore[attr-defined]
        monitoring._LISTENERS.cmap_listeners.remove(pool)  # type: ignore[attr-defined]
    errors = sum(n for s, n in statuses.items() if s >= 300)
    unfinished = len(txns.started_txns - txns.finished)
    figures("limits.http_load", concurrency=concurrency, duration_s=round(elapsed, 1),
            requests=requests, errors=errors, leaked_connections=leaked,
            open_transactions=len(open_txns) + unfinished, statuses=statuses)
    assert errors == 0, statuses
    assert leaked == 0
    assert open_txns == [] and unfinished == 0
