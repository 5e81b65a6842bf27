"""Field types and markers: ObjectId and Decimal as pydantic types, Reference, Indexed, Field,
utcnow.

No I/O here except :meth:`Reference.fetch`, which goes through the model's manager.
"""

from __future__ import annotations

import datetime as _dt
import decimal as _decimal
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    ForwardRef,
    Generic,
    Self,
    TypeVar,
    get_args,
    get_origin,
)

import bson
from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic import Field as _PydanticField
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ..registry import registry
from .derived import derived

if TYPE_CHECKING:
    from typing import Annotated as Annotated

__all__ = [
    "BSON_TYPE_METADATA",
    "REFERENCE_METADATA",
    "Decimal",
    "DecimalAnnotation",
    "Field",
    "Indexed",
    "ObjectId",
    "ObjectIdAnnotation",
    "Reference",
    "reference_target",
    "utcnow",
]

#: Key of a pydantic core schema's ``metadata`` giving the ``$jsonSchema`` fragment of the
#: stored value (``{"bsonType": "decimal"}``); read by :mod:`odm.models.jsonschema`.
BSON_TYPE_METADATA = "odm_bson_type"
#: Key of a :class:`Reference` core schema's ``metadata``: a function returning the target
#: class (or ``None`` while it is unknown); read by :mod:`odm.models.jsonschema`.
REFERENCE_METADATA = "odm_reference_target"

Field = _PydanticField
"""pydantic's ``Field``, re-exported so that models need only ``import odm``."""


def utcnow() -> _dt.datetime:
    """Return the current time as an aware UTC datetime truncated to milliseconds (BSON's
    precision), so that a value round-trips through the database unchanged."""
    now = _dt.datetime.now(_dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _object_id_from_str(value: str) -> bson.ObjectId:
    if not bson.ObjectId.is_valid(value):
        raise ValueError(f"{value!r} is not a valid ObjectId (24 hexadecimal characters)")
    return bson.ObjectId(value)


class ObjectIdAnnotation:
    """Pydantic schema of :data:`ObjectId`: accepts an ObjectId or its 24-hex string, dumps to
    the ObjectId in Python mode and to the string in JSON mode."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        from_str = core_schema.chain_schema(
            [
                core_schema.str_schema(),
                core_schema.no_info_plain_validator_function(_object_id_from_str),
            ]
        )
        # One clear error for a bad value, not one per union member.
        message = "Value is not a valid ObjectId: expected an ObjectId or 24 hexadecimal characters"
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=core_schema.union_schema(
                [core_schema.is_instance_schema(bson.ObjectId), from_str],
                mode="left_to_right",
                custom_error_type="objectid",
                custom_error_message=message,
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(
                str, when_used="json"
            ),
            metadata={BSON_TYPE_METADATA: {"bsonType": "objectId"}},
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": "^[0-9a-fA-F]{24}$",
            "format": "objectid",
            "examples": ["5eb7cf5a86d9755df3a6c593"],
        }


if TYPE_CHECKING:
    ObjectId = Annotated[bson.ObjectId, ObjectIdAnnotation]
else:
    from typing import Annotated

    ObjectId = Annotated[bson.ObjectId, ObjectIdAnnotation]
"""A BSON ObjectId as a pydantic type: ``bson.ObjectId`` values, validated from 24-hex strings."""


def _decimal_from_bson(value: Any) -> Any:
    return value.to_decimal() if isinstance(value, bson.Decimal128) else value


def _as_decimal128(value: _decimal.Decimal) -> _decimal.Decimal:
    try:
        stored = bson.Decimal128(value)
    except _decimal.DecimalException:
        raise ValueError(
            f"{value} cannot be stored as a BSON Decimal128 (at most 34 significant digits, "
            "exponent from -6176 to 6111)"
        ) from None
    # The value the database will give back (same digits and exponent, except a clamped one).
    return stored.to_decimal()


def _decimal_serializer(value: _decimal.Decimal, info: Any) -> Any:
    if getattr(info, "mode", "python") == "json":
        return str(value)
    return bson.Decimal128(value)


class DecimalAnnotation:
    """Pydantic schema of :data:`Decimal`: a ``decimal.Decimal`` stored as BSON Decimal128.

    Validates what ``decimal.Decimal`` accepts (constraints such as ``ge`` or ``max_digits``
    included) and ``bson.Decimal128`` (what the database gives back); refuses a value that
    Decimal128 cannot hold exactly. Dumps to ``bson.Decimal128`` in Python mode (what
    ``to_bson()`` stores and what query values become) and to a string in JSON mode.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            _decimal_from_bson,
            core_schema.no_info_after_validator_function(
                _as_decimal128, handler(_decimal.Decimal)
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _decimal_serializer, info_arg=True
            ),
            metadata={BSON_TYPE_METADATA: {"bsonType": "decimal"}},
        )


