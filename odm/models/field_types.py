"""What a model's fields hold, for queries, updates and payload checks: :class:`FieldType`.

Each declared field is analysed once (through ``Optional``/``Union``, ``list[X]``, embedded
models, free-form ``dict`` fields and ``Reference[Target]``) into a :class:`FieldType` whose
kind tells which lookups apply and whose ``TypeAdapter`` validates values for it. This is a
description of the declaration, no I/O: the query layer (:mod:`odm.query.paths`) resolves
dotted paths over it, the executor asks a model whether its values may nest without bound.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import operator
import re
import threading
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, Union, get_args, get_origin, is_typeddict

import bson
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ..exceptions import QueryError, UnsavedReference
from ..nesting import CONTAINERS, MAX_DEPTH
from ..stored_order import stored_set
from ..utf8 import encodable
from .derived import derived, table
from .fields import ObjectId, Reference, reference_target
from .tracking import get_snapshot

__all__ = [
    "ID_FIELD",
    "INT64_MAX",
    "INT64_MIN",
    "NOT_VALUES",
    "PLAIN_SCALARS",
    "PLAIN_TYPES",
    "SEP",
    "FieldType",
    "Kind",
    "analyze",
    "check_literal",
    "field_type_of",
    "held_operator",
    "int_text",
    "is_set_type",
    "may_nest",
    "model_type",
    "server_sorts_alike",
    "stored_key",
    "target_id_type",
]

#: The pydantic name of every Document's id field (stored as ``_id``).
ID_FIELD: Final = "id"
#: What separates the parts of a Django-style path (``address__city``).
SEP: Final = "__"

class Kind(enum.Enum):
    """What a field holds, as far as lookups care."""

    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"
    OBJECTID = "objectid"
    LIST = "list"
    MODEL = "model"
    DICT = "dict"
    ANY = "any"
    REFERENCE = "reference"
    OTHER = "other"

    # Members are singletons compared by identity: hash them so too, in C (Enum's own
    # __hash__ is Python code, run for every ``kind in kinds`` test of every filter value).
    __hash__ = object.__hash__


#: The objects no filter or update value may hold: a regex matches inside ``$in``, and
#: JavaScript is code (a str field would read either as the text it holds).
NOT_VALUES: Final = (re.Pattern, bson.Regex, bson.Code)
#: The integers BSON can hold (an int64); the encoder fails untyped beyond them.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
#: Exact types that hold nothing check_literal refuses, whatever their value (subclasses take
#: the full walk). Not ``str``: a text may hold what UTF-8 cannot encode (:mod:`odm.utf8`);
#: an ASCII one holds nothing refused.
PLAIN_SCALARS: Final = frozenset(
    {float, bool, type(None), bson.ObjectId, _dt.datetime, _dt.date, bytes}
)


def check_literal(value: Any, field: str) -> None:
    """Refuse a value that MongoDB could read as something other than data.

    Any dict inside the value (at any depth) may not have a key starting with ``$`` or holding
    ``.`` or NUL; regex and JavaScript objects are refused (inside ``$in`` a regex matches), and
    so are integers beyond BSON's 64 bits (the encoder would fail with an untyped error).
    So is a value nesting deeper than :data:`~odm.nesting.MAX_DEPTH` levels (the server would
    refuse the command untyped). Iterative, so that a deeply nested hostile value cannot blow
    the stack.
    """
    kind = type(value)
    if kind is str:
        if not encodable(value):
            raise _not_text(field)
        return
    if kind in PLAIN_SCALARS or (kind is int and INT64_MIN <= value <= INT64_MAX):
        if kind is _dt.datetime and value.year in _EDGE_YEARS:
            _check_datetime(value, field)
        return  # the usual filter value: nothing else inside it to check
    # The document is a level, and so is each part of the path before the value.
    levels = MAX_DEPTH - 1 - field.count(SEP)
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > levels:
            raise QueryError(
                f"value for {field!r} nests deeper than MongoDB's {MAX_DEPTH} levels",
                field=field,
            )
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise QueryError(
                        f"value for {field!r}: document keys must be strings", field=field
                    )
                if key.startswith("$") or "." in key or "\x00" in key:
                    raise QueryError(
                        f"value for {field!r} holds the key {key!r}: keys starting with '$' or "
                        "containing '.' or NUL are refused in query and update values",
                        field=field,
                    )
                if not encodable(key):
                    raise _not_text(field, "a key")
                stack.append((sub, depth + 1))
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise QueryError(
                    f"value for {field!r}: {int_text(item)} does not fit in BSON's 64-bit "
                    "integer",
                    field=field,
                )
        elif isinstance(item, NOT_VALUES):
            raise QueryError(
                f"value for {field!r}: {type(item).__name__} objects are not accepted as values; "
                "use the regex/iregex lookups",
                field=field,
            )
        elif isinstance(item, str):
            if not encodable(item):
                raise _not_text(field)
        elif isinstance(item, enum.Enum):
            stack.append((item.value, depth))  # stored as its value
        elif isinstance(item, _dt.datetime):
            if item.year in _EDGE_YEARS:
                _check_datetime(item, field)
        elif not isinstance(item, _BSON_LEAVES) and not hasattr(item, _BSON_TYPE_MARKER):
            raise _unencodable_literal(item, field)


def held_operator(value: Any) -> str | None:
    """Describe what ``value`` holds, at any depth, that no filter or update value may hold
    and that a field's type would take without a word: a dict key starting with ``$``
    (``{"$set": ...}``, a ``SON``, a ``RawBSONDocument``) or holding ``.`` or NUL, which an
    embedded model drops as a key it does not declare, and a regex or JavaScript object,
    which a str field reads as the text it holds (``None``: it holds none of them).

    The value is the caller's raw one, before its type converted it (after, nothing dropped
    is left to see): :meth:`odm.query.lookups.Lookup.refuse_operators` (a filter value) and
    :meth:`FieldType.convert` with ``store=True`` (an update value) refuse what this names.
    Each dict or collection is walked once (iterative, a shared or cyclic one included), so
    no value can blow the stack or loop."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in PLAIN_TYPES:
            continue
        if kind is dict or (kind not in _ARRAYS and isinstance(item, Mapping)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            for key in item:
                if not isinstance(key, str):
                    continue
                if key.startswith("$"):
                    return f"the operator key {key!r}"
                if "." in key or "\x00" in key:
                    return f"the key {key!r} (a '.' or NUL in a key is read as a path)"
            stack.extend(item.values())
        elif kind in _ARRAYS or isinstance(item, list | tuple | set | frozenset):
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item)
        elif isinstance(item, NOT_VALUES):
            return f"a {kind.__name__} object"
    return None


