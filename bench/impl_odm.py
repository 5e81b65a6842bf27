"""odm, written the way its users write it (``docs/``, ``/work/shared/design/API.md``).

Idioms used: ``Model.objects.bulk_create``, ``await Model.objects`` (a list of validated
models), ``await Model.objects.get(id=...)``, ``filter(...).order_by(...)[:n]``,
``filter(...).update(views=F("views") + 1)``, ``values(...).annotate(...)`` (a ``$group``),
load + change one field + ``save()`` (change tracking sends a ``$set`` of that field),
``async with odm.transaction():`` around two ``F()`` updates, and ``async for`` over a
queryset (odm streams with its default batch size, which bounds memory).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import odm
from odm import F, Index, Reference
from odm.aggregates import Avg, Count, Sum

from .common import ACCOUNTS, ITEMS, PAGE_SIZE, STREAM_ITEMS, Context
from .spec_common import SpecContext, SpecTask

NAME = "odm"
DESCRIPTION = f"odm {odm.__version__} on PyMongo {__import__('pymongo').version} AsyncMongoClient"


class Dimensions(odm.Embedded):
    """The embedded document of an item."""

    width: float
    height: float
    depth: float
    unit: str


class Item(odm.Document):
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

    class Meta:
        collection = ITEMS
        indexes = [Index("category", "-created_at")]


class StreamItem(Item):
    """The same documents, in ``stream_items`` (the memory workload)."""

    class Meta:
        collection = STREAM_ITEMS


class Account(odm.Document):
    """A bank account (transaction_transfer)."""

    owner: str
    balance: int

    class Meta:
        collection = ACCOUNTS


async def setup(ctx: Context) -> None:
    """Connect (one client for the app) and bind the models to ``ctx.db_name``."""
    await odm.connect(ctx.uri, db=ctx.db_name, models=[Item, StreamItem, Account])


async def teardown(ctx: Context) -> None:
    """Disconnect."""
    await odm.disconnect()


async def insert_many(ctx: Context) -> int:
    """Build ``Item`` models from ``ctx.rows`` and ``bulk_create`` them (one insert_many)."""
    created = await Item.objects.bulk_create([Item(**row) for row in ctx.rows])
    return len(created)


async def find_all(ctx: Context) -> int:
    """Load every item into validated ``Item`` models."""
    return len(await Item.objects.all())


async def get_by_id(ctx: Context) -> int:
    """``Item.objects.get(id=...)``, once per id."""
    found = 0
    for _id in ctx.ids:
        await Item.objects.get(id=_id)
        found += 1
    return found


async def filter_sort_limit(ctx: Context) -> int:
    """Equality + range filter, sort on a date, limit 20; once per query."""
    total = 0
    for category, min_price in ctx.queries:
        page = await Item.objects.filter(category=category, price__gte=min_price).order_by(
            "-created_at"
        )[:PAGE_SIZE]
        total += len(page)
    return total


async def update_many(ctx: Context) -> int:
    """``$inc`` the views of every active item (one update_many)."""
    return await Item.objects.filter(active=True).update(views=F("views") + 1)


async def aggregate_group(ctx: Context) -> int:
    """Group the active items by category (count, average price, total stock)."""
    groups = await (
        Item.objects.filter(active=True)
        .values("category")
        .annotate(count=Count(), avg_price=Avg("price"), total_stock=Sum("stock"))
        .order_by("category")
    )
    return len(groups)


async def save_changed_field(ctx: Context) -> int:
    """Load by id, change ``stock``, ``save()`` (change tracking: a ``$set`` of ``stock``)."""
    for _id in ctx.save_ids:
        item = await Item.objects.get(id=_id)
        item.stock += 1
        await item.save()
    return len(ctx.save_ids)


async def transaction_transfer(ctx: Context) -> int:
    """Two ``F()`` updates in ``odm.transaction()`` (the session is bound, never passed)."""
    for source, target, amount in ctx.transfers:
        async with odm.transaction():
            await Account.objects.filter(id=source).update(balance=F("balance") - amount)
            await Account.objects.filter(id=target).update(balance=F("balance") + amount)
    return len(ctx.transfers)


async def stream_memory(ctx: Context) -> int:
    """Iterate over every ``StreamItem`` with ``async for`` (odm's default batch size)."""
    count = 0
    async for _item in StreamItem.objects.all():
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
    """Annotations for a flat dataset document (str / int / bytes values)."""
    return {key: type(value) for key, value in sample.items()}


def _model(name: str, base: type[Any], annotations: dict[str, Any], **extra: Any) -> Any:
    """A model class built at run time (``type()`` runs odm's metaclass, ``Meta`` included)."""
    namespace: dict[str, Any] = {
        "__annotations__": annotations,
        "__module__": __name__,
        "__qualname__": name,
        **extra,
    }
    return type(name, (base,), namespace)


def _meta(collection: str, **options: Any) -> type:
    return type("Meta", (), {"collection": collection, **options})


_spec_models: dict[str, Any] = {}


def build_spec_models(sctx: SpecContext) -> dict[str, Any]:
    """The spec's models as odm documents, typed from the datasets (built once per process)."""
    if _spec_models:
        return _spec_models
    small = _fields_of(sctx.small)
    foreign_key = _model("ForeignKey", odm.Document, {"name": str}, Meta=_meta("foreign_key"))
    models: dict[str, Any] = {
        "SmallDoc": _model("SmallDoc", odm.Document, small, Meta=_meta("small_doc")),
        "ForeignKey": foreign_key,
        "SmallDocFk": _model(
            "SmallDocFk",
            odm.Document,
            {**small, "field_fk": Reference[foreign_key]},  # type: ignore[valid-type]
            Meta=_meta("small_doc_fk", indexes=[Index("field_fk")]),
        ),
        "LargeDoc": _model(
            "LargeDoc", odm.Document, _fields_of(sctx.large), Meta=_meta("large_doc")
        ),
    }

    def embedded(name: str, sample: dict[str, Any]) -> Any:
        return _model(
            name,
            odm.Embedded,
            {**_fields_of(sample), "unique_id": odm.ObjectId},
            unique_id=odm.Field(default_factory=odm.ObjectId),
        )

    str_doc = embedded("StringEmbedded", sctx.nested["embedded_str_doc_1"])
    int_doc = embedded("IntegerEmbedded", sctx.nested["embedded_int_doc_8"])
    nested: dict[str, Any] = {}
    for key, value in sctx.nested.items():
        if isinstance(value, list):
            nested[key] = list[str_doc]  # type: ignore[valid-type]
        else:
            nested[key] = str_doc if "str" in key else int_doc
    models["LargeNested"] = _model(
        "LargeNested",
        odm.Document,
        nested,
        Meta=_meta(
            "large_doc_nested",
            indexes=[
                Index("embedded_str_doc_1.unique_id"),
                Index("embedded_str_doc_array.unique_id"),
            ],
        ),
    )
    _spec_models.update(models)
    return _spec_models


async def spec_setup(sctx: SpecContext) -> None:
    """Connect and bind the spec's models."""
    models = build_spec_models(sctx)
    await odm.connect(sctx.uri, db=sctx.db_name, models=list(models.values()))
    sctx.state["models"] = models


async def spec_teardown(sctx: SpecContext) -> None:
    """Disconnect."""
    await odm.disconnect()


def _m(sctx: SpecContext, name: str) -> Any:
    return sctx.state["models"][name]


async def _drop(model: Any) -> None:
    await odm.get_database().drop_collection(model._meta.collection)


class SmallCreate(SpecTask):
    """``SmallDoc(**SMALL_DOC).insert()``, ``ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        for _ in range(sctx.ops):
            await model(**sctx.small).insert()

    async def after(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, "SmallDoc"))


class _SaveField1(SpecTask):
    """Set ``field1`` on each loaded model of ``model_name`` and ``save()`` (a ``$set`` of that
    field); the subclass's ``setup`` stores the documents and loads ``self.models``."""

    model_name = ""
    models: list[Any]
    iteration: int

    async def do(self, sctx: SpecContext) -> None:
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.field1 = value
            await doc.save()

    async def teardown(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, self.model_name))


