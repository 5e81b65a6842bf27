"""Compile ``update(**values)`` into a MongoDB update document (and its ``arrayFilters``).

Every path comes from a keyword name, resolved against the model (or, inside a list, against
the element's type); every value is validated as the type of the field it is written to. The
only identifiers odm adds to a path are the positional operators and the ``arrayFilters``
names it makes itself (``e0``, ``e1``...): nothing in a value becomes a path or an operator.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

import bson

from ..exceptions import QueryError
from ..models.derived import table
from ..models.options import ID_KEY
from .expressions import (
    ArrayUpdate,
    CombinedExpression,
    ElementUpdate,
    Expression,
    Extremum,
    Now,
)
from .paths import ID_FIELD, SEP, FieldType, Kind, ResolvedPath, elements, peel, resolve
from .q import Q
from .where import compile_q

__all__ = [
    "ARRAY",
    "CONTAINER",
    "DOCUMENT",
    "NEEDS",
    "NUMBER",
    "CompiledUpdate",
    "Guard",
    "Need",
    "compile_update",
    "compile_update_spec",
    "located",
    "matched_condition",
    "max_length",
    "min_length",
]


#: What a value must be for an update to apply there (``$type`` aliases, and ``container``:
#: a document or a list). A missing value is fine, unless :attr:`Need.required`: ``$inc`` and
#: ``$push`` create it, ``$set`` creates the documents on its way, ``$pull`` skips it.
NUMBER: Final = "number"
ARRAY: Final = "array"
DOCUMENT: Final = "object"
CONTAINER: Final = "container"


@dataclass(slots=True)
class CompiledUpdate:
    """An update document, its ``arrayFilters``, the stored paths of the lists whose first
    matched element (``$``) it writes (the filter must match inside them), the values a
    matching document must hold for MongoDB to apply it (:class:`Need`), and the documents it
    must not reach (:class:`Guard`)."""

    update: dict[str, dict[str, Any]]
    array_filters: list[dict[str, Any]] = field(default_factory=list)
    matched_lists: list[str] = field(default_factory=list)
    #: Only where the model lets the value be another one (``int | None``, a free-form field,
    #: an ``Address | None`` the update writes inside): ``F("n") + 1`` on a document whose
    #: ``n`` is null, or ``address__n=1`` on one whose ``address`` is null, is refused by the
    #: server.
    needs: list[Need] = field(default_factory=list)
    #: Conditions no matching document may meet (:class:`Guard`).
    guards: list[Guard] = field(default_factory=list)


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
    (``scores.2``), or :data:`MISSING`."""
    value = raw
    for part in path.split("."):
        if isinstance(value, Mapping):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.isascii() and part.isdigit():
            if int(part) >= len(value):
                return MISSING
            value = value[int(part)]
        else:
            return MISSING
    return value


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
                {"$unwind": {"path": "$" + self.within, "includeArrayIndex": _INDEX}},
            ]
            if self.where:
                stages.append({"$match": _prefixed(self.where, self.within)})
        return [*stages, *self.tail, {"$limit": 1}, {"$project": {ID_KEY: 1}}]


#: The name under which a guard's aggregation keeps an element's position (odm's own).
_INDEX: Final = "__odm_i"


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


