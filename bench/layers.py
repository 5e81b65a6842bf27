"""What each of odm's layers costs one operation at a time: ``python -m bench.layers``.

The peer benchmark says how far odm is from the floor; this says where. Each one-at-a-time
workload runs in several variants that send the same commands: the floor (plain pydantic on
raw PyMongo), odm as users write it, and odm with its layers taken away one at a time, what
they compute written out by hand (without the queryset: the executor and ``load_documents``
called with the filter written out; without the executor too: the driver collection). Every
variant uses odm's own client, since a second client in the process costs several per cent
by itself, and the variants run interleaved in a new random order every round, so that drift
and what one variant leaves in the caches hit all of them alike. Each cell is the variant's
total wall time over the floor's (CPU time of the process in brackets). Without ``--uri`` a
throwaway replica set is started with ``odm.server.LocalServer``. See
``docs/performance-internals.md`` ("Layer by layer").
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import odm
from odm import F, executor
from odm.models.loading import load_documents, naive_fixer
from odm.models.writes import commit_update, prepare_update
from odm.session import current_session

from . import impl_odm, impl_raw
from .common import (
    ACCOUNT_COUNT,
    PAGE_SIZE,
    add_data_options,
    make_queries,
    make_rows,
    on_server,
)
from .impl_pydantic import ITEM_LIST
from .impl_pydantic import Item as FloorItem

#: One variant: a coroutine function running ``ops`` operations.
Variant = Callable[[int], Awaitable[None]]


class Layers:
    """The seeded data and every variant of every workload, on odm's client."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.items = executor.collection(impl_odm.Item)
        self.accounts = executor.collection(impl_odm.Account)
        self.item_ids: list[Any] = []
        self.account_ids: list[Any] = []

    async def seed(self, n: int) -> None:
        """Replace the items and the accounts with ``n`` rows and ``ACCOUNT_COUNT`` accounts."""
        await self.items.delete_many({})
        await self.items.create_index([("category", 1), ("created_at", -1)])
        await self.items.insert_many([dict(row) for row in make_rows(n)])
        await self.accounts.delete_many({})
        await self.accounts.insert_many(
            [{"owner": f"owner-{i}", "balance": 10**9} for i in range(ACCOUNT_COUNT)]
        )
        await self.attach()

    async def attach(self) -> None:
        """Take the ids of the items and accounts already seeded (by :meth:`seed`, maybe in
        another process)."""
        self.item_ids = [doc["_id"] async for doc in self.items.find({}, {"_id": 1})]
        self.account_ids = [doc["_id"] async for doc in self.accounts.find({}, {"_id": 1})]

    def _ids(self, ops: int) -> list[Any]:
        return [self.rng.choice(self.item_ids) for _ in range(ops)]

    def workloads(self) -> dict[str, dict[str, Variant]]:
        """``{workload: {variant: run}}``; the first variant of each is its floor."""
        items, fixer = self.items, naive_fixer(impl_odm.Item)
        Item, Account = impl_odm.Item, impl_odm.Account
        sort = [("created_at", -1)]

        async def get_floor(ops: int) -> None:
            for i in self._ids(ops):
                FloorItem.model_validate(await items.find_one({"_id": i}))

        async def get_odm(ops: int) -> None:
            for i in self._ids(ops):
                await Item.objects.get(id=i)

        async def get_no_queryset(ops: int) -> None:
            for i in self._ids(ops):
                raw = await executor.find_one(Item, {"_id": i})
                assert raw is not None
                load_documents(Item, [raw])

        async def get_no_executor(ops: int) -> None:
            for i in self._ids(ops):
                load_documents(Item, [await items.find_one({"_id": i})])

        def queries(ops: int) -> list[tuple[str, float]]:
            return make_queries(ops, seed=self.rng.randrange(1 << 30))

        async def page_floor(ops: int) -> None:
            for category, price in queries(ops):
                ITEM_LIST.validate_python(
                    await impl_raw.page_cursor(items, category, price).to_list()
                )

        async def page_odm(ops: int) -> None:
            for category, price in queries(ops):
                await Item.objects.filter(category=category, price__gte=price).order_by(
                    "-created_at"
                )[:PAGE_SIZE]

        async def page_no_queryset(ops: int) -> None:
            for category, price in queries(ops):
                raws = await executor.find_list(
                    Item, {"category": category, "price": {"$gte": price}}, sort=sort,
                    limit=PAGE_SIZE, tz_aware=fixer is None,
                )
                load_documents(Item, raws, fixer=fixer)

        async def page_no_executor(ops: int) -> None:
            coll = executor._naive_collection(Item) if fixer is not None else items
            for category, price in queries(ops):
                filter = {"category": category, "price": {"$gte": price}}
                raws = await coll.find(filter, sort=sort, limit=PAGE_SIZE).to_list(None)
                load_documents(Item, raws, fixer=fixer)

        async def save_floor(ops: int) -> None:
            for i in self._ids(ops):
                item = FloorItem.model_validate(await items.find_one({"_id": i}))
                item.stock += 1
                await items.update_one({"_id": item.id}, {"$set": {"stock": item.stock}})

        async def save_odm(ops: int) -> None:
            for i in self._ids(ops):
                item = await Item.objects.get(id=i)
                item.stock += 1
                await item.save()

        async def save_written_out(ops: int) -> None:
            for i in self._ids(ops):
                item = await Item.objects.get(id=i)
                item.stock += 1
                await executor.update_one(Item, {"_id": item.id}, {"$set": {"stock": item.stock}})

        async def save_plan_only(ops: int) -> None:
            for i in self._ids(ops):
                item = await Item.objects.get(id=i)
                item.stock += 1
                plan = prepare_update(item)
                assert plan is not None
                await executor.update_one(Item, plan[0], plan[1])
                commit_update(item, plan[2])

        def transfers(ops: int) -> list[tuple[Any, Any]]:
            return [(*self.rng.sample(self.account_ids, 2),) for _ in range(ops)]

        async def transfer_floor(ops: int) -> None:
            client = self.accounts.database.client
            for source, target in transfers(ops):
                async with client.start_session() as session, await session.start_transaction():
                    for account, amount in ((source, -1), (target, 1)):
                        await self.accounts.update_one(
                            {"_id": account}, {"$inc": {"balance": amount}}, session=session
                        )

        async def transfer_odm(ops: int) -> None:
            for source, target in transfers(ops):
                async with odm.transaction():
                    await Account.objects.filter(id=source).update(balance=F("balance") - 1)
                    await Account.objects.filter(id=target).update(balance=F("balance") + 1)

        async def transfer_no_queryset(ops: int) -> None:
            for source, target in transfers(ops):
                async with odm.transaction():
                    for account, amount in ((source, -1), (target, 1)):
                        await executor.update_one(
                            Account, {"_id": account}, {"$inc": {"balance": amount}}
                        )

        async def transfer_no_executor(ops: int) -> None:
            for source, target in transfers(ops):
                async with odm.transaction():
                    for account, amount in ((source, -1), (target, 1)):
                        await self.accounts.update_one(
                            {"_id": account}, {"$inc": {"balance": amount}},
                            session=current_session(),
                        )

        return {
            "get_by_id": {
                "floor": get_floor, "odm": get_odm, "no queryset": get_no_queryset,
                "no executor": get_no_executor,
            },
            "filter_sort_limit": {
                "floor": page_floor, "odm": page_odm, "no queryset": page_no_queryset,
                "no executor": page_no_executor,
            },
            "save_changed_field": {
                "floor": save_floor, "odm": save_odm, "prepare_update": save_plan_only,
                "$set written out": save_written_out,
            },
            "transaction_transfer": {
                "floor": transfer_floor, "odm": transfer_odm, "no queryset": transfer_no_queryset,
                "no executor": transfer_no_executor,
            },
        }


