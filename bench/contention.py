"""Transactions fighting over a few documents: ``python -m bench.contention``.

The other benchmarks run one operation at a time. Here many transfers run at once over a few
accounts (by default 400 over 8: fifty contending for each), each a transaction that reads the
payer, debits it and credits the payee, re-run with the driver specification's backoff when it
meets a write conflict. What decides the time is how long a transaction holds its writes: every
transaction touching them meanwhile fails and runs again, and every retry adds load that makes
the others slower still. Four variants run in turn, on one server:

- ``raw``: PyMongo's ``with_transaction``, the floor;
- ``raw+deadline``: the same under ``pymongo.timeout()`` (each command under a deadline);
- ``odm``: ``odm.transaction()`` re-run by hand with the same backoff (no deadline);
- ``odm.atomic``: ``@odm.atomic(timeout=...)``, whose deadline bounds every command.

Each line gives the wall time, the attempts per transfer and how many transfers gave up; the
total of the balances is checked after each variant. See docs/unit-of-work.md ("Contention").
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

import odm
from odm import F, executor
from odm.server_transactions import backoff_delay, is_transient

from .common import on_server


class ContendedAccount(odm.Document):
    """An account of the contention benchmark."""

    owner: str
    balance: int

    class Meta:
        collection = "bench_contention_accounts"


BALANCE = 1000


@dataclass
class Outcome:
    """What one variant did."""

    seconds: float
    attempts: int
    gave_up: int
    total_kept: bool


#: One variant: run ``transfers`` (payer id, payee id, amount) at once, counting attempts.
Variant = Callable[[list[tuple[Any, Any, int]], list[int], float], Awaitable[list[Any]]]


async def _raw(
    transfers: list[tuple[Any, Any, int]], attempts: list[int], deadline: float | None
) -> list[Any]:
    collection = executor.collection(ContendedAccount)
    client = collection.database.client

    async def one(payer: Any, payee: Any, amount: int) -> None:
        async def body(session: Any) -> None:
            attempts[0] += 1
            doc = await collection.find_one({"_id": payer}, session=session)
            await collection.update_one(
                {"_id": payer}, {"$set": {"balance": doc["balance"] - amount}}, session=session
            )
            await collection.update_one(
                {"_id": payee}, {"$inc": {"balance": amount}}, session=session
            )

        async with client.start_session() as session:
            if deadline is None:
                await session.with_transaction(body)
            else:
                with pymongo.timeout(deadline):
                    await session.with_transaction(body)

    return await asyncio.gather(*(one(*t) for t in transfers), return_exceptions=True)


async def raw(transfers: list[tuple[Any, Any, int]], attempts: list[int], _: float) -> list[Any]:
    """PyMongo's ``with_transaction``, no deadline."""
    return await _raw(transfers, attempts, None)


async def raw_deadline(
    transfers: list[tuple[Any, Any, int]], attempts: list[int], timeout: float
) -> list[Any]:
    """PyMongo's ``with_transaction`` under ``pymongo.timeout(timeout)``."""
    return await _raw(transfers, attempts, timeout)


async def _odm_body(payer: Any, payee: Any, amount: int, attempts: list[int]) -> None:
    attempts[0] += 1
    account = await ContendedAccount.objects.get(id=payer)
    account.balance -= amount  # flushed before the update below
    await ContendedAccount.objects.filter(id=payee).update(balance=F("balance") + amount)


async def odm_transaction(
    transfers: list[tuple[Any, Any, int]], attempts: list[int], timeout: float
) -> list[Any]:
    """``odm.transaction()`` re-run by hand with the specification's backoff, no deadline on
    the commands (as ``with_transaction``), giving up after ``timeout`` seconds."""

    async def one(payer: Any, payee: Any, amount: int) -> None:
        ends = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                async with odm.transaction():
                    await _odm_body(payer, payee, amount, attempts)
                return
            except PyMongoError as exc:
                if not is_transient(exc) or time.monotonic() >= ends:
                    raise
            await asyncio.sleep(backoff_delay(attempt))

    return await asyncio.gather(*(one(*t) for t in transfers), return_exceptions=True)


async def odm_atomic(
    transfers: list[tuple[Any, Any, int]], attempts: list[int], timeout: float
) -> list[Any]:
    """``@odm.atomic(retries=1000, timeout=timeout)``: the deadline bounds every command."""
    body = odm.atomic(retries=1000, timeout=timeout)(_odm_body)
    return await asyncio.gather(
        *(body(p, q, n, attempts) for p, q, n in transfers), return_exceptions=True
    )


VARIANTS: dict[str, Variant] = {
    "raw": raw,
    "raw+deadline": raw_deadline,
    "odm": odm_transaction,
    "odm.atomic": odm_atomic,
}


async def run_variant(variant: Variant, transfers: int, accounts: int, timeout: float) -> Outcome:
    """Seed ``accounts`` accounts, run ``transfers`` transfers at once with ``variant``."""
    await ContendedAccount.objects.all().delete()
    seeded = await ContendedAccount.objects.bulk_create(
        [ContendedAccount(owner=f"a{i}", balance=BALANCE) for i in range(accounts)]
    )
    ids = [a.id for a in seeded]
    work = [(ids[i % accounts], ids[(i * 3 + 1) % accounts], 1 + i % 5) for i in range(transfers)]
    attempts = [0]
    started = time.perf_counter()
    results = await variant(work, attempts, timeout)
    seconds = time.perf_counter() - started
    total = sum(a.balance for a in await ContendedAccount.objects.all())
    return Outcome(
        seconds=seconds,
        attempts=attempts[0],
        gave_up=sum(isinstance(r, BaseException) for r in results),
        total_kept=total == accounts * BALANCE,
    )


async def run(
    uri: str, db: str, transfers: int, accounts: int, timeout: float, only: list[str] | None
) -> list[str]:
    """Run the variants one after the other; return one line each."""
    await odm.connect(uri, db=db, models=[ContendedAccount])
    lines = []
    try:
        for name, variant in VARIANTS.items():
            if only is not None and name not in only:
                continue
            outcome = await run_variant(variant, transfers, accounts, timeout)
            lines.append(
                f"{name:14s} {outcome.seconds:7.2f} s  "
                f"{outcome.attempts / transfers:5.1f} attempts per transfer  "
                f"{outcome.gave_up:4d} gave up  "
                f"total {'kept' if outcome.total_kept else 'BROKEN'}"
            )
    finally:
        await executor.collection(ContendedAccount).database.client.drop_database(db)
        await odm.disconnect()
    return lines


def main(argv: list[str] | None = None) -> None:
    """Parse the options and print one line per variant."""
    parser = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__)
    parser.add_argument("--uri", help="MongoDB replica set URI (else start a LocalServer)")
    parser.add_argument("--db", default="odm_bench_contention")
    parser.add_argument("--transfers", type=int, default=400, help="transfers at once (400)")
    parser.add_argument("--accounts", type=int, default=8, help="accounts they share (8)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after (60 s)")
    parser.add_argument("--only", help="comma-separated variants")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None

    lines = on_server(
        args.uri,
        lambda uri: asyncio.run(
            run(uri, args.db, args.transfers, args.accounts, args.timeout, only)
        ),
    )
    print(f"{args.transfers} transfers at once over {args.accounts} accounts")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