class SmallUpdate(_SaveField1):
    """Set ``field1`` on each loaded model and ``save()`` (a ``$set`` of that field)."""

    model_name = "SmallDoc"

    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        await model.objects.bulk_create([model(**sctx.small) for _ in range(sctx.ops)])
        self.models = await model.objects.all()
        self.iteration = 0


class SmallFindById(SpecTask):
    """``await SmallDoc.objects.filter(id=_id)`` (a list), once per id."""

    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        docs = await model.objects.bulk_create([model(**sctx.small) for _ in range(sctx.ops)])
        self.ids = [doc.id for doc in docs]

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDoc")
        for _id in self.ids:
            docs = await model.objects.filter(id=_id)
            assert len(docs) == 1

    async def teardown(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, "SmallDoc"))


class SmallFindForeignKey(SpecTask):
    """``filter(field_fk=fk).select_related("field_fk")``: one query, ``$match`` then
    ``$lookup``."""

    async def setup(self, sctx: SpecContext) -> None:
        fk_model, model = _m(sctx, "ForeignKey"), _m(sctx, "SmallDocFk")
        fks = await fk_model.objects.bulk_create(
            [fk_model(name="foreign_key_name") for _ in range(sctx.ops)]
        )
        await model.objects.bulk_create([model(**sctx.small, field_fk=fk) for fk in fks])
        await odm.ensure_indexes(models=[model])
        self.fk_ids = [fk.id for fk in fks]

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "SmallDocFk")
        for fk in self.fk_ids:
            docs = await model.objects.filter(field_fk=fk).select_related("field_fk")
            assert len(docs) == 1
            assert docs[0].field_fk.document.name == "foreign_key_name"

    async def teardown(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, "SmallDocFk"))
        await _drop(_m(sctx, "ForeignKey"))