async def measure(
    layers: Layers, rounds: int, ops: int, only: list[str] | None = None
) -> dict[str, dict[str, tuple[float, float]]]:
    """Return ``{workload: {variant: (wall ratio, CPU ratio)}}`` over each workload's floor."""
    report: dict[str, dict[str, tuple[float, float]]] = {}
    for workload, variants in layers.workloads().items():
        if only is not None and workload not in only:
            continue
        walls = dict.fromkeys(variants, 0.0)
        cpus = dict.fromkeys(variants, 0.0)
        for run in variants.values():
            await run(max(1, ops // 5))  # warm-up: connections, caches, plans
        for _ in range(rounds):
            order = list(variants.items())
            layers.rng.shuffle(order)
            for name, run in order:
                started, cpu_started = time.perf_counter(), time.process_time()
                await run(ops)
                walls[name] += time.perf_counter() - started
                cpus[name] += time.process_time() - cpu_started
        floor = next(iter(variants))
        report[workload] = {
            name: (walls[name] / walls[floor], cpus[name] / cpus[floor]) for name in variants
        }
    return report


def format_report(report: dict[str, dict[str, tuple[float, float]]]) -> str:
    """The report as lines: one per workload, each variant's wall (CPU) over the floor."""
    return "\n".join(
        f"{workload:22s} "
        + "  ".join(f"{name} {wall:.3f} ({cpu:.3f})" for name, (wall, cpu) in variants.items())
        for workload, variants in report.items()
    )


async def run(uri: str, db: str, rounds: int, ops: int, n: int, only: list[str] | None) -> str:
    """Connect odm, seed, measure, drop the database; return the report's text."""
    await odm.connect(uri, db=db, models=[impl_odm.Item, impl_odm.Account])
    try:
        layers = Layers(random.Random(7))
        await layers.seed(n)
        return format_report(await measure(layers, rounds, ops, only))
    finally:
        await executor.collection(impl_odm.Item).database.client.drop_database(db)
        await odm.disconnect()


def main(argv: list[str] | None = None) -> None:
    """Parse the options and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.layers", description=__doc__)
    add_data_options(parser, "odm_bench_layers")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (20)")
    parser.add_argument("--ops", type=int, default=50, help="operations per variant and round")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    text = on_server(
        args.uri, lambda uri: asyncio.run(run(uri, args.db, args.rounds, args.ops, args.n, only))
    )
    print("wall time over the floor's (CPU time in brackets), odm's client for every variant")
    print(text)


if __name__ == "__main__":
    main()
