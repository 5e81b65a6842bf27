"""Motor (``AsyncIOMotorClient``), hand-written: the same code as :mod:`bench.impl_raw` on Motor.

Motor is deprecated (since May 2025) in favour of PyMongo's async API but still widely used;
ODMantic runs on it. No spec tasks here.
"""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient

from .common import ACCOUNTS, GROUP_PIPELINE, ITEMS, STREAM_ITEMS, Context
from .impl_raw import page_cursor

NAME = "motor"
DESCRIPTION = f"Motor {__import__('motor').version} AsyncIOMotorClient, hand-written dicts"


async def setup(ctx: Context) -> None:
    """Create the client."""
    client: Any = AsyncIOMotorClient(ctx.uri)
    ctx.state["client"] = client
    ctx.state["db"] = client[ctx.db_name]


async def teardown(ctx: Context) -> None:
    """Close the client."""
    ctx.state["client"].close()


async def insert_many(ctx: Context) -> int:
    """Insert ``ctx.rows`` as new documents with one ``insert_many``."""
    docs = [dict(row) for row in ctx.rows]
    result = await ctx.state["db"][ITEMS].insert_many(docs)
    return len(result.inserted_ids)


async def find_all(ctx: Context) -> int:
    """Load every item (as dicts)."""
    docs = await ctx.state["db"][ITEMS].find({}).to_list(None)
    return len(docs)


async def get_by_id(ctx: Context) -> int:
    """``find_one`` by ``_id``, once per id."""
    coll = ctx.state["db"][ITEMS]
    found = 0
    for _id in ctx.ids:
        if await coll.find_one({"_id": _id}) is not None:
            found += 1
    return found


async def filter_sort_limit(ctx: Context) -> int:
    """Equality + range filter, sort on a date, limit 20; once per query."""
    coll = ctx.state["db"][ITEMS]
    total = 0
    for category, min_price in ctx.queries:
        total += len(await page_cursor(coll, category, min_price).to_list(None))
    return total


async def update_many(ctx: Context) -> int:
    """``$inc`` the views of every active item."""
    result = await ctx.state["db"][ITEMS].update_many({"active": True}, {"$inc": {"views": 1}})
    return int(result.modified_count)


async def aggregate_group(ctx: Context) -> int:
    """Group the active items by category."""
    docs = await ctx.state["db"][ITEMS].aggregate(GROUP_PIPELINE).to_list(None)
    return len(docs)


async def save_changed_field(ctx: Context) -> int:
    """Load by ``_id``, change ``stock``, write back that one field with ``$set``."""
    coll = ctx.state["db"][ITEMS]
    for _id in ctx.save_ids:
        doc = await coll.find_one({"_id": _id})
        assert doc is not None
        doc["stock"] += 1
        await coll.update_one({"_id": _id}, {"$set": {"stock": doc["stock"]}})
    return len(ctx.save_ids)


async def transaction_transfer(ctx: Context) -> int:
    """Move an amount between two accounts in a transaction, hand-written session code."""
    client = ctx.state["client"]
    accounts = ctx.state["db"][ACCOUNTS]
    for source, target, amount in ctx.transfers:
        async with await client.start_session() as session, session.start_transaction():
            await accounts.update_one(
                {"_id": source}, {"$inc": {"balance": -amount}}, session=session
            )
            await accounts.update_one(
                {"_id": target}, {"$inc": {"balance": amount}}, session=session
            )
    return len(ctx.transfers)


async def stream_memory(ctx: Context) -> int:
    """Iterate over every document of ``stream_items`` with ``async for``."""
    count = 0
    async for _doc in ctx.state["db"][STREAM_ITEMS].find({}):
        count += 1
    return count


WORKLOADS = {
    "insert_many": insert_many,
    "find_all": find_all,
    "get_by_id": get_by_id,
    "filter_sort_limit": filter_sort_limit,
    "update_many": update_many,
    "aggregate_group": aggregate_group,
    "save_changed_field": save_changed_field,
    "transaction_transfer": transaction_transfer,
    "stream_memory": stream_memory,
}
