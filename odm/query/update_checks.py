"""The checks an ``update()`` carries, built with its update document (no I/O).

MongoDB refuses an update where a document holds what its operator cannot apply to (``$inc``
on a null, ``address.n`` inside a null ``address``) and stops an ``update_many`` there, keeping
what it wrote before; it applies, without complaint, one that leaves a document its model
cannot load. :class:`Need` says what a matching document must hold, :class:`Guard` what it must
not become; the queryset asks for such a document before it writes (:mod:`odm.update_prechecks`).
Here: what the checks are, the filters they match, the checks of a value's parents and of its
operator (:func:`parent_needs`, :func:`operator_need`), and the placing of the checks of
an element update on the elements it writes (:class:`Place`, :func:`located`). Which tests of
a filter may set the position ``matched()``'s ``$`` writes: :mod:`odm.query.matched_positions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import bson

from ..models.options import ID_KEY
from ..models.writes import get_path
from .paths import SEP, FieldType, Kind, ResolvedPath, is_index, model_type, resolve

__all__ = [
    "ARRAY",
    "CONTAINER",
    "DOCUMENT",
    "ELEMENT_INDEX",
    "MISSING",
    "NEEDS",
    "NUMBER",
    "Guard",
    "Need",
    "Place",
    "add_needs",
    "binds_element",
    "branches",
    "list_need",
    "located",
    "matched_condition",
    "mentions",
    "operator_need",
    "parent_needs",
    "placed",
    "prefixed",
    "value_at",
]


#: What a value must be for an update to apply there (``$type`` aliases, and ``container``:
#: a document or a list). A missing value is fine, unless :attr:`Need.required`: ``$inc`` and
#: ``$push`` create it, ``$set`` creates the documents on its way, ``$pull`` skips it.
NUMBER: Final = "number"
ARRAY: Final = "array"
DOCUMENT: Final = "object"
CONTAINER: Final = "container"


@dataclass(frozen=True, slots=True)
class Need:
    """A value a matching document must hold for MongoDB to apply the update to it: one that
    does not makes the server refuse the update there, and stop an ``update_many`` at it,
    keeping what it wrote before. The queryset asks for such a document first (and names it).
    """

    #: The ``update()`` key (``items__qty`` for ``items=F("items").each(qty=...)``).
    key: str
    #: The ``__`` name of the checked value: the key itself, or a parent the key writes
    #: inside; in an element (:attr:`of`), relative to it.
    label: str
    #: Its stored path; inside each element of :attr:`within` when that is set (``""``: the
    #: element itself).
    path: str
    #: What it must be: :data:`NUMBER`, :data:`ARRAY`, :data:`DOCUMENT` or :data:`CONTAINER`.
    alias: str
    #: A missing value is refused too (the list an element update writes into: MongoDB
    #: refuses ``$[]`` on a missing list).
    required: bool = False
    #: The stored path of the list whose elements the update writes (``each()`` / ``matched()``).
    within: str | None = None
    #: The condition on those elements (``each(Q)``), relative to the element; ``None``: all.
    where: Mapping[str, Any] | None = None
    #: ``matched()``: the element is the one the queryset's filter matched (:func:`located`).
    matched: bool = False
    #: The ``update()`` key of the list whose elements the update writes, for messages.
    of: str | None = None

    def unfit(self) -> dict[str, Any]:
        """The filter matching the documents holding what this need refuses."""
        if self.within is None:
            return _any_of([{self.path: test} for test in _unfit_tests(self.alias, self.required)])
        if not self.path:  # the element itself: only a document can have fields written
            return {self.within: {"$elemMatch": {"$not": {"$type": "object"}}}}
        tests = _any_of([{self.path: test} for test in _unfit_tests(self.alias, False)])
        element = {"$and": [dict(self.where), tests]} if self.where else tests
        return {self.within: {"$elemMatch": element}}

    def fits(self, value: Any) -> bool:
        """Tell whether a decoded value (``MISSING``: none) is what this need asks for."""
        if value is MISSING:
            return not self.required
        if self.alias == NUMBER:
            return isinstance(value, int | float | bson.Decimal128) and not isinstance(value, bool)
        if self.alias == ARRAY:
            return isinstance(value, list)
        if self.alias == DOCUMENT:
            return isinstance(value, Mapping)
        return isinstance(value, Mapping | list)


#: A value a document does not hold (:meth:`Need.fits`, :func:`value_at`).
MISSING: Final = object()


def value_at(raw: Any, path: str) -> Any:
    """The value at the stored ``path`` of a decoded document, through list positions
    (``scores.2``), or :data:`MISSING` (:func:`odm.models.writes.get_path`)."""
    return get_path(raw, path, MISSING)


def _unfit_tests(alias: str, required: bool) -> list[dict[str, Any]]:
    """The conditions on a value that match what ``alias`` refuses. ``$type`` alone is not
    enough: on a list it matches when any element is of the type, so a list of numbers passes
    ``{"$type": "number"}`` and a list of documents ``{"$type": "object"}``."""
    if alias == ARRAY:
        return [{"$not": {"$type": "array"}}] if required else [_present_but_not("array")]
    if alias == CONTAINER:
        return [_present_but_not(["object", "array"])]
    return [_present_but_not(alias), {"$type": "array"}]


def _present_but_not(types: str | list[str]) -> dict[str, Any]:
    return {"$exists": True, "$not": {"$type": types}}


def _any_of(filters: list[dict[str, Any]]) -> dict[str, Any]:
    return filters[0] if len(filters) == 1 else {"$or": filters}


@dataclass(frozen=True, slots=True)
class Guard:
    """A document the update would leave unloadable, and MongoDB would not refuse: a list
    padded with nulls its element type refuses, grown past its ``max_length`` or shrunk below
    its ``min_length``; or one MongoDB would refuse part-way through an ``update_many`` (a
    list it will not pad that far: :attr:`outcome`). The queryset asks for such a document
    first (and names it), and, when the guard is a filter (:attr:`bad`), keeps them out of
    the write's filter (so one changed in between is left as it is, not broken)."""

    #: The ``update()`` key.
    key: str
    #: A filter on the stored document matching the documents the update would break;
    #: ``None`` when only an aggregation tells them (:meth:`pipeline`).
    bad: dict[str, Any] | None
    #: What such a document holds, and what the update would do to it.
    reason: str
    #: The stored path of the list whose elements the update writes (``each(Q)`` /
    #: ``matched()``): the check runs on each of them (:meth:`pipeline`).
    within: str | None = None
    #: The condition on those elements, relative to the element; ``None``: all of them.
    where: Mapping[str, Any] | None = None
    #: ``matched()``: the element is the one the queryset's filter matched (:func:`located`).
    matched: bool = False
    #: The aggregation stages keeping, of the documents (or of the elements of
    #: :attr:`within`), those the update would break.
    tail: tuple[dict[str, Any], ...] = ()
    #: What the update would then do, after :attr:`reason`, for the error.
    outcome: str = "would no longer load"

    def pipeline(self, filter: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The aggregation finding one matching document this guard refuses (its ``_id``);
        ``None`` when :attr:`bad` is enough (a ``find_one``)."""
        if not self.tail:
            return None
        stages: list[dict[str, Any]] = [{"$match": dict(filter)}] if filter else []
        if self.within is not None:
            stages += [
                {"$project": {self.within.split(".")[0]: 1}},
                {"$unwind": {"path": "$" + self.within, "includeArrayIndex": ELEMENT_INDEX}},
            ]
            if self.where:
                stages.append({"$match": prefixed(self.where, self.within)})
        return [*stages, *self.tail, {"$limit": 1}, {"$project": {ID_KEY: 1}}]


#: The name under which a guard's aggregation keeps an element's position (odm's own).
ELEMENT_INDEX: Final = "__odm_i"


_Located = TypeVar("_Located", Need, Guard)


def located(items: Sequence[_Located], filter: Mapping[str, Any]) -> list[_Located]:
    """``items`` with the element condition of each ``matched()`` one taken from ``filter``
    (what MongoDB's ``$`` writes is an element the filter matched)."""
    return [
        replace(item, where=matched_condition(filter, item.within))
        if item.matched and item.within is not None
        else item
        for item in items
    ]


def matched_condition(filter: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The condition, relative to an element of the list at ``path``, that the element
    ``$`` writes meets: the filter's conditions on that list (any of them: each condition
    may match another element); ``None`` (every element) where they cannot be told."""
    found: list[dict[str, Any]] = []
    if not _collect_element_conditions(filter, path, found) or not found:
        return None
    return _any_of(found)


def _collect_element_conditions(
    filter: Mapping[str, Any], path: str, found: list[dict[str, Any]]
) -> bool:
    """Add to ``found`` the conditions ``filter`` puts on the elements of ``path``; return
    ``False`` when one cannot be read as a condition on an element."""
    prefix = path + "."
    for key, value in filter.items():
        if key == "$and":
            if not all(_collect_element_conditions(part, path, found) for part in value):
                return False
        elif key in ("$or", "$nor"):
            if mentions(value, path):
                return False  # the element $ writes may be one a branch matched
        elif key == path:
            inner = value.get("$elemMatch") if isinstance(value, Mapping) else None
            if not isinstance(inner, Mapping) or len(value) != 1 or not _on_fields(inner):
                return False
            found.append(dict(inner))
        elif key.startswith(prefix):
            rest = key[len(prefix):]
            first = rest.split(".")[0]
            if is_index(first):
                return False  # a position, not an element's field
            found.append({rest: value})
    return True


def mentions(mql: Any, path: str) -> bool:
    """Tell whether a filter (or a list of them) tests ``path`` or a path inside it."""
    if isinstance(mql, list):
        return any(mentions(part, path) for part in mql)
    if not isinstance(mql, Mapping):
        return False
    return any(
        key == path
        or key.startswith(path + ".")
        or (key.startswith("$") and mentions(value, path))
        for key, value in mql.items()
    )


def binds_element(filter: Mapping[str, Any], path: str) -> bool:
    """Tell whether every document ``filter`` matches has MongoDB note which element of the
    list at ``path`` it matched: the element ``$`` (``matched()``) writes.

    Only a test that an element of the list (or a field of one) meets notes it, and only
    where every matching document meets it: at the top of the filter or in an ``$and``. A
    test in an ``$or`` notes nothing (MongoDB's ``$or`` does not pass on which element its
    branch matched), one under ``$nor`` / ``$not`` / ``$ne`` / ``$nin`` is met by a
    document no element matches, a list position (``tags.0``) is read without noting it,
    and ``$size``, ``$exists``, a null or a whole list can be met by the list itself. Where
    none is noted, the server refuses the update at that document ("The positional operator
    did not find the match needed from the query"), keeping what it wrote before."""
    return any(_binds_at(key, value, path) for key, value in filter.items())


def _binds_at(key: str, value: Any, path: str) -> bool:
    """Tell whether one ``key: value`` of a filter notes an element of the list at ``path``
    (:func:`binds_element`)."""
    if key == "$and":
        return any(binds_element(part, path) for part in branches(value))
    if key == path:
        return _binds(value, whole=True)
    if key.startswith(path + "."):
        return not is_index(key[len(path) + 1:].split(".")[0]) and _binds(value, whole=False)
    # Another field, or $or / $nor / $expr...: no element of the list noted. (MongoDB's $or
    # does not pass on which element its branch matched; only its own rewrite of some, into
    # an $in or a lone branch, does, in some versions.)
    return False


def branches(parts: Any) -> list[Mapping[str, Any]]:
    """The filters of an ``$and`` or an ``$or`` (what the server would refuse is none)."""
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


#: The operators that only an element (or a field of one) can meet: whatever their operand,
#: the list as a whole is never a string, a number or a document.
_ELEMENT_ONLY: Final = frozenset(
    {"$regex", "$elemMatch", "$mod", "$bitsAllSet", "$bitsAnySet", "$bitsAllClear",
     "$bitsAnyClear"}
)
#: The comparisons that note the element they compare, given a value no list or missing
#: field meets (:func:`_binding_literal`).
_COMPARISONS: Final = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte"})


def _binds(value: Any, *, whole: bool) -> bool:
    """Tell whether a filter's condition on the list (``whole``) or on a field inside its
    elements notes the element that meets it (:func:`binds_element`)."""
    if not (isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)):
        return _binding_literal(value, whole)
    return any(_binding_operator(op, operand, whole) for op, operand in value.items())


def _binding_operator(op: str, operand: Any, whole: bool) -> bool:
    """Tell whether ``{op: operand}`` notes the element that meets it."""
    if op in _ELEMENT_ONLY:
        return True
    if op in _COMPARISONS:
        return _binding_literal(operand, whole)
    if op == "$in":  # any value may be the one met: each must note its element
        return isinstance(operand, list) and bool(operand) and all(
            _binding_literal(v, whole) for v in operand
        )
    if op == "$all":  # every value is met: one noting its element is enough
        return isinstance(operand, list) and any(
            _binds(v, whole=whole) if isinstance(v, Mapping) else _binding_literal(v, whole)
            for v in operand
        )
    if whole:  # $size, $exists, $type "array" / "null" can be met by the list (or a null)
        return op == "$type" and not _names_list_or_null(operand)
    return op in ("$size", "$type") or (op == "$exists" and bool(operand))


def _binding_literal(value: Any, whole: bool) -> bool:
    """Tell whether equality with ``value`` is met only by an element: a null is met by a
    missing list (or field), and a list by the list itself (a tuple too: a ``tuple[str,
    ...]`` field's value is one, sent as an array)."""
    return value is not None and not (whole and isinstance(value, list | tuple))


#: The ``$type`` operands a list field itself may meet (aliases and numbers).
_LIST_OR_NULL_TYPES: Final = ("array", 4, "null", 10)


def _names_list_or_null(types: Any) -> bool:
    """Tell whether a ``$type`` operand names a type the list field itself may have."""
    named = types if isinstance(types, list) else [types]
    return any(t in _LIST_OR_NULL_TYPES for t in named if not isinstance(t, bool))


def _on_fields(condition: Mapping[str, Any]) -> bool:
    """Tell whether an ``$elemMatch`` condition tests the element's fields (not the element
    itself with operators), through ``$and`` / ``$or`` / ``$nor``."""
    for key, value in condition.items():
        if key in ("$and", "$or", "$nor"):
            if not all(isinstance(p, Mapping) and _on_fields(p) for p in value):
                return False
        elif key.startswith("$"):
            return False
    return True


def prefixed(mql: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``mql`` with every field key under ``prefix`` (an ``arrayFilters`` identifier, or an
    unwound list's path)."""
    out: dict[str, Any] = {}
    for key, value in mql.items():
        if key in ("$and", "$or", "$nor"):
            out[key] = [prefixed(part, prefix) for part in value]
        else:
            out[f"{prefix}.{key}"] = value
    return out


@dataclass(frozen=True, slots=True)
class Place:
    """The elements an element update writes: those of the list ``key`` (stored at
    ``within``) that ``where`` matches (all: ``None``), or the one the filter matched."""

    key: str
    within: str
    where: dict[str, Any] | None
    matched: bool


def placed(place: Place | None) -> dict[str, Any]:
    """The keywords placing a :class:`Need` or :class:`Guard` in the elements ``place``."""
    if place is None:
        return {}
    return {"within": place.within, "where": place.where, "matched": place.matched}


# -- the needs of an update's keys -----------------------------------------------------------------


#: The update operators that apply only to a stored value of one BSON type (``$type``'s
#: alias); a missing field is fine (``$inc`` and ``$push`` create it, ``$pull`` skips it).
NEEDS: Final = {
    "$inc": NUMBER,
    "$mul": NUMBER,
    "$push": ARRAY,
    "$addToSet": ARRAY,
    "$pull": ARRAY,
    "$pullAll": ARRAY,
}


def add_needs(known: list[Need], needs: Sequence[Need]) -> None:
    """Add ``needs`` to ``known``, but those of a value already checked (two keys writing
    inside one ``address`` need it checked once)."""
    for need in needs:
        if not any(_same_value(need, held) for held in known):
            known.append(need)


def _same_value(one: Need, other: Need) -> bool:
    return (one.path, one.alias, one.required, one.within, one.where, one.matched) == (
        other.path, other.alias, other.required, other.within, other.where, other.matched
    )


def operator_need(
    key: str, target: ResolvedPath, op: str, place: Place | None = None
) -> Need | None:
    """The :class:`Need` of ``op`` on ``target`` (``$inc`` a number...), when the model lets
    the field hold another value (``int | None``, a free-form field); ``place``: the elements
    whose field ``target`` is (an element update)."""
    alias = NEEDS.get(op)
    if alias is None or not (target.field.nullable or target.field.kind is Kind.ANY):
        return None
    label = key if place is None else target.path
    return Need(key, label, target.db_path, alias, of=_of(place), **placed(place))


def _of(place: Place | None) -> str | None:
    return None if place is None else place.key


def parent_needs(
    model: type[Any], key: str, target: ResolvedPath, *, root: FieldType | None = None,
    place: Place | None = None,
) -> list[Need]:
    """The :class:`Need` of each parent of ``target`` that the model lets hold something
    other than a document (``address: Address | None``, a free-form value): MongoDB refuses
    to write ``address.n`` into a null ``address`` ("Cannot create field"), and to read a
    list position (``tags.0``) in anything but a document or a list. ``root`` and ``place``:
    the element type and the elements whose field ``target`` is (an element update), whose
    list's key starts ``key``."""
    stored = target.db_path.split(".")
    names = target.names
    if len(stored) != len(names):  # a stored key holding a dot: no part to check on its own
        return []
    needs: list[Need] = []
    for index in range(1, len(names)):
        parent = SEP.join(names[:index])
        held = resolve(model, parent, root=root).field
        if not (held.nullable or held.kind is Kind.ANY):
            continue
        following = names[index]
        alias = CONTAINER if is_index(following) else DOCUMENT
        stored_parent = ".".join(stored[:index])
        needs.append(Need(key, parent, stored_parent, alias, of=_of(place), **placed(place)))
    return needs


def list_need(model: type[Any], key: str, target: ResolvedPath) -> Need | None:
    """The :class:`Need` of the list ``each()`` writes (``$[]``, ``$[<id>]``), when a
    document the model loads may hold no list there: MongoDB refuses those operators on a
    null or missing list ("The path ... must exist"). The list may be null when its field is
    nullable, and missing when it, or a document holding it, has a default (a document stored
    before the field was declared loads without it). A list the model requires, in documents
    it requires, is in every document it loads: nothing to ask."""
    if not (target.field.nullable or _may_be_missing(model, target)):
        return None
    return Need(key, key, target.db_path, ARRAY, required=True)


def _may_be_missing(model: type[Any], target: ResolvedPath) -> bool:
    """Tell whether a stored document ``model`` loads may lack ``target``'s value: the field,
    or one holding it, has a default (a document stored before it was declared lacks it), or
    is a list position or a key of a free-form value."""
    names = target.names
    for index, name in enumerate(names):
        owner = model_type(model) if index == 0 else resolve(model, SEP.join(names[:index])).field
        if owner.kind is not Kind.MODEL:
            return True  # a position in a list, a key of a dict or of a free-form value
        declaring = next((m for m in owner.models if name in m.model_fields), None)
        if declaring is None or not declaring.model_fields[name].is_required():
            return True
    return False
