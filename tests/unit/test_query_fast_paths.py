"""The short cuts of the query path give exactly what the general path gives.

``FieldType.convert`` hands a value of exactly the field's plain type (a ``str`` for a ``str``
field, an ObjectId for an ObjectId field) back without calling pydantic; ``get(id=oid)`` builds
its filter without a lookup object. Hypothesis checks both against the general path (pydantic's
validator and serializer, the ``Exact`` lookup), including values the short cut must NOT take
(a bool for an int field, a str subclass, integers beyond 64 bits, 24-hex strings for ids).
"""

from __future__ import annotations

import datetime as dt
import enum
from functools import partial
from typing import Any

import bson
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

import odm
from odm.exceptions import QueryError
from odm.query.lookups import LITERAL_COMPARISONS, LOOKUPS, Exact
from odm.query.paths import FieldType, check_literal, resolve
from odm.query.where import condition_for, exact_literal, field_condition, key_plan, split_lookup


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
    # The filter get(id=...) builds for this value without a lookup object (None: it takes
    # the lookup).
    fast = outcome(lambda: exact_literal(target, literal, value))
    if type(value) is target.field.as_is:
        assert expected == ("ok", {target.db_path: value}) == fast
    else:
        assert fast == ("ok", None)


class Ranged(odm.Document):
    """Fields of each kind a comparison takes, with and without a literal type."""

    name: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    other: odm.ObjectId | None = None
    scores: list[int] = []
    words: list[list[str]] = []
    when: dt.datetime | None = None
    anything: Any = None
    labels: dict[str, str] = {}

    class Meta:
        collection = "fast_path_ranged"


RANGE_VALUES = VALUES | st.just(2**63) | st.just("$where") | st.just({"$ne": None}) | st.just(
    [1, 2]
) | st.builds(dt.datetime.now) | st.just(odm.F("count")) | st.just(-0.0) | st.just(float("nan"))


@given(
    name=st.sampled_from(
        [
            "id", "name", "count", "ratio", "flag", "other", "scores", "words", "when",
            "anything", "labels",
        ]
    ),
    lookup=st.sampled_from(["gt", "gte", "lt", "lte"]),
    value=RANGE_VALUES,
)
def test_comparisons_short_cut_matches_the_lookup(name: str, lookup: str, value: Any) -> None:
    """``field__gte=value`` (and gt, lt, lte) gives the condition and the refusal the lookup
    object gives, whatever the field and the value; the short cut is taken only for a value
    of exactly the field's (element's) literal type."""
    key = f"{name}__{lookup}"
    target, lookup_cls = split_and_class(key)
    slow = outcome_where(
        lambda: condition_for(target, lookup, value, partial(resolve, Ranged)).mql
    )
    fast = outcome_where(lambda: field_condition(Ranged, key, value).mql)
    assert fast == slow, (key, value)
    _, planned_cls, literal = key_plan(Ranged, key)
    assert planned_cls is lookup_cls
    if literal is not None:
        assert type(value) is not literal or fast[0] == "refused" or fast[1] == {
            target.db_path: {LITERAL_COMPARISONS[lookup_cls]: value}
        }


def test_the_comparisons_take_the_short_cut_only_where_the_type_is_plain() -> None:
    literals = {
        name: key_plan(Ranged, f"{name}__gte")[2]
        for name in ["id", "name", "count", "ratio", "flag", "other", "scores", "words", "when"]
    }
    assert literals == {
        "name": str,
        "count": int,
        "ratio": float,
        "flag": bool,
        "id": bson.ObjectId,
        "other": None,  # nullable: the lookup's own type
        "scores": int,  # a list field: its elements are compared
        "words": None,  # a list of lists: its elements are lists, the lookup refuses a str
        "when": None,
    }
    assert key_plan(Ranged, "anything__gte")[2] is None
    assert key_plan(Ranged, "name__ne")[2] is None  # not a comparison of LITERAL_COMPARISONS