Decimal = Annotated[_decimal.Decimal, DecimalAnnotation]
"""A ``decimal.Decimal`` field stored as BSON Decimal128: ``price: odm.Decimal``."""


@dataclass(frozen=True)
class Indexed:
    """Marks a field as indexed: ``email: Annotated[str, Indexed(unique=True)]``.

    ``direction`` is 1 (ascending), -1, ``"text"`` or ``"hashed"``; the other options are those of
    :class:`odm.Index`.
    """

    direction: int | str = 1
    unique: bool = False
    sparse: bool = False
    expire_after: float | None = None
    name: str | None = None
    partial: dict[str, Any] | None = None


T = TypeVar("T")


class Reference(Generic[T]):
    """A reference to another Document, stored as that document's ``_id``.

    Assign a document or its id; read ``.id``, and ``.document`` once loaded (by
    ``select_related`` or :meth:`fetch`). ``model_dump()`` gives the id;
    ``model_dump(mode="json", context={"references": "nested"})`` gives a loaded reference as
    its document, dumped the same way (an unloaded one stays an id, and so does a reference
    back to a document being dumped). A document assigned must be stored before the one that
    refers to it is written (:class:`odm.UnsavedReference` otherwise).
    """

    __slots__ = ("document", "id", "model")

    def __init__(
        self, id: Any, document: T | None = None, model: type[T] | None = None
    ) -> None:
        self.id = id
        self.document = document
        self.model = model if model is not None or document is None else type(document)

    if TYPE_CHECKING:
        # To type checkers a Reference field is a descriptor (PEP 681, dataclass_transform):
        # the constructor and assignments take what validation accepts (the document, a
        # Reference, or the id, whose type depends on the target), reading gives the Reference.

        def __get__(self, instance: object | None, owner: Any) -> Self: ...

        def __set__(self, instance: object, value: T | Reference[T] | Any) -> None: ...

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        resolved: list[type[Any] | None] = [reference_target(source)]

        def current_target() -> type[Any] | None:
            # A target named by a string is looked up when first needed, once it exists.
            if resolved[0] is None:
                resolved[0] = reference_target(source)
            return resolved[0]

        def validate(value: Any) -> Reference[Any]:
            target = resolved[0] if resolved[0] is not None else current_target()
            if target is None:
                return _reference_unchecked(value)
            return _reference_to(target, value)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _reference_serializer, info_arg=True
            ),
            json_schema_input_schema=core_schema.str_schema(),
            metadata={REFERENCE_METADATA: current_target},
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        description = {"description": "id of the referenced document"}
        getter: Callable[[], type[Any] | None] | None = (schema.get("metadata") or {}).get(
            REFERENCE_METADATA
        )
        target = getter() if getter is not None else None
        id_info = getattr(target, "model_fields", {}).get("id")
        if id_info is not None and not _annotation_is_object_id(id_info):
            # Another id type (str, int, UUID...): the reference holds one of those.
            from pydantic import TypeAdapter

            id_type: Any = id_info.annotation
            if id_info.metadata:
                id_type = typing.Annotated[(id_type, *id_info.metadata)]
            return {**TypeAdapter(id_type).json_schema(mode=handler.mode), **description}
        return {"type": "string", "format": "objectid", **description}

    async def fetch(self, *, timeout: float | None = None) -> T:
        """Load (once) and return the referenced document.

        Raises the target's ``DoesNotExist`` when no document has the id.
        """
        if self.document is None:
            if self.model is None:
                raise LookupError(
                    f"Reference({self.id!r}) does not know its target model; declare the field "
                    "as Reference[Model]"
                )
            # Through the target's manager, as any load by id: the models layer does no I/O.
            target: Any = self.model
            self.document = await target.objects.timeout(timeout).get(id=self.id)
        return self.document

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Reference):
            return bool(self.id == other.id)
        return bool(self.id == getattr(other, "id", other))

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        loaded = ", loaded" if self.document is not None else ""
        return f"Reference({self.id!r}{loaded})"


