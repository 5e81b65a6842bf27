"""``F``: a reference to a field of the same document, in filters and in updates.

In a filter, ``filter(total__gt=F("paid"))`` compiles to ``{"$expr": {"$gt": ["$total",
"$paid"]}}``; arithmetic (``F("paid") * 2``) becomes ``$add`` / ``$subtract`` / ``$multiply``.
In an update, ``F("age") + 1`` becomes ``$inc``, ``F("x") * 2`` ``$mul``,
``F("low").least(v)`` / ``Least(F("low"), v)`` ``$min``, ``F("high").greatest(v)`` /
``Greatest(F("high"), v)`` ``$max``, ``Now()`` ``$currentDate``, and ``F("tags").push(v)`` /
``.pull(v)`` / ``.add_to_set(v)`` the array operators. Numbers are ``int``, ``float`` or
``decimal.Decimal`` (for ``odm.Decimal`` fields).

Pure data: the field names are resolved and the operands validated by the compiler, against the
model, when the expression is used.
"""

from __future__ import annotations

import decimal
import reprlib
from collections.abc import Callable
from typing import Any, ClassVar, Final

import bson

from ..exceptions import QueryError
from ..models.field_types import INT64_MAX, INT64_MIN, int_text

__all__ = [
    "ArrayUpdate",
    "CombinedExpression",
    "ElementUpdate",
    "Expression",
    "Extremum",
    "F",
    "FieldReader",
    "Greatest",
    "Least",
    "Now",
]

#: The number types an update's operand most often has (``bool`` excluded: see _is_number).
_PLAIN_NUMBERS: Final = frozenset({int, float})
#: Python operator -> aggregation expression operator, for ``$expr`` filters.
_EXPR_OPERATORS: Final = {"+": "$add", "-": "$subtract", "*": "$multiply"}


#: How an expression reads a field: its name to its stored path (written ``"$<path>"``), or to
#: the aggregation expression reading it (a path picking list elements, ``tags__0``: see
#: :func:`odm.query.reading.field_reference`).
FieldReader = Callable[[str], "str | dict[str, Any]"]

#: What F() arithmetic takes as a number (a tuple, built once).
_NUMBERS = (int, float, decimal.Decimal)


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True + 1 is almost certainly a bug, and the field type would
    # refuse it anyway; say so early.
    return isinstance(value, _NUMBERS) and not isinstance(value, bool)


def _literal(value: Any) -> Any:
    """``{"$literal": value}``, a Decimal as BSON's Decimal128 (what the server compares).

    Raises :class:`QueryError` for a number BSON cannot hold (an int beyond 64 bits, a
    Decimal beyond Decimal128's range or 34 digits): the encoder would fail untyped."""
    if isinstance(value, decimal.Decimal):
        value = _decimal128(value)
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise QueryError(
            f"F() arithmetic: {int_text(value)} does not fit in BSON's 64-bit integer"
        )
    return {"$literal": value}


def _decimal128(value: decimal.Decimal) -> bson.Decimal128:
    """``value`` as a Decimal128, or a QueryError naming it when it does not fit."""
    try:
        return bson.Decimal128(value)
    except (decimal.DecimalException, ValueError):  # Overflow, Inexact (over 34 digits)...
        raise QueryError(
            f"F() arithmetic: Decimal {reprlib.repr(str(value))} does not fit in BSON's "
            "Decimal128 (34 digits, exponents -6143 to 6144)"
        ) from None


