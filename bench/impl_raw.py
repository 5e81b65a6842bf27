"""Raw PyMongo async (``AsyncMongoClient``), hand-written: the baseline of every ratio.

Documents stay plain dicts; nothing is validated. Each function is what a careful programmer
writes by hand with the driver alone.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from .common import ACCOUNTS, GROUP_PIPELINE, ITEMS, PAGE_SIZE, STREAM_ITEMS, Context
from .spec_common import SpecContext, SpecTask, nested_with_ids

NAME = "raw"
DESCRIPTION = f"PyMongo {__import__('pymongo').version} AsyncMongoClient, hand-written dicts"


async def setup(ctx: Context) -> None:
    """Create the client (the harness has seeded the data)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.uri)
    ctx.state["client"] = client
    ctx.state["db"] = client[ctx.db_name]


async def teardown(ctx: Context) -> None:
    """Close the client."""
    await ctx.state["client"].close()


async def insert_many(ctx: Context) -> int:
    """Insert ``ctx.rows`` as new documents with one ``insert_many``."""
    docs = [dict(row) for row in ctx.rows]  # insert_many adds "_id" to each dict
    result = await ctx.state["db"][ITEMS].insert_many(docs)
    return len(result.inserted_ids)


async def find_all(ctx: Context) -> int:
    """Load every item (as dicts)."""
    docs = await ctx.state["db"][ITEMS].find({}).to_list()
    return len(docs)


async def get_by_id(ctx: Context) -> int:
    """``find_one`` by ``_id``, once per id."""
    coll = ctx.state["db"][ITEMS]
    found = 0
    for _id in ctx.ids:
        if await coll.find_one({"_id": _id}) is not None:
            found += 1
    return found


def page_cursor(coll: Any, category: str, min_price: float) -> Any:
    """filter_sort_limit's query: ``category == c and price >= p``, newest first, one page."""
    return (
        coll.find({"category": category, "price": {"$gte": min_price}})
        .sort("created_at", -1)
        .limit(PAGE_SIZE)
    )


async def filter_sort_limit(ctx: Context) -> int:
    """Equality + range filter, sort on a date, limit 20; once per query."""
    coll = ctx.state["db"][ITEMS]
    total = 0
    for category, min_price in ctx.queries:
        total += len(await page_cursor(coll, category, min_price).to_list())
    return total


async def update_many(ctx: Context) -> int:
    """``$inc`` the views of every active item."""
    result = await ctx.state["db"][ITEMS].update_many(
        {"active": True}, {"$inc": {"views": 1}}
    )
    return int(result.modified_count)


async def aggregate_group(ctx: Context) -> int:
    """Group the active items by category."""
    cursor = await ctx.state["db"][ITEMS].aggregate(GROUP_PIPELINE)
    return len(await cursor.to_list())


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
        async with client.start_session() as session, await session.start_transaction():
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


# -- the ODM spec benchmark (see bench/spec.py) --------------------------------------------


class RawSpec(SpecTask):
    """Shared client handling: ``sctx.state['db']`` is the database."""

    def coll(self, sctx: SpecContext, name: str) -> Any:
        return sctx.state["db"][name]


class SmallCreate(RawSpec):
    """Insert SMALL_DOC ``ops`` times, one ``insert_one`` each."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "small_doc")
        doc = sctx.small
        for _ in range(sctx.ops):
            await coll.insert_one(dict(doc))

    async def after(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "small_doc").drop()


class SmallUpdate(RawSpec):
    """``$set`` field1 of each of ``ops`` small documents."""

    async def setup(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "small_doc")
        result = await coll.insert_many([dict(sctx.small) for _ in range(sctx.ops)])
        self.ids = result.inserted_ids
        self.iteration = 0

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "small_doc")
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for _id in self.ids:
            await coll.update_one({"_id": _id}, {"$set": {"field1": value}})

    async def teardown(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "small_doc").drop()


class SmallFindById(RawSpec):
    """``find({_id})`` to a list, once per inserted id."""

    async def setup(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "small_doc")
        result = await coll.insert_many([dict(sctx.small) for _ in range(sctx.ops)])
        self.ids = result.inserted_ids

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "small_doc")
        for _id in self.ids:
            docs = await coll.find({"_id": _id}).to_list()
            assert len(docs) == 1

    async def teardown(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "small_doc").drop()


def foreign_key_pipeline(fk: Any) -> list[dict[str, Any]]:
    """The small document referencing ``fk``, its ``field_fk`` replaced by the joined
    ``foreign_key`` document (``$match`` first, on the index, then ``$lookup``)."""
    return [
        {"$match": {"field_fk": fk}},
        {
            "$lookup": {
                "from": "foreign_key",
                "localField": "field_fk",
                "foreignField": "_id",
                "as": "field_fk",
            }
        },
        {"$unwind": "$field_fk"},
    ]


class SmallFindForeignKey(RawSpec):
    """Find the small document referencing each foreign key, joined with ``$lookup``."""

    async def setup(self, sctx: SpecContext) -> None:
        fks = self.coll(sctx, "foreign_key")
        small = self.coll(sctx, "small_doc_fk")
        result = await fks.insert_many([{"name": "foreign_key_name"} for _ in range(sctx.ops)])
        self.fk_ids = result.inserted_ids
        await small.insert_many([dict(sctx.small, field_fk=fk) for fk in self.fk_ids])
        await small.create_index("field_fk")

    async def do(self, sctx: SpecContext) -> None:
        small = self.coll(sctx, "small_doc_fk")
        for fk in self.fk_ids:
            cursor = await small.aggregate(foreign_key_pipeline(fk))
            docs = await cursor.to_list()
            assert len(docs) == 1

    async def teardown(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "small_doc_fk").drop()
        await self.coll(sctx, "foreign_key").drop()


class LargeCreate(RawSpec):
    """Insert LARGE_DOC ``large_ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc")
        for _ in range(sctx.large_ops):
            await coll.insert_one(dict(sctx.large))

    async def after(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "large_doc").drop()


