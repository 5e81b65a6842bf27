"""Aggregate functions for ``aggregate()`` and ``values(...).annotate(...)``.

Each compiles to one ``$group`` accumulator: ``Count()`` -> ``{"$sum": 1}``, ``Avg("age")`` ->
``{"$avg": "$age"}``. Field names are resolved against the model by the compiler (so an unknown
field is an :class:`odm.QueryError`); pure data here, no I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..exceptions import QueryError
from .expressions import Expression, F, FieldReader
from .lookups import check_expression_depth
from .paths import FieldType, Kind

__all__ = ["Aggregate", "Avg", "Count", "Max", "Min", "StdDev", "Sum"]

_NUMBER = FieldType(Kind.NUMBER, float | int | None)
_ANY = FieldType(Kind.ANY, Any)


class Aggregate:
    """Base of aggregate functions: one ``$group`` accumulator over a field or expression."""

    #: The ``$group`` accumulator operator.
    accumulator: ClassVar[str]
    #: The field must hold numbers (Sum, Avg, StdDev).
    numeric: ClassVar[bool] = False
    #: The result of ``aggregate()`` when no document matched.
    empty: ClassVar[Any] = None

    __slots__ = ("expression",)

    def __init__(self, field: str | Expression) -> None:
        if isinstance(field, str):
            field = F(field)
        if not isinstance(field, Expression):
            raise QueryError(
                f"{type(self).__name__}() takes a field name or an F() expression, "
                f"not {type(field).__name__}"
            )
        check_expression_depth(field, f"{type(self).__name__}()")
        self.expression: Expression | None = field

    def fields(self) -> tuple[str, ...]:
        """Return the field names this aggregate reads."""
        return self.expression.fields() if self.expression is not None else ()

    def argument(self, resolve: FieldReader) -> Any:
        """Return the accumulator's argument, ``resolve`` reading each field
        (:data:`~odm.query.expressions.FieldReader`)."""
        assert self.expression is not None
        return self.expression.as_expr(resolve)

    def as_accumulator(self, resolve: FieldReader) -> dict[str, Any]:
        """Return the ``$group`` accumulator, e.g. ``{"$avg": "$age"}``."""
        return {self.accumulator: self.argument(resolve)}

    def finalize(self, name: str) -> Any:
        """Return the projection of the output ``name`` after ``$group``: here the value as
        the group left it. A field path, not ``1``: ``$project`` puts the fields it keeps as
        they are (``1``) first, in the group's order, and those it computes after them, so
        only paths keep the rows' keys in the order asked (Django's: the ``values()``
        fields, then the annotations)."""
        return "$" + name

    @property
    def output(self) -> FieldType:
        """Return the type of the result, for filtering on an annotation."""
        return _NUMBER if self.numeric else _ANY

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.expression!r})"


class Count(Aggregate):
    """Count documents: ``Count()`` all, ``Count("field")`` those where it is not null.

    ``Count("field", distinct=True)`` counts the distinct non-null values.
    """

    empty = 0
    __slots__ = ("distinct",)

    def __init__(self, field: str | Expression | None = None, *, distinct: bool = False) -> None:
        if field is None:
            if distinct:
                raise QueryError("Count(distinct=True) needs a field")
            self.expression = None
        else:
            super().__init__(field)
        self.distinct = distinct

    def as_accumulator(self, resolve: FieldReader) -> dict[str, Any]:
        """Return ``{"$sum": 1}``, a null-skipping ``$sum`` or an ``$addToSet`` (distinct)."""
        if self.expression is None:
            return {"$sum": 1}
        value = self.argument(resolve)
        if self.distinct:
            return {"$addToSet": value}
        is_null = {"$eq": [{"$ifNull": [value, None]}, None]}
        return {"$sum": {"$cond": [is_null, 0, 1]}}

    def finalize(self, name: str) -> Any:
        """Return the set's size (nulls left out) for a distinct count."""
        if self.distinct:
            return {"$size": {"$setDifference": ["$" + name, [None]]}}
        return super().finalize(name)

    @property
    def output(self) -> FieldType:
        """Return the number type."""
        return _NUMBER


class Sum(Aggregate):
    """Sum a number field (``$sum``): ``None`` when no document holds a number there.

    As in SQL, a sum of nulls only is null, not 0. ``$sum`` of no number is the int32 ``0``,
    so each int32 term is added as an int64: the sum is then an int32 only when nothing was
    summed, which :meth:`finalize` turns into ``None`` (and an int64 sum that fits back into
    an int32, as ``$sum`` of int32 values would have given).
    """

    accumulator = "$sum"
    numeric = True
    __slots__ = ()

    def argument(self, resolve: FieldReader) -> Any:
        """Return the summed expression, an int32 term widened to an int64."""
        return {
            "$let": {
                "vars": {"v": super().argument(resolve)},
                "in": {
                    "$cond": [{"$eq": [{"$type": "$$v"}, "int"]}, {"$toLong": "$$v"}, "$$v"]
                },
            }
        }

    def finalize(self, name: str) -> Any:
        """Return ``None`` for a sum of no number, an int64 sum within int32 as an int32."""
        total = "$" + name
        kind = {"$type": total}
        fits = {"$and": [{"$gte": [total, -(2**31)]}, {"$lt": [total, 2**31]}]}
        return {
            "$switch": {
                "branches": [
                    {"case": {"$eq": [kind, "int"]}, "then": None},
                    {"case": {"$and": [{"$eq": [kind, "long"]}, fits]}, "then": {"$toInt": total}},
                ],
                "default": total,
            }
        }


class Avg(Aggregate):
    """Average a number field (``$avg``)."""

    accumulator = "$avg"
    numeric = True
    __slots__ = ()


class Min(Aggregate):
    """Smallest value of a field (``$min``)."""

    accumulator = "$min"
    __slots__ = ()


class Max(Aggregate):
    """Largest value of a field (``$max``)."""

    accumulator = "$max"
    __slots__ = ()


class StdDev(Aggregate):
    """Standard deviation of a number field: population, or ``sample=True``."""

    numeric = True
    __slots__ = ("sample",)

    def __init__(self, field: str | Expression, *, sample: bool = False) -> None:
        super().__init__(field)
        self.sample = sample

    def as_accumulator(self, resolve: FieldReader) -> dict[str, Any]:
        """Return ``$stdDevPop`` or ``$stdDevSamp``."""
        op = "$stdDevSamp" if self.sample else "$stdDevPop"
        return {op: self.argument(resolve)}