class Expression:
    """Base of the field expressions usable on the right-hand side of a filter."""

    __slots__ = ()

    def _combine(self, other: object, op: str, reverse: bool) -> CombinedExpression:
        if not isinstance(other, Expression) and not _is_number(other):
            raise QueryError(
                "F() arithmetic takes numbers (int, float, Decimal) or F() expressions, "
                f"not {type(other).__name__}"
            )
        if reverse:
            return CombinedExpression(other, op, self)
        return CombinedExpression(self, op, other)

    def __add__(self, other: object) -> CombinedExpression:
        return self._combine(other, "+", False)

    def __radd__(self, other: object) -> CombinedExpression:
        return self._combine(other, "+", True)

    def __sub__(self, other: object) -> CombinedExpression:
        return self._combine(other, "-", False)

    def __rsub__(self, other: object) -> CombinedExpression:
        return self._combine(other, "-", True)

    def __mul__(self, other: object) -> CombinedExpression:
        return self._combine(other, "*", False)

    def __rmul__(self, other: object) -> CombinedExpression:
        return self._combine(other, "*", True)

    def fields(self) -> tuple[str, ...]:
        """Return the field names this expression reads."""
        raise NotImplementedError

    def as_expr(self, resolve: FieldReader) -> Any:
        """Return the aggregation expression, ``resolve`` reading each field
        (:data:`FieldReader`)."""
        raise NotImplementedError


class F(Expression):
    """Refer to a field of the document: ``F("age")``, ``F("address__city")``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise QueryError("F() takes a field name")
        self.name = name

    def fields(self) -> tuple[str, ...]:
        """Return the field names this expression reads."""
        return (self.name,)

    def as_expr(self, resolve: FieldReader) -> Any:
        """Return ``"$<db path>"``, the aggregation reference to this field (or the
        expression reading it, see :data:`FieldReader`)."""
        found = resolve(self.name)
        return "$" + found if isinstance(found, str) else found

    def push(self, *values: Any) -> ArrayUpdate:
        """Append values to this list field (``$push``)."""
        return ArrayUpdate(self.name, "push", values)

    def pull(self, *values: Any) -> ArrayUpdate:
        """Remove every element equal to one of the values from this list field, or, given
        one ``Q`` on the element's fields, every element it matches
        (``F("items").pull(Q(qty__lt=1))``)."""
        return ArrayUpdate(self.name, "pull", values)

    def add_to_set(self, *values: Any) -> ArrayUpdate:
        """Append values not already in this list field (``$addToSet``)."""
        return ArrayUpdate(self.name, "add_to_set", values)

    def each(self, *where: Any, **values: Any) -> ElementUpdate:
        """In ``update()``: write into every element of this list (``$[]``), or, given a ``Q``
        on the element's fields, into the elements it matches (``$[<id>]`` and
        ``arrayFilters``): ``F("items").each(Q(sku="pen"), qty=0)``. On a list of models the
        keywords are the element's fields; on a list of scalars one positional value replaces
        the element (``F("tags").each("x")``)."""
        return ElementUpdate(self.name, "each", where, values)

    def matched(self, *value: Any, **values: Any) -> ElementUpdate:
        """In ``update()``: write into the first element the queryset's filter matched in
        this list (``$``): ``filter(items__sku="pen").update(items=F("items").matched(qty=3))``.
        Keywords are the element's fields (one positional value on a list of scalars)."""
        return ElementUpdate(self.name, "matched", value, values)

    def least(self, value: Any) -> Least:
        """In ``update()``: keep the smaller of this field and ``value`` (``$min``)."""
        return Least(self, value)

    def greatest(self, value: Any) -> Greatest:
        """In ``update()``: keep the larger of this field and ``value`` (``$max``)."""
        return Greatest(self, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, F) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("F", self.name))

    def __repr__(self) -> str:
        return f"F({self.name!r})"