#: The collections :func:`held_operator` walks into without an ``isinstance`` test.
_ARRAYS: Final = frozenset({list, tuple, set, frozenset})


#: The years in which an aware datetime can fall outside BSON's range once in UTC (a UTC
#: offset is less than a day): ``9999-12-31T23:00-05:00`` is in year 10000 there.
_EDGE_YEARS: Final = frozenset({_dt.MINYEAR, _dt.MAXYEAR})


def _check_datetime(value: _dt.datetime, field: str) -> None:
    """Refuse an aware datetime that BSON cannot store: the encoder moves it to UTC first,
    which overflows past year 9999 or before year 1 (an untyped error at send time)."""
    try:
        offset = value.utcoffset()
        if offset:
            value - offset
    except (OverflowError, ValueError) as exc:
        raise QueryError(
            f"value for {field!r}: {value.isoformat()} is outside the datetimes BSON stores "
            f"(years {_dt.MINYEAR}-{_dt.MAXYEAR} in UTC): {exc}",
            field=field,
        ) from None


def int_text(value: int) -> str:
    """``value`` in digits when short, else its size: ``str()`` of an int over 4,300 digits
    raises ValueError (and a message is no place for thousands of digits anyway)."""
    bits = value.bit_length()
    return str(value) if bits <= 256 else f"an integer of {bits} bits"


