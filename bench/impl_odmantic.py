"""ODMantic 1.1 (on Motor), written the way ODMantic's docs show.

Idioms used: ``engine.save_all``, ``engine.find``, ``engine.find_one``, ``engine.save`` (which
writes only the modified fields), and ``engine.transaction()``. ODMantic 1.1 has no update-many
and no aggregation API (only ``engine.get_collection()``, i.e. raw Motor), so those workloads
are reported n/a, and its transfer loads both accounts, changes them and saves them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient
from odmantic import AIOEngine, EmbeddedModel, Model
from odmantic.config import ODMConfigDict

from .common import ACCOUNTS, ITEMS, PAGE_SIZE, STREAM_ITEMS, Context

NAME = "odmantic"
DESCRIPTION = "ODMantic 1.1 on Motor"


class Dimensions(EmbeddedModel):
    """The embedded document of an item."""

    width: float
    height: float
    depth: float
    unit: str


class Item(Model):
    """An item of the ``items`` collection."""

    name: str
    sku: str
    category: str
    price: float
    stock: int
    active: bool
    views: int = 0
    tags: list[str]
    created_at: datetime
    dimensions: Dimensions

    model_config = ODMConfigDict(collection=ITEMS)


class StreamItem(Model):
    """The documents of ``stream_items`` (ODMantic models cannot be subclassed)."""

    name: str
    sku: str
    category: str
    price: float
    stock: int
    active: bool
    views: int = 0
    tags: list[str]
    created_at: datetime
    dimensions: Dimensions

    model_config = ODMConfigDict(collection=STREAM_ITEMS)


class Account(Model):
    """A bank account (transaction_transfer)."""

    owner: str
    balance: int

    model_config = ODMConfigDict(collection=ACCOUNTS)


async def setup(ctx: Context) -> None:
    """Create the Motor client and the engine."""
    client: Any = AsyncIOMotorClient(ctx.uri)
    ctx.state["client"] = client
    ctx.state["engine"] = AIOEngine(client=client, database=ctx.db_name)


async def teardown(ctx: Context) -> None:
    """Close the client."""
    ctx.state["client"].close()


async def insert_many(ctx: Context) -> int:
    """Build ``Item`` models from ``ctx.rows`` and ``engine.save_all`` them."""
    saved = await ctx.state["engine"].save_all([Item(**row) for row in ctx.rows])
    return len(saved)


async def find_all(ctx: Context) -> int:
    """Load every item into ``Item`` models."""
    return len(await ctx.state["engine"].find(Item))


async def get_by_id(ctx: Context) -> int:
    """``engine.find_one(Item, Item.id == _id)``, once per id."""
    engine = ctx.state["engine"]
    found = 0
    for _id in ctx.ids:
        if await engine.find_one(Item, Item.id == _id) is not None:
            found += 1
    return found


async def filter_sort_limit(ctx: Context) -> int:
    """Equality + range filter, sort on a date, limit 20; once per query."""
    engine = ctx.state["engine"]
    total = 0
    for category, min_price in ctx.queries:
        page = await engine.find(
            Item,
            Item.category == category,
            Item.price >= min_price,
            sort=Item.created_at.desc(),  # type: ignore[attr-defined]
            limit=PAGE_SIZE,
        )
        total += len(page)
    return total


async def save_changed_field(ctx: Context) -> int:
    """Load by id, change ``stock``, ``engine.save`` (ODMantic sends the modified fields)."""
    engine = ctx.state["engine"]
    for _id in ctx.save_ids:
        item = await engine.find_one(Item, Item.id == _id)
        assert item is not None
        item.stock += 1
        await engine.save(item)
    return len(ctx.save_ids)


async def transaction_transfer(ctx: Context) -> int:
    """In ``engine.transaction()``: load both accounts, change the balances, save both."""
    engine = ctx.state["engine"]
    for source, target, amount in ctx.transfers:
        async with engine.transaction() as transaction:
            src = await transaction.find_one(Account, Account.id == source)
            dst = await transaction.find_one(Account, Account.id == target)
            assert src is not None and dst is not None
            src.balance -= amount
            dst.balance += amount
            await transaction.save(src)
            await transaction.save(dst)
    return len(ctx.transfers)


async def stream_memory(ctx: Context) -> int:
    """Iterate over every ``StreamItem`` with ``async for``."""
    count = 0
    async for _item in ctx.state["engine"].find(StreamItem):
        count += 1
    return count


WORKLOADS = {
    "insert_many": insert_many,
    "find_all": find_all,
    "get_by_id": get_by_id,
    "filter_sort_limit": filter_sort_limit,
    "save_changed_field": save_changed_field,
    "transaction_transfer": transaction_transfer,
    "stream_memory": stream_memory,
}

#: Workloads this implementation cannot express, with the reason the table prints.
UNSUPPORTED = {
    "update_many": "ODMantic 1.1 has no update-many API (only raw Motor via get_collection)",
    "aggregate_group": "ODMantic 1.1 has no aggregation API (only raw Motor via get_collection)",
}
