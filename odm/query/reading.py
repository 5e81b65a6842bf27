"""How an aggregation expression reads a resolved path (``values()``, group keys,
accumulators, ``F()``): as MongoDB's filters read it.

A field path (``"$tags.0"``) reads a field ``0`` of each element, never a list position, and
looks into one list only; a path that picks list elements (``tags__0``, ``meta__l__0``, a
position after a key read in a free-form list) is read with ``$let``, ``$isArray`` and
``$arrayElemAt`` instead. :mod:`odm.query.paths` resolves the path (which parts pick
elements); this module only writes the expression that reads it.
"""

from __future__ import annotations

import reprlib
from typing import Any, Final

from ..exceptions import QueryError
from ..nesting import MAX_DEPTH
from .paths import ResolvedPath, position_number

__all__ = ["MAX_READ_LEVELS", "check_readable", "field_reference", "read_expression"]


#: The most levels the expression reading a path (:func:`field_reference`) may nest: each
#: list position it reads, and each run of keys after one, is a ``$let`` of three levels.
#: With an ``F()`` expression's own levels (``lookups.MAX_EXPRESSION_LEVELS``) and what a
#: command wraps them in, a command stays within the server's 200 levels.
MAX_READ_LEVELS: Final = MAX_DEPTH - 10


def check_readable(target: ResolvedPath, what: str) -> None:
    """Refuse, naming ``what``, a path no aggregation expression reads: a position in each
    element of a list the path goes through (``items__tags__0``), or so many positions that
    the expression reading them would nest deeper than the server takes
    (``meta__0__0__...``). A filter matches the first on any element; ``$items.tags`` is a
    list of lists, whose position would be an item's."""
    if target.position_in_list:
        raise QueryError(
            f"{what}: {target.path!r} takes a list position in each element of a list; "
            "MongoDB's aggregation reads no such path (read the list, or filter on it)",
            field=target.path,
        )
    if not target.element_parts:
        return
    levels = _reading_levels(target)
    if levels > MAX_READ_LEVELS:
        raise QueryError(
            f"{what}: {reprlib.repr(target.path)} reads {len(target.element_parts)} list "
            f"positions: the expression reading them would nest {levels} levels deep, "
            f"deeper than MongoDB allows there (at most {MAX_READ_LEVELS}); filter on it, "
            "or read a shorter path",
            field=target.path,
        )


#: The variable of the ``$let`` stages that :func:`field_reference` writes.
_AT: Final = "at"


def field_reference(target: ResolvedPath) -> str | dict[str, Any]:
    """Return what an aggregation reads ``target`` by: its stored path (``"address.city"``,
    to be written ``"$address.city"``) or, when it picks list elements, the expression
    reading it (``tags__0``: ``$arrayElemAt`` of ``$tags``, where ``"$tags.0"`` would be
    the field ``0`` of each element, an empty list). The path was checked with
    :func:`check_readable`."""
    if not target.element_parts:
        return target.db_path
    parts = target.db_path.split(".")
    head = _spread_head(target)
    if head is not None:
        start = "$" + ".".join(parts[:head])
        return _spread_reading(start, parts[head:], head, target.element_parts)
    expression: str | dict[str, Any] = "$" + ".".join(parts[: target.element_parts[0]])
    for keys, element in _reading_steps(target):
        expression = (
            _field_of(expression, keys) if element is None else _element_of(expression, element)
        )
    return expression


def _spread_head(target: ResolvedPath) -> int | None:
    """The index of the first part :func:`_spread_reading` reads, when a key read in a
    free-form value that may be a list comes before a list position (a position after such
    a key is one in each of its elements, see :attr:`ResolvedPath.spread_parts`); else
    ``None``."""
    last = target.element_parts[-1]
    spread = next((index for index in target.spread_parts if index < last), None)
    return None if spread is None else min(target.element_parts[0], spread)


def _reading_steps(target: ResolvedPath) -> list[tuple[list[str], str | None]]:
    """The ``$let`` steps of :func:`field_reference`'s expression after the stored path it
    starts from: ``(keys, None)`` reads a run of keys, ``([], part)`` a list position."""
    parts = target.db_path.split(".")
    steps: list[tuple[list[str], str | None]] = []
    start = target.element_parts[0]
    for index in target.element_parts:
        if index > start:
            steps.append((parts[start:index], None))
        steps.append(([], parts[index]))
        start = index + 1
    if start < len(parts):
        steps.append((parts[start:], None))
    return steps


