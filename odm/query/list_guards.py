"""The guards of list lengths and positions an ``update()`` carries (no I/O).

MongoDB grows a list past its ``max_length`` (``push`` / ``add_to_set``), shrinks it below its
``min_length`` (``pull``) and pads it with nulls up to a position past its end, without
complaint, and the document then no longer loads: each such update carries a
:class:`~odm.query.update_checks.Guard` finding the documents it would break, a filter when
one can tell them, else an aggregation (a condition in the query language cannot run inside
an expression).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from ..exceptions import QueryError
from ..models.options import ID_KEY
from .paths import (
    MAX_POSITION,
    SEP,
    Elements,
    FieldType,
    Kind,
    ResolvedPath,
    elements,
    is_index,
    peel,
    position,
    resolve,
)
from .update_checks import ELEMENT_INDEX, Guard, Place, placed, prefixed

__all__ = [
    "MAX_PADDING",
    "RESIZING",
    "length_guard",
    "max_length",
    "min_length",
    "position_guards",
]


def max_length(field_type: FieldType) -> int | None:
    """The ``max_length`` of a list field (``Field(max_length=3)``), or ``None``."""
    return _length_limit(field_type, "max_length")


def min_length(field_type: FieldType) -> int | None:
    """The ``min_length`` of a list field (``Field(min_length=1)``), or ``None``."""
    return _length_limit(field_type, "min_length")


def _length_limit(field_type: FieldType, name: str) -> int | None:
    peeled = peel(field_type.store_annotation)
    if peeled is None:
        return None
    for item in peeled[1]:
        limit = getattr(item, name, None)
        if isinstance(limit, int):
            return limit
    return None


#: The most nulls MongoDB pads a list with to write a position past its end: it refuses
#: ("can't backfill more than 1500000 elements") a position further past the list's end.
MAX_PADDING: Final = 1_500_000


def position_guards(
    model: type[Any],
    key: str,
    target: ResolvedPath,
    *,
    root: FieldType | None = None,
    place: Place | None = None,
) -> list[Guard]:
    """Check each list position in ``key`` (``scores__5``): past the list's ``max_length``
    or past the end of any list (:data:`~odm.query.paths.MAX_POSITION`) it is refused here;
    past the end of a stored list MongoDB pads the list with nulls, which a guard keeps from a
    list whose elements cannot be null (and, further than :data:`MAX_PADDING`, from any
    list: MongoDB refuses it, stopping an ``update_many`` part-way); where no list is stored
    at all it writes a document with the position as a key, which a guard keeps from any
    list.

    ``root`` and ``place``: ``key`` names a field of the elements an element update writes
    (``each(tags__3=...)``, resolved from ``root``, the element's type), and the guards look
    at those elements (:class:`~odm.query.update_checks.Place`)."""
    guards: list[Guard] = []
    stored = target.db_path.split(".")
    for index, name in enumerate(target.names):
        if not is_index(name) or index == 0:
            continue
        list_key = SEP.join(target.names[:index])
        list_type = resolve(model, list_key, root=root).field
        if list_type.kind is not Kind.LIST:
            continue  # a free-form value: a key where it holds a document
        named = list_key if place is None else f"{place.key}{SEP}{list_key}"
        number = _position_written(key, named, list_type, name)
        prefix = ".".join(stored[:index])
        held = elements(model, list_type)
        guards += [
            _placed_guard(key, padding, _whose(list_key, place), place)
            for padding in _padding_guards(list_type, held, prefix, number)
        ]
    return guards


def _position_written(key: str, named: str, list_type: FieldType, name: str) -> int:
    """The number of the position ``name`` (digits) of the list ``named``, refused
    (:class:`QueryError` naming ``key``) past the list's ``max_length`` or past the end of any
    list: MongoDB cannot write it (no list reaches it, MongoDB pads one by at most
    :data:`MAX_PADDING` nulls and reads a number past 2**63 as a field name), and Python's
    ``int()`` refuses a text of over 4,300 digits."""
    digits = position(name)
    if len(digits) > len(str(MAX_POSITION)) or int(digits) > MAX_POSITION:
        raise QueryError(
            f"update() cannot write {named!r} ({list_type.label}) at position "
            f"{_shown(digits)}: it is past the end of any list (a document of 16 MiB holds "
            f"far fewer than {MAX_POSITION + 1:,} elements), and MongoDB cannot write it",
            field=key,
        )
    number = int(digits)
    limit = max_length(list_type)
    if limit is not None and number >= limit:
        raise QueryError(
            f"update({key}=...): {named!r} ({list_type.label}) holds at most {limit} "
            f"element{'' if limit == 1 else 's'}: it has no position {number}",
            field=key,
        )
    return number


def _shown(digits: str) -> str:
    """The position ``digits`` for a message: cut when long (a request may send thousands)."""
    return digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits):,} digits)"


class _Padding(NamedTuple):
    """A guard of a write at a list position, before it is placed (:func:`_placed_guard`)."""

    #: The documents (or elements) it breaks, relative to the one holding the list.
    bad: dict[str, Any]
    #: Why, following "holds no list 'name'".
    reason: str
    #: What MongoDB would then do (:attr:`Guard.outcome`).
    outcome: str = "would no longer load"


def _padding_guards(
    list_type: FieldType, held: Elements, prefix: str, number: int
) -> list[_Padding]:
    """The guards of a write at position ``number`` of the list ``list_type`` stored at
    ``prefix``."""
    label = list_type.label
    pads_refused = not (
        number == 0
        or held.positions is not None  # a tuple is stored whole, at its length
        or held.item is None
        or held.item.nullable
        or held.item.kind is Kind.ANY
    )
    if pads_refused:  # (matches a missing list too)
        return [_Padding(
            {f"{prefix}.{number - 1}": {"$exists": False}},
            f" of {_elements(number)} or more: MongoDB would pad it with nulls up to "
            f"position {number}, which {label} cannot hold",
        )]
    # No list there at all: MongoDB would write a document {"<position>": ...} in its place.
    guards = [_Padding(
        {prefix: {"$exists": False}},
        f": MongoDB would write a document with a key {str(number)!r} there instead, which "
        f"{label} cannot hold",
    )]
    if number > MAX_PADDING:
        shortest = number - MAX_PADDING
        guards.append(_Padding(
            {f"{prefix}.{shortest - 1}": {"$exists": False}},
            f" of {_elements(shortest)} or more: MongoDB refuses to pad a list with more "
            f"than {MAX_PADDING:,} nulls (up to position {number:,})",
            "the update would stop there, keeping what it wrote before",
        ))
    return guards


def _elements(count: int) -> str:
    """``count`` elements, in words ("1 element", "1,500 elements")."""
    return f"{count:,} element{'' if count == 1 else 's'}"


def _whose(list_key: str, place: Place | None) -> str:
    """The start of a position guard's reason: the document, or the element of ``place``
    (an element update's), that holds no such list ``list_key``."""
    if place is None:
        return f"holds no list {list_key!r}"
    return f"holds an element of {place.key!r} with no list {list_key!r}"


def _placed_guard(key: str, padding: _Padding, whose: str, place: Place | None) -> Guard:
    """The :class:`Guard` of ``key`` refusing what ``padding`` breaks: in the document, in any
    element of ``place`` (a filter: ``each()`` of every element), or in the elements it
    writes (an aggregation: those an ``each(Q)`` or ``matched()`` chooses). ``whose``: the
    start of its reason (:func:`_whose`)."""
    bad, reason, outcome = padding.bad, whose + padding.reason, padding.outcome
    if place is None:
        return Guard(key, bad, reason, outcome=outcome)
    if place.where is None and not place.matched:
        return Guard(key, {place.within: {"$elemMatch": bad}}, reason, outcome=outcome)
    tail = ({"$match": prefixed(bad, place.within)},)
    return Guard(key, None, reason, tail=tail, outcome=outcome, **placed(place))


#: The ``F()`` method behind each operator changing a list's length, for messages.
_VERBS: Final = {
    "$push": "push()", "$addToSet": "add_to_set()", "$pull": "pull()", "$pullAll": "pull()"
}
#: The operators that change a list's length: each may need a :func:`length_guard`.
RESIZING: Final = frozenset(_VERBS)
#: The operators that grow a list (checked against its ``max_length``); the others of
#: :data:`RESIZING` shrink it (checked against its ``min_length``).
_GROWING: Final = frozenset({"$push", "$addToSet"})
#: The names a guard's aggregation gives to what it computes (odm's own, never a field's).
_KEPT: Final = "__odm_l"
_SIZE: Final = "__odm_n"


def length_guard(
    key: str, field_type: FieldType, path: str, op: str, operand: Any,
    place: Place | None = None,
) -> Guard | None:
    """The guard of a ``push`` / ``add_to_set`` on a list with a ``max_length``, or of a
    ``pull`` on one with a ``min_length``: MongoDB grows or shrinks the list past it, and the
    document no longer loads. ``path``: the list's stored path (inside each element of
    ``place``, when an element update writes it)."""
    growing = op in _GROWING
    limit = max_length(field_type) if growing else min_length(field_type)
    if limit is None or (not growing and limit <= 0):
        return None
    how = "grow past its max_length" if growing else "shrink below its min_length"
    reason = f"holds a list {key!r} that {_VERBS[op]} would {how} of {limit}"
    if place is not None:
        name = key[len(place.key) + len(SEP):]
        reason = (
            f"holds an element of {place.key!r} whose list {name!r} {_VERBS[op]} would {how} "
            f"of {limit}"
        )
    within = None if place is None else place.within
    if op == "$pull" and isinstance(operand, Mapping):  # by condition: counted by aggregation
        stored = _read("$" + path if within is None else f"${within}.{path}")
        return Guard(key, None, reason, tail=_kept_below(stored, operand, limit), **placed(place))
    if growing:
        values = operand["$each"] if isinstance(operand, dict) and "$each" in operand else [operand]
    else:
        values = operand if op == "$pullAll" else [operand]

    def breaks(stored: Any) -> dict[str, Any]:
        if growing:
            return _grows_past(stored, op, values, limit)
        return _shrinks_below(stored, values, limit)

    if place is None:
        return Guard(key, {"$expr": breaks(_read("$" + path))}, reason)
    if place.where is None and not place.matched:  # all elements: a filter, kept out of writes
        elements = _held("$" + place.within)
        each = {"$map": {"input": elements, "as": "e", "in": breaks(_read(f"$$e.{path}"))}}
        return Guard(key, {"$expr": {"$anyElementTrue": [each]}}, reason)
    tail = ({"$match": {"$expr": breaks(_read(f"${place.within}.{path}"))}},)
    return Guard(key, None, reason, tail=tail, **placed(place))


def _read(path: str) -> Any:
    """The aggregation expression reading the field path ``path`` (``$a.b``, ``$$e.b``), its
    list positions read as positions: in an expression ``$a.0`` is the field ``0`` of each
    element of ``a``, never its first element."""
    head, *rest = path.split(".")
    read: Any = head
    names: list[str] = []
    for part in rest:
        if part.isascii() and part.isdigit():
            read = {"$arrayElemAt": [_held(_inside(read, names)), int(part)]}
            names = []
        else:
            names.append(part)
    return _inside(read, names)


def _inside(read: Any, names: list[str]) -> Any:
    """The expression reading the fields ``names`` inside what ``read`` reads."""
    if not names:
        return read
    if isinstance(read, str):
        return ".".join([read, *names])
    return {"$let": {"vars": {"v": read}, "in": "$$v." + ".".join(names)}}


def _held(stored: Any) -> dict[str, Any]:
    """The list the expression ``stored`` reads, or ``[]`` when it reads none."""
    return {"$cond": [{"$isArray": stored}, stored, []]}


def _grows_past(stored: Any, op: str, values: list[Any], limit: int) -> dict[str, Any]:
    """Whether ``push`` / ``add_to_set`` of ``values`` takes the list past ``limit``."""
    held = _held(stored)
    added: Any = len(values)
    if op == "$addToSet":  # only the values not there yet are added
        added = {"$size": {"$setDifference": [{"$literal": values}, held]}}
    return {"$gt": [{"$add": [{"$size": held}, added]}, limit]}


def _shrinks_below(stored: Any, values: list[Any], limit: int) -> dict[str, Any]:
    """Whether pulling ``values`` removes an element and leaves fewer than ``limit`` (a list
    already that short, which the pull leaves as it is, is not the update's doing)."""
    held = _held(stored)
    kept = {"$size": {"$filter": {
        "input": held, "cond": {"$not": [{"$in": ["$$this", {"$literal": values}]}]}
    }}}
    return {"$and": [{"$lt": [kept, limit]}, {"$lt": [kept, {"$size": held}]}]}


def _kept_below(
    stored: Any, condition: Mapping[str, Any], limit: int
) -> tuple[dict[str, Any], ...]:
    """The stages keeping the lists (read by the expression ``stored``, one per document or
    per element) that ``pull(Q)`` would shrink below ``limit``: a condition in the query
    language cannot run inside an expression, so each list is unwound and its elements the
    condition leaves are counted, after a marker that keeps a list emptied by the pull."""
    held = _held(stored)
    marked = {"$concatArrays": [{"$map": {"input": held, "in": {"v": "$$this"}}}, [{"s": True}]]}
    left = {"$or": [{f"{_KEPT}.s": True}, {"$nor": [prefixed(condition, f"{_KEPT}.v")]}]}
    kept_and_marker = "$kept"
    return (
        {"$project": {ELEMENT_INDEX: 1, _SIZE: {"$size": held}, _KEPT: marked}},
        {"$unwind": "$" + _KEPT},
        {"$match": left},
        {"$group": {
            ID_KEY: {"d": "$" + ID_KEY, "i": "$" + ELEMENT_INDEX},
            "n": {"$first": "$" + _SIZE},
            "kept": {"$sum": 1},
        }},
        {"$match": {"$expr": {"$and": [
            {"$lt": [kept_and_marker, limit + 1]},
            {"$lt": [kept_and_marker, {"$add": ["$n", 1]}]},
        ]}}},
        {"$project": {ID_KEY: "$_id.d"}},
    )
