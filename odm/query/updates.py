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
from bson.codec_options import CodecOptions, TypeRegistry
from bson.errors import InvalidDocument

from ..codec import CODEC_OPTIONS
from ..exceptions import QueryError
from ..models.derived import table
from ..models.field_types import is_set_type, server_sorts_alike
from ..stored_order import bson_value, stored_set
from .expressions import (
    ArrayUpdate,
    CombinedExpression,
    ElementUpdate,
    Expression,
    Extremum,
    Now,
)
from .list_guards import RESIZING, length_guard, max_length, min_length, position_guards
from .paths import (
    ID_FIELD,
    SEP,
    FieldType,
    Kind,
    ResolvedPath,
    elements,
    is_index,
    remember,
    resolve,
)
from .q import Q
from .update_checks import (
    ARRAY,
    CONTAINER,
    DOCUMENT,
    NEEDS,
    NUMBER,
    Guard,
    Need,
    Place,
    add_needs,
    list_need,
    located,
    matched_condition,
    operator_need,
    parent_needs,
    prefixed,
)
from .where import compile_q

# The checks an update carries live in update_checks and list_guards; the names of them this
# module exported before they moved there are exported still.
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
    #: The stored paths of the sets that :attr:`update` adds to (an ``$addToSet`` with
    #: ``$each``, its values in their stored order): sent as an update pipeline that puts
    #: each value at its place (:meth:`document`).
    set_additions: list[str] = field(default_factory=list)
    #: The ``update()`` keys of :attr:`set_additions`, one each, for errors (a stored path
    #: is the field's alias, not the name the caller wrote).
    set_keys: list[str] = field(default_factory=list)

    def document(self, options: Mapping[str, Any]) -> dict[str, dict[str, Any]] | list[Any]:
        """Return what to send: :attr:`update` (with what was added to it since it was
        compiled, such as the optimistic lock's ``$inc``), or, when it adds to a set, the
        update pipeline writing the same values (``options``: the write's, whose collation
        would change how the server compares text, so it is refused)."""
        if not self.set_additions:
            return self.update
        if "collation" in options:
            paths = ", ".join(map(repr, self.set_keys))
            raise QueryError(
                f"update(): adding to the set {paths} keeps its stored order by comparing "
                "its elements on the server, which a collation would change; run this "
                "update on a queryset without collation()",
                field=self.set_keys[0],
            )
        return [{"$set": _pipeline_fields(self.update, self.set_additions)}]


