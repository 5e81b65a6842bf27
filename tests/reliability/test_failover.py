"""Replica-set failover under a load of concurrent ODM writes: nothing acknowledged is lost.

A module-scoped 3-member replica set on 127.0.0.1. Workers run, at the same time, inserts with
unique keys, ``save()`` of a changed list (a ``$push`` of an operation id, so a double apply
shows as a duplicate), ``F()`` updates (counter and log in one ``update_many``) and
``@odm.atomic`` transfers between accounts (each with a unique transfer record). The primary is
stepped down in one test and SIGKILLed in the other. Then:

- every write the ODM acknowledged is in the database exactly once (``lost == 0``);
- nothing is applied twice (no duplicate in any log; each counter equals its log's length);
- the money total is unchanged, and each balance equals what the stored transfer records say;
- a write that raised counts as *unknown* (it may or may not have been applied), never as lost,
  but nothing appears that was never attempted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from pymongo import MongoClient, monitoring
from pymongo.errors import PyMongoError

import odm
from odm.document import Document
from odm.exceptions import OdmError
from odm.models.fields import Indexed
from odm.query.expressions import F
from odm.server import LocalServer, memory_temp_dir

Recorder = Callable[..., None]

OP_TIMEOUT = 30.0
"""Per-operation deadline (CSOT): long enough to ride out an election."""
ACCOUNTS = 12
START_BALANCE = 1_000
COUNTERS = 4


class REntry(Document):
    key: Annotated[str, Indexed(unique=True)]
    worker: int

    class Meta:
        collection = "rel_entries"


class RProfile(Document):
    owner: int
    version: int = 0
    log: list[str] = []

    class Meta:
        collection = "rel_profiles"


class RCounter(Document):
    n: int = 0
    ops: list[str] = []

    class Meta:
        collection = "rel_counters"


class RAccount(Document):
    balance: int

    class Meta:
        collection = "rel_accounts"


class RTransfer(Document):
    op: Annotated[str, Indexed(unique=True)]
    source: str
    target: str
    amount: int

    class Meta:
        collection = "rel_transfers"


MODELS: list[type[Document]] = [REntry, RProfile, RCounter, RAccount, RTransfer]
RETRYABLE = {"insert", "update", "delete", "findAndModify"}


class RetryCounter(monitoring.CommandListener):
    """Counts the commands sent again with the same session and transaction number: retries."""

    def __init__(self) -> None:
        self.seen: set[tuple[Any, ...]] = set()
        self.write_retries = 0
        self.commit_retries = 0
        self.failures = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        cmd = event.command
        if "txnNumber" not in cmd or "lsid" not in cmd:
            return
        name = event.command_name
        if name not in RETRYABLE and name != "commitTransaction":
            return
        if name in RETRYABLE and cmd.get("autocommit") is False:
            return  # inside a transaction: re-runs are counted as transaction retries
        key = (bytes(cmd["lsid"]["id"]), int(cmd["txnNumber"]), name)
        if key in self.seen:
            if name == "commitTransaction":
                self.commit_retries += 1
            else:
                self.write_retries += 1
        self.seen.add(key)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.failures += 1


@dataclass
class Ledger:
    """What the load did, from the client's side."""

    acked: dict[str, set[str]] = field(default_factory=lambda: {
        "insert": set(), "save": set(), "update": set(), "transfer": set()})
    unknown: dict[str, set[str]] = field(default_factory=lambda: {
        "insert": set(), "save": set(), "update": set(), "transfer": set()})
    errors: Tally[str] = field(default_factory=Tally)
    transfer_runs: int = 0
    transfer_calls: int = 0

    def ok(self, kind: str, op: str) -> None:
        self.acked[kind].add(op)

    def fail(self, kind: str, op: str, exc: BaseException) -> None:
        self.unknown[kind].add(op)
        self.errors[type(exc).__name__] += 1

    @property
    def attempted(self) -> int:
        return sum(len(self.acked[k]) + len(self.unknown[k]) for k in self.acked)