#: The Python types BSON stores as they are (``date`` and enums through the ODM's codec):
#: a value of another type in a free-form field would fail only when the command is encoded.
_BSON_LEAVES: Final = (str, bytes, float, type(None), _dt.date, uuid.UUID)
#: The attribute every type of the ``bson`` package (ObjectId, Int64, Decimal128, Binary,
#: Timestamp, MinKey...) carries for its encoder.
_BSON_TYPE_MARKER: Final = "_type_marker"


def _not_text(field: str, what: str = "a text") -> QueryError:
    """The error of a value holding a text that UTF-8 cannot encode (:mod:`odm.utf8`)."""
    return QueryError(
        f"value for {field!r}: {what} holds a lone surrogate, which cannot be encoded as "
        "UTF-8 (a JSON \\uD800-\\uDFFF escape that is not part of a pair)",
        field=field,
    )


def _unencodable_literal(item: Any, field: str) -> QueryError:
    """The error of a value BSON cannot store (a Decimal, a complex, any object)."""
    hint = (
        ": store decimals as bson.Decimal128 (an odm.Decimal field converts them)"
        if isinstance(item, decimal.Decimal)
        else ""
    )
    return QueryError(
        f"value for {field!r}: a {type(item).__name__} cannot be stored in BSON{hint}",
        field=field,
    )


_SCHEMA_HOOK: Final = "__get_pydantic_core_schema__"
_LIST_ORIGINS: Final = (list, tuple, set, frozenset, Sequence)
_NONE_TYPE: Final = type(None)


def _loosen(annotation: Any) -> Any:
    """Return the annotation without its constraints (``ge``, ``max_length``, ``pattern``...).

    A filter value is a thing to look for, not a thing to store: ``name__startswith="A"`` must
    pass a ``min_length=3`` field. Metadata that defines a type or converts values (ObjectId's
    schema, ``AfterValidator``) is kept, so ``id="<24 hex>"`` still becomes an ObjectId.
    """
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = list(get_args(annotation))
        kept = [m for m in metadata if hasattr(m, _SCHEMA_HOOK)]
        loose = _loosen(inner)
        return typing.Annotated[(loose, *kept)] if kept else loose
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_loosen(a) for a in get_args(annotation))]  # noqa: UP007
    if origin in (list, set, frozenset, tuple, dict) and get_args(annotation):
        return origin[tuple(_loosen(a) for a in get_args(annotation))]
    return annotation


