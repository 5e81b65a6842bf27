"""Set fields: what their declaration may hold, and the updates refused on them.

``set[odm.Decimal]`` (any set whose element dumps to a value that cannot be a set element: a
``Decimal128``, an embedded model's dict, a list) was accepted at class creation and failed at
every dump with a bare ``TypeError``. Positions of a set (``tags__0="x"``), ``each()`` /
``matched()`` on one, and adding to a set whose stored order the server does not sort by, were
sent as they came and left the stored array out of order or holding a value twice.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import itertools
import math
import uuid
from typing import Any, Literal

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict

import odm
from odm import DeclarationError, Document, Embedded, F, QueryError
from odm.executor import NAIVE_CODEC_OPTIONS
from odm.query.updates import compile_update_spec
from odm.stored_order import stored_set


class St23Shade(enum.Enum):
    DARK = "d"
    LIGHT = "l"


class St23Frozen(Embedded):
    model_config = ConfigDict(frozen=True)
    n: int = 0


_DEC = st.decimals(-100, 100, places=2, allow_nan=False)
#: Element types a set may be declared with, a value of each, and whether a set can hold the
#: value's dump (a Decimal128, a dict, a list cannot).
_ELEMENT_TYPES: list[tuple[Any, st.SearchStrategy[Any], bool]] = [
    (str, st.text(st.characters(exclude_categories=["Cs"]), max_size=3), True),
    (int, st.integers(-5, 5), True),
    (float, st.floats(allow_nan=False), True),
    (bool, st.booleans(), True),
    (bytes, st.binary(max_size=3), True),
    (dt.datetime, st.datetimes().map(lambda d: d.replace(microsecond=0)), True),
    (odm.ObjectId, st.builds(bson.ObjectId), True),
    (uuid.UUID, st.uuids(), True),
    (St23Shade, st.sampled_from(list(St23Shade)), True),
    (Literal["a", "b"], st.sampled_from("ab"), True),
    (tuple[str, int], st.tuples(st.text(max_size=2), st.integers(0, 3)), True),
    (frozenset[int], st.frozensets(st.integers(0, 3), max_size=2), True),
    (str | None, st.none() | st.just("x"), True),
    (odm.Decimal, _DEC, False),
    (odm.Decimal | None, _DEC, False),
    (tuple[int, odm.Decimal], st.tuples(st.integers(0, 3), _DEC), False),
    (frozenset[odm.Decimal], st.frozensets(_DEC, min_size=1, max_size=2), False),
    (St23Frozen, st.builds(St23Frozen, n=st.integers(0, 3)), False),
    (list[int], st.just([1]), False),
]
_NAMES = (f"St23Declared{n}" for n in itertools.count())


def _declare(element: Any, container: Any, nullable: bool, embedded: bool) -> type[Any]:
    """A Document class with a field ``vals`` of a set of ``element`` (in an embedded model
    when ``embedded``: ``box.vals``)."""
    annotation = container[element] | None if nullable else container[element]
    name = next(_NAMES)
    meta = type("Meta", (), {"collection": name.lower()})
    if not embedded:
        return type(name, (Document,), {"__annotations__": {"vals": annotation}, "Meta": meta})
    box = type(f"{name}Box", (Embedded,), {"__annotations__": {"vals": annotation}})
    return type(name, (Document,), {"__annotations__": {"box": box}, "Meta": meta})


@settings(max_examples=30, deadline=None)
@given(
    drawn=st.sampled_from(_ELEMENT_TYPES).flatmap(
        lambda kind: st.tuples(st.just(kind), st.lists(kind[1], min_size=1, max_size=3))
    ),
    container=st.sampled_from([set, frozenset]),
    nullable=st.booleans(),
    embedded=st.booleans(),
)
def test_a_set_is_declared_only_of_elements_whose_dump_a_set_holds(
    drawn: tuple[tuple[Any, Any, bool], list[Any]], container: Any, nullable: bool,
    embedded: bool,
) -> None:
    (element, _, storable), values = drawn
    if not storable:
        with pytest.raises(DeclarationError, match=r"St23Declared\d+\.(vals|box): a set") as no:
            _declare(element, container, nullable, embedded)
        assert "Box.vals" in str(no.value) if embedded else "Box" not in str(no.value)
        return
    model = _declare(element, container, nullable, embedded)
    held = container(values)
    document = model(box={"vals": held}) if embedded else model(vals=held)
    raw = document.to_bson()
    stored = raw["box"]["vals"] if embedded else raw["vals"]
    assert isinstance(stored, list) and len(stored) == len(stored_set(held))
    loaded = model.model_validate(bson.decode(bson.encode(raw, codec_options=NAIVE_CODEC_OPTIONS)))
    assert loaded == document


def test_numbers_holding_a_nan_are_stored_in_mongodbs_order() -> None:
    assert [repr(v) for v in stored_set([2.5, math.nan, -1, 0.5])] == ["nan", "-1", "0.5", "2.5"]
    assert [repr(v) for v in stored_set({math.nan})] == ["nan"]


class St23Holder(Document):
    tags: set[str] = set()
    maybe: frozenset[int] | None = None
    blobs: set[bytes] = set()
    mixed: set[int | str] = set()
    loose: set[Any] = set()
    stamps: set[dt.datetime] = set()
    box: St23Frozen | None = None
    names: list[str] = []
    n: int = 0

    class Meta:
        collection = "st23_holders"


class St23Line(Embedded):
    codes: set[int] = set()


class St23Order(Document):
    lines: list[St23Line] = []
    badge: St23Line = St23Line()

    class Meta:
        collection = "st23_orders"


@pytest.mark.parametrize(
    ("model", "values", "field", "message"),
    [
        (St23Holder, {"tags__0": "x"}, "tags__0", r"'tags' is a set, which has no positions"),
        (St23Holder, {"maybe__1": 2}, "maybe__1", r"'maybe' is a set"),
        (St23Holder, {"tags": F("tags").each("x")}, "tags", r"'tags' is a set"),
        (St23Holder, {"tags": F("tags").matched("x")}, "tags", r"'tags' is a set"),
        (St23Holder, {"blobs": F("blobs").push(b"x")}, "blobs", r"set of bytes"),
        (St23Holder, {"mixed": F("mixed").add_to_set(1)}, "mixed", r"set of"),
        (St23Holder, {"loose": F("loose").add_to_set(1)}, "loose", r"set of"),
        (St23Order, {"badge__codes": F("badge__codes").push(1)}, "badge__codes", "embedded"),
        (
            St23Order,
            {"lines": F("lines").each(codes=F("codes").add_to_set(1))},
            "lines__codes",
            "elements of a list",
        ),
        (
            St23Holder,
            {"tags": F("tags").add_to_set("a"), "n": F("n") + 1},
            "n",
            r"'n' cannot be written in the update that adds to the set 'tags'",
        ),
        (
            St23Holder,
            {"tags": F("tags").add_to_set("a"), "names": F("names").push("x")},
            "names",
            r"in an update\(\) of its own",
        ),
        (
            St23Holder,
            {"stamps": F("stamps").push(dt.datetime(2020, 1, 1)), "box__n": 1},
            "box__n",
            r"'box__n' cannot be written",
        ),
    ],
)
def test_updates_a_set_cannot_keep_in_order_are_refused_by_name(
    model: type[Any], values: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(QueryError, match=message) as refused:
        compile_update_spec(model, values)
    assert refused.value.field == field


def test_an_addition_to_a_set_is_sent_as_a_pipeline_of_literal_values() -> None:
    compiled = compile_update_spec(
        St23Holder, {"tags": F("tags").push("$n", "b", "a", "b"), "n": 3}
    )
    assert compiled.update == {"$addToSet": {"tags": {"$each": ["$n", "a", "b"]}}, "$set": {"n": 3}}
    (stage,) = compiled.document({})
    assert stage["$set"]["n"] == {"$literal": 3}
    reduced = stage["$set"]["tags"]["$let"]["in"]["$let"]["in"]["$reduce"]
    # Added to the held array as it is (in order), or to its elements (out of order).
    when_in_order, when_not = reduced["input"]["$cond"][1:]
    assert when_in_order == {"$literal": ["$n", "a", "b"]}
    assert when_not["$concatArrays"][1] == when_in_order
    with pytest.raises(QueryError, match="collation"):
        compiled.document({"collation": {"locale": "en"}})
    plain = compile_update_spec(St23Holder, {"names": F("names").push("x"), "n": 1})
    assert plain.document({}) is plain.update  # a list's update stays an update document


def test_a_pull_from_a_set_and_a_whole_set_stay_update_operators() -> None:
    pulled = compile_update_spec(St23Holder, {"tags": F("tags").pull("b", "a"), "n": 1})
    assert pulled.document({}) == {"$pullAll": {"tags": ["b", "a"]}, "$set": {"n": 1}}
    whole = compile_update_spec(St23Holder, {"tags": {"b", "a"}})
    assert whole.document({}) == {"$set": {"tags": ["a", "b"]}}


def test_a_decimal_in_a_set_is_named_with_the_class_and_field() -> None:
    with pytest.raises(DeclarationError, match=r"St23Prices\.prices: a set cannot hold an odm"):

        class St23Prices(Document):
            prices: set[odm.Decimal] = set()

    assert decimal.Decimal  # the plain Decimal has its own refusal (test_models_declaration)