def compile_update(model: type[Any], values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Compile ``update(**values)`` into an update document (``$set``, ``$inc``, ``$push``...).

    Plain values are validated as the field's type, constraints included, then ``$set`` (so
    ``None`` is ``$set: null``, allowed only on a field that accepts None); ``F("n") + 1`` is
    ``$inc``, ``F("n") * 2`` ``$mul`` (numbers may be ``Decimal`` for an ``odm.Decimal``
    field); ``Least(F("n"), v)`` / ``Greatest(F("n"), v)`` ``$min`` / ``$max``; ``Now()``
    ``$currentDate``; ``F("tags").push(v)`` / ``.add_to_set(v)`` / ``.pull(v)`` are ``$push`` /
    ``$addToSet`` / ``$pull`` (``$pullAll`` for several values or a document, so that a value
    is never read as a condition). Element updates, and additions to a set (an update
    pipeline), need :func:`compile_update_spec`.
    """
    compiled = compile_update_spec(model, values)
    if compiled.array_filters or compiled.matched_lists:
        raise QueryError("element updates need compile_update_spec() (arrayFilters, $)")
    if compiled.set_additions:
        # Sent as is, $addToSet would append to the set, out of its stored order.
        raise QueryError(
            "additions to a set need compile_update_spec() (sent as an update pipeline: "
            "CompiledUpdate.document())",
            field=compiled.set_keys[0],
        )
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
            planned = (
                target,
                tuple(position_guards(model, key, target)),
                tuple(parent_needs(model, key, target)),
            )
            remember(targets, key, planned)  # bounded: a request may name any dict key
        target, positions, parents = planned
        if written:  # the first path overlaps nothing
            _claim(written, target.db_path, key)
        written.append(target.db_path)
        if parents:
            add_needs(out.needs, parents)
        if isinstance(value, ElementUpdate):
            _element_update(model, key, value, target, out)
            continue
        if isinstance(value, ArrayUpdate):
            op, operand = _array_update(model, key, value, target)
            if op == "$addToSet" and is_set_type(target.field):
                _note_set_addition(key, target, out)
        else:
            op, operand = _operation(key, value, target.field)
        out.update.setdefault(op, {})[target.db_path] = operand
        if positions:
            out.guards += positions
        if op in RESIZING:
            guard = length_guard(key, target.field, target.db_path, op, operand)
            if guard is not None:
                out.guards.append(guard)
        need = operator_need(key, target, op)
        if need is not None:
            add_needs(out.needs, (need,))
    if out.set_additions:
        _refuse_beside_set_additions(values, targets, out)
    return out


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
#: of the list positions in it (:func:`position_guards`, which depend on the key alone). Every
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
    _refuse_lock_counter(model, key, target)
    if target.positioned:
        _refuse_set_position(model, key, target)
    return target


def _refuse_set_position(model: type[Any], key: str, target: ResolvedPath) -> None:
    """Refuse writing a position of a set (``tags__0="x"``): a set has no positions, and the
    value written there would leave its stored array out of order, or holding a value twice."""
    names = target.names
    for index in range(1, len(names)):
        if not is_index(names[index]):
            continue
        held = SEP.join(names[:index])
        if is_set_type(resolve(model, held).field):
            raise QueryError(
                f"update() cannot write {key!r}: {held!r} is a set, which has no positions; "
                f"write the whole set (update({held}={{...}})), or add and remove elements "
                f"(F({held!r}).add_to_set(...) / .pull(...))",
                field=key,
            )


def _refuse_lock_counter(model: type[Any], key: str, target: ResolvedPath) -> None:
    """Refuse writing the optimistic lock's counter: ``update()`` raises it by one itself on
    every document it changes (an ``$inc`` MongoDB refuses beside another write of the
    path), and a version set by hand would let a copy loaded at that version pass the check
    of a document it never loaded."""
    meta = getattr(model, "_meta", None)
    if meta is None or not meta.optimistic_lock:
        return
    name, stored = meta.version_field, meta.db_key(meta.version_field)
    if target.db_path != stored:
        return
    where = f"{model.__name__}.{name}" + (f" (stored as {stored!r})" if stored != name else "")
    raise QueryError(
        f"update() cannot write {where}: it is the optimistic lock's counter, which update() "
        "raises by one itself on every document it changes; to change only documents still "
        f"at a version you saw, filter on it: filter({name}=seen).update(...)",
        field=key,
    )


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


def _array_update(
    model: type[Any], key: str, value: ArrayUpdate, target: ResolvedPath, *,
    in_element: bool = False,
) -> tuple[str, Any]:
    """The operator and operand of ``push`` / ``add_to_set`` / ``pull`` on ``target``
    (``in_element``: a field of the elements an element update writes)."""
    if value.field != key:
        raise QueryError(
            f"update({key}=F({value.field!r}).{value.kind}(...)): F() must name {key!r}",
            field=key,
        )
    field_type = target.field
    if field_type.kind not in (Kind.LIST, Kind.ANY):
        raise QueryError(f"{value.kind}() needs a list field; {key!r} is {field_type.label}")
    _refuse_fixed_length(model, key, value, field_type)
    if value.kind != "pull" and is_set_type(field_type):
        return _set_addition(model, key, value, target, in_element)
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
    if is_set_type(target.field):
        raise QueryError(
            f"F({key!r}).{value.kind}(...): {key!r} is a set, whose elements are written "
            "whole: replacing them in place would leave the set out of its stored order, or "
            f"holding a value twice; pull() the old values and add_to_set() the new ones, "
            f"or write the whole set (update({key}={{...}}))",
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
    if value.kind == "each":
        held = list_need(model, key, target)  # MongoDB refuses $[] on a null or missing list
        if held is not None:
            out.needs.append(held)
    base = f"{target.db_path}.{marker}"
    if item.kind is Kind.MODEL:
        if plain or not value.values:
            raise QueryError(
                f"F({key!r}).{value.kind}(...) on a list of models takes the element's fields "
                "as keywords",
                field=key,
            )
        place = Place(key, target.db_path, where, value.kind == "matched")
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
        out.array_filters.append(prefixed(where, name))
        return f"$[{name}]", where
    if kind == "each":
        return "$[]", None
    out.matched_lists.append(target.db_path)
    return "$", None


def _element_field_update(
    model: type[Any], key: str, item: FieldType, name: str, sub: Any, place: Place,
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
    # A position in the element (each(tags__3=...)) pads its list as one in the document does.
    out.guards += position_guards(owner, label, element, root=item, place=place)
    try:
        if isinstance(sub, ArrayUpdate):
            op, operand = _array_update(model, name, sub, element, in_element=True)
        else:
            op, operand = _operation(name, sub, element.field)
    except QueryError as exc:
        raise QueryError(f"{label}: {exc}", field=label) from None
    out.update.setdefault(op, {})[f"{base}.{element.db_path}"] = operand
    add_needs(out.needs, parent_needs(owner, label, element, root=item, place=place))
    need = operator_need(label, element, op, place)
    if need is not None:
        add_needs(out.needs, (need,))
    if op in RESIZING:
        guard = length_guard(label, element.field, element.db_path, op, operand, place)
        if guard is not None:
            out.guards.append(guard)


# -- adding to a set -------------------------------------------------------------------------


def _set_addition(
    model: type[Any], key: str, value: ArrayUpdate, target: ResolvedPath, in_element: bool
) -> tuple[str, Any]:
    """``push`` / ``add_to_set`` on a set: the values, validated and in their stored order,
    as an ``$addToSet`` with ``$each`` (noted for :meth:`CompiledUpdate.document`, which
    sends it as a pipeline inserting each value at its place). A ``push`` adds to a set as
    ``add_to_set`` does: a set holds each value once."""
    label = f"F({key!r}).{value.kind}(...)"
    if in_element or "." in target.db_path:
        raise QueryError(
            f"{label}: {key!r} is a set inside "
            f"{'the elements of a list' if in_element else 'an embedded document'}, which "
            "update() adds to only at the top of the document (in order); write the whole "
            "set instead",
            field=key,
        )
    item = _item(model, key, target, value.kind)
    if not server_sorts_alike(item):
        raise QueryError(
            f"{label}: {key!r} is a set of {item.label}, whose stored order MongoDB does not "
            "sort by (it takes text, numbers, bools, dates, ObjectIds, UUIDs, and enums or "
            "Literals of text or of integers); write the whole set instead",
            field=key,
        )
    if any(isinstance(v, Q) for v in value.values):
        raise QueryError(f"{label}: a Q is a condition, given alone to pull()", field=key)
    converted = [item.convert(v, key, store=True) for v in value.values]
    _refuse_unstorable(label, key, converted)
    # Of values equal in Python (0.0 and -0.0), the first given is the one added, as a
    # Python set keeps it: the server keeps the first of its $each it meets.
    return "$addToSet", {"$each": list(stored_set(dict.fromkeys(converted)))}


#: How the values added to a set are encoded to be checked: as the collections store them
#: (:data:`odm.codec.CODEC_OPTIONS`: UUIDs in the standard representation), without the
#: fallback encoder, so that a value BSON has no type for is refused here.
_STORED_FORM: Final[CodecOptions[dict[str, Any]]] = CODEC_OPTIONS.with_options(
    type_registry=TypeRegistry()
)


def _refuse_unstorable(label: str, key: str, values: list[Any]) -> None:
    """Refuse, naming the field, a value BSON cannot store (an aware datetime whose UTC
    instant is past year 9999): the encoder's refusal of the pipeline could not say which
    field it was for."""
    for value in values:
        try:
            bson.encode({"": bson_value(value)}, codec_options=_STORED_FORM)
        except (InvalidDocument, OverflowError, UnicodeEncodeError) as error:
            raise QueryError(
                f"{label}: {value!r} cannot be stored in BSON ({error})", field=key
            ) from None


def _note_set_addition(key: str, target: ResolvedPath, out: CompiledUpdate) -> None:
    """Note in ``out`` the addition to the set ``target``, and the guard refusing a document
    holding no list there (a null, or a value another program wrote), asked before any
    write and kept out of the write's filter: the server's refusal of the pipeline names
    no field, and an ``update_many`` would stop at such a document, keeping what it wrote
    before it."""
    path = target.db_path
    out.set_additions.append(path)
    out.set_keys.append(key)
    out.guards.append(
        Guard(
            key,
            {path: {"$exists": True, "$not": {"$type": "array"}}},
            f"holds a null (or another value than a list) at {key!r}",
            outcome="a set cannot be added to there: store a set there first",
        )
    )


def _refuse_beside_set_additions(
    values: Mapping[str, Any], targets: Mapping[str, Any], out: CompiledUpdate
) -> None:
    """Refuse, in an update adding to a set (sent as a pipeline), what a pipeline would not
    write as the update operator does: anything but the set additions and whole top-level
    values (``$set``)."""
    for key in values:
        path = targets[key][0].db_path
        op = next(op for op, fields in out.update.items() if path in fields)
        if path in out.set_additions or (op == "$set" and "." not in path):
            continue
        raise QueryError(
            f"update(): {key!r} cannot be written in the update that adds to the set "
            f"{out.set_keys[0]!r} (sent as an update pipeline, to keep the set in its "
            f"stored order); write {key!r} in an update() of its own",
            field=key,
        )


def _pipeline_fields(
    update: Mapping[str, Mapping[str, Any]], set_additions: list[str]
) -> dict[str, Any]:
    """The ``$set`` stage of the pipeline writing ``update`` (:meth:`CompiledUpdate.document`):
    each value as a literal (nothing in it read as a path or an expression), each set addition
    inserting its values in order, and ``$inc`` (the optimistic lock's) adding to the number."""
    fields: dict[str, Any] = {}
    for op, written in update.items():
        for path, operand in written.items():
            if op == "$set":
                fields[path] = {"$literal": operand}
            elif op == "$inc":
                fields[path] = {"$add": [{"$ifNull": ["$" + path, 0]}, {"$literal": operand}]}
            elif op == "$addToSet" and path in set_additions:
                fields[path] = _inserted_in_order(path, operand["$each"])
            else:  # refused when compiled (_refuse_beside_set_additions)
                raise QueryError(f"update(): {op} on {path!r} cannot be sent in a pipeline")
    return fields


def _inserted_in_order(path: str, values: list[Any]) -> dict[str, Any]:
    """The expression of the set at ``path`` (a sorted array, or missing: empty) with each of
    ``values`` it does not hold inserted between the elements below it and those above it,
    as MongoDB compares them (the stored order of the set's element types). An array out of
    that order, or holding a value twice (written by another program, or by an
    ``add_to_set`` of odm before it kept the order), has its own elements inserted so too,
    first: the result is the set's stored array whatever was there. Anything but an array or
    a missing value there makes the server refuse the update (the guard of
    :func:`_note_set_addition` leaves such documents out first)."""
    current = "$" + path
    held = {"$cond": [{"$eq": [{"$type": current}, "missing"]}, [], current]}
    added = {"$literal": values}
    return {
        "$let": {
            "vars": {"odm_held": held},
            "in": {
                "$let": {
                    "vars": {"odm_in_order": _in_strict_order("$$odm_held")},
                    "in": {
                        "$reduce": {
                            "input": {"$cond": [
                                "$$odm_in_order", added, {"$concatArrays": ["$$odm_held", added]},
                            ]},
                            "initialValue": {"$cond": ["$$odm_in_order", "$$odm_held", []]},
                            "in": _inserted_at_its_place(),
                        }
                    },
                }
            },
        }
    }


def _in_strict_order(array: str) -> dict[str, Any]:
    """Whether each element of ``array`` (a variable holding an array) is below the next, as
    MongoDB compares them: then it is a set's stored array, each value once, in order."""
    return {
        "$allElementsTrue": [{
            "$map": {
                "input": {"$range": [1, {"$size": array}]},
                "as": "odm_i",
                "in": {"$lt": [
                    {"$arrayElemAt": [array, {"$subtract": ["$$odm_i", 1]}]},
                    {"$arrayElemAt": [array, "$$odm_i"]},
                ]},
            }
        }]
    }


def _inserted_at_its_place() -> dict[str, Any]:
    """The ``in`` of the ``$reduce`` building the set: the set so far (``$$value``) with the
    next value (``$$this``) between the elements below it and those above it, unless it
    holds it."""
    return {
        "$cond": [
            {"$in": ["$$this", "$$value"]},
            "$$value",
            {"$concatArrays": [_elements_where("$lt"), ["$$this"], _elements_where("$gt")]},
        ]
    }


def _elements_where(comparison: str) -> dict[str, Any]:
    """The elements of the set built so far (``$$value``) that ``comparison`` puts before
    (``$lt``) or after (``$gt``) the value inserted (``$$this``)."""
    return {
        "$filter": {
            "input": "$$value",
            "as": "odm_e",
            "cond": {comparison: ["$$odm_e", "$$this"]},
        }
    }