def compile_update(model: type[Any], values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Compile ``update(**values)`` into an update document (``$set``, ``$inc``, ``$push``...).

    Plain values are validated as the field's type, constraints included, then ``$set`` (so
    ``None`` is ``$set: null``, allowed only on a field that accepts None); ``F("n") + 1`` is
    ``$inc``, ``F("n") * 2`` ``$mul`` (numbers may be ``Decimal`` for an ``odm.Decimal``
    field); ``Least(F("n"), v)`` / ``Greatest(F("n"), v)`` ``$min`` / ``$max``; ``Now()``
    ``$currentDate``; ``F("tags").push(v)`` / ``.add_to_set(v)`` / ``.pull(v)`` are ``$push`` /
    ``$addToSet`` / ``$pull`` (``$pullAll`` for several values or a document, so that a value
    is never read as a condition). Element updates need :func:`compile_update_spec`.
    """
    compiled = compile_update_spec(model, values)
    if compiled.array_filters or compiled.matched_lists:
        raise QueryError("element updates need compile_update_spec() (arrayFilters, $)")
    return compiled.update


def compile_update_spec(model: type[Any], values: Mapping[str, Any]) -> CompiledUpdate:
    """Compile ``update(**values)``, element updates (``F("items").each(...)`` /
    ``.matched(...)``) and pulls by condition included."""
    if not values:
        raise QueryError("update() needs at least one field to change")
    out = CompiledUpdate({})
    written: list[str] = []
    targets = table(model, _UPDATE_TARGETS)
    for key, value in values.items():
        planned = targets.get(key)
        if planned is None:
            target = _update_target(model, key)
            planned = targets[key] = (
                target,
                tuple(_position_guards(model, key, target)),
                tuple(_parent_needs(model, key, target)),
            )
        target, positions, parents = planned
        if written:  # the first path overlaps nothing
            _claim(written, target.db_path, key)
        written.append(target.db_path)
        if parents:
            _add_needs(out, parents)
        if isinstance(value, ElementUpdate):
            _element_update(model, key, value, target, out)
            continue
        if isinstance(value, ArrayUpdate):
            op, operand = _array_update(model, key, value, target)
        else:
            op, operand = _operation(key, value, target.field)
        out.update.setdefault(op, {})[target.db_path] = operand
        if positions:
            out.guards += positions
        if op in _LENGTH_LIMITS:
            guard = _length_guard(key, target.field, target.db_path, op, operand)
            if guard is not None:
                out.guards.append(guard)
        need = _operator_need(key, target, op)
        if need is not None:
            _add_needs(out, (need,))
    return out


def _add_needs(out: CompiledUpdate, needs: Sequence[Need]) -> None:
    """Add ``needs`` to ``out``, but those of a value already checked (two keys writing
    inside one ``address`` need it checked once)."""
    for need in needs:
        if not any(_same_value(need, known) for known in out.needs):
            out.needs.append(need)


def _same_value(one: Need, other: Need) -> bool:
    return (one.path, one.alias, one.required, one.within, one.where, one.matched) == (
        other.path, other.alias, other.required, other.within, other.where, other.matched
    )


def _operator_need(
    key: str, target: ResolvedPath, op: str, place: _Place | None = None
) -> Need | None:
    """The :class:`Need` of ``op`` on ``target`` (``$inc`` a number...), when the model lets
    the field hold another value (``int | None``, a free-form field); ``place``: the elements
    whose field ``target`` is (an element update)."""
    alias = NEEDS.get(op)
    if alias is None or not (target.field.nullable or target.field.kind is Kind.ANY):
        return None
    label = key if place is None else target.path
    return Need(key, label, target.db_path, alias, of=_of(place), **_placed(place))


def _placed(place: _Place | None) -> dict[str, Any]:
    """The keywords placing a :class:`Need` or :class:`Guard` in the elements ``place``."""
    if place is None:
        return {}
    return {"within": place.within, "where": place.where, "matched": place.matched}


def _of(place: _Place | None) -> str | None:
    return None if place is None else place.key


def _parent_needs(
    model: type[Any], key: str, target: ResolvedPath, *, root: FieldType | None = None,
    place: _Place | None = None,
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
        needs.append(Need(key, parent, stored_parent, alias, of=_of(place), **_placed(place)))
    return needs


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


def _position_guards(model: type[Any], key: str, target: ResolvedPath) -> list[Guard]:
    """Check each list position in ``key`` (``scores__5``): past the list's ``max_length``
    it is refused here; past the end of a stored list MongoDB pads the list with nulls,
    which a guard keeps from a list whose elements cannot be null."""
    guards: list[Guard] = []
    stored = target.db_path.split(".")
    for index, name in enumerate(target.names):
        if not (name.isascii() and name.isdigit()) or index == 0:
            continue
        position = int(name)
        list_key = SEP.join(target.names[:index])
        list_type = resolve(model, list_key).field
        if list_type.kind is not Kind.LIST:
            continue
        limit = max_length(list_type)
        if limit is not None and position >= limit:
            raise QueryError(
                f"update({key}=...): {list_key!r} ({list_type.label}) holds at most {limit} "
                f"element{'' if limit == 1 else 's'}: it has no position {position}",
                field=key,
            )
        held = elements(model, list_type)
        if position == 0 or held.positions is not None or held.item is None:
            continue  # a tuple is stored whole, at its length
        if held.item.nullable or held.item.kind is Kind.ANY:
            continue
        prefix = ".".join(stored[:index])
        guards.append(Guard(
            key,
            {f"{prefix}.{position - 1}": {"$exists": False}},
            f"holds no list {list_key!r} of {position} elements or more: MongoDB would pad "
            f"it with nulls up to position {position}, which {list_type.label} cannot hold",
        ))
    return guards


#: The ``F()`` method behind each operator changing a list's length, for messages.
_VERBS: Final = {
    "$push": "push()", "$addToSet": "add_to_set()", "$pull": "pull()", "$pullAll": "pull()"
}
#: The operators that grow a list (checked against its ``max_length``); the others of
#: :data:`_LENGTH_LIMITS` shrink it (checked against its ``min_length``).
_GROWING: Final = frozenset({"$push", "$addToSet"})
_LENGTH_LIMITS: Final = frozenset(_VERBS)
#: The names a guard's aggregation gives to what it computes (odm's own, never a field's).
_KEPT: Final = "__odm_l"
_SIZE: Final = "__odm_n"


def _length_guard(
    key: str, field_type: FieldType, path: str, op: str, operand: Any,
    place: _Place | None = None,
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
        return Guard(key, None, reason, tail=_kept_below(stored, operand, limit), **_placed(place))
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
    return Guard(key, None, reason, tail=tail, **_placed(place))


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
    left = {"$or": [{f"{_KEPT}.s": True}, {"$nor": [_prefixed(condition, f"{_KEPT}.v")]}]}
    kept_and_marker = "$kept"
    return (
        {"$project": {_INDEX: 1, _SIZE: {"$size": held}, _KEPT: marked}},
        {"$unwind": "$" + _KEPT},
        {"$match": left},
        {"$group": {
            ID_KEY: {"d": "$" + ID_KEY, "i": "$" + _INDEX},
            "n": {"$first": "$" + _SIZE},
            "kept": {"$sum": 1},
        }},
        {"$match": {"$expr": {"$and": [
            {"$lt": [kept_and_marker, limit + 1]},
            {"$lt": [kept_and_marker, {"$add": ["$n", 1]}]},
        ]}}},
        {"$project": {ID_KEY: "$_id.d"}},
    )


def _claim(written: list[str], db_path: str, key: str) -> None:
    """Refuse a path that overlaps one already written (MongoDB refuses the conflict)."""
    for other in written:
        if db_path == other or db_path.startswith(other + ".") or other.startswith(db_path + "."):
            raise QueryError(f"update() writes {key!r} twice (overlapping paths)", field=key)


def _operation(key: str, value: Any, field_type: FieldType) -> tuple[str, Any]:
    """The operator and operand writing ``value`` to a single field (not a list operator)."""
    if isinstance(value, CombinedExpression):
        return _arithmetic_update(key, value, field_type)
    if isinstance(value, Extremum):
        return _extremum_update(key, value, field_type)
    if isinstance(value, Now):
        return "$currentDate", _current_date(key, field_type)
    if isinstance(value, Expression):
        raise QueryError(
            f"update({key}={value!r}): copying another field needs an update pipeline, "
            "which update() does not build; use F(field) + number or a plain value",
            field=key,
        )
    if isinstance(value, ElementUpdate | ArrayUpdate):
        raise QueryError(f"update(): {value!r} is not allowed here", field=key)
    return "$set", field_type.convert(value, key, store=True)


#: The operands $inc / $mul take once converted (a tuple, built once).
_NUMERIC_OPERANDS = (int, float, bson.Decimal128)


def _arithmetic_update(
    key: str, value: CombinedExpression, field_type: FieldType
) -> tuple[str, Any]:
    """``$inc`` / ``$mul`` with its operand validated as the field's type."""
    op, number = value.as_update(key)
    if field_type.kind not in (Kind.NUMBER, Kind.ANY):
        raise QueryError(f"{key!r} is {field_type.label}: {op} needs a number field", field=key)
    operand = field_type.convert(number, key)
    if isinstance(operand, bool) or not isinstance(operand, _NUMERIC_OPERANDS):
        raise QueryError(f"{op} on {key!r} needs a number", field=key)
    return op, operand


