"""Documents decoded with naive datetimes and fixed up by their class's plan load exactly as
the aware decoding loads them: the same instances, snapshots and errors (hypothesis), and
the classes whose datetimes could go where the fix-up does not look keep the aware decoding."""

from __future__ import annotations

import datetime as dt
import enum
import sys
from typing import Annotated, Any, Literal

import bson
import pytest
from bson.codec_options import CodecOptions
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AliasChoices, BeforeValidator, ConfigDict, ValidationError, field_validator

import odm
from odm.executor import CODEC_OPTIONS, NAIVE_CODEC_OPTIONS
from odm.models.loading import NAIVE_DECODING_PAYS, load_documents, make_aware, naive_fixer
from odm.models.model_plan import EPOCH_AWARE, EPOCH_NAIVE, datetime_fixer
from odm.models.tracking import get_snapshot


class Stamp(odm.Embedded):
    at: dt.datetime
    label: str = "s"


class Box(odm.Embedded):
    width: float
    stamp: Stamp | None = None


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Timed(odm.Document):
    name: str
    count: int = 0
    ratio: float = 1.0
    flag: bool = False
    created: dt.datetime
    seen: dt.datetime | None = None
    times: list[dt.datetime] = []
    tags: list[str] = []
    box: Box
    boxes: list[Box] = []
    colour: Colour = Colour.RED
    kind: Literal["a", "b"] = "a"
    ref: odm.ObjectId | None = None
    renamed: dt.datetime | None = odm.Field(default=None, alias="stored_at")


# -- the identity proof ------------------------------------------------------------------------

datetimes = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
scalars = st.one_of(
    st.text(max_size=3), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.booleans(), st.none(), datetimes, st.just(bson.ObjectId("65f000000000000000000001")),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["at", "x", "label", "width"]), inner, max_size=3),
        st.builds(
            lambda ts: bson.DBRef("c", 1, None, ts=ts), datetimes
        ),
    ),
    max_leaves=6,
)


def stamp() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"at": datetimes}, optional={"label": st.text(max_size=2)})


def box() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"width": st.floats(allow_nan=False)}, optional={"stamp": st.one_of(st.none(), stamp())}
    )


valid = st.fixed_dictionaries(
    {"_id": st.just(bson.ObjectId()), "name": st.text(max_size=4), "created": datetimes,
     "box": box()},
    optional={
        "count": st.integers(-100, 100), "ratio": st.floats(allow_nan=False),
        "flag": st.booleans(), "seen": st.one_of(st.none(), datetimes),
        "times": st.lists(datetimes, max_size=3), "tags": st.lists(st.text(max_size=2)),
        "boxes": st.lists(box(), max_size=2), "colour": st.sampled_from(["red", "blue"]),
        "kind": st.sampled_from(["a", "b"]), "stored_at": st.one_of(st.none(), datetimes),
        "renamed": datetimes, "_cls": st.just("Timed"),
    },
)
# Where a stored value may go wrong: any value at any field, nested or not, and keys the
# class does not know (at the top and inside embedded documents).
PATHS = [
    ("name",), ("count",), ("created",), ("seen",), ("times",), ("tags",), ("box",),
    ("box", "width"), ("box", "stamp"), ("box", "stamp", "at"), ("box", "other"),
    ("id",), ("stored_at",), ("renamed",),
    ("boxes",), ("colour",), ("kind",), ("ref",), ("unknown",), ("_cls",),
]


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(valid)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        node: Any = doc
        for key in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                node = None
                break
            node = node[key]
        if isinstance(node, dict):
            if draw(st.booleans()):
                node[path[-1]] = draw(anything)
            else:  # a key gone (a required one missing beside an unknown one, say; _id stays:
                # without it each load makes a new ObjectId)
                node.pop(path[-1], None)
    return doc


def _both(docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch decoded aware (today's reads) and naive (the fix-up's input)."""
    encoded = [bson.encode(doc, codec_options=CODEC_OPTIONS) for doc in docs]
    aware = [bson.decode(b, codec_options=CODEC_OPTIONS) for b in encoded]
    naive = [bson.decode(b, codec_options=NAIVE_CODEC_OPTIONS) for b in encoded]
    return aware, naive


def _typed(value: Any) -> Any:
    """``value`` with every type and tzinfo spelled out (``==`` ignores them)."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, bson.DBRef):
        return ("dbref", _typed(value.as_doc()))
    if isinstance(value, dt.datetime):
        return ("dt", value.isoformat(), id(value.tzinfo) if value.tzinfo else None)
    if isinstance(value, odm.Embedded | odm.Document):
        return (type(value).__name__, _typed(dict(value.__dict__)))
    return (type(value).__name__, value)


def _outcome(docs: list[dict[str, Any]], **kwargs: Any) -> Any:
    try:
        loaded = load_documents(Timed, docs, **kwargs)
    except ValidationError as exc:
        return ("error", str(exc), exc.errors(include_url=False))
    return [
        (_typed(doc), _typed(get_snapshot(doc)), sorted(doc.model_fields_set)) for doc in loaded
    ]


@settings(max_examples=400, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4))
def test_naive_decoding_and_the_fix_up_load_what_the_aware_decoding_loads(
    docs: list[dict[str, Any]],
) -> None:
    aware, naive = _both(docs)
    expected = _outcome(aware)
    assert _outcome(naive, fixer=datetime_fixer(Timed)) == expected
    # The raw documents themselves (what an error shows and a snapshot keeps) end the same.
    assert _typed(naive) == _typed(aware)


