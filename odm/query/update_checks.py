"""The checks an ``update()`` carries, built with its update document (no I/O).

MongoDB refuses an update where a document holds what its operator cannot apply to (``$inc``
on a null, ``address.n`` inside a null ``address``) and stops an ``update_many`` there, keeping
what it wrote before; it applies, without complaint, one that leaves a document its model
cannot load. :class:`Need` says what a matching document must hold, :class:`Guard` what it must
not become; the queryset asks for such a document before it writes (:mod:`odm.update_prechecks`).
Here: what the checks are, the filters they match, the checks of a value's parents and of its
operator (:func:`parent_needs`, :func:`operator_need`), and the placing of the checks of an
element update on the elements it writes (:class:`Place`, :func:`located`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import bson

from ..models.options import ID_KEY
from ..models.writes import get_path
from .paths import SEP, FieldType, Kind, ResolvedPath, resolve

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
    "located",
    "matched_condition",
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
    its ``min_length``. The queryset asks for such a document first (and names it), and, when
    the guard is a filter (:attr:`bad`), keeps them out of the write's filter (so one changed
    in between is left as it is, not broken)."""

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
            if _tests(value, path):
                return False  # the element $ writes may be one a branch matched
        elif key == path:
            inner = value.get("$elemMatch") if isinstance(value, Mapping) else None
            if not isinstance(inner, Mapping) or len(value) != 1 or not _on_fields(inner):
                return False
            found.append(dict(inner))
        elif key.startswith(prefix):
            rest = key[len(prefix):]
            first = rest.split(".")[0]
            if first.isascii() and first.isdigit():
                return False  # a position, not an element's field
            found.append({rest: value})
    return True


def _tests(mql: Any, path: str) -> bool:
    """Tell whether a filter (or a list of them) tests ``path`` or a path inside it."""
    if isinstance(mql, list):
        return any(_tests(part, path) for part in mql)
    if not isinstance(mql, Mapping):
        return False
    return any(
        key == path or key.startswith(path + ".") or (key.startswith("$") and _tests(value, path))
        for key, value in mql.items()
    )


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
        alias = CONTAINER if following.isascii() and following.isdigit() else DOCUMENT
        stored_parent = ".".join(stored[:index])
        needs.append(Need(key, parent, stored_parent, alias, of=_of(place), **placed(place)))
    return needs
