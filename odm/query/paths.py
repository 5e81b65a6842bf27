"""Resolve Django-style paths (``address__city``, ``customer__age``) against a model's types.

A path walks pydantic ``model_fields`` through ``Optional``/``Union``, ``list[X]``, embedded
models, free-form ``dict`` fields and ``Reference[Target]`` (crossing one needs a ``$lookup``,
reported as a :class:`Join`). Every resolution, with the ``TypeAdapter`` that validates values
for it, is cached per (model, path): compiling a query does no type analysis twice.
"""

from __future__ import annotations

import reprlib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Union, get_args, get_origin

from ..exceptions import QueryError
from ..models.derived import table
from ..models.field_types import (
    ID_FIELD,
    SEP,
    FieldType,
    Kind,
    analyze,
    check_literal,
    field_type_of,
    model_type,
    stored_key,
    target_id_type,
)
from ..models.options import CLASS_KEY
from ..nesting import MAX_DEPTH, path_too_deep
from ..utf8 import encodable
from .polymorphic import subclass_field

__all__ = [
    "ID_FIELD",
    "RELATED_PREFIX",
    "SEP",
    "Elements",
    "FieldType",
    "Join",
    "Kind",
    "ResolvedPath",
    "analyze",
    "check_literal",
    "check_name",
    "elements",
    "field_type_of",
    "is_index",
    "model_type",
    "names_a_field",
    "not_a_field_name",
    "peel",
    "position",
    "position_number",
    "remember",
    "resolve",
    "target_id_type",
]

#: Prefix of the keys under which ``$lookup`` places joined documents (``__odm_rel_customer``).
RELATED_PREFIX: Final = "__odm_rel_"


def check_name(name: str, *, where: str = "field", path: str | None = None) -> None:
    """Refuse a name that MongoDB would read as an operator or a path: ``$``, ``.``, NUL.

    ``path``: the whole key the name is a part of, named by the error of an empty part (an
    empty name alone says nothing of which key was sent)."""
    if not isinstance(name, str) or not name:
        if path:
            raise QueryError(
                f"{reprlib.repr(path)} has an empty {where} name: its parts are separated by "
                "a single '__' and neither starts nor ends it",
                field=path,
            )
        raise QueryError(f"empty {where} name in a query path", field=str(name))
    if name.startswith("$") or "." in name or "\x00" in name:
        raise QueryError(
            f"{where} name {name!r} is not allowed: names may not start with '$' or contain "
            "'.' or NUL",
            field=name,
        )
    if not encodable(name):
        raise QueryError(
            f"{where} name {name!r} is not valid text: it holds a lone surrogate, which "
            "cannot be encoded as UTF-8",
            field=name,
        )


@dataclass(frozen=True, slots=True)
class Join:
    """A ``$lookup`` a path needs: the reference at ``path`` joined from ``target``."""

    path: str
    local: str
    key: str
    target: type[Any]
    many: bool

    def stages(self, *, unwind: bool = True) -> list[dict[str, Any]]:
        """Return the ``$lookup`` (+ ``$unwind`` for a single reference) stages."""
        meta = getattr(self.target, "_meta", None)
        collection = getattr(meta, "collection", None)
        if not collection:
            raise QueryError(
                f"{self.target.__name__} has no collection to join for {self.path!r}",
                field=self.path,
            )
        stages: list[dict[str, Any]] = [
            {
                "$lookup": {
                    "from": collection,
                    "localField": self.local,
                    "foreignField": "_id",
                    "as": self.key,
                }
            }
        ]
        kept = self._class_condition()
        if kept is not None:
            # A Reference[Cat] may hold a Dog's id (the family shares one collection): what
            # is not a Cat is not joined, as prefetch_related() and fetch() do not load it.
            stages.append({"$addFields": {self.key: kept}})
        if unwind and not self.many:
            stages.append(
                {"$unwind": {"path": "$" + self.key, "preserveNullAndEmptyArrays": True}}
            )
        return stages


    def _class_condition(self) -> dict[str, Any] | None:
        """The expression keeping, of the joined documents, those of the target's class and
        its subclasses (``None``: the target needs no class condition). An ``$addFields``
        ``$filter`` rather than a ``$lookup`` sub-pipeline, which MongoDB 4.4 refuses beside
        ``localField``."""
        values = getattr(getattr(self.target, "_meta", None), "class_values", None)
        if not values:
            return None
        return {
            "$filter": {
                "input": "$" + self.key,
                "as": "joined",
                "cond": {"$in": ["$$joined." + CLASS_KEY, list(values)]},
            }
        }