class CombinedExpression(Expression):
    """Hold ``lhs <op> rhs`` where either side is an expression or a number."""

    __slots__ = ("lhs", "op", "rhs")

    def __init__(self, lhs: Any, op: str, rhs: Any) -> None:
        self.lhs = lhs
        self.op = op
        self.rhs = rhs

    def fields(self) -> tuple[str, ...]:
        """Return the field names this expression reads."""
        found: list[str] = []
        for side in (self.lhs, self.rhs):
            if isinstance(side, Expression):
                found.extend(side.fields())
        return tuple(found)

    def as_expr(self, resolve: FieldReader) -> Any:
        """Return ``{"$add" | "$subtract" | "$multiply": [lhs, rhs]}``."""
        sides = [
            side.as_expr(resolve) if isinstance(side, Expression) else _literal(side)
            for side in (self.lhs, self.rhs)
        ]
        return {_EXPR_OPERATORS[self.op]: sides}

    def as_update(self, field: str) -> tuple[str, int | float | decimal.Decimal]:
        """Return ``("$inc" | "$mul", operand)`` for ``field = <this expression>``.

        Only ``F(field)`` combined with numbers can be written in place: ``F("age") + 1 - 3``
        is ``$inc: -2``, ``F("x") * 2 * 3`` is ``$mul: 6``. Anything else (another field, a mix of
        + and *, ``10 - F(x)``) would need an update pipeline and is refused.
        """
        lhs, rhs = self.lhs, self.rhs
        if type(lhs) is F and lhs.name == field and type(rhs) in _PLAIN_NUMBERS:
            # The usual F("n") + 1: the operand that the steps below would compute (from 0 or
            # 1, so that the sign of a zero comes out the same), without walking them.
            op = self.op
            if op == "*":
                return "$mul", 1 * rhs
            return "$inc", 0 + rhs if op == "+" else 0 + -rhs
        return self._steps_update(field)

    def _steps_update(self, field: str) -> tuple[str, int | float | decimal.Decimal]:
        """:meth:`as_update` for any chain of steps."""
        steps: list[tuple[str, int | float | decimal.Decimal]] = []
        node: Any = self
        while isinstance(node, CombinedExpression):
            if isinstance(node.lhs, Expression) and _is_number(node.rhs):
                steps.append((node.op, node.rhs))
                node = node.lhs
            elif _is_number(node.lhs) and isinstance(node.rhs, Expression) and node.op != "-":
                steps.append((node.op, node.lhs))  # 1 + F("x") is F("x") + 1
                node = node.rhs
            else:
                break
        else:
            kinds = {"*" if op == "*" else "+" for op, _ in steps}
            if any(isinstance(n, float) for _, n in steps) and any(
                isinstance(n, decimal.Decimal) for _, n in steps
            ):
                # Python refuses float + Decimal too: the float's binary error would leak in.
                raise QueryError(
                    f"cannot write {self!r} to {field!r}: it mixes float and Decimal", field=field
                )
            if isinstance(node, F) and node.name == field and len(kinds) == 1:
                try:
                    if kinds == {"*"}:
                        # Any: the mix of float and Decimal that mypy fears was refused above.
                        factor: Any = 1
                        for _, number in steps:
                            factor *= number
                        return "$mul", factor
                    return "$inc", sum(n if op == "+" else -n for op, n in steps)
                except ArithmeticError as exc:  # Decimal: 0 * Infinity, Infinity - Infinity
                    raise QueryError(
                        f"cannot write {self!r} to {field!r}: its numbers have no value "
                        f"together ({type(exc).__name__})",
                        field=field,
                    ) from None
        raise QueryError(
            f"cannot write {self!r} to {field!r}: an update takes F({field!r}) + number, "
            f"F({field!r}) - number or F({field!r}) * number",
            field=field,
        )

    def __repr__(self) -> str:
        return f"({self.lhs!r} {self.op} {self.rhs!r})"


