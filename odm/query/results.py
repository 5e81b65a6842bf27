"""Rows of ``values()``, ``values_list()``, ``annotate()`` and ``aggregate()`` in Python types.

The server answers with BSON types (``Decimal128`` for an ``odm.Decimal`` field); a loaded
document holds what its fields validate to (``decimal.Decimal``). Each value of a row is turned
into what the field it comes from gives a loaded document (as Django's ``from_db_value``
does), and an aggregate over one field into that field's type (``Sum("price")`` of an
``odm.Decimal`` field is a ``Decimal``). A reference stays its id (Django's ``values()`` of a
foreign key), a free-form value stays as stored. A stored value that the field's type refuses
is left as stored: a read of a few fields does not fail on data it can still show.
No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import bson
from pydantic import ValidationError

from ..models.derived import table
from .aggregates import Count, Max, Min, Sum
from .expressions import F
from .paths import FieldType, Kind, remember, resolve

__all__ = ["aggregate_reader", "field_reader", "plain", "row_converter"]

Reader = Callable[[Any], Any]

#: The entry of a model's derived state (odm.models.derived) holding its field readers.
_READERS: Final = "results.readers"


def plain(value: Any) -> Any:
    """Return ``value`` with BSON's ``Decimal128`` as ``decimal.Decimal`` (lists and dicts
    walked): the reading of a computed value that no single field types."""
    if isinstance(value, bson.Decimal128):
        return value.to_decimal()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _identity(value: Any) -> Any:
    return value


def _holds_reference(field: FieldType) -> bool:
    while field.kind is Kind.LIST and field.item is not None:
        field = field.item
    return field.kind is Kind.REFERENCE


def _typed(field: FieldType) -> Reader:
    """Return the reader validating a value as ``field`` (its loose form: no constraints)."""
    as_is = field.as_is

    def read(value: Any) -> Any:
        if value is None or type(value) is as_is:
            return value
        try:
            return field.adapter.validator.validate_python(value)
        except ValidationError:
            return value  # kept as stored (see the module docstring)

    return read


def _reader_for(field: FieldType, through_list: bool) -> Reader:
    if field.kind is Kind.ANY:
        return _identity
    if _holds_reference(field):
        return _identity  # the id, as stored
    typed = _typed(field)
    if not through_list:
        return typed

    def read_each(value: Any) -> Any:
        # A path through a list (items__price) reads one value per element.
        if isinstance(value, list):
            return [read_each(v) for v in value]
        return typed(value)

    return read_each


def field_reader(model: type[Any], path: str) -> Reader:
    """Return (cached) the function turning the stored value at ``path`` into the value the
    field gives a loaded document."""
    per_model = table(model, _READERS)
    reader: Reader | None = per_model.get(path)
    if reader is None:
        target = resolve(model, path)
        reader = _reader_for(target.field, target.through_list)
        remember(per_model, path, reader)  # bounded: a request may name any dict key
    return reader


def aggregate_reader(model: type[Any], aggregate: Any) -> Reader:
    """Return the function reading the result of ``aggregate`` (an :class:`odm.aggregates.
    Aggregate`): ``Count`` an int; ``Sum``/``Min``/``Max`` over one field that field's type;
    ``Avg``/``StdDev`` a float, or a ``Decimal`` over decimals; anything else :func:`plain`."""
    if isinstance(aggregate, Count):
        return _identity
    expression = aggregate.expression
    if isinstance(aggregate, Sum | Min | Max) and type(expression) is F:
        target = resolve(model, expression.name)
        if target.field.kind is not Kind.LIST and not target.through_list:
            read = _reader_for(target.field, False)
            return lambda value: plain(read(value))
    return plain


def row_converter(
    model: type[Any], names: tuple[str, ...], annotations: Mapping[str, Any]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return the function converting one ``values()`` row (keyed by ``names``) in place."""
    readers = [
        (
            name,
            aggregate_reader(model, annotations[name])
            if name in annotations
            else field_reader(model, name),
        )
        for name in names
    ]
    readers = [(name, reader) for name, reader in readers if reader is not _identity]

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        for name, reader in readers:
            value = row.get(name)
            if value is not None:
                row[name] = reader(value)
        return row

    return convert
