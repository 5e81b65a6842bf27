"""``to_jsonable``: one call from a document, a ``values()`` row or an aggregate to JSON data.

What ``json.dumps`` (and so ``aiohttp.web.json_response``) can write: an ObjectId becomes its
24-hex string, a ``Decimal`` (or BSON ``Decimal128``) its exact decimal string, a datetime its
ISO 8601 text (``...Z`` in UTC), a document or embedded model the dict of
``model_dump(mode="json")``, tuples lists. No I/O.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import bson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from .exceptions import Invalid
from .models.fields import REFERENCES

__all__ = ["to_jsonable"]


def _fallback(value: Any) -> Any:
    # Types pydantic does not know: the BSON ones a raw row can hold.
    if isinstance(value, bson.ObjectId):
        return str(value)
    if isinstance(value, bson.Decimal128):
        return str(value.to_decimal())
    if isinstance(value, bson.Binary) and value.subtype == bson.binary.UUID_SUBTYPE:
        return str(value.as_uuid())
    if isinstance(value, Invalid):
        return to_jsonable(value.raw)
    raise TypeError(
        f"to_jsonable: a {type(value).__module__}.{type(value).__qualname__} has no JSON form"
    )


def to_jsonable(value: Any, *, references: Literal["id", "nested"] = "id") -> Any:
    """Return ``value`` as JSON data: dicts, lists, strings, numbers, booleans and ``None``.

    Takes a document (as ``model_dump(mode="json")`` gives it: ``id``, field names), a list of
    them, a ``values()`` row, an ``aggregate()`` dict, or any nesting of these. ObjectIds,
    ``Decimal`` s, ``UUID`` s and datetimes become strings (a ``Decimal`` keeps every digit,
    which a float would not); an ``odm.Invalid`` gives its stored document. A type with no
    JSON form raises ``TypeError`` naming it. ``references="nested"`` dumps each loaded
    reference as its document (``model_dump(context={"references": "nested"})``), an
    unloaded one as its id.
    """
    context = {REFERENCES: references}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", context=context)
    if isinstance(value, uuid.UUID):
        return str(value)
    return to_jsonable_python(value, by_alias=False, fallback=_fallback, context=context)
