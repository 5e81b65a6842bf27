"""Raw PyMongo async plus plain pydantic v2 models, hand-written: the floor of any ODM that
hands out validated pydantic models.

No ODM: the raw implementation's driver calls, with the documents validated into (and, for
writes, dumped from) plain ``pydantic.BaseModel`` classes of the same fields, the fastest way
pydantic offers (a ``TypeAdapter(list[Model])`` per batch, ``model_validate`` per document),
with the cyclic GC paused around a batch and its objects promoted when it ends by
:func:`odm.gcpause.paused_gc`, the one piece of odm used here (without the pause, hand-written
code is the slower one). The client decodes datetimes as aware UTC
(``tz_aware=True``), as odm promises. Assignments are not validated (pydantic's default) and
updates are written by hand (the program knows which field it changed), so nothing tracks
changes, maps identities, binds sessions or maps errors. An ODM cannot do less and still give
its users validated models; what it costs above this column is the ODM's own. See
``docs/performance.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pymongo import AsyncMongoClient

from odm.gcpause import paused_gc

from . import impl_raw
from .common import ITEMS, STREAM_ITEMS, Context
from .spec_common import SpecContext, SpecTask

NAME = "pydantic"
DESCRIPTION = (
    f"PyMongo {__import__('pymongo').version} AsyncMongoClient (tz_aware) + plain pydantic "
    f"{__import__('pydantic').VERSION} models, hand-written: no ODM"
)

_CONFIG = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)


class Dimensions(BaseModel):
    """The embedded document of an item."""

    width: float
    height: float
    depth: float
    unit: str


class Item(BaseModel):
    """An item of the ``items`` collection (``id`` stored as ``_id``)."""

    model_config = _CONFIG

    id: ObjectId = Field(default_factory=ObjectId, alias="_id")
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


ITEM_LIST: TypeAdapter[list[Item]] = TypeAdapter(list[Item])
STREAM_BATCH = 1000  # odm's default streaming batch


async def setup(ctx: Context) -> None:
    """Create the client (aware UTC datetimes, as odm decodes them)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.uri, tz_aware=True)
    ctx.state["client"] = client
    ctx.state["db"] = client[ctx.db_name]


teardown = impl_raw.teardown


async def insert_many(ctx: Context) -> int:
    """Build ``Item`` models from ``ctx.rows``, dump them in one call, one ``insert_many``."""
    items = [Item(**row) for row in ctx.rows]
    with paused_gc(len(items)):
        docs = ITEM_LIST.dump_python(items, by_alias=True)
    result = await ctx.state["db"][ITEMS].insert_many(docs)
    return len(result.inserted_ids)


async def find_all(ctx: Context) -> int:
    """Load every item and validate the list in one pydantic call."""
    docs = await ctx.state["db"][ITEMS].find({}).to_list()
    with paused_gc(len(docs)):
        items = ITEM_LIST.validate_python(docs)
    return len(items)


async def get_by_id(ctx: Context) -> int:
    """``find_one`` by ``_id`` into an ``Item``, once per id."""
    coll = ctx.state["db"][ITEMS]
    found = 0
    for _id in ctx.ids:
        Item.model_validate(await coll.find_one({"_id": _id}))
        found += 1
    return found


async def filter_sort_limit(ctx: Context) -> int:
    """Equality + range filter, sort on a date, limit 20, the page validated; per query."""
    coll = ctx.state["db"][ITEMS]
    total = 0
    for category, min_price in ctx.queries:
        page = await impl_raw.page_cursor(coll, category, min_price).to_list()
        total += len(ITEM_LIST.validate_python(page))
    return total


async def save_changed_field(ctx: Context) -> int:
    """Load an ``Item`` by ``_id``, change ``stock``, ``$set`` that field (known by hand)."""
    coll = ctx.state["db"][ITEMS]
    for _id in ctx.save_ids:
        item = Item.model_validate(await coll.find_one({"_id": _id}))
        item.stock += 1
        await coll.update_one({"_id": item.id}, {"$set": {"stock": item.stock}})
    return len(ctx.save_ids)


async def stream_memory(ctx: Context) -> int:
    """``stream_items`` in batches of 1,000 (as odm streams), each validated into ``Item``s."""
    count = 0
    cursor = ctx.state["db"][STREAM_ITEMS].find({}, batch_size=STREAM_BATCH)
    while docs := await cursor.to_list(STREAM_BATCH):
        with paused_gc(len(docs)):
            count += len(ITEM_LIST.validate_python(docs))
    return count