class FieldType:
    """The type of a path's target: its kind, parts (items, models) and validators."""

    __slots__ = (
        "_adapter",
        "_lock",
        "_store_adapter",
        "annotation",
        "as_is",
        "item",
        "kind",
        "label",
        "models",
        "nullable",
        "store_annotation",
        "target",
        "value",
    )

    def __init__(
        self,
        kind: Kind,
        annotation: Any,
        store_annotation: Any = None,
        *,
        nullable: bool = False,
        item: FieldType | None = None,
        models: tuple[type[BaseModel], ...] = (),
        target: type[Any] | None = None,
        value: FieldType | None = None,
    ) -> None:
        self.kind = kind
        self.annotation = annotation
        self.store_annotation = annotation if store_annotation is None else store_annotation
        self.nullable = nullable
        self.item = item
        self.models = models
        self.target = target
        self.value = value
        self._adapter: TypeAdapter[Any] | None = None
        self._store_adapter: TypeAdapter[Any] | None = None
        self._lock = threading.Lock()
        self.label = _label(annotation)
        #: The one type whose values this type's filter form validates and dumps to
        #: themselves (``str`` for a ``str`` field...), or ``None``.
        self.as_is: type | None = _as_is(annotation)

    @property
    def adapter(self) -> TypeAdapter[Any]:
        """Return the (cached) TypeAdapter validating filter values for this type."""
        if self._adapter is None:
            with self._lock:
                if self._adapter is None:
                    self._adapter = TypeAdapter(self.annotation)
        return self._adapter

    @property
    def store_adapter(self) -> TypeAdapter[Any]:
        """Return the (cached) TypeAdapter validating stored values (constraints included)."""
        if self._store_adapter is None:
            with self._lock:
                if self._store_adapter is None:
                    self._store_adapter = TypeAdapter(self.store_annotation)
        return self._store_adapter

    def convert(self, value: Any, field: str, *, store: bool = False) -> Any:
        """Validate ``value`` as this type and return its BSON-ready form, or raise QueryError.

        ``store``: ``value`` is written (an update's value, or an element it adds or pulls),
        validated with the field's constraints. Then, besides what :func:`check_literal`
        refuses in the converted value, the raw value may not hold what its type would drop
        or read as text (:func:`held_operator`): ``update(prefs={"$set": {...}})`` on an
        embedded model would store the model's defaults, and ``items=[{"$where": "..."}]``
        a list of them. It is refused, naming the field and the key, as a filter value is
        (:meth:`odm.query.lookups.Lookup.refuse_operators`). A free-form field (``dict``,
        ``Any``, ``list[dict]``) keeps every key, so such a key is refused there as in a
        filter, by :func:`check_literal`, naming it too; only ``save()`` stores a free-form
        document's keys as they are (a document is data, an update and a filter may not
        carry an operator in a value).
        """
        if self.kind is Kind.ANY:
            check_literal(value, field)
            return value
        if self.kind is Kind.REFERENCE:
            if store:
                _check_stored(value, field)
            return self._convert_reference(value, field)
        if store and self.kind is Kind.LIST:
            _check_stored_items(self, value, field)
        if type(value) is self.as_is and not store:
            # pydantic would hand this very value back (a str for a str field, an ObjectId
            # for an ObjectId field): skip its two calls, keep the literal check.
            check_literal(value, field)
            return value
        adapter = self.store_adapter if store else self.adapter
        try:
            # The adapter's core validator and serializer themselves: the TypeAdapter methods
            # only forward to them, with argument handling on every value.
            validated = adapter.validator.validate_python(value)
            converted = adapter.serializer.to_python(validated, by_alias=True)
        except PydanticValidationError as exc:
            first = exc.errors()[0] if exc.error_count() else {"msg": str(exc)}
            raise QueryError(
                f"invalid value for {field!r} ({self.label}): {first['msg']}", field=field
            ) from None
        check_literal(converted, field)
        if store and type(value) not in PLAIN_TYPES:  # the usual value skips the walk
            held = held_operator(value)
            if held is not None:
                raise QueryError(
                    f"value for {field!r} holds {held}, which no update value may hold: "
                    f"the field's type ({self.label}) would drop it or read it as text, "
                    "not store it",
                    field=field,
                )
        if type(converted) in PLAIN_TYPES:
            return converted
        return _sets_in_order(converted)

    def _convert_reference(self, value: Any, field: str) -> Any:
        target = self.target
        if isinstance(value, Reference):
            value = value.id
        elif target is not None and isinstance(value, target):
            value = getattr(value, ID_FIELD, None)
            if value is None:
                raise QueryError(
                    f"value for {field!r} is a {target.__name__} without an id (not saved yet)",
                    field=field,
                )
        elif target is not None and isinstance(value, BaseModel):
            raise QueryError(
                f"value for {field!r}: a reference to {target.__name__} takes a "
                f"{target.__name__} (or its id), not a {type(value).__name__}",
                field=field,
            )
        if value is None and self.nullable:
            return None
        id_type = target_id_type(target)
        if id_type is not None:
            return id_type.convert(value, field)
        check_literal(value, field)
        if isinstance(value, Mapping | list | tuple):
            raise QueryError(f"value for {field!r} must be an id or a document", field=field)
        return value

    def __repr__(self) -> str:
        return f"<FieldType {self.kind.value} {self.label}>"