@dataclass(frozen=True, slots=True)
class ResolvedPath:
    """Where a path leads: its stored dotted key, its type and the joins it needs."""

    path: str
    names: tuple[str, ...]
    db_path: str
    field: FieldType
    joins: tuple[Join, ...]
    #: The path passed through a list: MongoDB matches it against every element.
    through_list: bool
    #: The path went into a free-form dict: no declared type below this point.
    free: bool
    #: The first field is not the model's own but a polymorphic subclass's
    #: (:mod:`odm.query.polymorphic`): readable, not writable through the base class.
    via_subclass: bool = False
    #: The path names a list position (``tags__0``).
    positioned: bool = False
    #: The indexes, among the dotted parts of :attr:`db_path`, of the parts that pick a list
    #: element, which an aggregation expression reads with ``$arrayElemAt`` (a field path
    #: ``$tags.0`` reads a field ``0`` of each element): the list positions, and the
    #: ASCII-digit keys of free-form values (``meta__l__0``, a position or a key), none
    #: after a list the path goes through (see :func:`read_expression`).
    element_parts: tuple[int, ...] = ()
    #: The path takes a position in each element of a list it goes through
    #: (``items__tags__0``): a filter tests it, no aggregation expression reads it.
    position_in_list: bool = False
    #: The indexes, among the dotted parts of :attr:`db_path`, of the keys read in a
    #: free-form value, which may be a list: MongoDB's filters then read the key in each of
    #: its elements, and a list position after it in each of those (``meta__l__k__0``: the
    #: first of each element's ``k``), as :func:`field_reference` does.
    spread_parts: tuple[int, ...] = ()
    #: For each declared list the path goes through by a field's name (``lines`` in
    #: ``lines__qty``), after its last join: how many dotted parts of :attr:`db_path` name
    #: that list. A lookup met by one element (``range``) puts its conditions on it.
    list_parts: tuple[int, ...] = ()


#: The entry of each model's derived state (odm.models.derived) caching its resolved paths.
_RESOLVED: Final = "paths.resolved"

#: The most entries a per-model cache keyed by names keeps (see :func:`remember`).
CACHE_ENTRIES: Final = 2048
#: The longest key, in characters of its names, such a cache keeps.
CACHE_KEY_CHARS: Final = 256


def remember(cache: dict[Any, Any], key: str | tuple[str, ...], value: Any) -> None:
    """Keep ``value`` under ``key`` (a name, or a tuple of names) in a per-model cache.

    The names come from the caller, who may take them from a request: a key of a free-form
    dict field (``meta__<anything>``) or a list position (``tags__12345``) is a path of
    the model whatever it is. So the cache is bounded, as a server's memory must be against
    a stream of requests each naming a new key: a key over :data:`CACHE_KEY_CHARS`
    characters is worked out anew each time, and a cache holding :data:`CACHE_ENTRIES`
    entries starts over (the model's usual paths come back on their next use)."""
    chars = len(key) if isinstance(key, str) else sum(len(name) for name in key)
    if chars > CACHE_KEY_CHARS:
        return
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[key] = value


def is_index(part: str) -> bool:
    """Tell whether a path part is a list position: ASCII digits only (an Arabic-Indic digit
    is a name, as any other non-ASCII text)."""
    return part.isascii() and part.isdigit()