WORKLOADS = {
    "insert_many": insert_many,
    "find_all": find_all,
    "get_by_id": get_by_id,
    "filter_sort_limit": filter_sort_limit,
    # Nothing comes back to validate: the raw driver calls are the whole job.
    "update_many": impl_raw.update_many,
    "aggregate_group": impl_raw.aggregate_group,
    "save_changed_field": save_changed_field,
    "transaction_transfer": impl_raw.transaction_transfer,
    "stream_memory": stream_memory,
}


# -- the ODM spec benchmark ----------------------------------------------------------------------
# Each task is the raw one with models in the place of dicts: the same setup (seeded by hand),
# the same driver calls.


def _flat_model(name: str, sample: dict[str, Any], **extra: Any) -> type[BaseModel]:
    """A model typed from a flat dataset document (plus ``id`` stored as ``_id``)."""
    fields: dict[str, Any] = {key: (type(value), ...) for key, value in sample.items()}
    fields["id"] = (ObjectId, Field(default_factory=ObjectId, alias="_id"))
    return create_model(name, __config__=_CONFIG, **fields, **extra)


def _embedded_model(name: str, sample: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {key: (type(value), ...) for key, value in sample.items()}
    fields["unique_id"] = (ObjectId, Field(default_factory=ObjectId))
    return create_model(name, __config__=_CONFIG, **fields)


def build_spec_models(sctx: SpecContext) -> dict[str, Any]:
    """The spec's models, typed from the datasets, with a list adapter for each."""
    foreign_key = _flat_model("ForeignKey", {"name": ""})
    models: dict[str, type[BaseModel]] = {
        "small": _flat_model("SmallDoc", sctx.small),
        # After $lookup + $unwind, field_fk holds the joined document.
        "small_fk": _flat_model("SmallDocFk", sctx.small, field_fk=(foreign_key, ...)),
        "large": _flat_model("LargeDoc", sctx.large),
    }
    str_doc = _embedded_model("StringEmbedded", sctx.nested["embedded_str_doc_1"])
    int_doc = _embedded_model("IntegerEmbedded", sctx.nested["embedded_int_doc_8"])
    nested: dict[str, Any] = {}
    for key, value in sctx.nested.items():
        if isinstance(value, list):
            nested[key] = (list[str_doc], ...)  # type: ignore[valid-type]
        else:
            nested[key] = (str_doc if "str" in key else int_doc, ...)
    nested["id"] = (ObjectId, Field(default_factory=ObjectId, alias="_id"))
    models["nested"] = create_model("LargeNested", __config__=_CONFIG, **nested)
    return {
        "models": models,
        "lists": {key: TypeAdapter(list[model]) for key, model in models.items()},  # type: ignore[valid-type]
    }


async def spec_setup(sctx: SpecContext) -> None:
    """Create the client (aware UTC datetimes) and the models."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(sctx.uri, tz_aware=True)
    sctx.state["client"] = client
    sctx.state["db"] = client[sctx.db_name]
    sctx.state.update(build_spec_models(sctx))


spec_teardown = impl_raw.spec_teardown


def _model(sctx: SpecContext, key: str) -> Any:
    return sctx.state["models"][key]


def _list(sctx: SpecContext, key: str) -> TypeAdapter[list[Any]]:
    adapter: TypeAdapter[list[Any]] = sctx.state["lists"][key]
    return adapter


async def _load_all(sctx: SpecContext, collection: str, key: str) -> list[Any]:
    docs = await sctx.state["db"][collection].find().to_list()
    with paused_gc(len(docs)):
        return _list(sctx, key).validate_python(docs)


class SmallCreate(impl_raw.SmallCreate):
    """``SmallDoc(**SMALL_DOC)`` dumped and inserted, ``ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        coll, model = self.coll(sctx, "small_doc"), _model(sctx, "small")
        for _ in range(sctx.ops):
            await coll.insert_one(model(**sctx.small).model_dump(by_alias=True))


class _SetField1(impl_raw.RawSpec):
    """The raw task's seeding, then its documents loaded as models (``self.models``); set
    ``field1`` on each and ``$set`` it by hand."""

    collection = ""
    model_key = ""
    models: list[Any]
    iteration: int

    async def setup(self, sctx: SpecContext) -> None:
        await super().setup(sctx)
        self.models = await _load_all(sctx, self.collection, self.model_key)

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, self.collection)
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.field1 = value
            await coll.update_one({"_id": doc.id}, {"$set": {"field1": value}})