#: Plain field annotations whose filter form passes a value of exactly the same type through
#: unchanged (the validator returns it, the serializer dumps it as is): a subclass (a bool
#: for an int, a str enum) still goes through pydantic.
_AS_IS: Final[dict[Any, type]] = {
    str: str,
    int: int,
    float: float,
    bool: bool,
    bson.ObjectId: bson.ObjectId,
    ObjectId: bson.ObjectId,
}


#: The exact types of the usual filter and update values, before conversion and after: they
#: hold nothing :func:`held_operator` refuses, and no set (returned without a walk).
PLAIN_TYPES: Final = frozenset({str, int, *PLAIN_SCALARS})


def _sets_in_order(value: Any) -> Any:
    """``value`` (a converted filter or update value, checked by :func:`check_literal`, so
    of bounded depth) with every set in it as the list it is stored as
    (:func:`~odm.stored_order.stored_set`): a set sent in this process's order would
    compare unequal with the array another process stored. ``value`` itself when it holds
    no set."""
    if isinstance(value, set | frozenset):
        return stored_set(map(_sets_in_order, value))
    if type(value) is dict:
        items = {key: _sets_in_order(item) for key, item in value.items()}
        same_items = all(map(operator.is_, items.values(), value.values()))
        return value if same_items else items
    if type(value) is list or type(value) is tuple:
        ordered = [_sets_in_order(item) for item in value]
        return value if all(map(operator.is_, ordered, value)) else ordered
    return value


def is_set_type(field_type: FieldType) -> bool:
    """Tell whether ``field_type`` is a ``set`` or ``frozenset`` (``| None`` too): a list
    field stored in one canonical order, each element once (:mod:`odm.stored_order`)."""
    if field_type.kind is not Kind.LIST:
        return False
    container = _strip(field_type.annotation)
    if get_origin(container) in (Union, types.UnionType):
        members = [a for a in get_args(container) if a is not _NONE_TYPE]
        container = _strip(members[0]) if len(members) == 1 else None
    return container in _SET_ORIGINS or get_origin(container) in _SET_ORIGINS


_SET_ORIGINS: Final = (set, frozenset)
#: The element types whose stored values MongoDB sorts as :func:`~odm.stored_order.stored_set`
#: orders them (text by code point, which is the order of its UTF-8 bytes; numbers by value;
#: dates by instant; ObjectIds and UUIDs, binaries of one length, by their bytes). Not
#: ``bytes``: MongoDB orders binaries by length first.
_SORTED_ALIKE: Final = frozenset(
    {str, int, float, bool, _dt.datetime, _dt.date, bson.ObjectId, uuid.UUID}
)


def server_sorts_alike(element: FieldType) -> bool:
    """Tell whether MongoDB sorts the stored values of a set's ``element`` type in the order
    the set is stored in, so that the server can add to the set in place: one plain type of
    :data:`_SORTED_ALIKE` (not a union, nor ``| None``: values of several types are stored
    by their encoding), an enum or a ``Literal`` whose values are all text or all integers."""
    base = _strip(element.annotation)
    if get_origin(base) is Literal:
        return _one_sorted_kind(get_args(base))
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return _one_sorted_kind([member.value for member in base])
    return isinstance(base, type) and base in _SORTED_ALIKE


def _one_sorted_kind(values: Sequence[Any]) -> bool:
    """Tell whether ``values`` are all of one type, text or integer."""
    kinds = {type(value) for value in values}
    return kinds == {str} or kinds == {int}


