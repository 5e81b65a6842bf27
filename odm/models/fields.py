"""Field types and markers: ObjectId as a pydantic type, Reference, Indexed, Field, utcnow.

No I/O here except :meth:`Reference.fetch`, which goes through the model's manager.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args, get_origin

import bson
from pydantic import Field as _PydanticField
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

if TYPE_CHECKING:
    from typing import Annotated as Annotated

__all__ = [
    "Field",
    "Indexed",
    "ObjectId",
    "ObjectIdAnnotation",
    "Reference",
    "reference_target",
    "utcnow",
]

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
    ``select_related`` or :meth:`fetch`).
    """

    __slots__ = ("document", "id", "model")

    def __init__(
        self, id: Any, document: T | None = None, model: type[T] | None = None
    ) -> None:
        self.id = id
        self.document = document
        self.model = model if model is not None or document is None else type(document)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        target = reference_target(source)

        def validate(value: Any) -> Reference[Any]:
            if isinstance(value, Reference):
                if value.model is None and target is not None:
                    return Reference(value.id, value.document, target)
                return value
            if target is not None and isinstance(value, target):
                return Reference(getattr(value, "id", None), value, target)
            if isinstance(value, str) and bson.ObjectId.is_valid(value):
                return Reference(bson.ObjectId(value), None, target)
            if isinstance(value, dict | list) or value is None:
                raise ValueError("a reference is an id or a document, not a dict, list or None")
            return Reference(value, None, target)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _reference_serializer, info_arg=True
            ),
            json_schema_input_schema=core_schema.str_schema(),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "objectid",
            "description": "id of the referenced document",
        }

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
            from .loading import fetch_by_id

            self.document = await fetch_by_id(self.model, self.id, timeout=timeout)
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


def _reference_serializer(value: Reference[Any], info: Any) -> Any:
    if getattr(info, "mode", "python") == "json" and isinstance(value.id, bson.ObjectId):
        return str(value.id)
    return value.id


def reference_target(annotation: Any) -> type[Any] | None:
    """Return ``Customer`` for ``Reference[Customer]`` (also inside Optional), else ``None``."""
    if get_origin(annotation) is Reference:
        args = get_args(annotation)
        return args[0] if args and isinstance(args[0], type) else None
    for arg in get_args(annotation):
        found = reference_target(arg)
        if found is not None:
            return found
    return None