#: Kinds of field whose values ``$min`` / ``$max`` compare the way a reader expects.
_ORDERED = (Kind.NUMBER, Kind.STRING, Kind.DATE, Kind.ANY)


def _extremum_update(key: str, value: Extremum, field_type: FieldType) -> tuple[str, Any]:
    """``$min`` / ``$max`` with the value validated (and stored) as the field's type."""
    op, operand = value.as_update(key)
    if field_type.kind not in _ORDERED:
        raise QueryError(
            f"{key!r} is {field_type.label}: {type(value).__name__}() needs a number, string "
            "or date field",
            field=key,
        )
    return op, field_type.convert(operand, key, store=True)


#: A datetime with a time of day: a ``date`` field refuses it, a ``datetime`` field takes it.
_SOME_TIME = datetime.datetime(2000, 1, 1, 12, 30, tzinfo=datetime.UTC)


def _current_date(key: str, field_type: FieldType) -> bool:
    """``$currentDate: true`` (a BSON date), only on a field that holds a datetime."""
    if field_type.kind is not Kind.ANY:
        try:
            stored = field_type.convert(_SOME_TIME, key, store=True)
        except QueryError:
            stored = None
        if field_type.kind is not Kind.DATE or not isinstance(stored, datetime.datetime):
            raise QueryError(
                f"{key!r} is {field_type.label}: Now() needs a datetime field", field=key
            )
    return True


