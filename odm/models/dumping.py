"""A document's stored form (``to_bson()``), built by following its class's plan.

pydantic's serializer costs ~130 ns a field and ~1-2 µs an embedded model (32 µs for the
spec benchmark's nested document of 15 models). The plan (:mod:`odm.models.model_plan`)
already says which fields dump as the value itself, so a flat embedded model is one dict
copy once its keys and value types are checked (15 µs for that document, 1.6 µs instead of
2.2 µs for the flat small one); a value that does not fit its field goes through pydantic,
that field alone. A class with a field of a kind only pydantic dumps (a ``dict``, a
``Decimal``, a serializer: ``ModelPlan.dumps_alone`` is false) is dumped whole by pydantic,
which is then faster than the plan plus a pydantic call per model for what is left.

A ``set`` / ``frozenset`` field is the exception to "what pydantic returns": pydantic dumps a
Python set, which would be stored in the order this process iterates it (for text, an order
that changes with the hash seed); its dump here is a list in the one order every process
stores (:func:`~odm.stored_order.stored_set`), also when pydantic dumped the document.

The result is what ``__pydantic_serializer__.to_python(document, by_alias=True)`` returns:
the same keys in the same order, equal values of the same types, and no mutable object
shared with the instance (containers are new, as pydantic's are). tests/unit/test_dumping.py
checks it against pydantic on every kind of field.
"""

from __future__ import annotations

from operator import contains
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from ..stored_order import stored_set
from .model_plan import (
    ANY,
    AS_IS,
    MODEL,
    MODEL_LIST,
    PLAIN,
    PLAIN_LIST,
    SET,
    FieldPlan,
    ModelPlan,
    document_plan,
)

__all__ = ["dump_document", "dump_field", "serialized"]

#: Returned by :func:`_dump_value` for a value that pydantic must dump.
_PYDANTIC: Any = object()
#: The types of a set field's value that :func:`_dump_value` dumps itself.
_SETS = (set, frozenset)


def dump_document(document: Any) -> dict[str, Any] | None:
    """Return the stored form of ``document`` (without ``_cls``), or ``None`` when its class
    has no plan, or fields only pydantic dumps and no set (then pydantic's serializer dumps it
    whole)."""
    plan = document_plan(type(document))
    if plan is None:
        return None
    if plan.dumps_alone:
        try:
            return _dump_model(plan, document)
        except KeyError:  # a field missing from the instance (model_construct, del)
            pass
    if not plan.has_sets:
        return None
    dumped = serialized(document)
    _order_sets(plan, dumped)
    return dumped


def serialized(model: Any, include: set[str] | None = None) -> dict[str, Any]:
    """Return pydantic's dump of model instance ``model`` by alias (``include``: those fields
    only). A value its serializer cannot dump (put in place past validation: a document
    appended to a list of references, text to a list of decimals) raises pydantic's
    ``ValidationError`` naming the class and the field, where pydantic's own error names
    neither; nothing has been sent then."""
    try:
        dumped: dict[str, Any] = type(model).__pydantic_serializer__.to_python(
            model, by_alias=True, include=include
        )
    except PydanticSerializationError as error:
        raise _unstorable(model, include, error) from error
    return dumped


def _unstorable(
    model: Any, include: set[str] | None, error: PydanticSerializationError
) -> ValidationError:
    """The ``ValidationError`` for ``error``, naming the first field of ``model`` (among
    ``include``) that pydantic cannot dump alone (found on this error path only)."""
    cls = type(model)
    names = sorted(include) if include is not None else list(cls.model_fields)
    culprit: tuple[str, ...] = ()
    for name in names:
        try:
            cls.__pydantic_serializer__.to_python(model, by_alias=True, include={name})
        except PydanticSerializationError:
            culprit = (name,)
            break
    value = model.__dict__.get(culprit[0]) if culprit else None
    return ValidationError.from_exception_data(
        cls.__name__,
        [{
            "type": "value_error",
            "loc": culprit,
            "input": value,
            "ctx": {"error": ValueError(f"cannot be stored: {error}")},
        }],
    )


