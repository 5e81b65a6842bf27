"""How deep a value may nest: checked before a document, an update or a filter is sent.

MongoDB documents "no more than 100 levels of nesting for BSON documents" (each object or
array adds a level; the document itself is the first). The server enforces a little more (it
refuses a stored document over 180 levels, and commands over 200) with untyped errors, and
values around 1,000 levels deep make Python's recursive code (the encoder, ``copy``) raise a
bare ``RecursionError``. So the ODM refuses anything deeper than :data:`MAX_DEPTH` itself,
with a typed error naming the field, before anything is sent. Every walk here is iterative.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Final, is_typeddict

from pydantic import ValidationError

__all__ = ["MAX_DEPTH", "check_payload", "too_deep"]

#: The deepest a stored document may nest, the document itself being level 1.
MAX_DEPTH: Final = 100

_CONTAINERS: Final = (dict, list, tuple, set, frozenset)


def too_deep(value: Any, levels: int) -> bool:
    """Tell whether ``value`` nests more than ``levels`` containers deep (a scalar: 0, a flat
    dict or list: 1). Stops as soon as it knows."""
    if not isinstance(value, _CONTAINERS):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > levels:
            return True
        subs = item.values() if isinstance(item, Mapping) else item
        for sub in subs:
            if isinstance(sub, _CONTAINERS):
                stack.append((sub, depth + 1))
    return False


def check_payload(model: type[Any], payload: Sequence[Any]) -> None:
    """Raise pydantic's ``ValidationError`` naming the field of ``payload`` (stored documents,
    or update documents ``{"$set": {"a.b": value}}``) that would nest deeper than
    :data:`MAX_DEPTH`. Free for a model none of whose fields can nest freely."""
    if not _may_nest(model):
        return
    for document in payload:
        if not isinstance(document, Mapping):  # an update pipeline: stages, not data
            continue
        for key, value in document.items():
            pairs = value.items() if key.startswith("$") and isinstance(value, Mapping) else [
                (key, value)
            ]
            for path, item in pairs:
                # The value of "a.b" sits in two containers: the document and "a".
                levels = MAX_DEPTH - 1 - str(path).count(".")
                if too_deep(item, levels):
                    raise _error(model, str(path), item)


def _error(model: type[Any], path: str, value: Any) -> ValidationError:
    message = f"nests deeper than MongoDB's {MAX_DEPTH} levels"
    return ValidationError.from_exception_data(
        model.__name__,
        [{
            "type": "value_error",
            "loc": tuple(path.split(".")),
            "input": type(value).__name__,
            "ctx": {"error": ValueError(message)},
        }],
    )


_NESTS: weakref.WeakKeyDictionary[type[Any], bool] = weakref.WeakKeyDictionary()


def _may_nest(model: type[Any]) -> bool:
    """Tell whether a field of ``model`` can hold values nested without bound (a ``dict``,
    ``Any``, a list of those, a recursive embedded model...), cached per class."""
    found = _NESTS.get(model)
    if found is None:
        from .query.paths import model_type

        try:
            found = _type_nests(model_type(model), set())
        except Exception:  # a type the analysis does not know: check every payload
            found = True
        _NESTS[model] = found
    return found


def _type_nests(field: Any, seen: set[type[Any]]) -> bool:
    from .query.paths import Kind, field_type_of

    kind = field.kind
    if kind is Kind.LIST:
        return field.item is None or _type_nests(field.item, seen)
    if kind is Kind.MODEL:
        for model in field.models:
            if model in seen:
                return True  # a recursive model: as deep as its instances go
            inner = {*seen, model}
            fields = getattr(model, "model_fields", None)
            if fields is None:
                return True
            if any(_type_nests(field_type_of(model, name), inner) for name in fields):
                return True
        return False
    if kind is Kind.OTHER:
        # An enum, a UUID, Decimal...: a scalar. A collection, a dataclass, a TypedDict or a
        # form the analysis leaves as OTHER (Literal...) may nest: checked.
        annotation = field.annotation
        return not (
            isinstance(annotation, type)
            and not issubclass(annotation, (Mapping, *_CONTAINERS))
            and not hasattr(annotation, "__dataclass_fields__")
            and not is_typeddict(annotation)
        )
    return kind in (Kind.DICT, Kind.ANY)
