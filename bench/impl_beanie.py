"""Beanie 2.x (on PyMongo's ``AsyncMongoClient``), written the way Beanie's docs show.

Idioms used: ``Document.insert_many``, ``find_all().to_list()``, ``Document.get``,
``find(...).sort(...).limit(...)``, ``find(...).update(Inc(...))``, ``Document.aggregate``,
``save_changes()`` on a model with ``use_state_management = True`` (a ``$set`` of the changed
fields; the plain models do not pay for state management), and for transactions PyMongo's own
session code around Beanie operations (Beanie has no transaction helper).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import Document, Link, PydanticObjectId, init_beanie
from beanie.operators import Inc
from pydantic import BaseModel, Field, create_model
from pymongo import AsyncMongoClient

from .common import ACCOUNTS, GROUP_PIPELINE, ITEMS, PAGE_SIZE, STREAM_ITEMS, Context
from .spec_common import SpecContext, SpecTask

NAME = "beanie"
DESCRIPTION = f"Beanie {__import__('beanie').__version__} on PyMongo AsyncMongoClient"


class Dimensions(BaseModel):
    """The embedded document of an item."""

    width: float
    height: float
    depth: float
    unit: str


class Item(Document):
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

    class Settings:
        name = ITEMS


class TrackedItem(Item):
    """The same documents, with Beanie's state management (for ``save_changes``)."""

    class Settings:
        name = ITEMS
        use_state_management = True


class StreamItem(Item):
    """The documents of ``stream_items``."""

    class Settings:
        name = STREAM_ITEMS


class Account(Document):
    """A bank account (transaction_transfer)."""

    owner: str
    balance: int

    class Settings:
        name = ACCOUNTS