#: Per model: ``update()`` key -> its checked target (:func:`_update_target`) and the guards
#: of the list positions in it (:func:`_position_guards`, which depend on the key alone). Every
#: answer can be kept: a subclass's field, whose meaning may change as the family grows, is
#: refused.
_UPDATE_TARGETS: Final = "updates.targets"


def _update_target(model: type[Any], key: str) -> ResolvedPath:
    if not isinstance(key, str):
        raise QueryError(f"update() takes field names, not {type(key).__name__}")
    target = resolve(model, key)
    if target.names and target.names[0] == ID_FIELD:
        raise QueryError("the id of a document cannot be updated", field=key)
    if target.joins:
        raise QueryError(f"update() cannot write through a reference: {key!r}", field=key)
    if target.via_subclass:
        raise QueryError(
            f"update() on {model.__name__} cannot write {key!r}: {model.__name__} does not "
            "declare it (a subclass does); update that subclass's queryset instead",
            field=key,
        )
    if target.through_list:
        raise QueryError(
            f"update() cannot write {key!r}: it is inside a list (write the whole list, or "
            "its elements with F(list).each(...) / .matched(...))",
            field=key,
        )
    return target


def _item(model: type[Any], key: str, target: ResolvedPath, what: str) -> FieldType:
    """The element type of the list field ``target`` (a declared list only), in its stored
    form; on a fixed-length tuple, the type of all its positions (refused when they differ:
    one value written to any of them must fit each)."""
    field_type = target.field
    if field_type.kind is not Kind.LIST or field_type.item is None:
        raise QueryError(f"{what} needs a list field; {key!r} is {field_type.label}", field=key)
    held = elements(model, field_type)
    if held.positions is None:
        assert held.item is not None
        return held.item
    first = held.positions[0] if held.positions else None
    if first is None or any(
        p.annotation != first.annotation or p.store_annotation != first.store_annotation
        for p in held.positions[1:]
    ):
        raise QueryError(
            f"{what} on {key!r} ({field_type.label}): the positions of this tuple differ in "
            f"type, so one value cannot be written to any of them; write a position "
            f"(update({key}__0=...)) or the whole tuple",
            field=key,
        )
    return first


