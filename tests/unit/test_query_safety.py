"""Hostile values never reach MongoDB as operators: a QueryError, or a literal in our filter.

Hypothesis feeds nested dicts with ``$`` keys, lists, ``$``-strings, regex metacharacters,
dotted keys and NUL bytes to every lookup on str, int, list[str], embedded, free-form dict and
list[dict] fields, and to update(). The compiled output is walked structurally: every ``$`` key
must be an operator this package wrote, in an operator position; every user value must be a
literal holding no ``$``-prefixed or dotted key.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_query_models import QCustomer, QOrder

from odm.exceptions import QueryError
from odm.query import F, Query
from odm.query.compiler import compile_query, compile_update
from odm.query.lookups import LOOKUPS

LOGICAL = {"$and", "$or", "$nor"}
OPERATORS = {
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$all", "$size",
    "$exists", "$regex", "$options", "$elemMatch", "$not", "$type",
}
#: The BSON type names odm's own ``$type`` conditions name (``None`` at a list position of a
#: free-form field: ``{"$not": {"$type": "null"}}``); a user's value never becomes one.
TYPE_NAMES = {"null", "array", "object"}
UPDATE_OPERATORS = {"$set", "$inc", "$mul", "$push", "$pull", "$pullAll", "$addToSet"}

HOSTILE_KEYS = st.sampled_from(
    ["$gt", "$ne", "$where", "$function", "$accumulator", "$regex", "a.b", "$", ".", "\x00",
     "a\x00b", "ok", "sku", "city", "$expr", "__proto__"]
) | st.text(max_size=6)
HOSTILE_TEXT = st.sampled_from(
    ["$where", "$gt", ".*", "^a$", "a|b", "(?i)x", "\\", "\x00", "a.b", "$$ROOT", "[", "{1}"]
) | st.text(max_size=8)
SCALARS = (
    HOSTILE_TEXT | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.none()
    | st.booleans()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(HOSTILE_KEYS, inner, max_size=3)
    | st.tuples(inner, inner),
    max_leaves=8,
)
# Mostly plausible shapes (so that many values compile and the output gets checked), plus
# arbitrarily nested hostile structures.
MIXED = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(HOSTILE_KEYS, SCALARS) | VALUES

FIELDS = {
    QCustomer: ["name", "age", "tags", "scores", "address", "address__city", "addresses",
                "addresses__city", "meta", "meta__x", "nick", "id", "active"],
    QOrder: ["items", "items__sku", "customer", "total", "status"],
}
TARGETS = st.sampled_from([(m, f) for m, fs in FIELDS.items() for f in fs])


def assert_literal(value: Any, where: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                assert isinstance(key, str), where
                assert not key.startswith("$"), f"user key {key!r} in {where}"
                assert "." not in key and "\x00" not in key, f"user key {key!r} in {where}"
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)


def check_filter(flt: dict[str, Any]) -> None:
    for key, value in flt.items():
        if key in LOGICAL:
            assert isinstance(value, list)
            for sub in value:
                check_filter(sub)
        elif key == "$expr":
            check_expr(value)
        else:
            assert not key.startswith("$"), f"operator {key!r} in a path position"
            assert "\x00" not in key
            check_condition(value, key)


def check_condition(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        assert_literal(value, path)
        return
    # A dict under a path is always ours: an operator dict, never a literal document.
    for op, operand in value.items():
        assert op in OPERATORS, f"{op!r} under {path!r}"
        if op == "$elemMatch":
            if all(k.startswith("$") and k not in LOGICAL for k in operand):
                check_condition(operand, path)
            else:
                check_filter(operand)
        elif op in ("$regex", "$options"):
            assert isinstance(operand, str) and "\x00" not in operand
        elif op == "$not":
            assert isinstance(operand, dict), f"$not of a literal under {path!r}"
            check_condition(operand, path)
        elif op == "$type":
            assert operand in TYPE_NAMES, f"$type {operand!r} under {path!r}"
        else:
            assert_literal(operand, path)


def check_expr(expr: Any) -> None:
    if isinstance(expr, dict):
        for op, operand in expr.items():
            assert op.startswith("$")
            if op == "$literal":
                assert_literal(operand, "$literal")
            else:
                check_expr(operand)
    elif isinstance(expr, list):
        for item in expr:
            check_expr(item)
    else:
        # a bare string in an expression is a field path we wrote
        assert isinstance(expr, str) and expr.startswith("$")


@settings(max_examples=200, deadline=None)
@given(target=TARGETS, lookup=st.sampled_from(sorted(LOOKUPS)), value=MIXED)
def test_hostile_filter_values(target: tuple[type[Any], str], lookup: str, value: Any) -> None:
    model, field = target
    query = Query(model)
    try:
        query.add_filter(**{f"{field}__{lookup}": value})
        compiled = compile_query(query)
    except QueryError:
        return
    check_filter(compiled.filter)  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(target=TARGETS, value=MIXED, negate=st.booleans())
def test_hostile_exact_values_and_exclude(
    target: tuple[type[Any], str], value: Any, negate: bool
) -> None:
    model, field = target
    query = Query(model)
    try:
        query.add_filter(negate=negate, **{field: value})
    except QueryError:
        return
    check_filter(compile_query(query).filter)  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(name=HOSTILE_KEYS, value=SCALARS)
def test_hostile_field_names(name: str, value: Any) -> None:
    query = Query(QCustomer)
    for key in (name, f"meta__{name}", f"address__{name}"):
        try:
            query.add_filter(**{key: value})
        except QueryError:
            continue
        assert not name.startswith("$") and "." not in name and "\x00" not in name
    check_filter(compile_query(query).filter)  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    target=st.sampled_from(
        [(QCustomer, f) for f in ("name", "age", "tags", "address", "address__city", "meta",
                                  "nick", "meta__x")]
        + [(QOrder, "items"), (QOrder, "status")]
    ),
    value=MIXED,
    how=st.sampled_from(["set", "push", "pull", "add_to_set"]),
)
def test_hostile_update_values(target: tuple[type[Any], str], value: Any, how: str) -> None:
    model, field = target
    wrapped = value if how == "set" else getattr(F(field), how)(value)
    try:
        update = compile_update(model, {field: wrapped})
    except QueryError:
        return
    for op, changes in update.items():
        assert op in UPDATE_OPERATORS
        for path, operand in changes.items():
            assert not path.startswith("$")
            if isinstance(operand, dict) and "$each" in operand:
                assert list(operand) == ["$each"]
                operand = operand["$each"]
            assert_literal(operand, path)