async def setup(ctx: Context) -> None:
    """Create the client and ``init_beanie``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.uri)
    ctx.state["client"] = client
    await init_beanie(
        database=client[ctx.db_name], document_models=[Item, TrackedItem, StreamItem, Account]
    )


async def teardown(ctx: Context) -> None:
    """Close the client."""
    await ctx.state["client"].close()


async def insert_many(ctx: Context) -> int:
    """Build ``Item`` models from ``ctx.rows`` and ``Item.insert_many`` them."""
    result = await Item.insert_many([Item(**row) for row in ctx.rows])
    return len(result.inserted_ids)


async def find_all(ctx: Context) -> int:
    """Load every item into ``Item`` models."""
    return len(await Item.find_all().to_list())


async def get_by_id(ctx: Context) -> int:
    """``Item.get``, once per id."""
    found = 0
    for _id in ctx.ids:
        if await Item.get(_id) is not None:
            found += 1
    return found


async def filter_sort_limit(ctx: Context) -> int:
    """Equality + range filter, sort on a date, limit 20; once per query."""
    total = 0
    for category, min_price in ctx.queries:
        page = (
            await Item.find(Item.category == category, Item.price >= min_price)
            .sort(-Item.created_at)  # type: ignore[operator]
            .limit(PAGE_SIZE)
            .to_list()
        )
        total += len(page)
    return total


async def update_many(ctx: Context) -> int:
    """``$inc`` the views of every active item."""
    result = await Item.find(Item.active == True).update(Inc({Item.views: 1}))  # type: ignore[no-untyped-call]  # noqa: E712
    return int(result.modified_count) if result is not None else 0


async def aggregate_group(ctx: Context) -> int:
    """Group the active items by category."""
    return len(await Item.aggregate(GROUP_PIPELINE).to_list())


async def save_changed_field(ctx: Context) -> int:
    """Load by id, change ``stock``, ``save_changes()`` (state management: a ``$set``)."""
    for _id in ctx.save_ids:
        item = await TrackedItem.get(_id)
        assert item is not None
        item.stock += 1
        await item.save_changes()
    return len(ctx.save_ids)


async def transaction_transfer(ctx: Context) -> int:
    """Two ``find_one(...).update(Inc(...))`` in a PyMongo session transaction."""
    client = ctx.state["client"]
    for source, target, amount in ctx.transfers:
        async with client.start_session() as session, await session.start_transaction():
            await Account.find_one(Account.id == source, session=session).update(
                Inc({Account.balance: -amount}),  # type: ignore[no-untyped-call]
                session=session,
            )
            await Account.find_one(Account.id == target, session=session).update(
                Inc({Account.balance: amount}),  # type: ignore[no-untyped-call]
                session=session,
            )
    return len(ctx.transfers)


async def stream_memory(ctx: Context) -> int:
    """Iterate over every ``StreamItem`` with ``async for``."""
    count = 0
    async for _item in StreamItem.find_all():
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


# -- the ODM spec benchmark --------------------------------------------------------------------


def _fields_of(sample: dict[str, Any]) -> dict[str, Any]:
    """Pydantic field definitions for a flat dataset document (str / int / bytes values)."""
    return {key: (type(value), ...) for key, value in sample.items()}


def _embedded(name: str, sample: dict[str, Any]) -> type[BaseModel]:
    return create_model(
        name,
        **_fields_of(sample),
        unique_id=(PydanticObjectId, Field(default_factory=PydanticObjectId)),
    )


def _document(name: str, collection: str, fields: dict[str, Any], **settings: Any) -> Any:
    """A Beanie Document class built at run time (``type()`` runs Document's metaclass)."""
    settings_cls = type(
        "Settings",
        (),
        {
            "name": collection,
            **settings,
            "__module__": __name__,
            "__qualname__": f"{name}.Settings",
        },
    )
    namespace: dict[str, Any] = {
        "__annotations__": {key: hint for key, (hint, _default) in fields.items()},
        "__module__": __name__,
        "__qualname__": name,
        "Settings": settings_cls,  # a nested class: pydantic leaves it alone
    }
    return type(name, (Document,), namespace)


def build_spec_models(sctx: SpecContext) -> dict[str, Any]:
    """The spec's models as Beanie documents, their fields typed from the datasets."""
    small_fields = _fields_of(sctx.small)
    foreign_key = _document("ForeignKey", "foreign_key", {"name": (str, ...)})
    models: dict[str, Any] = {
        "SmallDoc": _document("SmallDoc", "small_doc", small_fields, use_state_management=True),
        "ForeignKey": foreign_key,
        "SmallDocFk": _document(
            "SmallDocFk", "small_doc_fk", {**small_fields, "field_fk": (Link[foreign_key], ...)},  # type: ignore[valid-type]
        ),
        "LargeDoc": _document(
            "LargeDoc", "large_doc", _fields_of(sctx.large), use_state_management=True
        ),
    }
    str_doc = _embedded("StringEmbedded", sctx.nested["embedded_str_doc_1"])
    int_doc = _embedded("IntegerEmbedded", sctx.nested["embedded_int_doc_8"])
    nested_fields: dict[str, Any] = {}
    for key, value in sctx.nested.items():
        if isinstance(value, list):
            nested_fields[key] = (list[str_doc], ...)  # type: ignore[valid-type]
        elif "str" in key:
            nested_fields[key] = (str_doc, ...)
        else:
            nested_fields[key] = (int_doc, ...)
    models["LargeNested"] = _document(
        "LargeNested", "large_doc_nested", nested_fields, use_state_management=True
    )
    return models


async def spec_setup(sctx: SpecContext) -> None:
    """Create the client, the models, ``init_beanie``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sctx.uri)
    models = build_spec_models(sctx)
    await init_beanie(database=client[sctx.db_name], document_models=list(models.values()))
    sctx.state.update(client=client, models=models, db=client[sctx.db_name])


async def spec_teardown(sctx: SpecContext) -> None:
    """Close the client."""
    await sctx.state["client"].close()


def _m(sctx: SpecContext, name: str) -> Any:
    return sctx.state["models"][name]


class SmallCreate(SpecTask):
    """``SmallDoc(**SMALL_DOC).insert()``, ``ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        for _ in range(sctx.ops):
            await model(**sctx.small).insert()

    async def after(self, sctx: SpecContext) -> None:
        await _m(sctx, "SmallDoc").get_pymongo_collection().drop()


class SmallUpdate(SpecTask):
    """Set ``field1`` on each loaded model and ``save_changes()``."""

    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        await model.insert_many([model(**sctx.small) for _ in range(sctx.ops)])
        self.models = await model.find_all().to_list()
        self.iteration = 0

    async def do(self, sctx: SpecContext) -> None:
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.field1 = value
            await doc.save_changes()

    async def teardown(self, sctx: SpecContext) -> None:
        await _m(sctx, "SmallDoc").get_pymongo_collection().drop()


class SmallFindById(SpecTask):
    """``SmallDoc.find(SmallDoc.id == _id).to_list()``, once per id."""

    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        result = await model.insert_many([model(**sctx.small) for _ in range(sctx.ops)])
        self.ids = result.inserted_ids

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        for _id in self.ids:
            docs = await model.find(model.id == _id).to_list()
            assert len(docs) == 1

    async def teardown(self, sctx: SpecContext) -> None:
        await _m(sctx, "SmallDoc").get_pymongo_collection().drop()


class SmallFindForeignKey(SpecTask):
    """``find(field_fk.id == fk)`` then ``fetch_all_links()`` (a second query).

    Beanie's one-query join, ``find(..., fetch_links=True)``, puts its ``$lookup`` stages
    BEFORE the ``$match`` on the link, so every query joins the whole collection: 2,000 queries
    over 2,000 documents did not finish in minutes here. Fetching the link is Beanie's other
    idiom, and the one a Beanie user would pick.
    """

    async def setup(self, sctx: SpecContext) -> None:
        fk_model, model = _m(sctx, "ForeignKey"), _m(sctx, "SmallDocFk")
        fks = [fk_model(name="foreign_key_name") for _ in range(sctx.ops)]
        result = await fk_model.insert_many(fks)
        for fk, _id in zip(fks, result.inserted_ids, strict=True):
            fk.id = _id
        await model.insert_many([model(**sctx.small, field_fk=fk) for fk in fks])
        await model.get_pymongo_collection().create_index("field_fk.$id")
        self.fk_ids = result.inserted_ids

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDocFk")
        for fk in self.fk_ids:
            docs = await model.find(model.field_fk.id == fk).to_list()
            assert len(docs) == 1
            await docs[0].fetch_all_links()
            assert docs[0].field_fk.name == "foreign_key_name"

    async def teardown(self, sctx: SpecContext) -> None:
        await _m(sctx, "SmallDocFk").get_pymongo_collection().drop()
        await _m(sctx, "ForeignKey").get_pymongo_collection().drop()


class LargeCreate(SpecTask):
    """``LargeDoc(**LARGE_DOC).insert()``, ``large_ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeDoc")
        for _ in range(sctx.large_ops):
            await model(**sctx.large).insert()

    async def after(self, sctx: SpecContext) -> None:
        await _m(sctx, "LargeDoc").get_pymongo_collection().drop()


class LargeUpdate(SpecTask):
    """Set ``field1`` on each loaded large model and ``save_changes()``."""

    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeDoc")
        for _ in range(sctx.large_ops):
            await model(**sctx.large).insert()
        self.models = await model.find_all().to_list()
        self.iteration = 0

    async def do(self, sctx: SpecContext) -> None:
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.field1 = value
            await doc.save_changes()

    async def teardown(self, sctx: SpecContext) -> None:
        await _m(sctx, "LargeDoc").get_pymongo_collection().drop()


class NestedCreate(SpecTask):
    """``LargeNested.model_validate(LARGE_DOC_NESTED).insert()`` (``unique_id``s by default)."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        for _ in range(sctx.ops):
            await model.model_validate(sctx.nested).insert()

    async def after(self, sctx: SpecContext) -> None:
        await _m(sctx, "LargeNested").get_pymongo_collection().drop()


class _NestedSeeded(SpecTask):
    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        await model.insert_many([model.model_validate(sctx.nested) for _ in range(sctx.ops)])
        coll = model.get_pymongo_collection()
        await coll.create_index("embedded_str_doc_1.unique_id")
        await coll.create_index("embedded_str_doc_array.unique_id")
        self.models = await model.find_all().to_list()
        self.iteration = 0

    async def teardown(self, sctx: SpecContext) -> None:
        await _m(sctx, "LargeNested").get_pymongo_collection().drop()


class NestedUpdate(_NestedSeeded):
    """Set ``embedded_str_doc_1.field1`` on each loaded model and ``save_changes()``."""

    async def do(self, sctx: SpecContext) -> None:
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.embedded_str_doc_1.field1 = value
            await doc.save_changes()


class NestedFind(_NestedSeeded):
    """``find(LargeNested.embedded_str_doc_1.unique_id == key).to_list()`` per model."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        for doc in self.models:
            key = doc.embedded_str_doc_1.unique_id
            found = await model.find(model.embedded_str_doc_1.unique_id == key).to_list()
            assert len(found) == 1


class NestedFindArray(_NestedSeeded):
    """``find({"embedded_str_doc_array.unique_id": key}).to_list()`` per model."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        for doc in self.models:
            key = doc.embedded_str_doc_array[0].unique_id
            found = await model.find({"embedded_str_doc_array.unique_id": key}).to_list()
            assert len(found) == 1


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