def position(part: str) -> str:
    """Return the stored form of the list position ``part`` (ASCII digits): its digits without
    leading zeros.

    MongoDB's filters, projections and sorts read ``tags.01`` as a field ``01`` of each
    element, its updates as position 1: written ``tags.1``, ``tags__01`` is the second element
    everywhere, as ``int("01")`` is 1 (and as a Django JSON path reads it)."""
    return part.lstrip("0") or "0"


#: The largest list position worth telling apart: no list holds more elements (a document
#: is at most 16 MiB, an element at least 3 bytes), and ``$arrayElemAt`` takes a 32-bit int.
MAX_POSITION: Final = 2**31 - 1


def position_number(part: str) -> int:
    """The number of the list position ``part`` (see :func:`position`), at most
    :data:`MAX_POSITION`: a position of thousands of digits from a request is past any
    list's end, and ``int()`` refuses a text of over 4,300 digits."""
    digits = position(part)
    return MAX_POSITION if len(digits) > 10 else min(int(digits), MAX_POSITION)


def resolve(model: type[Any], path: str, *, root: FieldType | None = None) -> ResolvedPath:
    """Resolve a ``__`` path made only of fields (no lookup) against ``model``."""
    if root is None:
        per_model = table(model, _RESOLVED)
        try:
            found: ResolvedPath | None = per_model.get(path)
        except TypeError:
            # An unhashable path (a list or a dict from a request body): _resolve refuses it,
            # naming it. Caught here, not checked first, so the cache hit stays one lookup.
            return _resolve(model, path, model_type(model))
        if found is None:
            found = _resolve(model, path, model_type(model))
            if not found.via_subclass:
                # A subclass field's meaning may change as the family grows: not cached.
                remember(per_model, path, found)
        return found
    return _resolve(model, path, root)


def not_a_field_name(what: str, name: object) -> QueryError:
    """The error of ``what()`` given ``name``, which is not a string (a list, a dict or a
    number from a request body); its repr is shortened, since a body's list may be long."""
    return QueryError(f"{what}() takes field names, not {reprlib.repr(name)}")


