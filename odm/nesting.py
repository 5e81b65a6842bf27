"""How deep a value may nest: checked before a document, an update or a filter is sent.

MongoDB documents "no more than 100 levels of nesting for BSON documents" (each object or
array adds a level; the document itself is the first). The server enforces a little more (it
refuses a stored document over 180 levels, and commands over 200) with untyped errors, and
values around 1,000 levels deep make Python's recursive code (the encoder, ``copy``) raise a
bare ``RecursionError``. So the ODM refuses anything deeper than :data:`MAX_DEPTH` itself,
with a typed error naming the field, before anything is sent. Every walk here is iterative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

__all__ = [
    "CONTAINERS",
    "MAX_DEPTH",
    "check_payload",
    "levels_below",
    "path_too_deep",
    "too_deep",
]

#: The deepest a stored document may nest, the document itself being level 1.
MAX_DEPTH: Final = 100

#: The Python types a BSON encoder turns into a nested document or array.
CONTAINERS: Final = (dict, list, tuple, set, frozenset)


def levels_below(path: str, sep: str = ".") -> int:
    """How many containers deep a value written at ``path`` may nest: :data:`MAX_DEPTH` less
    the document and each container the path passes through (``"a.b"``: the document and
    ``a``; 98). Negative when the path alone is too deep (``sep``: ``"__"`` for a query key)."""
    return MAX_DEPTH - 1 - path.count(sep)


def path_too_deep(path: str, sep: str = ".") -> bool:
    """Tell whether a value written at ``path`` would sit deeper than :data:`MAX_DEPTH`
    levels whatever it is (a scalar included): the path has more than ``MAX_DEPTH`` parts.
    The server would refuse it untyped, or past 255 parts write it elsewhere."""
    return levels_below(path, sep) < 0


def too_deep(value: Any, levels: int) -> bool:
    """Tell whether ``value`` nests more than ``levels`` containers deep (a scalar: 0, a flat
    dict or list: 1; so any value when ``levels`` is negative). Stops as soon as it knows."""
    if levels < 0:
        return True
    if not isinstance(value, CONTAINERS):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > levels:
            return True
        subs = item.values() if isinstance(item, Mapping) else item
        for sub in subs:
            if isinstance(sub, CONTAINERS):
                stack.append((sub, depth + 1))
    return False


def check_payload(model: type[Any], payload: Sequence[Any]) -> None:
    """Raise pydantic's ``ValidationError`` naming the field of ``payload`` (stored documents,
    or update documents ``{"$set": {"a.b": value}}``) that would nest deeper than
    :data:`MAX_DEPTH`. Free for a model none of whose fields can nest freely (its
    ``_meta.may_nest``, worked out from the declaration by :mod:`odm.models.field_types`)."""
    if not model._meta.may_nest:
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
                if too_deep(item, levels_below(str(path))):
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
