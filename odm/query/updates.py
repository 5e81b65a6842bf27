"""Compile ``update(**values)`` into a MongoDB update document (and its ``arrayFilters``).

Every path comes from a keyword name, resolved against the model (or, inside a list, against
the element's type); every value is validated as the type of the field it is written to. The
only identifiers odm adds to a path are the positional operators and the ``arrayFilters``
names it makes itself (``e0``, ``e1``...): nothing in a value becomes a path or an operator.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import bson

from ..exceptions import QueryError
from ..models.derived import table
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
    "NEEDS",
    "CompiledUpdate",
    "Guard",
    "compile_update",
    "compile_update_spec",
    "max_length",
]


@dataclass(slots=True)
class CompiledUpdate:
    """An update document, its ``arrayFilters``, the stored paths of the lists whose first
    matched element (``$``) it writes (the filter must match inside them), and the stored
    paths whose value may refuse the update's operator (:data:`NEEDS`)."""

    update: dict[str, dict[str, Any]]
    array_filters: list[dict[str, Any]] = field(default_factory=list)
    matched_lists: list[str] = field(default_factory=list)
    #: Stored path -> (the ``update()`` key, the BSON type alias the operator needs there),
    #: for a field the model lets hold another value (``int | None``, a free-form field):
    #: ``F("n") + 1`` on a document whose ``n`` is null is refused by the server.
    needs: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Conditions no matching document may meet (:class:`Guard`).
    guards: list[Guard] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Guard:
    """A document the update would leave unloadable, and MongoDB would not refuse: a list
    padded with nulls its element type refuses, or grown past its ``max_length``. The
    queryset asks for such a document first (and names it), and keeps them out of the
    write's filter (so one changed in between is left as it is, not broken)."""

    #: The ``update()`` key.
    key: str
    #: A filter on the stored document matching the documents the update would break.
    bad: dict[str, Any]
    #: What such a document holds, and what the update would do to it.
    reason: str


#: The update operators that apply only to a stored value of one BSON type (``$type``'s
#: alias); a missing field is fine (``$inc`` and ``$push`` create it, ``$pull`` skips it).
NEEDS: Final = {
    "$inc": "number",
    "$mul": "number",
    "$push": "array",
    "$addToSet": "array",
    "$pull": "array",
    "$pullAll": "array",
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
            planned = targets[key] = (target, tuple(_position_guards(model, key, target)))
        target, positions = planned
        if written:  # the first path overlaps nothing
            _claim(written, target.db_path, key)
        written.append(target.db_path)
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
        if op in _GROWING:
            grown = _length_guard(key, target, op, operand)
            if grown is not None:
                out.guards.append(grown)
        need = NEEDS.get(op)
        if need is not None and (target.field.nullable or target.field.kind is Kind.ANY):
            out.needs[target.db_path] = (key, need)
    return out


def max_length(field_type: FieldType) -> int | None:
    """The ``max_length`` of a list field (``Field(max_length=3)``), or ``None``."""
    peeled = peel(field_type.store_annotation)
    if peeled is None:
        return None
    for item in peeled[1]:
        limit = getattr(item, "max_length", None)
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


#: The ``F()`` method behind each growing operator, for messages.
_VERBS: Final = {"$push": "push()", "$addToSet": "add_to_set()"}
#: The operators that grow a list (see :func:`_length_guard`).
_GROWING: Final = frozenset(_VERBS)


def _length_guard(key: str, target: ResolvedPath, op: str, operand: Any) -> Guard | None:
    """The guard of a ``push`` / ``add_to_set`` on a list with a ``max_length``: MongoDB
    grows the list past it, and the document no longer loads."""
    if op not in _GROWING:
        return None
    limit = max_length(target.field)
    if limit is None:
        return None
    values = operand["$each"] if isinstance(operand, dict) and "$each" in operand else [operand]
    stored = "$" + target.db_path
    held = {"$cond": [{"$isArray": stored}, stored, []]}
    added: Any = len(values)
    if op == "$addToSet":  # only the values not there yet are added
        added = {"$size": {"$setDifference": [{"$literal": values}, held]}}
    grown = {"$add": [{"$size": held}, added]}
    return Guard(
        key,
        {"$expr": {"$gt": [grown, limit]}},
        f"holds a list {key!r} that {_VERBS[op]} would grow past its max_length of {limit}",
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
    if conditions:
        name = f"e{len(out.array_filters)}"  # odm's own identifier, never the caller's
        marker = f"$[{name}]"
        out.array_filters.append(_prefixed(_condition(model, key, conditions[0], item), name))
    elif value.kind == "each":
        marker = "$[]"
    else:
        marker = "$"
        out.matched_lists.append(target.db_path)
    base = f"{target.db_path}.{marker}"
    if item.kind is Kind.MODEL:
        if plain or not value.values:
            raise QueryError(
                f"F({key!r}).{value.kind}(...) on a list of models takes the element's fields "
                "as keywords",
                field=key,
            )
        written: list[str] = []
        for name_, sub in value.values.items():
            element = resolve(item.models[0] if item.models else model, name_, root=item)
            label = f"{key}__{name_}"
            if element.joins or element.through_list:
                raise QueryError(
                    f"update() cannot write {label!r} (through a list or a reference)",
                    field=label,
                )
            _claim(written, element.db_path, label)
            written.append(element.db_path)
            try:
                if isinstance(sub, ArrayUpdate):
                    op, operand = _array_update(model, name_, sub, element)
                else:
                    op, operand = _operation(name_, sub, element.field)
            except QueryError as exc:
                raise QueryError(f"{label}: {exc}", field=label) from None
            out.update.setdefault(op, {})[f"{base}.{element.db_path}"] = operand
        return
    if value.values or len(plain) != 1:
        raise QueryError(
            f"F({key!r}).{value.kind}(...) on a list of {item.label} takes one value "
            "(the new element)",
            field=key,
        )
    out.update.setdefault("$set", {})[base] = item.convert(plain[0], key, store=True)