# -- the replica set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replica_set() -> Iterator[LocalServer]:
    """Three members on loopback, up within a bounded time, with fast elections."""
    started = time.monotonic()
    # Equal priorities (no priority takeover after a test) and a 2 s election timeout instead
    # of 10 s, so that a dead primary is replaced quickly; set at initiation, not by a
    # reconfiguration, which an election on a loaded machine can interrupt.
    server = LocalServer(
        members=3, startup_timeout=45.0, equal_priorities=True, election_timeout_ms=2000,
        temp_dir=memory_temp_dir(),
    )
    server.start()
    took = time.monotonic() - started
    assert took < 60, f"the 3-member replica set took {took:.1f} s to start"
    print(f"[reliability] 3-member replica set up in {took:.1f} s")
    with MongoClient(server.uri, serverSelectionTimeoutMS=30_000) as client:
        config = client.admin.command("replSetGetConfig")["config"]
    # Its settings came with replSetInitiate (version 1), not a later reconfiguration.
    assert config["version"] == 1, config
    assert [m["priority"] for m in config["members"]] == [1, 1, 1], config
    assert config["settings"]["electionTimeoutMillis"] == 2000, config
    try:
        yield server
    finally:
        for member in range(server.members):
            server.kill(member)  # the data is thrown away: no need for a clean shutdown
        server.stop()


