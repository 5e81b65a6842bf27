"""``F``: a reference to a field of the same document, in filters and in updates.

In a filter, ``filter(total__gt=F("paid"))`` compiles to ``{"$expr": {"$gt": ["$total",
"$paid"]}}``; arithmetic (``F("paid") * 2``) becomes ``$add`` / ``$subtract`` / ``$multiply``.
In an update, ``F("age") + 1`` becomes ``$inc``, ``F("x") * 2`` ``$mul`` and
``F("tags").push(v)`` / ``.pull(v)`` / ``.add_to_set(v)`` the array operators.

Pure data: the field names are resolved and the operands validated by the compiler, against the
model, when the expression is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..exceptions import QueryError

__all__ = ["ArrayUpdate", "CombinedExpression", "Expression", "F"]

#: Python operator -> aggregation expression operator, for ``$expr`` filters.
_EXPR_OPERATORS: Final = {"+": "$add", "-": "$subtract", "*": "$multiply"}


def _is_number(value: object) -> bool:
    # bool is an int subclass, but True + 1 is almost certainly a bug, and the field type would
    # refuse it anyway; say so early.
    return isinstance(value, int | float) and not isinstance(value, bool)


class Expression:
    """Base of the field expressions usable on the right-hand side of a filter."""

    __slots__ = ()

    def _combine(self, other: object, op: str, reverse: bool) -> CombinedExpression:
        if not isinstance(other, Expression) and not _is_number(other):
            raise QueryError(
                f"F() arithmetic takes numbers or F() expressions, not {type(other).__name__}"
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

    def as_expr(self, resolve: Callable[[str], str]) -> Any:
        """Return the aggregation expression, ``resolve`` mapping a field name to its db path."""
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

    def as_expr(self, resolve: Callable[[str], str]) -> Any:
        """Return ``"$<db path>"``, the aggregation reference to this field."""
        return "$" + resolve(self.name)

    def push(self, *values: Any) -> ArrayUpdate:
        """Append values to this list field (``$push``)."""
        return ArrayUpdate(self.name, "push", values)

    def pull(self, *values: Any) -> ArrayUpdate:
        """Remove every element equal to one of the values from this list field."""
        return ArrayUpdate(self.name, "pull", values)

    def add_to_set(self, *values: Any) -> ArrayUpdate:
        """Append values not already in this list field (``$addToSet``)."""
        return ArrayUpdate(self.name, "add_to_set", values)

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

    def as_expr(self, resolve: Callable[[str], str]) -> Any:
        """Return ``{"$add" | "$subtract" | "$multiply": [lhs, rhs]}``."""
        sides = [
            side.as_expr(resolve) if isinstance(side, Expression) else {"$literal": side}
            for side in (self.lhs, self.rhs)
        ]
        return {_EXPR_OPERATORS[self.op]: sides}

    def as_update(self, field: str) -> tuple[str, int | float]:
        """Return ``("$inc" | "$mul", operand)`` for ``field = <this expression>``.

        Only ``F(field)`` combined with numbers can be written in place: ``F("age") + 1 - 3``
        is ``$inc: -2``, ``F("x") * 2 * 3`` is ``$mul: 6``. Anything else (another field, a mix of
        + and *, ``10 - F(x)``) would need an update pipeline and is refused.
        """
        steps: list[tuple[str, int | float]] = []
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
            if isinstance(node, F) and node.name == field and len(kinds) == 1:
                if kinds == {"*"}:
                    factor: int | float = 1
                    for _, number in steps:
                        factor *= number
                    return "$mul", factor
                return "$inc", sum(n if op == "+" else -n for op, n in steps)
        raise QueryError(
            f"cannot write {self!r} to {field!r}: an update takes F({field!r}) + number, "
            f"F({field!r}) - number or F({field!r}) * number",
            field=field,
        )

    def __repr__(self) -> str:
        return f"({self.lhs!r} {self.op} {self.rhs!r})"


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
