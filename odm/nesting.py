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
from itertools import chain, compress
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


#: Types known to be encoded as a nested document or array (:data:`CONTAINERS` and their
#: subclasses met so far), and types known not to be: a level of many values is sorted by
#: the set of their types, in C, rather than value by value.
_NESTING: set[type[Any]] = set(CONTAINERS)
_FLAT: set[type[Any]] = {str, int, float, bool, type(None), bytes}
#: How many types :func:`_nests` remembers at most (a program making classes at run time
#: must not grow the sets without bound).
_LEARNT_AT_MOST: Final = 512
#: Up to this many values at one level, they are looked at one by one (sorting them by type
#: costs more than it saves).
_FEW: Final = 16
#: The sequence types whose values are their items, chained as they are.
_SEQUENCES: Final = frozenset({list, tuple, set, frozenset})
_values_of = dict.values


def too_deep(value: Any, levels: int) -> bool:
    """Tell whether ``value`` nests more than ``levels`` containers deep (a scalar: 0, a flat
    dict or list: 1; so any value when ``levels`` is negative). Stops as soon as it knows.

    The walk goes one level at a time: the containers of a level, then all their values at
    once. A level of many values is sorted by the types they hold (known flat: the walk is
    over; known containers: the next level is all of them) with C loops, so that a large
    ``dict`` of scalars costs about what encoding it costs, not a Python step per value."""
    if levels < 0:
        return True
    if not isinstance(value, CONTAINERS):
        return False
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > levels:
            return True
        values = _values_below(level)
        if len(values) <= _FEW:
            level = [sub for sub in values if isinstance(sub, CONTAINERS)]
        else:
            level = _containers_among(values)
        depth += 1
    return False


def _values_below(level: list[Any]) -> Sequence[Any] | Any:
    """Return the values held by the containers of ``level`` (a mapping's values)."""
    if len(level) == 1:
        item = level[0]
        return item.values() if isinstance(item, Mapping) else item
    kinds = set(map(type, level))
    if kinds == {dict}:
        return list(chain.from_iterable(map(_values_of, level)))
    if kinds <= _SEQUENCES:
        return list(chain.from_iterable(level))
    return list(
        chain.from_iterable([i.values() if isinstance(i, Mapping) else i for i in level])
    )


def _containers_among(values: Any) -> list[Any]:
    """Return the containers among ``values`` (many of them), sorted out by type."""
    kinds = set(map(type, values))
    if kinds <= _FLAT:
        return []
    if kinds <= _NESTING:
        return list(values)
    nesting = {kind for kind in kinds if kind in _NESTING or _nests(kind)}
    return list(compress(values, map(nesting.__contains__, map(type, values))))


def _nests(kind: type[Any]) -> bool:
    """Tell whether values of ``kind`` are encoded nested, and remember it (within bounds)."""
    nests = issubclass(kind, CONTAINERS)
    known = _NESTING if nests else _FLAT
    if len(known) < _LEARNT_AT_MOST:
        known.add(kind)
    return nests


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