def _order_sets(plan: ModelPlan, dumped: Any) -> None:
    """Put the sets of ``dumped`` (a model of ``plan`` as pydantic dumps it) in their stored
    order, in place, following the plan down to every set field."""
    if type(dumped) is not dict:
        return  # None, or what pydantic made of a value that did not fit
    for field in plan.fields:
        _order_field(field, dumped)


def _order_field(field: FieldPlan, dumped: dict[str, Any]) -> None:
    """Put the sets of ``field`` in ``dumped`` (its model as pydantic dumps it) in order."""
    key, kind, sub = field[1], field[2], field[4]
    value = dumped.get(key)
    if kind == SET:
        if isinstance(value, set | frozenset):
            dumped[key] = stored_set(value)
    elif sub is not None and sub.has_sets:
        models = value if kind == MODEL_LIST and type(value) is list else (value,)
        for model in models:
            _order_sets(sub, model)


def dump_field(owner: Any, field: FieldPlan) -> Any:
    """Return the stored form of one field of model instance ``owner``."""
    dumped = _dump_value(field, owner.__dict__[field[0]])
    if dumped is _PYDANTIC:
        return _by_pydantic(owner, field)
    return dumped


def _by_pydantic(owner: Any, field: FieldPlan) -> Any:
    """The stored form of one field of ``owner`` as pydantic dumps it (its sets, if it
    holds any, put in order)."""
    dumped = serialized(owner, {field[0]})
    _order_field(field, dumped)
    return dumped[field[1]]


def _dump_flat(plan: ModelPlan, values: dict[str, Any]) -> dict[str, Any] | None:
    """The dump of a flat, complete model (every field plain, under its own name) from its
    ``__dict__``, or ``None`` if its keys or a value's type are not what the plan expects."""
    if tuple(values) != plan.keys_in_order:  # a field deleted, or moved by del + set
        return None
    if tuple(map(type, values.values())) != plan.usual_types and not all(
        map(contains, plan.types_in_order, map(type, values.values()))
    ):
        return None
    return dict(values)


def _dump_model(plan: ModelPlan, model: Any) -> dict[str, Any]:
    values = model.__dict__
    if plan.flat and plan.complete:
        flat = _dump_flat(plan, values)
        if flat is not None:
            return flat
    out: dict[str, Any] = {}
    by_pydantic: list[FieldPlan] = []
    for field in plan.fields:
        name, key, kind, types, sub = field
        value = values[name]
        if kind == PLAIN and type(value) in types:
            out[key] = value
            continue
        if sub is not None and sub.flat and sub.complete and type(value) is sub.cls:
            # An embedded flat model (the usual embedded document), without two calls.
            flat = _dump_flat(sub, value.__dict__)
            if flat is not None:
                out[key] = flat
                continue
        dumped = _dump_value(field, value)
        if dumped is _PYDANTIC:
            by_pydantic.append(field)
        out[key] = dumped  # the placeholder keeps the key's position
    if by_pydantic:
        names = {field[0] for field in by_pydantic}
        dumped_apart = serialized(model, names)
        for field in by_pydantic:
            _order_field(field, dumped_apart)
            out[field[1]] = dumped_apart[field[1]]
    return out


def _dump_value(field: FieldPlan, value: Any) -> Any:
    """The stored form of ``value`` in ``field``, or :data:`_PYDANTIC`."""
    kind, types, sub = field[2], field[3], field[4]
    if kind == PLAIN:
        return value if type(value) in types else _PYDANTIC
    if kind == ANY:
        return value if type(value) in AS_IS else _PYDANTIC
    if kind == MODEL:
        if sub is not None and type(value) is sub.cls:
            return _dump_model(sub, value)
        return None if value is None and types else _PYDANTIC
    if kind == MODEL_LIST:
        if sub is not None and type(value) is list:
            cls = sub.cls
            if all(type(item) is cls for item in value):
                return [_dump_model(sub, item) for item in value]
        return _PYDANTIC
    if kind == PLAIN_LIST:
        if type(value) is list and all(map(types.__contains__, map(type, value))):
            return list(value)
        return _PYDANTIC
    if kind == SET:
        # pydantic dumps a set of plain values as a set of the same values.
        if type(value) in _SETS and all(map(types.__contains__, map(type, value))):
            return stored_set(value)
        return _PYDANTIC
    return _PYDANTIC
