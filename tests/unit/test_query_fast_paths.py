"""The short cuts of the query path give exactly what the general path gives.

``FieldType.convert`` hands a value of exactly the field's plain type (a ``str`` for a ``str``
field, an ObjectId for an ObjectId field) back without calling pydantic; ``get(id=oid)`` builds
its filter without a lookup object. Hypothesis checks both against the general path (pydantic's
validator and serializer, the ``Exact`` lookup), including values the short cut must NOT take
(a bool for an int field, a str subclass, integers beyond 64 bits, 24-hex strings for ids).
"""

from __future__ import annotations

import enum
from typing import Any

import bson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import odm
from odm.exceptions import QueryError
from odm.query.lookups import Exact
from odm.query.paths import FieldType, check_literal, resolve
from odm.query.where import exact_literal, key_plan


class Colour(enum.StrEnum):
    """A str subclass: not the plain type, so it must take pydantic's path."""

    RED = "red"


class Plain(odm.Document):
    """One field of each type the short cut knows."""

    name: str
    count: int
    ratio: float
    flag: bool
    other: odm.ObjectId

    class Meta:
        collection = "fast_path_plain"


def general(field: FieldType, value: Any, path: str) -> Any:
    """What ``convert`` does without the short cut."""
    adapter = field.adapter
    try:
        validated = adapter.validate_python(value)
    except ValidationError:
        raise QueryError(f"invalid value for {path!r}", field=path) from None
    converted = adapter.dump_python(validated, by_alias=True)
    check_literal(converted, path)
    return converted


VALUES = (
    st.text(max_size=5)
    | st.integers()
    | st.floats()
    | st.booleans()
    | st.none()
    | st.builds(bson.ObjectId)
    | st.just(Colour.RED)
    | st.just("5eb7cf5a86d9755df3a6c593")
)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except QueryError:
        return "refused", None


@given(name=st.sampled_from(["name", "count", "ratio", "flag", "other"]), value=VALUES)
def test_convert_short_cut_matches_pydantic(name: str, value: Any) -> None:
    field = resolve(Plain, name).field
    fast = outcome(lambda: field.convert(value, name))
    slow = outcome(lambda: general(field, value, name))
    assert fast[0] == slow[0], (name, value, fast, slow)
    if fast[0] == "ok":
        # Same value and same type: 1 and True, or 1.0 and 1, are not the same filter value.
        assert (type(fast[1]) is type(slow[1]) and fast[1] == slow[1]) or fast[1] != fast[1]


def test_short_cut_types() -> None:
    kinds = {name: resolve(Plain, name).field.as_is for name in Plain.model_fields}
    assert kinds == {
        "id": bson.ObjectId,
        "name": str,
        "count": int,
        "ratio": float,
        "flag": bool,
        "other": bson.ObjectId,
    }


def test_int_beyond_64_bits_is_still_refused() -> None:
    field = resolve(Plain, "count").field
    try:
        field.convert(2**63, "count")
    except QueryError as exc:
        assert "64-bit" in str(exc)
    else:
        raise AssertionError("an int beyond 64 bits passed the short cut")


@given(value=VALUES)
def test_get_by_id_filter_matches_the_exact_lookup(value: Any) -> None:
    target, lookup_cls, literal = key_plan(Plain, "id")
    assert lookup_cls is Exact
    expected = outcome(lambda: Exact(target, value).as_mql())
    # The filter _get_by_id builds for this value without a lookup object (None: it takes
    # the lookup).
    fast = outcome(lambda: exact_literal(target, literal, value))
    if type(value) is target.field.as_is:
        assert expected == ("ok", {target.db_path: value}) == fast
    else:
        assert fast == ("ok", None)
