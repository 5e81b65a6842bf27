"""The ``$jsonSchema`` validator of a model, installed on a real collection: it accepts every
document the model writes (a hypothesis property test) and refuses wrong-typed ones."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Annotated, Any, Literal

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field
from pymongo import MongoClient
from pymongo.errors import WriteError

from odm.document import Document, Embedded
from odm.executor import CODEC_OPTIONS
from odm.models.fields import Decimal, ObjectId, Reference
from odm.models.jsonschema import validator_for
from tests.properties import server_property


class JsColor(enum.Enum):
    RED = "red"
    GREEN = "green"


class JsLevel(enum.IntEnum):
    LOW = 1
    HIGH = 2


class JsLine(Embedded):
    sku: Annotated[str, Field(min_length=1, max_length=8)]
    qty: Annotated[int, Field(ge=1)] = 1
    price: Decimal | None = None
    when: dt.datetime | None = None


class JsCustomer(Document):
    class Meta:
        collection = "js_customers"


class JsAccount(Document):
    id: str  # a reference to it holds a string

    class Meta:
        collection = "js_accounts"


class JsEverything(Document):
    text: str
    number: Annotated[int, Field(ge=0)]
    real: float
    flag: bool
    blob: bytes
    maybe: str | None
    when: dt.datetime
    day: dt.date
    oid: ObjectId
    uid: uuid.UUID
    color: JsColor
    level: JsLevel
    kind: Literal["a", "b"]
    tags: list[str]
    matrix: list[list[int]]
    mapping: dict[str, int]
    anything: dict[str, Any]
    line: JsLine
    lines: list[JsLine]
    customer: Reference[JsCustomer]
    account: Reference[JsAccount] | None
    parent: Reference[JsEverything] | None = None
    pair: tuple[int, str]
    price: Decimal
    prices: list[Decimal]
    note: str = ""
    secret: str = Field(default="", exclude=True)

    class Meta:
        collection = "js_everything"
        validate_on_server = True


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
keys = st.text("abcdefghij_", min_size=1, max_size=8)
int64 = st.integers(-(2**63), 2**63 - 1)
datetimes = st.datetimes(
    dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
decimals = st.builds(
    lambda sign, digits, exponent: D((sign, tuple(map(int, str(digits))), exponent)),
    st.integers(0, 1), st.integers(0, 10**34 - 1), st.integers(-6176, 6111) | st.integers(-4, 4),
)
scalars = st.one_of(st.none(), st.booleans(), int64, st.floats(allow_nan=False), texts)
anything = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)
lines = st.builds(
    JsLine, sku=st.text("abcxyz", min_size=1, max_size=8), qty=st.integers(1, 2**40),
    price=st.none() | decimals, when=st.none() | datetimes,
)
object_ids = st.builds(bson.ObjectId)
documents = st.builds(
    JsEverything,
    text=texts, number=st.integers(0, 2**63 - 1), real=st.floats(allow_nan=False),
    flag=st.booleans(), blob=st.binary(max_size=8), maybe=st.none() | texts, when=datetimes,
    day=st.dates(dt.date(1900, 1, 1)), oid=object_ids, uid=st.uuids(),
    color=st.sampled_from(JsColor), level=st.sampled_from(JsLevel),
    kind=st.sampled_from(["a", "b"]), tags=st.lists(texts, max_size=3),
    matrix=st.lists(st.lists(int64, max_size=3), max_size=3),
    mapping=st.dictionaries(keys, int64, max_size=3),
    anything=st.dictionaries(keys, anything, max_size=3), line=lines,
    lines=st.lists(lines, max_size=2), customer=object_ids,
    account=st.none() | texts, parent=st.none() | object_ids, pair=st.tuples(int64, texts),
    price=decimals, prices=st.lists(decimals, max_size=3), note=texts, secret=texts,
)


@pytest.fixture(scope="module")
def collection(odm_uri: str) -> Iterator[Any]:
    """A collection with JsEverything's validator, written through the ODM's codec."""
    client: MongoClient[dict[str, Any]] = MongoClient(odm_uri)
    name = f"odm_test_js_{uuid.uuid4().hex[:10]}"
    try:
        database = client.get_database(name, codec_options=CODEC_OPTIONS)
        yield database.create_collection("js_everything", validator=validator_for(JsEverything))
    finally:
        client.drop_database(name)
        client.close()


def valid() -> dict[str, Any]:
    return JsEverything(
        text="t", number=1, real=1.5, flag=True, blob=b"x", maybe=None,
        when=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), day=dt.date(2024, 1, 2),
        oid=bson.ObjectId(), uid=uuid.uuid4(), color=JsColor.RED, level=JsLevel.HIGH, kind="a",
        tags=["a"], matrix=[[1]], mapping={"a": 1}, anything={"x": [1, "y"]},
        line=JsLine(sku="s", price=D("1.5")), lines=[JsLine(sku="t")], customer=bson.ObjectId(),
        account="acc", pair=(1, "x"), price=D("9.99"), prices=[D("1")],
    ).to_bson()


@server_property(max_examples=60)
@given(documents)
def test_the_validator_accepts_what_the_model_writes(collection: Any, doc: JsEverything) -> None:
    collection.insert_one(doc.to_bson())


WRONG: list[tuple[str, Any]] = [
    ("text", 42), ("number", -1), ("number", "3"), ("real", "1.5"), ("flag", 1),
    ("blob", "bytes"), ("maybe", 5), ("when", "2024-01-01T00:00:00Z"), ("day", "2024-01-01"),
    ("oid", "5eb7cf5a86d9755df3a6c593"), ("uid", "7d444840-9dc0-11d1-b245-5ffdce74fad2"),
    ("color", "blue"), ("level", 3), ("kind", "c"), ("tags", "a"), ("tags", [1]),
    ("matrix", [["x"]]), ("mapping", {"a": "x"}), ("line", {"qty": 1}),
    ("line", {"sku": ""}), ("line", {"sku": "s", "qty": 0}), ("line", {"sku": "s", "price": 1.5}),
    ("lines", [{"sku": 1}]), ("customer", "5eb7cf5a86d9755df3a6c593"), ("account", 7),
    ("parent", "x"), ("pair", [1]), ("price", 9.99), ("price", "9.99"),
    ("prices", [1]), ("_id", "not-an-objectid"),
]


@pytest.mark.parametrize(("field", "value"), WRONG, ids=[f"{f}={v!r}" for f, v in WRONG])
def test_the_validator_refuses_a_wrong_type(collection: Any, field: str, value: Any) -> None:
    document = valid()
    collection.insert_one(valid())  # the same document, right-typed, is accepted
    document["_id"] = bson.ObjectId()
    document[field] = value
    with pytest.raises(WriteError) as refused:
        collection.insert_one(document)
    assert refused.value.code == 121  # DocumentValidationFailure


def test_missing_required_fields_are_refused_and_defaults_may_be_absent(collection: Any) -> None:
    document = valid()
    del document["text"]
    with pytest.raises(WriteError):
        collection.insert_one(document)
    legacy = valid()
    del legacy["note"], legacy["parent"]  # written before these fields existed
    collection.insert_one(legacy)


async def test_through_the_odm(odm_database: Any) -> None:
    await odm_database.create_collection(
        "js_everything", validator=validator_for(JsEverything)
    )
    doc = JsEverything.model_validate(valid())
    await doc.insert()
    doc.price = D("10.50")
    doc.lines.append(JsLine(sku="new", qty=3, when=dt.datetime.now(dt.UTC)))
    await doc.save()
    with pytest.raises(WriteError):
        await odm_database.js_everything.update_one({"_id": doc.id}, {"$set": {"price": 10.5}})
    assert (await JsEverything.objects.get(id=doc.id)).price == D("10.50")
