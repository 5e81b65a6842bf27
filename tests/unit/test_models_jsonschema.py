"""``validator_for``: a model's pydantic schema as a MongoDB ``$jsonSchema`` validator (no I/O;
tests/integration/documents/test_documents_jsonschema.py installs it on a real collection)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer

from odm.document import Document, Embedded
from odm.migrations import autodetect
from odm.models.fields import Decimal, Reference
from odm.models.jsonschema import HINT, validator_for
from odm.registry import registry


class VsKind(enum.Enum):
    A = "a"
    B = "b"


class VsAddress(Embedded):
    city: Annotated[str, Field(min_length=1)]
    zip_code: str | None = Field(default=None, serialization_alias="zip")


class VsTarget(Document):
    class Meta:
        collection = "vs_targets"


class VsCode(Document):
    id: int

    class Meta:
        collection = "vs_codes"


class VsModel(Document):
    name: str
    age: Annotated[int, Field(gt=0, le=150)]
    score: float = 0.0
    when: dt.datetime
    day: dt.date | None = None
    uid: uuid.UUID
    blob: bytes = b""
    price: Decimal
    kind: VsKind
    mode: Literal["x", "y"] = "x"
    tags: list[str] = []
    counts: dict[str, int] = {}
    free: dict[str, Any] = {}
    anything: Any = None
    address: VsAddress
    target: Reference[VsTarget]
    code: Reference[VsCode] | None = None
    parent: Reference[VsModel] | None = None
    stamp: Annotated[dt.datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]
    at: dt.time | None = None
    hidden: int = Field(default=0, exclude=True)

    class Meta:
        collection = "vs_models"


def test_every_field_gets_its_stored_type() -> None:
    schema = validator_for(VsModel)["$jsonSchema"]
    assert schema["bsonType"] == "object"
    properties = schema["properties"]
    assert properties == {
        "_id": {"bsonType": "objectId"},
        "name": {"bsonType": "string"},
        "age": {
            "bsonType": ["int", "long"], "minimum": 0, "exclusiveMinimum": True, "maximum": 150
        },
        "score": {"bsonType": ["double", "int", "long", "decimal"]},
        "when": {"bsonType": "date"},
        "day": {"anyOf": [{"bsonType": "date"}, {"bsonType": "null"}]},
        "uid": {"bsonType": "binData"},
        "blob": {"bsonType": "binData"},
        "price": {"bsonType": "decimal"},
        "kind": {"enum": ["a", "b"]},
        "mode": {"enum": ["x", "y"]},
        "tags": {"bsonType": "array", "items": {"bsonType": "string"}},
        "counts": {"bsonType": "object", "additionalProperties": {"bsonType": ["int", "long"]}},
        "free": {"bsonType": "object"},
        "address": {
            "bsonType": "object",
            "properties": {
                "city": {"bsonType": "string", "minLength": 1},
                "zip": {"anyOf": [{"bsonType": "string"}, {"bsonType": "null"}]},
            },
            "required": ["city"],
        },
        "target": {"bsonType": "objectId"},
        "code": {"anyOf": [{"bsonType": ["int", "long"]}, {"bsonType": "null"}]},
        "parent": {"anyOf": [{"bsonType": "objectId"}, {"bsonType": "null"}]},
        # Serialized to a string by its own serializer: stored as one.
        "stamp": {"bsonType": "string"},
        # `anything` (Any) and `at` (a time, which BSON has no type for) are unconstrained;
        # `hidden` is excluded from dumps, so it is never stored.
    }
    assert schema["required"] == [
        "name", "age", "when", "uid", "price", "kind", "address", "target", "stamp"
    ]
    assert HINT not in json.dumps(schema)


def test_the_public_json_schema_is_left_alone() -> None:
    public = VsModel.model_json_schema()
    assert HINT not in json.dumps(public)
    assert public["properties"]["target"]["format"] == "objectid"
    # A reference to a model with another id type describes that type.
    assert public["properties"]["code"]["anyOf"][0]["type"] == "integer"


def test_a_recursive_embedded_model_stops_being_constrained() -> None:
    class VsTree(Embedded):
        label: str
        children: list[VsTree] = []

    class VsForest(Document):
        tree: VsTree

        class Meta:
            collection = "vs_forests"

    try:
        schema = validator_for(VsForest)["$jsonSchema"]
        level = schema["properties"]["tree"]
        depth = 0
        while "items" in level["properties"]["children"]:
            assert level["properties"]["label"] == {"bsonType": "string"}
            level = level["properties"]["children"]["items"]
            depth += 1
        # A few levels are described, then the children are any array.
        assert 2 <= depth <= 10 and level["properties"]["children"] == {"bsonType": "array"}
    finally:
        registry.unregister(VsForest)


def test_autodetect_uses_the_models_validator() -> None:
    assert autodetect.validator_for is validator_for