def primary_index(server: LocalServer, exclude: int | None = None, timeout: float = 60) -> int:
    """Block until a member other than ``exclude`` is a writable primary; return its index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, port in enumerate(server.ports):
            if index == exclude:
                continue
            with contextlib.suppress(PyMongoError), MongoClient(
                f"mongodb://127.0.0.1:{port}/?directConnection=true",
                serverSelectionTimeoutMS=500, connectTimeoutMS=500,
            ) as client:
                if client.admin.command("hello").get("isWritablePrimary"):
                    return index
        time.sleep(0.1)
    raise AssertionError(f"no primary (other than member {exclude}) within {timeout} s")


def wait_secondary(server: LocalServer, member: int, timeout: float = 90) -> None:
    """Block until ``member`` is a SECONDARY (or PRIMARY) again."""
    deadline = time.monotonic() + timeout
    state = "?"
    while time.monotonic() < deadline:
        with contextlib.suppress(PyMongoError), MongoClient(
            f"mongodb://127.0.0.1:{server.ports[member]}/?directConnection=true",
            serverSelectionTimeoutMS=500, connectTimeoutMS=500,
        ) as client:
            state = str(client.admin.command("replSetGetStatus").get("myState"))
            if state in ("1", "2"):
                return
        time.sleep(0.2)
    raise AssertionError(f"member {member} did not rejoin within {timeout} s (state {state})")


@pytest.fixture
async def bound(replica_set: LocalServer) -> AsyncIterator[tuple[Any, RetryCounter]]:
    """The ODM connected to a fresh database of the replica set, w=majority, retryable writes."""
    name = f"odm_failover_{uuid.uuid4().hex[:10]}"
    listener = RetryCounter()
    conn = await odm.connect(
        replica_set.uri_for(name) + "&w=majority&retryWrites=true",
        models=MODELS, timeout=60.0, serverSelectionTimeoutMS=30_000,
        event_listeners=[listener],
    )
    try:
        for model in MODELS:
            await conn.database.create_collection(model._meta.collection)
        await odm.ensure_indexes()
        yield conn.database, listener
    finally:
        with contextlib.suppress(PyMongoError):
            await conn.client.drop_database(name)
        await odm.disconnect()


# -- the load -------------------------------------------------------------------------------


@odm.atomic(retries=30, timeout=90)
async def transfer(ledger: Ledger, op: str, source: Any, target: Any, amount: int) -> None:
    """Move ``amount`` between two accounts and record it, all or nothing."""
    ledger.transfer_runs += 1
    await RAccount.objects.filter(id=source).update(balance=F("balance") - amount)
    await RAccount.objects.filter(id=target).update(balance=F("balance") + amount)
    await RTransfer(op=op, source=str(source), target=str(target), amount=amount).insert()


async def run_load(
    failover: Callable[[], Awaitable[float]], *, after: float, workers_per_kind: int = 3
) -> tuple[Ledger, float, float, list[Any], list[Any], list[Any]]:
    """Run the workers, call ``failover()`` once they are busy, keep going ``after`` seconds
    more, stop; return the ledger, the load duration, the time without a primary, and the ids
    of the profiles, counters and accounts."""
    ledger = Ledger()
    stop = asyncio.Event()
    profiles = [await RProfile(owner=w).insert() for w in range(workers_per_kind)]
    counters = [await RCounter().insert() for _ in range(COUNTERS)]
    accounts = [await RAccount(balance=START_BALANCE).insert() for _ in range(ACCOUNTS)]

    async def inserter(w: int) -> None:
        seq = 0
        while not stop.is_set():
            key = f"i{w}-{seq}"
            seq += 1
            try:
                await REntry(key=key, worker=w).insert(timeout=OP_TIMEOUT)
                ledger.ok("insert", key)
            except (PyMongoError, OdmError) as exc:
                ledger.fail("insert", key, exc)

    async def saver(w: int) -> None:
        profile = profiles[w]
        seq = 0
        while not stop.is_set():
            op = f"s{w}-{seq}"
            seq += 1
            profile.log.append(op)
            profile.version = seq
            try:
                await profile.save(timeout=OP_TIMEOUT)
                ledger.ok("save", op)
            except (PyMongoError, OdmError) as exc:
                ledger.fail("save", op, exc)
                # The snapshot is stale now: reload before the next change (see the docs).
                while True:
                    try:
                        await profile.refresh(timeout=OP_TIMEOUT)
                        break
                    except (PyMongoError, OdmError):
                        await asyncio.sleep(0.1)

    async def updater(w: int) -> None:
        seq = 0
        while not stop.is_set():
            op = f"u{w}-{seq}"
            counter = counters[seq % COUNTERS]
            seq += 1
            try:
                matched = await RCounter.objects.filter(id=counter.id).timeout(
                    OP_TIMEOUT
                ).update(n=F("n") + 1, ops=F("ops").push(op))
                assert matched == 1
                ledger.ok("update", op)
            except (PyMongoError, OdmError) as exc:
                ledger.fail("update", op, exc)

    async def mover(w: int) -> None:
        seq = 0
        while not stop.is_set():
            op = f"t{w}-{seq}"
            source = accounts[(w * 7 + seq) % ACCOUNTS]
            target = accounts[(w * 7 + seq * 5 + 1) % ACCOUNTS]
            seq += 1
            if source is target:
                continue
            ledger.transfer_calls += 1
            try:
                await transfer(ledger, op, source.id, target.id, 1 + seq % 17)
                ledger.ok("transfer", op)
            except (PyMongoError, OdmError) as exc:
                ledger.fail("transfer", op, exc)

    kinds = (inserter, saver, updater, mover)
    tasks = [asyncio.create_task(kind(w)) for kind in kinds for w in range(workers_per_kind)]
    started = time.monotonic()
    await asyncio.sleep(1.5)
    assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
    without_primary = await failover()
    await asyncio.sleep(after)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=2 * OP_TIMEOUT + 30)
    duration = time.monotonic() - started
    return (ledger, duration, without_primary, [p.id for p in profiles],
            [c.id for c in counters], [a.id for a in accounts])


async def verify(
    ledger: Ledger, listener: RetryCounter, duration: float, without_primary: float,
    profile_ids: list[Any], counter_ids: list[Any], account_ids: list[Any],
) -> dict[str, Any]:
    """Check the invariants and return the figures."""
    lost: dict[str, list[str]] = {}
    duplicated: dict[str, list[str]] = {}
    phantom: dict[str, list[str]] = {}

    def account(kind: str, stored: list[str]) -> None:
        tally = Tally(stored)
        duplicated[kind] = sorted(op for op, n in tally.items() if n > 1)
        lost[kind] = sorted(ledger.acked[kind] - set(tally))
        phantom[kind] = sorted(set(tally) - ledger.acked[kind] - ledger.unknown[kind])

    account("insert", [e.key for e in await REntry.objects.all()])
    profiles = await RProfile.objects.filter(id__in=profile_ids)
    account("save", [op for p in profiles for op in p.log])
    counters = await RCounter.objects.filter(id__in=counter_ids)
    account("update", [op for c in counters for op in c.ops])
    for counter in counters:
        assert counter.n == len(counter.ops), f"counter {counter.id}: n != len(ops)"
    records = await RTransfer.objects.all()
    account("transfer", [r.op for r in records])

    accounts = {str(a.id): a.balance for a in await RAccount.objects.filter(id__in=account_ids)}
    expected = dict.fromkeys(accounts, START_BALANCE)
    for record in records:
        expected[record.source] -= record.amount
        expected[record.target] += record.amount
    total_before = START_BALANCE * ACCOUNTS
    total_after = sum(accounts.values())

    acknowledged = sum(len(v) for v in ledger.acked.values())
    unknown = sum(len(v) for v in ledger.unknown.values())
    reruns = ledger.transfer_runs - ledger.transfer_calls
    figures = {
        "load": f"{4 * 3} ({', '.join(sorted(ledger.acked))}: 3 each)",
        "duration_s": round(duration, 1),
        "failover_s": round(without_primary, 1),
        "attempted": ledger.attempted,
        "acknowledged": acknowledged,
        "retried": listener.write_retries + listener.commit_retries + reruns,
        "driver_write_retries": listener.write_retries,
        "commit_retries": listener.commit_retries,
        "transaction_reruns": reruns,
        "unknown": unknown,
        "lost": sum(len(v) for v in lost.values()),
        "duplicated": sum(len(v) for v in duplicated.values()),
        "transfers_acknowledged": len(ledger.acked["transfer"]),
        "total_before": total_before,
        "total_after": total_after,
        "errors": dict(ledger.errors),
        "per_kind": {k: {"acked": len(ledger.acked[k]), "unknown": len(ledger.unknown[k])}
                     for k in ledger.acked},
    }
    print(f"[reliability] failover figures: {figures}")
    assert figures["lost"] == 0, f"acknowledged writes lost: {lost}"
    assert figures["duplicated"] == 0, f"writes applied twice: {duplicated}"
    assert not any(phantom.values()), f"writes never attempted appear: {phantom}"
    assert total_after == total_before
    assert accounts == expected, "balances do not match the stored transfer records"
    # The load really ran on both sides of the failover.
    for kind, acked in ledger.acked.items():
        assert len(acked) > 5, f"too few acknowledged {kind} writes: {len(acked)}"
    return figures


# -- the tests ------------------------------------------------------------------------------


async def test_stepdown_under_load_loses_nothing(
    replica_set: LocalServer, bound: tuple[Any, RetryCounter], figures: Recorder,
    odm_long: bool,
) -> None:
    database, listener = bound

    async def step_down() -> float:
        old = await asyncio.to_thread(primary_index, replica_set)
        began = time.monotonic()
        with contextlib.suppress(PyMongoError):
            await database.client.admin.command(
                {"replSetStepDown": 10, "secondaryCatchUpPeriodSecs": 2, "force": True}
            )
        await asyncio.to_thread(primary_index, replica_set, old)
        return time.monotonic() - began

    outcome = await run_load(step_down, after=30.0 if odm_long else 3.0)
    figures("failover.stepdown", **await verify(outcome[0], listener, *outcome[1:]))


async def test_sigkill_of_primary_under_load_loses_nothing(
    replica_set: LocalServer, bound: tuple[Any, RetryCounter], figures: Recorder,
    odm_long: bool,
) -> None:
    _, listener = bound
    killed: list[int] = []

    async def kill() -> float:
        old = await asyncio.to_thread(primary_index, replica_set)
        began = time.monotonic()
        replica_set.kill(old)
        killed.append(old)
        await asyncio.to_thread(primary_index, replica_set, old)
        return time.monotonic() - began

    try:
        outcome = await run_load(kill, after=30.0 if odm_long else 3.0)
        figures("failover.sigkill", **await verify(outcome[0], listener, *outcome[1:]))
    finally:
        if killed:
            # Back as a secondary: it rolls back what it had not replicated and catches up.
            replica_set.restart(killed[0])
            await asyncio.to_thread(wait_secondary, replica_set, killed[0])
    # After the old primary rejoined, the acknowledged writes are all still there.
    again = {e.key for e in await REntry.objects.all()}
    assert outcome[0].acked["insert"] <= again