class LargeUpdate(RawSpec):
    """``$set`` field1 of each of ``large_ops`` large documents."""

    async def setup(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc")
        self.ids = []
        for _ in range(sctx.large_ops):
            self.ids.append((await coll.insert_one(dict(sctx.large))).inserted_id)
        self.iteration = 0

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc")
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for _id in self.ids:
            await coll.update_one({"_id": _id}, {"$set": {"field1": value}})

    async def teardown(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "large_doc").drop()


class NestedCreate(RawSpec):
    """Insert LARGE_DOC_NESTED (with a fresh ``unique_id`` per embedded document) ``ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc_nested")
        for _ in range(sctx.ops):
            await coll.insert_one(nested_with_ids(sctx.nested))

    async def after(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "large_doc_nested").drop()


class NestedSeeded(RawSpec):
    """Seeds ``ops`` LARGE_DOC_NESTED documents (``self.docs``) and the nested indexes."""

    async def setup(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc_nested")
        self.docs = [nested_with_ids(sctx.nested) for _ in range(sctx.ops)]
        await coll.insert_many(self.docs)
        await coll.create_index("embedded_str_doc_1.unique_id")
        await coll.create_index("embedded_str_doc_array.unique_id")
        self.iteration = 0

    async def teardown(self, sctx: SpecContext) -> None:
        await self.coll(sctx, "large_doc_nested").drop()


class NestedUpdate(NestedSeeded):
    """``$set`` embedded_str_doc_1.field1 of each nested document."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc_nested")
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.docs:
            await coll.update_one(
                {"_id": doc["_id"]}, {"$set": {"embedded_str_doc_1.field1": value}}
            )


class NestedFind(NestedSeeded):
    """Find the parent by ``embedded_str_doc_1.unique_id``, once per document."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc_nested")
        for doc in self.docs:
            key = doc["embedded_str_doc_1"]["unique_id"]
            found = await coll.find({"embedded_str_doc_1.unique_id": key}).to_list()
            assert len(found) == 1


class NestedFindArray(NestedSeeded):
    """Find the parent by the first ``embedded_str_doc_array`` item's ``unique_id``."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc_nested")
        for doc in self.docs:
            key = doc["embedded_str_doc_array"][0]["unique_id"]
            found = await coll.find({"embedded_str_doc_array.unique_id": key}).to_list()
            assert len(found) == 1


async def spec_setup(sctx: SpecContext) -> None:
    """Create the client for the spec benchmark."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sctx.uri)
    sctx.state["client"] = client
    sctx.state["db"] = client[sctx.db_name]


async def spec_teardown(sctx: SpecContext) -> None:
    """Close the client."""
    await sctx.state["client"].close()


SPEC_TASKS: dict[str, type[SpecTask]] = {
    "small_create": SmallCreate,
    "small_update": SmallUpdate,
    "small_find_by_id": SmallFindById,
    "small_find_foreign_key": SmallFindForeignKey,
    "large_create": LargeCreate,
    "large_update": LargeUpdate,
    "nested_create": NestedCreate,
    "nested_update": NestedUpdate,
    "nested_find": NestedFind,
    "nested_find_array": NestedFindArray,
}