def _resolve(model: type[Any], path: str, root: FieldType) -> ResolvedPath:
    if not isinstance(path, str):
        raise QueryError(
            f"a field path must be a string, not {type(path).__name__} {reprlib.repr(path)}"
        )
    parts = path.split(SEP)
    if path_too_deep(path, SEP):
        raise QueryError(
            f"the path {reprlib.repr(path)} has {len(parts)} parts: a value there would nest "
            f"deeper than MongoDB's {MAX_DEPTH} levels (the document and each part count)",
            field=path,
        )
    current = root
    db_parts: list[str] = []
    names: list[str] = []
    joins: list[Join] = []
    element_parts: list[int] = []
    spread_parts: list[int] = []
    list_parts: list[int] = []
    through_list = free = via_subclass = positioned = position_in_list = False
    owner = model.__name__
    for index, part in enumerate(parts):
        check_name(part, path=path)
        if current.kind is Kind.LIST and not is_index(part):
            current = _list_element(current, names, owner, part, path)
            through_list = True
            list_parts.append(len(db_parts))
        if current.kind is Kind.LIST and is_index(part):
            current = _at_position(model, current, position_number(part), names, owner, path)
            if through_list:
                position_in_list = True
            else:
                element_parts.append(len(db_parts))
            db_parts.append(position(part))  # a position: tags__0 is "tags.0"
            names.append(part)
            positioned = True
            continue
        if current.kind is Kind.REFERENCE:
            target = current.target
            if target is None:
                raise QueryError(f"{'__'.join(names)!r} has no known target model", field=path)
            if part == ID_FIELD and index == len(parts) - 1:
                # customer__id is the stored reference itself: no join needed.
                names.append(part)
                break
            ref_path = SEP.join(names)
            key = RELATED_PREFIX + ref_path
            if positioned:
                # $lookup reads "watchers.0" as a field "0" of each element: it would join
                # nothing, and the filter would silently match no document.
                raise QueryError(
                    f"{path!r} crosses the reference at the list position {ref_path!r}: "
                    "MongoDB's $lookup cannot join one element of a list (filter on any "
                    "element without the position, or read the document's reference)",
                    field=path,
                )
            if any(j.many for j in joins) or (through_list and joins):
                raise QueryError(
                    f"{path!r} crosses a reference inside a list of references; "
                    "filter on it in two steps",
                    field=path,
                )
            joins.append(Join(ref_path, ".".join(db_parts), key, target, through_list))
            db_parts = [key]
            element_parts = []
            spread_parts = []
            list_parts = []
            current = model_type(target)
            owner = target.__name__
        if current.kind is Kind.MODEL:
            model_cls = next((m for m in current.models if part in m.model_fields), None)
            if model_cls is None and index == 0 and current.models == (model,):
                model_cls = _subclass_declaring(model, part)
                via_subclass = model_cls is not None
            if model_cls is None:
                raise QueryError(
                    f"{owner} has no field {part!r}"
                    + (f" (in path {path!r})" if path != part else ""),
                    field=path,
                )
            db_parts.append(stored_key(model_cls, part))
            names.append(part)
            current = field_type_of(model_cls, part)
            owner = current.models[0].__name__ if current.models else owner
            continue
        if current.kind in (Kind.DICT, Kind.ANY):
            if is_index(part) and part == position(part):
                # A free-form value may be a list there: MongoDB's filters read the part
                # as its position then (a position never has a leading zero), in each
                # element of a declared list the path went through (``items__extra__0``).
                if through_list:
                    position_in_list = True
                else:
                    element_parts.append(len(db_parts))
            elif not through_list and current.kind is Kind.ANY:
                spread_parts.append(len(db_parts))  # ... and the key in each element
            db_parts.append(part)
            names.append(part)
            free = True
            current = current.value if current.value is not None else FieldType(Kind.ANY, Any)
            continue
        raise QueryError(
            f"field {SEP.join(names)!r} of {owner} ({current.label}) has no sub-field {part!r}",
            field=path,
        )
    return ResolvedPath(
        path=path,
        names=tuple(names),
        db_path=".".join(db_parts),
        field=current,
        joins=tuple(joins),
        through_list=through_list,
        free=free,
        via_subclass=via_subclass,
        positioned=positioned,
        element_parts=tuple(element_parts),
        position_in_list=position_in_list,
        spread_parts=tuple(spread_parts),
        list_parts=tuple(list_parts),
    )


#: The kinds of value a name can read a field of (a document, or what may be one).
_WITH_FIELDS: Final = frozenset({Kind.MODEL, Kind.DICT, Kind.ANY, Kind.REFERENCE})


def _list_element(
    list_type: FieldType, names: list[str], owner: str, part: str, path: str
) -> FieldType:
    """The element type of the list ``list_type`` (reached by ``names``), which a path reads
    a sub-field of in each element (``items__city``); refused when the elements are lists
    themselves (``matrix__name`` on a ``list[list[Item]]``): MongoDB reads a name in the
    elements of one list only, never in those of the lists inside it, and would match no
    document; refused too for a fixed-length tuple none of whose positions holds a document
    (``pair__name`` on a ``tuple[int, str]``)."""
    assert list_type.item is not None
    element = list_type.item
    positions = _elements_of(list_type).positions
    if positions is not None and not any(p.kind in _WITH_FIELDS for p in positions):
        # A fixed-length tuple of plain values (``tuple[int, str]``): its element type reads
        # as free-form, yet no position holds a document; a name there matches nothing, and
        # a projection of it (``only("pair__name")``) would load the tuple empty.
        raise QueryError(
            f"field {SEP.join(names)!r} of {owner} ({list_type.label}) has no sub-field "
            f"{part!r}: none of its positions holds a document",
            field=path,
        )
    if element.kind is Kind.LIST:
        name = SEP.join(names)
        raise QueryError(
            f"{path!r}: the elements of {name!r} of {owner} ({list_type.label}) are lists: "
            f"MongoDB reads no field of the elements of a list inside a list; name a "
            f"position ({name}__0__...)",
            field=path,
        )
    return element