@settings(max_examples=100, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=3))
def test_lenient_loads_with_naive_decoding_are_the_aware_ones(docs: list[dict[str, Any]]) -> None:
    aware, naive = _both(docs)

    def lenient(raws: list[dict[str, Any]], **kwargs: Any) -> Any:
        out = []
        for item in load_documents(Timed, raws, lenient=True, **kwargs):
            if isinstance(item, odm.Invalid):
                out.append(("invalid", _typed(item.raw), str(item.error)))
            else:
                out.append((_typed(item), _typed(get_snapshot(item))))
        return out

    assert lenient(naive, fixer=datetime_fixer(Timed)) == lenient(aware)


@given(datetimes)
def test_the_fix_up_gives_the_aware_decodings_very_value(value: dt.datetime) -> None:
    encoded = bson.encode({"v": value})
    aware = bson.decode(encoded, codec_options=CodecOptions(tz_aware=True))["v"]
    fixed = EPOCH_AWARE + (bson.decode(encoded)["v"] - EPOCH_NAIVE)
    assert (fixed, fixed.tzinfo, fixed.fold) == (aware, aware.tzinfo, aware.fold)
    assert fixed.tzinfo is aware.tzinfo


def test_make_aware_reaches_every_nested_place() -> None:
    naive = dt.datetime(2020, 1, 1)
    doc = {"a": [naive, {"b": naive}], "r": bson.DBRef("c", naive, None, at=naive)}
    make_aware([doc])
    assert doc["a"][0].tzinfo is EPOCH_AWARE.tzinfo
    assert doc["a"][1]["b"].tzinfo is EPOCH_AWARE.tzinfo
    assert doc["r"].id.tzinfo is EPOCH_AWARE.tzinfo and doc["r"].at.tzinfo is EPOCH_AWARE.tzinfo


# -- which classes get a fix-up ----------------------------------------------------------------


class NoDatetime(odm.Document):
    name: str
    box: Stamp | None = None  # a datetime below: worth fixing
    tags: list[str] = []


class OnlyScalars(odm.Document):
    name: str
    count: int = 0


class WithAny(odm.Document):
    at: dt.datetime
    other: Any = None


class WithDict(odm.Document):
    at: dt.datetime
    meta: dict[str, Any] = {}


class WithDate(odm.Document):
    at: dt.datetime
    day: dt.date | None = None


class WithUnion(odm.Document):
    at: dt.datetime
    either: dt.datetime | str = ""


class WithScalarUnion(odm.Document):
    at: dt.datetime
    either: int | str = 0  # a datetime here fails validation: then decoded aware again


class WithBefore(odm.Document):
    at: dt.datetime
    text: Annotated[str, BeforeValidator(str)] = ""


class WithValidator(odm.Document):
    at: dt.datetime
    text: str = ""

    @field_validator("text")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class WithExtra(odm.Document):
    model_config = ConfigDict(extra="allow")

    at: dt.datetime


class WithChoices(odm.Document):
    at: dt.datetime
    text: str = odm.Field(default="", validation_alias=AliasChoices("text", "t"))


class AliasOnly(odm.Document):
    model_config = ConfigDict(validate_by_name=False)

    at: dt.datetime
    text: str = odm.Field(default="", alias="t")  # a stored "text" key is read by nobody


class Loop(odm.Embedded):
    at: dt.datetime
    child: Loop | None = None


class WithLoop(odm.Document):
    loop: Loop


class Animal(odm.Document):
    at: dt.datetime

    class Meta:
        polymorphic = True


class Dog(Animal):
    born: dt.datetime | None = None


@pytest.mark.parametrize("model", [Timed, NoDatetime, WithScalarUnion])
def test_classes_whose_datetimes_the_plan_knows_get_a_fix_up(model: type[Any]) -> None:
    assert datetime_fixer(model) is not None


@pytest.mark.parametrize(
    "model",
    [OnlyScalars, WithAny, WithDict, WithDate, WithUnion, WithBefore, WithValidator, WithExtra,
     WithChoices, AliasOnly, WithLoop, Animal, Dog],
)
def test_classes_that_could_take_a_datetime_elsewhere_keep_the_aware_decoding(
    model: type[Any],
) -> None:
    assert datetime_fixer(model) is None


@pytest.mark.parametrize("model", [Timed, WithAny])
def test_finds_decode_naive_only_where_the_fix_up_costs_less(model: type[Any]) -> None:
    """Python 3.11 and 3.12 decode a class with a fix-up naive (its loop costs less than the
    driver's ``replace``); 3.13, whose ``replace`` is fast, decodes aware; a class without a
    fix-up always decodes aware."""
    expected = sys.version_info < (3, 13) and datetime_fixer(model) is not None
    assert NAIVE_DECODING_PAYS is (sys.version_info < (3, 13))
    assert naive_fixer(model) is (datetime_fixer(model) if expected else None)