def split_and_class(key: str) -> tuple[Any, Any]:
    target, lookup_name = split_lookup(Ranged, key)
    return target, LOOKUPS[lookup_name]


def outcome_where(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except QueryError as exc:
        return "refused", str(exc)


class PolyRanged(Ranged):
    """The root of a polymorphic family of the same fields."""

    class Meta:
        collection = "fast_path_poly_ranged"
        polymorphic = True


class PolyChild(PolyRanged):
    """A subclass: its own field, filtered through the root, is never cached there."""

    extra: str = ""


KWARG_KEYS = st.sampled_from(
    [
        f"{name}{suffix}"
        for name in ["id", "name", "count", "ratio", "flag", "other", "scores", "when", "labels"]
        for suffix in ["", "__exact", "__gte", "__lt", "__ne", "__in"]
    ]
    + ["extra", "nope", "count__nope"]
)


@given(
    model=st.sampled_from([Ranged, PolyRanged, PolyChild]),
    calls=st.lists(st.dictionaries(KWARG_KEYS, RANGE_VALUES, max_size=4), max_size=4),
)
# The edges of BSON's int64, and a comparison and an equality side by side, every run.
@example(model=Ranged, calls=[{"count": 2**63 - 1, "count__gte": -(2**63)}, {"count": 2**63}])
@example(model=PolyRanged, calls=[{"count__lt": -(2**63) - 1}, {"ratio__gte": 1.5, "extra": "x"}])
def test_keyword_filters_compile_as_each_key_through_the_lookup(
    model: type[Any], calls: list[dict[str, Any]]
) -> None:
    """``filter(**kwargs)`` gives, for each key in order, the condition (and joins) of the
    lookup object, or its refusal, whatever the value and whether its plan is cached yet (the
    same keys are compiled again in later calls)."""
    from odm.models.derived import expire_all
    from odm.query.where import compile_kwargs

    expire_all()
    for kwargs in calls + calls:
        # The whole call, then each key alone (a refusal of one key refuses the whole call).
        for given_kwargs in [kwargs, *({k: v} for k, v in kwargs.items())]:
            fast = outcome_kwargs(partial(compile_kwargs, model, given_kwargs))
            slow = outcome_kwargs(partial(each_through_the_lookup, model, given_kwargs))
            assert same_bson(fast, slow), (given_kwargs, fast, slow)


def each_through_the_lookup(model: type[Any], kwargs: dict[str, Any]) -> list[Any]:
    """The conditions of ``kwargs``, each built by its lookup object (the general path)."""
    out = []
    for key, value in kwargs.items():
        target, lookup_name = split_lookup(model, key)
        out.append(condition_for(target, lookup_name, value, partial(resolve, model)))
    return [w for w in out if w.mql]


def outcome_kwargs(call: Any) -> tuple[str, Any]:
    try:
        return "ok", [(w.mql, w.joins) for w in call()]
    except QueryError:
        return "refused", None


def same_bson(a: Any, b: Any) -> bool:
    """Equal, and of the same types throughout (1 and True, 1 and 1.0 are different filters)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_bson(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_bson(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or a != a


PARTS = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "$or"]), st.integers(0, 3), max_size=2),
    max_size=5,
)


@given(parts=PARTS)
def test_and_of_filter_dicts(parts: list[dict[str, Any]]) -> None:
    """``and_mql``: empty parts are dropped; one part is itself; parts with distinct keys are
    merged in order; any key twice puts every part under ``$and``."""
    from odm.query.where import and_mql

    kept = [p for p in parts if p]
    result = and_mql(parts)
    keys = [k for p in kept for k in p]
    if not kept:
        assert result == {}
    elif len(kept) == 1:
        assert result is kept[0]
    elif len(keys) == len(set(keys)):
        assert list(result.items()) == [item for p in kept for item in p.items()]
    else:
        assert result == {"$and": kept}