def _check_stored(value: Any, field: str) -> None:
    """Refuse to write a reference to a document instance that was never stored."""
    document = value.document if isinstance(value, Reference) else value
    # A Document (it has ``_meta``), not an embedded model or a plain id.
    is_document = getattr(type(document), "_meta", None) is not None
    if is_document and isinstance(document, BaseModel) and get_snapshot(document) is None:
        raise UnsavedReference(
            f"update(): {field} refers to a {type(document).__name__} that was never "
            "saved: its id would point nowhere (insert it first)",
            field=field,
        )


def _check_stored_items(list_type: FieldType, value: Any, field: str) -> None:
    """Refuse a list of references to write when one element is a never-stored document, as
    :func:`_check_stored` does for a single reference (``field`` names it: ``watchers[1]``)."""
    item = list_type.item
    if item is None or item.kind is not Kind.REFERENCE:
        return
    if isinstance(value, list | tuple):
        for position, element in enumerate(value):
            _check_stored(element, f"{field}[{position}]")


def _as_is(annotation: Any) -> type | None:
    try:
        return _AS_IS.get(annotation)
    except TypeError:  # an annotation with unhashable metadata is not one of them
        return None


def _label(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def target_id_type(target: type[Any] | None) -> FieldType | None:
    """Return the type of the ``id`` field of a reference's target model (``None``: none)."""
    fields = getattr(target, "model_fields", None)
    if target is None or not fields or ID_FIELD not in fields:
        return None
    return field_type_of(target, ID_FIELD)


def stored_key(model: type[Any], name: str) -> str:
    """Return the stored key of field ``name`` of ``model`` (``_id`` for the id, else its alias)."""
    meta = getattr(model, "_meta", None)
    if meta is not None and hasattr(meta, "db_key"):
        return str(meta.db_key(name))
    if name == ID_FIELD and getattr(model, "_meta", None) is not None:
        return "_id"
    info = model.model_fields[name]
    return info.alias or name


def analyze(annotation: Any, store_annotation: Any = None) -> FieldType:
    """Return the :class:`FieldType` of an annotation (filter form) and its stored form."""
    store = annotation if store_annotation is None else store_annotation
    loose = _loosen(annotation)
    base = loose
    while get_origin(base) is typing.Annotated:
        base = get_args(base)[0]
    origin = get_origin(base)
    if origin is Union or origin is types.UnionType:
        members = [a for a in get_args(base) if a is not _NONE_TYPE]
        nullable = len(members) < len(get_args(base))
        if len(members) == 1:
            inner = analyze(members[0])
            return _with(inner, loose, store, nullable=nullable or inner.nullable)
        plain = [_strip(a) for a in members]
        if all(isinstance(m, type) and issubclass(m, BaseModel) for m in plain):
            return FieldType(Kind.MODEL, loose, store, nullable=nullable, models=tuple(plain))
        if reference_target(base) is not None:
            return FieldType(
                Kind.REFERENCE, loose, store, nullable=nullable, target=reference_target(base)
            )
        return FieldType(Kind.OTHER, loose, store, nullable=nullable)
    if origin is Reference or base is Reference:
        return FieldType(Kind.REFERENCE, loose, store, target=reference_target(base))
    if origin in _LIST_ORIGINS or base in _LIST_ORIGINS:
        args = [a for a in get_args(base) if a is not Ellipsis]
        item = analyze(args[0]) if len(args) == 1 else FieldType(Kind.ANY, Any)
        return FieldType(Kind.LIST, loose, store, item=item)
    if origin in (dict, Mapping) or base in (dict, Mapping):
        dargs = get_args(base)
        value = analyze(dargs[1]) if len(dargs) == 2 else FieldType(Kind.ANY, Any)
        return FieldType(Kind.DICT, loose, store, value=value)
    if origin is Literal:
        kinds = {type(a) for a in get_args(base)}
        kind = Kind.STRING if kinds == {str} else Kind.OTHER
        return FieldType(kind, loose, store)
    if base is Any or base is object:
        return FieldType(Kind.ANY, Any)
    if isinstance(base, type):
        return FieldType(_scalar_kind(base), loose, store, models=_models(base))
    return FieldType(Kind.OTHER, loose, store)


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _models(base: type) -> tuple[type[BaseModel], ...]:
    return (base,) if issubclass(base, BaseModel) else ()


def _scalar_kind(base: type) -> Kind:
    if issubclass(base, BaseModel):
        return Kind.MODEL
    if issubclass(base, enum.Enum):
        return Kind.OTHER
    if issubclass(base, bool):
        return Kind.BOOL
    if issubclass(base, int | float | decimal.Decimal | bson.Decimal128):
        return Kind.NUMBER
    if issubclass(base, str):
        return Kind.STRING
    if issubclass(base, _dt.date | _dt.time):
        return Kind.DATE
    if issubclass(base, bson.ObjectId):
        return Kind.OBJECTID
    return Kind.OTHER


def _with(inner: FieldType, loose: Any, store: Any, *, nullable: bool) -> FieldType:
    return FieldType(
        inner.kind if inner.kind is not Kind.ANY else Kind.ANY,
        loose if inner.kind is not Kind.ANY else Any,
        store,
        nullable=nullable,
        item=inner.item,
        models=inner.models,
        target=inner.target,
        value=inner.value,
    )


# Entries of each model's derived state (odm.models.derived), forgotten when models change.
_MODEL_TYPE: Final = "field_types.model"
_FIELDS: Final = "field_types.fields"
_MAY_NEST: Final = "field_types.may_nest"


def model_type(model: type[Any]) -> FieldType:
    """Return the (cached) :class:`FieldType` of a model class itself."""
    state = derived(model)
    found: FieldType | None = state.get(_MODEL_TYPE)
    if found is None:
        found = state[_MODEL_TYPE] = FieldType(Kind.MODEL, model, models=(model,))
    return found


def field_type_of(model: type[Any], name: str) -> FieldType:
    """Return the (cached) :class:`FieldType` of one declared field of ``model``."""
    per_model = table(model, _FIELDS)
    found: FieldType | None = per_model.get(name)
    if found is None:
        info = model.model_fields[name]
        schema_meta = [m for m in info.metadata if hasattr(m, _SCHEMA_HOOK)]
        annotation = info.annotation
        if schema_meta:
            annotation = typing.Annotated[(annotation, *schema_meta)]
        found = analyze(annotation, info.rebuild_annotation())
        per_model[name] = found
    return found


def may_nest(model: type[Any]) -> bool:
    """Tell whether a field of ``model`` can hold values nested without bound (a ``dict``,
    ``Any``, a list of those, a recursive embedded model...), cached per class."""
    state = derived(model)
    found: bool | None = state.get(_MAY_NEST)
    if found is None:
        try:
            found = _type_nests(model_type(model), set())
        except Exception:  # a type the analysis does not know: check every payload
            found = True
        state[_MAY_NEST] = found
    return found


def _type_nests(field: Any, seen: set[type[Any]]) -> bool:
    kind = field.kind
    if kind is Kind.LIST:
        return field.item is None or _type_nests(field.item, seen)
    if kind is Kind.MODEL:
        for model in field.models:
            if model in seen:
                return True  # a recursive model: as deep as its instances go
            inner = {*seen, model}
            fields = getattr(model, "model_fields", None)
            if fields is None:
                return True
            if any(_type_nests(field_type_of(model, name), inner) for name in fields):
                return True
        return False
    if kind is Kind.OTHER:
        # An enum, a UUID, Decimal...: a scalar. A collection, a dataclass, a TypedDict or a
        # form the analysis leaves as OTHER (Literal...) may nest: checked.
        annotation = field.annotation
        return not (
            isinstance(annotation, type)
            and not issubclass(annotation, (Mapping, *CONTAINERS))
            and not hasattr(annotation, "__dataclass_fields__")
            and not is_typeddict(annotation)
        )
    return kind in (Kind.DICT, Kind.ANY)