def _refuse_fixed_length(model: type[Any], key: str, value: ArrayUpdate, field: FieldType) -> None:
    """Refuse ``push`` / ``add_to_set`` / ``pull`` on a fixed-length tuple: a document whose
    tuple gained or lost an element no longer loads."""
    positions = elements(model, field).positions if field.kind is Kind.LIST else None
    if positions is not None:
        raise QueryError(
            f"F({key!r}).{value.kind}(...): {key!r} ({field.label}) is a tuple of exactly "
            f"{len(positions)} element{'' if len(positions) == 1 else 's'}; {value.kind} would "
            "change its length, and the document would no longer load; write the whole tuple "
            f"(update({key}=(...))) or a position (update({key}__0=...))",
            field=key,
        )


def _condition(model: type[Any], key: str, q: Q, item: FieldType) -> dict[str, Any]:
    """Compile ``q`` on the fields of ``item`` (a list's element model) to a filter whose
    keys are relative to the element."""
    if item.kind is not Kind.MODEL:
        raise QueryError(
            f"a Q on the elements of {key!r} needs a list of models; its elements are "
            f"{item.label}",
            field=key,
        )
    # The element's model names the culprit in errors ("QsItem has no field 'x'").
    parts = compile_q(item.models[0] if item.models else model, q, root=item, split=False)
    if any(part.joins for part in parts):
        raise QueryError(f"a condition on the elements of {key!r} cannot cross references")
    mql = parts[0].mql if parts else {}
    if not mql:
        raise QueryError(f"the condition on the elements of {key!r} is empty", field=key)
    if _has_expr(mql):
        raise QueryError(f"a condition on the elements of {key!r} cannot use F()", field=key)
    return mql


def _has_expr(mql: Any) -> bool:
    if isinstance(mql, Mapping):
        return "$expr" in mql or any(_has_expr(v) for v in mql.values())
    if isinstance(mql, list):
        return any(_has_expr(v) for v in mql)
    return False