class LargeCreate(SpecTask):
    """``LargeDoc(**LARGE_DOC).insert()``, ``large_ops`` times."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeDoc")
        for _ in range(sctx.large_ops):
            await model(**sctx.large).insert()

    async def after(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, "LargeDoc"))


class LargeUpdate(_SaveField1):
    """Set ``field1`` on each loaded large model and ``save()``."""

    model_name = "LargeDoc"

    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeDoc")
        for _ in range(sctx.large_ops):
            await model(**sctx.large).insert()
        self.models = await model.objects.all()
        self.iteration = 0


class NestedCreate(SpecTask):
    """``LargeNested.model_validate(LARGE_DOC_NESTED).insert()`` (``unique_id``s by default)."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        for _ in range(sctx.ops):
            await model.model_validate(sctx.nested).insert()

    async def after(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, "LargeNested"))


class _NestedSeeded(SpecTask):
    async def setup(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        await model.objects.bulk_create(
            [model.model_validate(sctx.nested) for _ in range(sctx.ops)]
        )
        await odm.ensure_indexes(models=[model])
        self.models = await model.objects.all()
        self.iteration = 0

    async def teardown(self, sctx: SpecContext) -> None:
        await _drop(_m(sctx, "LargeNested"))


class NestedUpdate(_NestedSeeded):
    """Set ``embedded_str_doc_1.field1`` on each loaded model and ``save()``
    (``{"$set": {"embedded_str_doc_1.field1": ...}}``)."""

    async def do(self, sctx: SpecContext) -> None:
        value = f"updated_value{self.iteration}"
        self.iteration += 1
        for doc in self.models:
            doc.embedded_str_doc_1.field1 = value
            await doc.save()


class NestedFind(_NestedSeeded):
    """``filter(embedded_str_doc_1__unique_id=key)`` per model."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        for doc in self.models:
            key = doc.embedded_str_doc_1.unique_id
            found = await model.objects.filter(embedded_str_doc_1__unique_id=key)
            assert len(found) == 1


class NestedFindArray(_NestedSeeded):
    """``filter(embedded_str_doc_array__unique_id=key)`` (a path through list items)."""

    async def do(self, sctx: SpecContext) -> None:
        model = _m(sctx, "LargeNested")
        for doc in self.models:
            key = doc.embedded_str_doc_array[0].unique_id
            found = await model.objects.filter(embedded_str_doc_array__unique_id=key)
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
