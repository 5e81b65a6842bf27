"""Which tests of a filter may set the position ``matched()``'s ``$`` writes (no I/O).

MongoDB's positional ``$`` takes the position of the LAST array element it noted while
matching the filter, in whatever list that element is and in an order of its own, not the
filter's. ``F(list).matched(...)`` writes at ``$``, so it writes the element of its list that
the filter matched only when no other test may note a position: :func:`position_tests` sorts a
filter's tests that may note one into those of the written list and those of any other field
that may hold a list (read from the model: a list, ``Any``, a union with a list, a type stored
as an array), and :mod:`odm.update_prechecks` refuses the update unless the written list is
tested once and nothing else is. A test only a whole array meets (``$size``, equality with a
whole array whose elements are never arrays) notes no position, be the array a declared list
or a type stored as one (a ``NamedTuple`` of numbers): MongoDB 6 matches the whole array after
its elements, without noting one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin, get_type_hints

from pydantic import RootModel

from ..models.field_types import analyze, field_type_of, stored_key
from ..models.options import CLASS_KEY
from .paths import FieldType, Kind, is_index, model_type
from .update_checks import branches

__all__ = ["PositionTests", "position_tests"]


@dataclass(frozen=True, slots=True)
class PositionTests:
    """The tests of a filter that may have MongoDB note an element's position, for a
    ``matched()`` update of the list at :attr:`path` (:func:`position_tests`).

    MongoDB's ``$`` takes the position of the LAST element it noted while matching the
    filter, in whatever order it runs the tests (its own, not the filter's): it is the
    element of :attr:`path` the filter matched only when that list's element is the one
    noted. A test of another list noting its own element's position makes ``$`` write that
    position of :attr:`path` (another element, or one past its end, padding it with
    nulls); two tests of :attr:`path` itself each note an element meeting one of them,
    which need not meet the other."""

    #: The stored path of the list ``matched()`` writes.
    path: str
    #: The stored keys of the tests of that list's elements, one per test (a key testing
    #: ``$gte`` and ``$lte`` is two tests, each met by an element of its own).
    own: tuple[str, ...]
    #: The stored keys of the tests that may note an element of another list.
    others: tuple[str, ...]


#: The top-level operators whose tests never note an element (``$nor``: none of its tests is
#: met; ``$expr`` and the rest do not report one).
_UNNOTED: Final = frozenset({"$nor", "$expr", "$text", "$where", "$comment", "$jsonSchema"})
#: The field operators that note no element: negations, and the options of another one.
_UNNOTING_OPERATORS: Final = frozenset(
    {"$ne", "$nin", "$not", "$options", "$maxDistance", "$minDistance"}
)
#: A test: its stored key, its operator (``$eq`` for a plain value) and the operand.
_Test = tuple[str, str, Any]


def position_tests(model: type[Any], filter: Mapping[str, Any], path: str) -> PositionTests:
    """The tests of ``filter`` that may note an element's position, sorted into those of the
    list at ``path`` (the one ``matched()`` writes) and those of another list the documents
    of ``model`` may hold (:class:`PositionTests`). A test that MongoDB cannot meet with an
    element (a negation, a ``$size``, a scalar field) notes none."""
    family = _family(model)
    own: list[str] = []
    others: list[str] = []
    for key, op, operand in _noting_tests(filter):
        if not _may_note(model_type(model), key.split("."), op, operand, family):
            continue
        (own if _inside(key, path) else others).append(key)
    return PositionTests(path, tuple(own), tuple(others))


def _inside(key: str, path: str) -> bool:
    """Tell whether ``key`` tests the list at ``path`` or a field of its elements (not one
    position of it, ``tags.0``: a position is read without noting it)."""
    if key == path:
        return True
    if not key.startswith(path + "."):
        return False
    return not is_index(key[len(path) + 1:].split(".")[0])


def _noting_tests(filter: Mapping[str, Any]) -> list[_Test]:
    """The tests of ``filter`` that every matching document passes or that MongoDB may run
    as such (outside any negation), one per operator."""
    tests: list[_Test] = []
    for key, value in filter.items():
        if key == "$and":
            for part in branches(value):
                tests += _noting_tests(part)
        elif key == "$or":
            tests += _or_tests(branches(value))
        elif key.startswith("$"):
            if key not in _UNNOTED:
                tests.append((key, key, value))  # unknown to odm: taken as noting
        else:
            tests += _field_tests(key, value)
    return tests


def _field_tests(key: str, value: Any) -> list[_Test]:
    """The noting tests of one ``key: value`` of a filter: one per operator but those
    negating (``$ne``, ``$not``, ``$exists: false``...)."""
    if not (isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)):
        return [(key, "$eq", value)]
    tests: list[_Test] = []
    for op, operand in value.items():
        if op == "$all" and isinstance(operand, list):
            # Each value is a test of its own, met by an element of its own.
            tests += [(key, "$all", [each]) for each in operand]
        elif op not in _UNNOTING_OPERATORS and not (op == "$exists" and not operand):
            tests.append((key, str(op), operand))
    return tests


def _or_tests(branches: list[Mapping[str, Any]]) -> list[_Test]:
    """The noting tests of an ``$or``: MongoDB does not pass on the element its branch
    matched, but it runs one branch (or identical ones) as that branch, and an ``$or`` of
    tests of one path may run as an ``$in`` of that path (one test); MongoDB 6.0 does."""
    unique = [b for i, b in enumerate(branches) if b not in branches[:i]]
    if len(unique) == 1:
        return _noting_tests(unique[0])
    per_branch = [_noting_tests(branch) for branch in unique]
    if not all(per_branch):
        # A branch noting nothing (``~Q(k=0)``, ``k__ne=0``) tests no path: the $or is not
        # one of a single path, and no branch passes on its element.
        return []
    keys = {key for tests in per_branch for key, _, _ in tests}
    return [(keys.pop(), "$or", None)] if len(keys) == 1 else []


def _family(model: type[Any]) -> tuple[type[Any], ...]:
    """``model`` and its polymorphic subclasses: a filter on a base class may test a field
    only a subclass declares."""
    meta = getattr(model, "_meta", None)
    members = getattr(meta, "family", {}) if getattr(meta, "polymorphic", False) else {}
    return (model, *(c for c in members.values() if c is not model and issubclass(c, model)))


def _may_note(
    current: FieldType, parts: Sequence[str], op: str, operand: Any,
    family: tuple[type[Any], ...] | None = None,
) -> bool:
    """Tell whether testing ``op`` at the stored ``parts`` below a value of type ``current``
    may note an element's position: the test goes through a list, or may (a free-form
    value), or meets an element of the list it ends at. ``family``: the models a
    document may be (the first part only)."""
    if not parts:
        return _notes_at_end(current, op, operand)
    part, rest = parts[0], parts[1:]
    if current.kind is Kind.LIST:
        assert current.item is not None
        if not is_index(part) or _element_may_hold(current.item, part):
            return True  # MongoDB goes through each element
        return _may_note(current.item, rest, op, operand)
    if current.kind is Kind.MODEL:
        if part == CLASS_KEY:
            return False  # the polymorphic class name odm stores: a string
        found = _fields_stored_as(family or current.models, part)
        return not found or any(_may_note(f, rest, op, operand) for f in found)
    if current.kind is Kind.DICT:
        return _may_note(current.value or _FREE, rest, op, operand)
    return current.kind is Kind.ANY or _may_hold_list(current)


#: A free-form value: anything BSON holds, lists too.
_FREE: Final = FieldType(Kind.ANY, Any)


def _fields_stored_as(models: Sequence[type[Any]], key: str) -> list[FieldType]:
    """The types of the fields of ``models`` stored under ``key`` (none: a key no model
    declares, which a stored document may hold all the same)."""
    return [
        field_type_of(m, name)
        for m in models
        for name in m.model_fields
        if stored_key(m, name) == key
    ]


def _element_may_hold(item: FieldType, key: str) -> bool:
    """Tell whether an element of type ``item`` may hold a field named ``key`` (a list
    position in a path: MongoDB reads it in each element too, noting the element)."""
    if item.kind is Kind.MODEL:
        return bool(_fields_stored_as(item.models, key)) or _may_hold_list(item)
    return item.kind in (Kind.LIST, Kind.DICT, Kind.ANY) or _may_hold_list(item)


def _notes_at_end(field: FieldType, op: str, operand: Any) -> bool:
    """Tell whether a test ending at a value of type ``field`` may note an element: one of
    a list it is, or may be; but not a test only the whole list meets (``$size``, ``$type:
    "array"``, a whole list of values that are not lists: MongoDB notes nothing for them),
    be the list declared one or a type stored as one (:func:`_stored_items`)."""
    if field.kind is Kind.LIST:
        assert field.item is not None
        return not _whole_list_test(op, operand, field.item)
    if field.kind is Kind.ANY:
        return True
    if not _may_hold_list(field):
        return False
    items = _stored_items(field)
    return items is None or not all(_whole_list_test(op, operand, item) for item in items)


def _whole_list_test(op: str, operand: Any, item: FieldType) -> bool:
    """Tell whether ``{op: operand}`` is met only by a list of ``item`` as a whole.

    An element that is not a list never equals a list: MongoDB 6 then matches the whole
    list, after its elements, and notes no position (an ``$in`` of lists likewise)."""
    if op == "$size":
        return True
    if op == "$type":
        named = operand if isinstance(operand, list) else [operand]
        return all(t in ("array", 4) for t in named)
    scalars = item.kind not in (Kind.LIST, Kind.ANY) and not _may_hold_list(item)
    if op == "$in":
        lists = isinstance(operand, list) and all(isinstance(v, _ARRAYS) for v in operand)
        return lists and bool(operand) and scalars
    return op == "$eq" and isinstance(operand, _ARRAYS) and scalars


#: What a filter's value is sent as a BSON array from (a ``NamedTuple`` stays a tuple).
_ARRAYS: Final = (list, tuple)


def _stored_items(field: FieldType) -> list[FieldType] | None:
    """The types of the elements of a value of ``field`` stored as an array that odm does
    not read as a list (a ``NamedTuple``'s fields, a ``MutableSequence[int]``'s item, a
    ``RootModel`` of a list's), or ``None`` when they are not known (an unparametrized
    collection, a union with another type that may be a list)."""
    if field.kind is Kind.MODEL:
        return _root_items(field.models)
    items: list[FieldType] = []
    for annotation in (field.annotation, field.store_annotation):
        base = _without_none(annotation)
        if _stored_as_array(base):
            elements = _element_annotations(base)
            if elements is None:
                return None
            items += [analyze(element) for element in elements]
        elif _union_may_hold_list(base):
            return None
    return items


def _root_items(models: Sequence[type[Any]]) -> list[FieldType] | None:
    """The types of the elements of ``models``, each a ``RootModel`` of a list (``None``:
    one is not)."""
    if not all(issubclass(model, RootModel) for model in models):
        return None
    roots = [field_type_of(model, "root") for model in models]
    items = [root.item for root in roots if root.kind is Kind.LIST and root.item is not None]
    return items if len(items) == len(roots) else None


def _without_none(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and, when it is ``X | None``, without ``None``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return _without_none(members[0])
    return annotation


def _element_annotations(collection: Any) -> list[Any] | None:
    """The annotations of the elements of ``collection``, a type stored as an array: a
    ``NamedTuple``'s fields, a one-parameter generic's item (``None``: not known)."""
    kind = get_origin(collection) or collection
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):
        try:
            hints = get_type_hints(kind)
        except Exception:  # a name its module cannot resolve: the types are not known
            return None
        return [hints.get(name, Any) for name in kind._fields]
    parameters = get_args(collection)
    return [parameters[0]] if len(parameters) == 1 else None


def _may_hold_list(field: FieldType) -> bool:
    """Tell whether a value of type ``field`` may be a list: a union with a list or a
    free-form member (``list[str] | str``), a collection stored as one (a ``NamedTuple``,
    a ``MutableSequence``, a ``RootModel`` of a list); an enum, a ``Literal`` or a scalar
    is not."""
    if field.kind in (Kind.LIST, Kind.ANY):
        return True
    if field.kind is Kind.MODEL:
        return any(_root_may_hold_list(model) for model in field.models)
    if field.kind is not Kind.OTHER:
        return False
    return any(
        _union_may_hold_list(annotation) or _stored_as_array(annotation)
        for annotation in (field.annotation, field.store_annotation)
    )


def _root_may_hold_list(model: type[Any]) -> bool:
    """Tell whether ``model`` is a ``RootModel`` stored as its root, a value that may be a
    list."""
    return issubclass(model, RootModel) and _may_hold_list(field_type_of(model, "root"))


#: The collections BSON does not store as an array.
_NOT_ARRAYS: Final = (str, bytes, bytearray, Mapping)


def _stored_as_array(annotation: Any) -> bool:
    """Tell whether values of ``annotation`` are stored as BSON arrays although odm does not
    read the type as a list: a collection but a string, bytes or a mapping (a
    ``NamedTuple`` is a tuple, a ``MutableSequence`` a list once stored)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    kind = get_origin(annotation) or annotation
    return (
        isinstance(kind, type)
        and issubclass(kind, Collection)
        and not issubclass(kind, _NOT_ARRAYS)
    )


def _union_may_hold_list(annotation: Any) -> bool:
    """Tell whether a union annotation has a member that may be a list."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, UnionType):
        return False
    return any(
        _may_hold_list(analyze(member))
        for member in get_args(annotation)
        if member is not type(None)
    )