def _reading_levels(target: ResolvedPath) -> int:
    """How many levels :func:`field_reference`'s expression for ``target`` nests (counted on
    it: paths picking list elements are rare, and a count kept by hand would drift)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(field_reference(target), 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        else:
            deepest = max(deepest, depth)
    return deepest


#: The variable of :func:`_spread_reading`'s ``$let`` stages: the value read so far (``v``)
#: and whether it was gathered from the elements of a list (``t``).
_STATE: Final = "s"


def _spread_reading(
    start: str, parts: list[str], head: int, element_parts: tuple[int, ...]
) -> dict[str, Any]:
    """The expression reading ``parts`` (the stored path's from index ``head``) in the value
    of ``start``, as MongoDB's filters read them: a key read in a list is read in each of
    its elements (the values gathered in a list, as ``"$items.city"`` gathers them), and a
    position after that is read in each gathered value, not in the gathered list (whose
    position would be an element's whole value). A key after that is read in each gathered
    value, in each document of a gathered list (see :func:`_key_in_each`)."""
    state: dict[str, Any] = {"v": start, "t": False}
    value, gathered = f"$${_STATE}.v", f"$${_STATE}.t"
    for index, part in enumerate(parts, start=head):
        if index in element_parts:
            read: dict[str, Any] = {
                "v": {"$cond": [gathered, _in_each(value, part), _picked(value, part)]},
                "t": gathered,
            }
        else:
            key = f"{value}.{part}"
            # Before any key, nothing is gathered yet: the plain reading is the one.
            both = {"$cond": [gathered, _key_in_each(value, part), key]}
            read = {
                "v": both if index > head else key,
                "t": {"$or": [gathered, {"$isArray": value}]},
            }
        state = {"$let": {"vars": {_STATE: state}, "in": read}}
    return {"$let": {"vars": {_STATE: state}, "in": value}}


def _picked(value: str, part: str) -> dict[str, Any]:
    """The expression reading position ``part`` of the variable ``value`` when it is a list,
    else its key ``part``."""
    return {
        "$cond": [
            {"$isArray": value},
            {"$arrayElemAt": [value, position_number(part)]},
            f"{value}.{part}",
        ]
    }


def _key_in_each(gathered: str, key: str) -> dict[str, Any]:
    """The expression reading ``key`` in each value of the list ``gathered`` as MongoDB's
    filters read it: a value that is a list has the key read in each of its documents
    (``"$$e.k"``), its values gathered with the others. ``"$$v.k"`` on the gathered list
    itself would skip a list in it: aggregation field paths look into one list only."""
    return _gathered_from(gathered, f"$$e.{key}", {"$isArray": "$$e"})


def _gathered_from(gathered: str, read: Any, spread: Any = None) -> dict[str, Any]:
    """The values ``read`` (an expression on the variable ``e``) gives for each value of
    the list ``gathered``, concatenated: each one a value, or its elements where ``spread``
    (an expression on ``e``, if given) is true; nothing where it is missing."""
    one: Any = ["$$w"] if spread is None else {"$cond": [spread, "$$w", ["$$w"]]}
    kept = {
        "$let": {
            "vars": {"w": read},
            "in": {"$cond": [{"$eq": [{"$type": "$$w"}, "missing"]}, [], one]},
        }
    }
    return {
        "$reduce": {
            "input": {
                "$map": {
                    "input": {"$cond": [{"$isArray": gathered}, gathered, []]},
                    "as": "e",
                    "in": kept,
                }
            },
            "initialValue": [],
            "in": {"$concatArrays": ["$$value", "$$this"]},
        }
    }


def _in_each(gathered: str, part: str) -> dict[str, Any]:
    """The expression reading ``part`` (see :func:`_picked`) in each value of the list
    ``gathered``, leaving out those that hold nothing there (as ``"$items.city"`` leaves
    out the items without a city)."""
    return _gathered_from(gathered, _picked("$$e", part))


def read_expression(target: ResolvedPath) -> str | dict[str, Any]:
    """Return the aggregation expression reading the value at ``target`` (``"$name"``, or
    :func:`field_reference`'s expression)."""
    reference = field_reference(target)
    return "$" + reference if isinstance(reference, str) else reference


def _field_of(value: str | dict[str, Any], keys: list[str]) -> str | dict[str, Any]:
    """The expression reading the dotted ``keys`` inside the value of expression ``value``."""
    if not keys:
        return value
    return {"$let": {"vars": {_AT: value}, "in": f"$${_AT}." + ".".join(keys)}}


def _element_of(value: str | dict[str, Any], part: str) -> dict[str, Any]:
    """The expression reading position ``part`` of the value of ``value`` when it is a list,
    else its field ``part`` (a free-form document's key), as a MongoDB filter reads it."""
    at = f"$${_AT}"
    return {
        "$let": {
            "vars": {_AT: value},
            "in": {
                "$cond": [
                    {"$isArray": at},
                    {"$arrayElemAt": [at, position_number(part)]},
                    f"{at}.{part}",
                ]
            },
        }
    }