#: The entry of a target model's derived state (odm.models.derived): its :class:`_IdCheck`.
_ID_CHECK: Final = "fields.reference_id"


@dataclass(frozen=True, slots=True)
class _IdCheck:
    """How a reference checks an id against its target's ``id`` field."""

    #: The type whose values the ``id`` field takes as they are (an id just read from the
    #: database: no validation call), or ``None``.
    plain: type | None
    #: The ``id`` field's own validator, or ``None`` when the target declares no ``id``.
    validate: Callable[[Any], Any] | None


def _id_check(target: type[Any]) -> _IdCheck:
    """The (cached) :class:`_IdCheck` of references to ``target``."""
    state = derived(target)
    check: _IdCheck | None = state.get(_ID_CHECK)
    if check is None:
        check = state[_ID_CHECK] = _make_id_check(target)
    return check


def _make_id_check(target: type[Any]) -> _IdCheck:
    info = getattr(target, "model_fields", {}).get("id")
    if info is None:
        return _IdCheck(None, None)
    from pydantic import TypeAdapter

    id_type: Any = info.annotation
    if info.metadata:
        id_type = typing.Annotated[(id_type, *info.metadata)]
    if _annotation_is_object_id(info):
        plain: type | None = bson.ObjectId
    elif not info.metadata and info.annotation in (str, int):
        plain = info.annotation  # no constraint: a str (int) is the id as it is
    else:
        plain = None
    return _IdCheck(plain, TypeAdapter(id_type).validator.validate_python)


def _reference_to(target: type[Any], value: Any) -> Reference[Any]:
    """The Reference a field declared ``Reference[target]`` holds for ``value``: a ``target``
    document (or one of a subclass), a Reference to one, or an id of the ``target``'s id type
    (validated as that field validates it: ``"<24 hex>"`` becomes an ObjectId). Anything else
    raises ``ValueError``: stored, it would not load back."""
    check = _id_check(target)
    if type(value) is check.plain:  # an id read from the database: the usual case
        return Reference(value, None, target)
    if isinstance(value, Reference):
        return _rewrapped(target, check, value)
    if isinstance(value, target):
        return Reference(getattr(value, "id", None), value, target)
    if isinstance(value, BaseModel):
        raise ValueError(
            f"a reference to {target.__name__} takes a {target.__name__} (or a subclass), "
            f"a Reference or an id, not a {type(value).__name__}"
        )
    return Reference(_target_id(target, check, value), None, target)


def _rewrapped(target: type[Any], check: _IdCheck, value: Reference[Any]) -> Reference[Any]:
    """``value`` as a reference to ``target``: refused when it refers to another class (its
    document, or its declared model, is not a ``target``), its id checked when unloaded."""
    document, model = value.document, value.model
    if document is not None and not isinstance(document, target):
        raise ValueError(
            f"a reference to {target.__name__} cannot hold a {type(document).__name__}"
        )
    if document is None and model is not None and not _is_subclass(model, target):
        raise ValueError(
            f"a reference to {target.__name__} cannot hold a reference to {model.__name__}"
        )
    ident = value.id if document is not None else _target_id(target, check, value.id)
    if model is not None and ident is value.id:
        return value
    return Reference(ident, document, model if model is not None else target)


