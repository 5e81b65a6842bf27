"""MongoDB ``$jsonSchema`` validators built from the models' pydantic JSON schema.

:func:`validator_for` describes what :meth:`Document.to_bson` stores, in MongoDB's dialect of
JSON schema (draft 4 with ``bsonType``). It starts from the model's JSON schema in
serialization mode (what a dump holds: serialization aliases, excluded fields left out), made
by a generator that marks the nodes whose stored BSON type the JSON schema cannot tell:
datetimes and dates (``date``), bytes and UUIDs (``binData``), ObjectIds (``objectId``),
:data:`odm.models.fields.Decimal` (``decimal``) and references (the target's id type).

The rule: a validator that is too loose is harmless, one that is too strict rejects the
application's own writes. Whatever cannot be mapped with certainty (``Any``, custom types,
formats the ODM does not know, a recursive model's deeper levels) is left unconstrained, and
keys that stored documents may hold without the model declaring them (``_cls``, fields of a
polymorphic subclass, fields other programs write) are allowed. No I/O here.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .fields import BSON_TYPE_METADATA, REFERENCE_METADATA

__all__ = ["BsonJsonSchema", "bson_schema", "validator_for"]

#: Key under which :class:`BsonJsonSchema` puts a node's ``$jsonSchema`` fragment.
HINT = "x-odm-bson"
#: Beyond this depth (a recursive model) nothing is constrained.
MAX_DEPTH = 10
_NUMBER = ["double", "int", "long", "decimal"]


class BsonJsonSchema(GenerateJsonSchema):
    """A pydantic JSON schema generator that adds, under :data:`HINT`, the ``$jsonSchema``
    fragment of the values the JSON schema alone cannot tell apart (a datetime and a string
    are both ``"type": "string"`` in JSON)."""

    def generate_inner(self, schema: Any) -> JsonSchemaValue:
        """Generate as pydantic does, then add the hint that the core schema's metadata
        gives (``odm.ObjectId``, ``odm.Decimal``, ``Reference``)."""
        out = super().generate_inner(schema)
        metadata = schema.get("metadata") if isinstance(schema, Mapping) else None
        if not metadata or "$ref" in out:
            return out
        hint: dict[str, Any] | None = None
        if BSON_TYPE_METADATA in metadata:
            hint = dict(metadata[BSON_TYPE_METADATA])
        elif REFERENCE_METADATA in metadata:
            getter: Callable[[], type[Any] | None] = metadata[REFERENCE_METADATA]
            hint = id_schema(getter())
        if hint is not None:
            out = {**out, HINT: hint}
        return out

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        """A datetime is stored as a BSON date."""
        return {**super().datetime_schema(schema), HINT: {"bsonType": "date"}}

    def date_schema(self, schema: core_schema.DateSchema) -> JsonSchemaValue:
        """A date is stored as a BSON date (midnight UTC)."""
        return {**super().date_schema(schema), HINT: {"bsonType": "date"}}

    def bytes_schema(self, schema: core_schema.BytesSchema) -> JsonSchemaValue:
        """Bytes are stored as BSON binary data."""
        return {**super().bytes_schema(schema), HINT: {"bsonType": "binData"}}

    def uuid_schema(self, schema: core_schema.UuidSchema) -> JsonSchemaValue:
        """A UUID is stored as BSON binary data (subtype 4)."""
        return {**super().uuid_schema(schema), HINT: {"bsonType": "binData"}}


def id_schema(target: type[Any] | None) -> dict[str, Any] | None:
    """Return the ``$jsonSchema`` of the stored ``_id`` of ``target`` (what a reference to it
    holds), or ``None`` when the target or its id type is unknown."""
    info = getattr(target, "model_fields", {}).get("id")
    if info is None:
        return None
    annotation: Any = info.annotation
    if info.metadata:
        annotation = typing.Annotated[(annotation, *info.metadata)]
    schema = TypeAdapter(annotation).json_schema(
        mode="serialization", schema_generator=BsonJsonSchema
    )
    return bson_schema(schema, schema.get("$defs", {}))


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs.get(ref.split("/")[-1], {}))
    return node


def _copy(node: Mapping[str, Any], out: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in node:
            out[key] = node[key]


def bson_schema(
    node: Mapping[str, Any], defs: Mapping[str, Any], depth: int = 0
) -> dict[str, Any] | None:
    """Convert one pydantic JSON schema node to MongoDB's ``$jsonSchema`` dialect.

    Returns ``None`` (no constraint) for what cannot be mapped with certainty to a BSON type.
    ``defs`` are the schema's ``$defs`` (embedded models).
    """
    if depth > MAX_DEPTH:
        return None
    node = _resolve(node, defs)
    hint = node.get(HINT)
    if isinstance(hint, Mapping):
        return dict(hint)
    if "allOf" in node and len(node["allOf"]) == 1:
        return bson_schema(node["allOf"][0], defs, depth + 1)
    if "anyOf" in node or "oneOf" in node:
        members = node.get("anyOf", node.get("oneOf"))
        parts = [bson_schema(part, defs, depth + 1) for part in members]
        if any(part is None for part in parts):
            return None
        return {"anyOf": parts}
    if "enum" in node:
        return {"enum": list(node["enum"])}
    if "const" in node:
        return {"enum": [node["const"]]}
    kind = node.get("type")
    out: dict[str, Any]
    if kind == "string":
        fmt = node.get("format")
        if fmt == "date-time":
            return {"bsonType": "date"}
        if fmt == "objectid":
            return {"bsonType": "objectId"}
        if fmt is not None:
            return None
        out = {"bsonType": "string"}
        _copy(node, out, ("minLength", "maxLength", "pattern"))
        return out
    if kind in ("integer", "number"):
        out = {"bsonType": ["int", "long"] if kind == "integer" else list(_NUMBER)}
        _copy(node, out, ("minimum", "maximum"))
        # Draft 2020 gives exclusive bounds as numbers, MongoDB (draft 4) as flags.
        if "exclusiveMinimum" in node:
            out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
        if "exclusiveMaximum" in node:
            out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
        return out
    if kind == "boolean":
        return {"bsonType": "bool"}
    if kind == "null":
        return {"bsonType": "null"}
    if kind == "array":
        out = {"bsonType": "array"}
        items = bson_schema(node["items"], defs, depth + 1) if "items" in node else None
        if items is not None and "prefixItems" not in node:
            out["items"] = items
        _copy(node, out, ("minItems", "maxItems"))
        return out
    if kind == "object":
        out = {"bsonType": "object"}
        properties = {}
        for name, sub in dict(node.get("properties", {})).items():
            converted = bson_schema(sub, defs, depth + 1)
            if converted is not None:
                properties[name] = converted
        if properties:
            out["properties"] = properties
        if node.get("required"):
            out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping) and not node.get("properties"):
            # A dict[str, X]: every value is an X.
            values = bson_schema(extra, defs, depth + 1)
            if values is not None:
                out["additionalProperties"] = values
        return out
    return None


def validator_for(model: type[Any]) -> dict[str, Any]:
    """Return the ``{"$jsonSchema": {...}}`` validator of ``model``'s stored documents.

    Each field gets the ``bsonType`` of its stored value (``_id`` included), embedded models
    and lists are described inside, required fields are required, ``Optional`` allows
    ``null``, enums and ``Literal`` list their stored values; see the module docstring for
    what is left unconstrained.
    """
    schema = model.model_json_schema(
        by_alias=True, mode="serialization", schema_generator=BsonJsonSchema
    )
    converted = bson_schema(schema, schema.get("$defs", {})) or {"bsonType": "object"}
    return {"$jsonSchema": converted}