def _prefixed(mql: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``mql`` with every field key under ``prefix`` (an ``arrayFilters`` identifier)."""
    out: dict[str, Any] = {}
    for key, value in mql.items():
        if key in ("$and", "$or", "$nor"):
            out[key] = [_prefixed(part, prefix) for part in value]
        else:
            out[f"{prefix}.{key}"] = value
    return out


def _array_update(
    model: type[Any], key: str, value: ArrayUpdate, target: ResolvedPath
) -> tuple[str, Any]:
    if value.field != key:
        raise QueryError(
            f"update({key}=F({value.field!r}).{value.kind}(...)): F() must name {key!r}",
            field=key,
        )
    field_type = target.field
    if field_type.kind not in (Kind.LIST, Kind.ANY):
        raise QueryError(f"{value.kind}() needs a list field; {key!r} is {field_type.label}")
    _refuse_fixed_length(model, key, value, field_type)
    conditions = [v for v in value.values if isinstance(v, Q)]
    if conditions:
        if value.kind != "pull" or len(value.values) != 1:
            raise QueryError(
                f"F({key!r}).{value.kind}(...): a Q is a condition, given alone to pull()",
                field=key,
            )
        item = _item(model, key, target, "pull(Q)")
        return "$pull", _condition(model, key, conditions[0], item)
    if field_type.item is None:  # free-form: anything BSON holds
        item = field_type
    elif value.kind == "pull":
        # A value to remove, not to store: the element's constraints do not apply (pulling
        # what a tightened constraint now refuses is how such a list is cleaned).
        item = field_type.item
    else:
        item = _item(model, key, target, value.kind)  # stored: with the element's constraints
    items = [item.convert(v, key, store=True) for v in value.values]
    if value.kind == "pull":
        if len(items) == 1 and not isinstance(items[0], dict | list):
            return "$pull", items[0]
        return "$pullAll", items
    op = "$push" if value.kind == "push" else "$addToSet"
    return op, items[0] if len(items) == 1 else {"$each": items}


def _element_update(
    model: type[Any], key: str, value: ElementUpdate, target: ResolvedPath, out: CompiledUpdate
) -> None:
    """Add ``F(key).each(...)`` / ``.matched(...)`` to ``out``."""
    if value.field != key:
        raise QueryError(
            f"update({key}=F({value.field!r}).{value.kind}(...)): F() must name {key!r}",
            field=key,
        )
    item = _item(model, key, target, f"{value.kind}()")
    conditions = [a for a in value.args if isinstance(a, Q)]
    plain = [a for a in value.args if not isinstance(a, Q)]
    if len(conditions) > 1 or (conditions and value.kind != "each"):
        raise QueryError(
            f"F({key!r}).{value.kind}(...) takes {'one Q' if value.kind == 'each' else 'no Q'}"
            " (the elements to write)",
            field=key,
        )
    marker, where = _elements_written(model, key, value.kind, conditions, item, target, out)
    if value.kind == "each" and target.field.nullable:
        # MongoDB refuses $[] on a list that is null (or missing).
        out.needs.append(Need(key, key, target.db_path, ARRAY, required=True))
    base = f"{target.db_path}.{marker}"
    if item.kind is Kind.MODEL:
        if plain or not value.values:
            raise QueryError(
                f"F({key!r}).{value.kind}(...) on a list of models takes the element's fields "
                "as keywords",
                field=key,
            )
        place = _Place(key, target.db_path, where, value.kind == "matched")
        if item.nullable and value.kind == "each" and where is None:
            out.needs.append(Need(key, key, "", DOCUMENT, within=place.within, of=key))
        written: list[str] = []
        for name_, sub in value.values.items():
            _element_field_update(model, key, item, name_, sub, place, base, written, out)
        return
    if value.values or len(plain) != 1:
        raise QueryError(
            f"F({key!r}).{value.kind}(...) on a list of {item.label} takes one value "
            "(the new element)",
            field=key,
        )
    out.update.setdefault("$set", {})[base] = item.convert(plain[0], key, store=True)


def _elements_written(
    model: type[Any], key: str, kind: str, conditions: list[Q], item: FieldType,
    target: ResolvedPath, out: CompiledUpdate,
) -> tuple[str, dict[str, Any] | None]:
    """The positional operator writing the elements of ``target`` that an element update
    (``kind``: ``each`` / ``matched``) names: those the one ``Q`` of ``each()`` matches (added
    to ``out``'s ``arrayFilters``), all of them, or the one the filter matched (noted in
    ``out``); and that ``Q``'s condition, relative to the element (``None``: none)."""
    if conditions:
        name = f"e{len(out.array_filters)}"  # odm's own identifier, never the caller's
        where = _condition(model, key, conditions[0], item)
        out.array_filters.append(_prefixed(where, name))
        return f"$[{name}]", where
    if kind == "each":
        return "$[]", None
    out.matched_lists.append(target.db_path)
    return "$", None


@dataclass(frozen=True, slots=True)
class _Place:
    """The elements an element update writes: those of the list ``key`` (stored at
    ``within``) that ``where`` matches (all: ``None``), or the one the filter matched."""

    key: str
    within: str
    where: dict[str, Any] | None
    matched: bool


def _element_field_update(
    model: type[Any], key: str, item: FieldType, name: str, sub: Any, place: _Place,
    base: str, written: list[str], out: CompiledUpdate,
) -> None:
    """Add the write of the element field ``name`` (``each(qty=...)``) to ``out``, with what
    the elements it writes must hold (:class:`Need`) and must not become (:class:`Guard`)."""
    owner = item.models[0] if item.models else model
    element = resolve(owner, name, root=item)
    label = f"{key}{SEP}{name}"
    if element.joins or element.through_list:
        raise QueryError(
            f"update() cannot write {label!r} (through a list or a reference)", field=label
        )
    _claim(written, element.db_path, label)
    written.append(element.db_path)
    try:
        if isinstance(sub, ArrayUpdate):
            op, operand = _array_update(model, name, sub, element)
        else:
            op, operand = _operation(name, sub, element.field)
    except QueryError as exc:
        raise QueryError(f"{label}: {exc}", field=label) from None
    out.update.setdefault(op, {})[f"{base}.{element.db_path}"] = operand
    _add_needs(out, _parent_needs(owner, label, element, root=item, place=place))
    need = _operator_need(label, element, op, place)
    if need is not None:
        _add_needs(out, (need,))
    if op in _LENGTH_LIMITS:
        guard = _length_guard(label, element.field, element.db_path, op, operand, place)
        if guard is not None:
            out.guards.append(guard)