def _is_subclass(model: Any, target: type[Any]) -> bool:
    return isinstance(model, type) and issubclass(model, target)


def _target_id(target: type[Any], check: _IdCheck, value: Any) -> Any:
    """``value`` validated as ``target``'s id (``ValueError`` naming the expected type)."""
    if type(value) is check.plain:
        return value
    if check.validate is None:  # no id field to check against
        return _reference_unchecked(value).id
    try:
        return check.validate(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"] if exc.error_count() else str(exc)
        raise ValueError(
            f"a reference to {target.__name__} takes a {target.__name__}, a Reference or a "
            f"{target.__name__} id, not this {type(value).__name__} ({reason})"
        ) from None


def _reference_unchecked(value: Any) -> Reference[Any]:
    """The Reference for ``value`` when the target is not known yet (a string naming a class
    not declared yet): a document's id, a 24-hex string as an ObjectId, or a scalar id as it
    is; a container, ``None`` or a model that is not a Document is refused."""
    if isinstance(value, Reference):
        return value
    if isinstance(value, str) and bson.ObjectId.is_valid(value):
        return Reference(bson.ObjectId(value), None, None)
    if isinstance(value, BaseModel) and getattr(type(value), "_meta", None) is not None:
        return Reference(getattr(value, "id", None), value, type(value))
    if value is None or isinstance(value, BaseModel | Mapping | list | tuple | set | frozenset):
        raise ValueError(
            f"a reference is an id or a document, not {type(value).__name__}"
        )
    return Reference(value, None, None)


#: ``model_dump(context={REFERENCES: NESTED})`` dumps each loaded reference as its document.
REFERENCES = "references"
NESTED = "nested"
#: Context key (odm's own) holding the ids of the documents being dumped, outermost first:
#: a reference back to one of them is dumped as its id, so a cycle ends.
_DUMPING = "odm_dumping"


def _reference_serializer(value: Reference[Any], info: Any) -> Any:
    document = value.document
    context = getattr(info, "context", None)
    if document is not None and isinstance(context, dict) and context.get(REFERENCES) == NESTED:
        chain: tuple[int, ...] = context.get(_DUMPING, ())
        if id(document) not in chain:
            nested: dict[str, Any] = document.model_dump(
                mode=info.mode,
                by_alias=info.by_alias,
                exclude_none=info.exclude_none,
                exclude_defaults=info.exclude_defaults,
                exclude_unset=info.exclude_unset,
                context={**context, _DUMPING: (*chain, id(document))},
            )
            return nested
    if getattr(info, "mode", "python") == "json" and isinstance(value.id, bson.ObjectId):
        return str(value.id)
    return value.id


def _annotation_is_object_id(info: Any) -> bool:
    return info.annotation is bson.ObjectId or any(
        m is ObjectIdAnnotation for m in getattr(info, "metadata", ())
    )


def _lookup(name: str, module: str | None) -> type[Any] | None:
    """Find the Document class named ``name``: in ``module`` first, else in the registry."""
    if module is not None:
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type):
            return found
    try:
        return registry.get(name)
    except LookupError:
        return None


def reference_target(annotation: Any) -> type[Any] | None:
    """Return ``Customer`` for ``Reference[Customer]`` (also inside Optional or a list), else
    ``None``.

    A target written as a string (``Reference["Customer"]``) is looked up in the registry of
    Document classes (a dotted ``"shop.models.Customer"`` picks one of several classes of that
    name); it is ``None`` until the class is declared.
    """
    if get_origin(annotation) is Reference:
        args = get_args(annotation)
        if not args:
            return None
        target = args[0]
        if isinstance(target, type):
            return target
        if isinstance(target, ForwardRef):
            return _lookup(target.__forward_arg__, target.__forward_module__)
        if isinstance(target, str):
            return _lookup(target, None)
        return None
    for arg in get_args(annotation):
        found = reference_target(arg)
        if found is not None:
            return found
    return None
