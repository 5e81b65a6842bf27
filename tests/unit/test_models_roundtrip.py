"""BSON round trip of every supported field type (a hypothesis property test).

The datetime rule: BSON keeps UTC milliseconds, so a datetime comes back aware, in UTC, with its
microseconds cut to milliseconds; a naive datetime is taken as UTC. An ``odm.Decimal`` is stored
as Decimal128 and comes back as the same ``decimal.Decimal`` (digits and exponent).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Any, Literal

import bson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odm.document import Document, Embedded
from odm.executor import CODEC_OPTIONS
from odm.models.fields import Decimal, ObjectId, Reference
from odm.models.loading import load_documents
from odm.models.tracking import diff


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Inner(Embedded):
    label: str
    when: dt.datetime | None = None
    numbers: list[int] = []
    cost: Decimal | None = None


class Target(Document):
    class Meta:
        collection = "roundtrip_targets"


class Everything(Document):
    text: str
    number: int
    real: float
    flag: bool
    blob: bytes
    maybe: str | None
    when: dt.datetime
    day: dt.date
    oid: ObjectId
    uid: uuid.UUID
    color: Color
    level: Level
    kind: Literal["a", "b"]
    tags: list[str]
    matrix: list[list[int]]
    mapping: dict[str, int]
    anything: dict[str, Any]
    inner: Inner
    inners: list[Inner]
    ref: Reference[Target]
    pair: tuple[int, str]
    price: Decimal
    amounts: list[Decimal]

    class Meta:
        collection = "roundtrip_everything"


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
keys = st.text("abcdefghij_", min_size=1, max_size=8)
int64 = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=False)
datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
)
scalars = st.one_of(st.none(), st.booleans(), int64, floats, texts)
anything = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
# Every finite value BSON's Decimal128 holds exactly: up to 34 digits, exponent -6176..6111.
decimals = st.builds(
    lambda sign, digits, exponent: decimal.Decimal((sign, tuple(map(int, str(digits))), exponent)),
    st.integers(0, 1), st.integers(0, 10**34 - 1),
    st.integers(-6176, 6111) | st.integers(-10, 10),
)
inners = st.builds(
    Inner, label=texts, when=st.none() | datetimes, numbers=st.lists(int64, max_size=3),
    cost=st.none() | decimals,
)
object_ids = st.builds(bson.ObjectId)

documents = st.builds(
    Everything,
    text=texts, number=int64, real=floats, flag=st.booleans(), blob=st.binary(max_size=16),
    maybe=st.none() | texts, when=datetimes, day=st.dates(dt.date(1900, 1, 1)),
    oid=object_ids, uid=st.uuids(), color=st.sampled_from(Color),
    level=st.sampled_from(Level), kind=st.sampled_from(["a", "b"]),
    tags=st.lists(texts, max_size=4), matrix=st.lists(st.lists(int64, max_size=3), max_size=3),
    mapping=st.dictionaries(keys, int64, max_size=3),
    anything=st.dictionaries(keys, anything, max_size=3),
    inner=inners, inners=st.lists(inners, max_size=2), ref=object_ids,
    pair=st.tuples(int64, texts), price=decimals, amounts=st.lists(decimals, max_size=3),
)


def stored(value: dt.datetime) -> dt.datetime:
    """The datetime rule: aware UTC, milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_every_field_type_survives_bson(doc: Everything) -> None:
    raw = doc.to_bson()
    decoded = bson.decode(bson.encode(raw, codec_options=CODEC_OPTIONS), CODEC_OPTIONS)
    (loaded,) = load_documents(Everything, [decoded])

    # Reading back and saving again sends nothing: stored values equal the dump.
    assert diff(decoded, loaded.to_bson()) == {}
    assert diff(decoded, raw) == {}

    expected = doc.model_dump()
    expected["when"] = stored(doc.when)
    expected["inner"]["when"] = doc.inner.when and stored(doc.inner.when)
    for position, item in enumerate(doc.inners):
        expected["inners"][position]["when"] = item.when and stored(item.when)
    assert loaded.model_dump() == expected
    assert loaded.when.tzinfo is not None and loaded.when.utcoffset() == dt.timedelta(0)
    assert isinstance(loaded.color, Color) and isinstance(loaded.uid, uuid.UUID)
    assert loaded.ref.model is Target
    # Decimals come back as decimal.Decimal with the same digits and exponent.
    assert isinstance(raw["price"], bson.Decimal128) and isinstance(loaded.price, decimal.Decimal)
    assert loaded.price.as_tuple() == doc.price.as_tuple()
    assert [a.as_tuple() for a in loaded.amounts] == [a.as_tuple() for a in doc.amounts]
    assert loaded.inner.cost == doc.inner.cost