def names_a_field(model: type[Any], name: str) -> bool:
    """Tell whether ``name`` is a field of ``model`` or of one of its polymorphic subclasses
    (which a base-class query may use): an annotation of that name would hide it."""
    if name in model.model_fields:
        return True
    try:
        return subclass_field(model, name) is not None
    except QueryError:
        return True  # several subclasses declare it, differently: a field all the same


def _at_position(
    model: type[Any], list_type: FieldType, index: int, names: list[str], owner: str, path: str
) -> FieldType:
    """The type of position ``index`` of the list ``list_type`` (reached by ``names``): its
    element type, or a fixed-length tuple's type at that position (refused past its end)."""
    held = elements(model, list_type)
    if held.positions is None:
        assert held.item is not None
        return held.item
    if index >= len(held.positions):
        raise QueryError(
            f"field {SEP.join(names)!r} of {owner} ({list_type.label}) is a tuple of "
            f"{len(held.positions)} positions: it has no position {index}",
            field=path,
        )
    return held.positions[index]


@dataclass(frozen=True, slots=True)
class Elements:
    """What a list field holds, each type in its stored form (the elements' own constraints,
    ``list[Annotated[int, Field(ge=0)]]``, included)."""

    #: The type of every element; ``None`` for a fixed-length tuple.
    item: FieldType | None
    #: The type of each position of a fixed-length tuple (``tuple[int, str]``), else ``None``.
    positions: tuple[FieldType, ...] | None


#: The entry of each model's derived state holding :func:`elements` per list type.
_ELEMENTS: Final = "paths.elements"

#: The origins of the annotations a list field may have.
_SEQUENCES: Final = (list, tuple, set, frozenset, Sequence)


def elements(model: type[Any], list_type: FieldType) -> Elements:
    """Return what the list type ``list_type`` (of a field of ``model`` or of a model it
    reaches) holds: its element type, or a fixed-length tuple's position types.

    :attr:`FieldType.item` is the element's filter form, without its constraints, and the
    same type at every position of ``tuple[int, str]``: what is written into a list is
    validated against these types instead. Kept per model (a type adapter per call would cost
    more than the update).
    """
    cache = table(model, _ELEMENTS)
    found: Elements | None = cache.get(list_type)
    if found is None:
        found = cache[list_type] = _elements_of(list_type)
    return found


def _elements_of(list_type: FieldType) -> Elements:
    parts = _sequence_args(list_type.store_annotation)
    if parts is None:  # a bare list or tuple: anything
        return Elements(list_type.item, None)
    origin, args = parts
    if origin is tuple and Ellipsis not in args:
        return Elements(None, tuple(analyze(arg, arg) for arg in args))
    items = [arg for arg in args if arg is not Ellipsis]
    if len(items) != 1:
        return Elements(list_type.item, None)
    return Elements(analyze(items[0], items[0]), None)


def peel(annotation: Any) -> tuple[Any, list[Any]] | None:
    """Return ``annotation`` without its ``Annotated`` and ``X | None`` wrappings, and the
    ``Annotated`` metadata met on the way (outermost first); ``None`` for a union of several
    types."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = get_args(annotation)
            metadata += extra
        elif origin is Union or origin is types.UnionType:
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return None
            annotation = members[0]
        else:
            return annotation, metadata


def _sequence_args(annotation: Any) -> tuple[Any, tuple[Any, ...]] | None:
    """Return the origin and arguments of a list, set or tuple annotation, through
    ``Annotated`` and ``X | None`` (``None``: no arguments, or not a sequence)."""
    peeled = peel(annotation)
    if peeled is None:
        return None
    origin = get_origin(peeled[0])
    if origin not in _SEQUENCES:
        return None
    return origin, get_args(peeled[0])


def _subclass_declaring(model: type[Any], name: str) -> type[Any] | None:
    """Return the polymorphic subclass of ``model`` whose field ``name`` a base-class path may
    use (raises on an ambiguous name), or ``None``."""
    found = subclass_field(model, name)
    return found[0] if found is not None else None
