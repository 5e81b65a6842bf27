"""Q trees and F expressions: pure data, no model involved."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odm.exceptions import QueryError
from odm.query import F, Q
from odm.query.expressions import ArrayUpdate, CombinedExpression


def test_q_combinations() -> None:
    a, b = Q(x=1), Q(y=2)
    both = a & b
    either = a | b
    assert both.connector == Q.AND and both.children == (a, b)
    assert either.connector == Q.OR and either.children == (a, b)
    negated = ~a
    assert negated.negated and negated.children == (a,)
    assert not a.negated  # operands are never changed


def test_empty_q_is_neutral() -> None:
    a = Q(x=1)
    assert (Q() | a) == a
    assert (a & Q()) == a
    assert not Q()


def test_q_refuses_raw_dicts() -> None:
    with pytest.raises(TypeError):
        Q({"$where": "1"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Q(x=1) & {"y": 2}  # type: ignore[operator]


def test_q_repr() -> None:
    assert "x=1" in repr(Q(x=1) | Q(y=2))


def test_f_arithmetic_builds_expressions() -> None:
    expr = F("a") + 1
    assert isinstance(expr, CombinedExpression)
    assert expr.as_expr(lambda n: n) == {"$add": ["$a", {"$literal": 1}]}
    assert (2 * F("a")).as_expr(lambda n: n) == {"$multiply": [{"$literal": 2}, "$a"]}
    assert (F("a") - F("b")).as_expr(lambda n: n) == {"$subtract": ["$a", "$b"]}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (F("n") + 1, ("$inc", 1)),
        (F("n") - 2, ("$inc", -2)),
        (1 + F("n"), ("$inc", 1)),
        (F("n") + 1 - 3, ("$inc", -2)),
        (F("n") * 2, ("$mul", 2)),
        (F("n") * 2 * 3, ("$mul", 6)),
        (2 * F("n"), ("$mul", 2)),
    ],
)
def test_f_as_update(expr: CombinedExpression, expected: tuple[str, int]) -> None:
    assert expr.as_update("n") == expected


@pytest.mark.parametrize(
    "expr",
    [F("m") + 1, F("n") + F("n"), 10 - F("n"), (F("n") + 1) * 2],
)
def test_f_as_update_refuses(expr: CombinedExpression) -> None:
    with pytest.raises(QueryError):
        expr.as_update("n")


def test_f_refuses_non_numbers() -> None:
    with pytest.raises(QueryError):
        F("a") + "1"  # type: ignore[operator]
    with pytest.raises(QueryError):
        F("a") + True
    with pytest.raises(QueryError):
        F("")


def test_array_updates() -> None:
    push = F("tags").push("a", "b")
    assert isinstance(push, ArrayUpdate) and push.values == ("a", "b") and push.kind == "push"
    with pytest.raises(QueryError):
        F("tags").pull()


_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from([0.0, -0.0, 0, True, False]),
    st.decimals(allow_nan=False, places=2),
)
_sides = st.one_of(st.sampled_from([F("n"), F("m")]), _numbers)


@st.composite
def _expressions(draw: st.DrawFn) -> CombinedExpression:
    """F() arithmetic one or two steps deep, either way round, on the written field or not."""
    lhs, rhs = draw(_sides), draw(_sides)
    if not isinstance(lhs, F) and not isinstance(rhs, F):
        lhs = F("n")
    expr = CombinedExpression(lhs, draw(st.sampled_from("+-*")), rhs)
    if draw(st.booleans()):
        expr = CombinedExpression(expr, draw(st.sampled_from("+-*")), draw(_numbers))
    return expr


def _outcome(update: Any, expr: CombinedExpression) -> Any:
    try:
        op, operand = update("n")
    except QueryError as exc:
        return ("QueryError", str(exc))
    return op, type(operand), repr(operand)  # repr tells -0.0 from 0.0, and nan from nan


@given(_expressions())
def test_the_short_cut_of_as_update_answers_as_the_steps_do(expr: CombinedExpression) -> None:
    """``F("n") + number`` skips the walk over the steps; whatever the expression, the answer
    (operator, operand, its type, the sign of a zero) or the refusal is the walk's."""
    assert _outcome(expr.as_update, expr) == _outcome(expr._steps_update, expr)


@pytest.mark.parametrize(
    "expr",
    [
        F("n") * 0 * decimal.Decimal("Infinity"),
        F("n") + decimal.Decimal("Infinity") - decimal.Decimal("Infinity"),
    ],
)
def test_numbers_with_no_value_together_are_refused_naming_the_field(
    expr: CombinedExpression,
) -> None:
    """Decimal arithmetic that has no answer (``0 * Infinity``) is a QueryError on the field,
    not decimal's own InvalidOperation."""
    with pytest.raises(QueryError, match="'n'") as raised:
        expr.as_update("n")
    assert raised.value.field == "n"