class Extremum(Expression):
    """The smaller (:class:`Least`) or larger (:class:`Greatest`) of its arguments.

    In a filter it compiles to the aggregation ``$min`` / ``$max`` over F() expressions and
    numbers (``filter(total__gt=Greatest(F("paid"), 10))``). In ``update()`` it takes the
    updated field and one value, ``low=Least(F("low"), 150)`` (or ``F("low").least(150)``),
    and becomes the update operator ``$min`` / ``$max``: the field is set to the value only
    when that is smaller / larger (or the field is missing); the value is validated as the
    field's type. Fields are always written ``F("name")``: a string is a value.
    """

    __slots__ = ("arguments",)

    #: The aggregation and update operator of this function.
    operator: ClassVar[str]

    def __init__(self, *arguments: Any) -> None:
        if len(arguments) < 2:
            raise QueryError(f"{type(self).__name__}() takes at least two arguments")
        self.arguments = arguments

    def fields(self) -> tuple[str, ...]:
        """Return the field names this expression reads."""
        found: list[str] = []
        for argument in self.arguments:
            if isinstance(argument, Expression):
                found.extend(argument.fields())
        return tuple(found)

    def as_expr(self, resolve: FieldReader) -> Any:
        """Return ``{"$min" | "$max": [...]}``; values must be numbers, as in arithmetic."""
        parts = []
        for argument in self.arguments:
            if isinstance(argument, Expression):
                parts.append(argument.as_expr(resolve))
            elif _is_number(argument):
                parts.append(_literal(argument))
            else:
                raise QueryError(
                    f"{type(self).__name__}() in a filter takes numbers or F() expressions, "
                    f"not {type(argument).__name__}"
                )
        return {self.operator: parts}

    def as_update(self, field: str) -> tuple[str, Any]:
        """Return ``("$min" | "$max", value)`` for ``field = <this expression>``; the value is
        still to be validated as the field's type."""
        name = type(self).__name__
        values = [a for a in self.arguments if not isinstance(a, Expression)]
        own = [a for a in self.arguments if a == F(field)]
        if len(self.arguments) != 2 or len(own) != 1 or len(values) != 1:
            raise QueryError(
                f"cannot write {self!r} to {field!r}: an update takes {name}(F({field!r}), "
                f"value) (or F({field!r}).{name.lower()}(value))",
                field=field,
            )
        return self.operator, values[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(a) for a in self.arguments)})"


class Least(Extremum):
    """The smallest of its arguments (Django's ``Least``); ``$min`` in an update."""

    __slots__ = ()
    operator = "$min"


class Greatest(Extremum):
    """The largest of its arguments (Django's ``Greatest``); ``$max`` in an update."""

    __slots__ = ()
    operator = "$max"


class Now(Expression):
    """The current time on the server (Django's ``Now``).

    In ``update()``, ``seen=Now()`` becomes ``$currentDate`` (a datetime field only); in a
    filter, ``filter(expires__lt=Now())`` compares with ``$$NOW``, the server's clock.
    """

    __slots__ = ()

    def fields(self) -> tuple[str, ...]:
        """Return the field names this expression reads: none."""
        return ()

    def as_expr(self, resolve: FieldReader) -> Any:
        """Return ``"$$NOW"``, the server's current time in an aggregation expression."""
        return "$$NOW"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Now)

    def __hash__(self) -> int:
        return hash("Now")

    def __repr__(self) -> str:
        return "Now()"


class ElementUpdate:
    """Hold ``F(field).each(...)`` / ``.matched(...)``: writes into elements of a list.

    Pure data: the element's field names (the keywords) are resolved against the element's
    type and the values validated by the compiler; the ``arrayFilters`` identifier is made by
    the compiler, never taken from the caller.
    """

    __slots__ = ("args", "field", "kind", "values")

    def __init__(
        self, field: str, kind: str, args: tuple[Any, ...], values: dict[str, Any]
    ) -> None:
        self.field = field
        self.kind = kind
        self.args = args
        self.values = values

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.values.items()]
        return f"F({self.field!r}).{self.kind}({', '.join(parts)})"


class ArrayUpdate:
    """Hold ``F(field).push(...)`` / ``.pull(...)`` / ``.add_to_set(...)`` for an update."""

    __slots__ = ("field", "kind", "values")

    def __init__(self, field: str, kind: str, values: tuple[Any, ...]) -> None:
        if not values:
            raise QueryError(f"F({field!r}).{kind}() needs at least one value", field=field)
        self.field = field
        self.kind = kind
        self.values = values

    def __repr__(self) -> str:
        args = ", ".join(repr(v) for v in self.values)
        return f"F({self.field!r}).{self.kind}({args})"