class SmallUpdate(_SetField1, impl_raw.SmallUpdate):
    """The seeded small documents loaded as models; ``field1`` set and ``$set`` on each."""

    collection = "small_doc"
    model_key = "small"


class SmallFindById(impl_raw.SmallFindById):
    """``find({_id})`` validated into a list of models, once per id."""

    async def do(self, sctx: SpecContext) -> None:
        coll, adapter = self.coll(sctx, "small_doc"), _list(sctx, "small")
        for _id in self.ids:
            docs = adapter.validate_python(await coll.find({"_id": _id}).to_list())
            assert len(docs) == 1


class SmallFindForeignKey(impl_raw.SmallFindForeignKey):
    """The raw ``$match`` + ``$lookup`` + ``$unwind``, validated into models (the joined
    document as a model too)."""

    async def do(self, sctx: SpecContext) -> None:
        small, adapter = self.coll(sctx, "small_doc_fk"), _list(sctx, "small_fk")
        for fk in self.fk_ids:
            cursor = await small.aggregate(impl_raw.foreign_key_pipeline(fk))
            docs = adapter.validate_python(await cursor.to_list())
            assert docs[0].field_fk.name == "foreign_key_name"


class LargeCreate(impl_raw.LargeCreate):
    """``LargeDoc(**LARGE_DOC)`` dumped and inserted, ``large_ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        coll, model = self.coll(sctx, "large_doc"), _model(sctx, "large")
        for _ in range(sctx.large_ops):
            await coll.insert_one(model(**sctx.large).model_dump(by_alias=True))


class LargeUpdate(_SetField1, impl_raw.LargeUpdate):
    """The seeded large documents loaded as models; ``field1`` set and ``$set`` on each."""

    collection = "large_doc"
    model_key = "large"


class NestedCreate(impl_raw.NestedCreate):
    """``LargeNested.model_validate(LARGE_DOC_NESTED)`` (``unique_id``s by default), dumped
    and inserted."""

    async def do(self, sctx: SpecContext) -> None:
        coll, model = self.coll(sctx, "large_doc_nested"), _model(sctx, "nested")
        for _ in range(sctx.ops):
            await coll.insert_one(model.model_validate(sctx.nested).model_dump(by_alias=True))


class _NestedLoaded(impl_raw.NestedSeeded):
    """The raw seeding, then the documents loaded as models (``self.models``)."""

    models: list[Any]

    async def setup(self, sctx: SpecContext) -> None:
        await super().setup(sctx)
        self.models = await _load_all(sctx, "large_doc_nested", "nested")


class NestedUpdate(_NestedLoaded):
    """``doc.embedded_str_doc_1.field1 = v`` and its ``$set`` by hand, per model."""

    async def do(self, sctx: SpecContext) -> None:
        coll = self.coll(sctx, "large_doc_nested")
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.embedded_str_doc_1.field1 = value
            await coll.update_one(
                {"_id": doc.id}, {"$set": {"embedded_str_doc_1.field1": value}}
            )


class NestedFind(_NestedLoaded):
    """Find by ``embedded_str_doc_1.unique_id``, validated into models, per model."""

    async def do(self, sctx: SpecContext) -> None:
        coll, adapter = self.coll(sctx, "large_doc_nested"), _list(sctx, "nested")
        for doc in self.models:
            key = doc.embedded_str_doc_1.unique_id
            found = await coll.find({"embedded_str_doc_1.unique_id": key}).to_list()
            assert len(adapter.validate_python(found)) == 1


class NestedFindArray(_NestedLoaded):
    """Find by the first ``embedded_str_doc_array`` item's ``unique_id``, into models."""

    async def do(self, sctx: SpecContext) -> None:
        coll, adapter = self.coll(sctx, "large_doc_nested"), _list(sctx, "nested")
        for doc in self.models:
            key = doc.embedded_str_doc_array[0].unique_id
            found = await coll.find({"embedded_str_doc_array.unique_id": key}).to_list()
            assert len(adapter.validate_python(found)) == 1


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
