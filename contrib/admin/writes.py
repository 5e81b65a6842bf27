"""Why the write of a valid form was refused, said where the form shows it.

A form that validates may still not be stored: a value BSON cannot encode (the executor's
error may point at a whole field, at the wrong one, or at none when the culprit is a key of an
update's path: the value is found here, as deep as it can be told), a unique index that another
document already holds (told by the server as :class:`odm.DuplicateKey`, or, when the other
document was written during the form's transaction, as a write conflict: the clash is then
looked up once the transaction is over). Each gives ``(location, message)`` pairs, which the
form places at its inputs with :func:`forms.error_place`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

import bson
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError

import odm
from odm.exceptions import DuplicateKey
from odm.executor import CODEC_OPTIONS
from odm.models.indexes import Index
from odm.models.writes import get_path

from .options import strip_optional

Located = tuple[tuple[int | str, ...], str]
"""An error's location (field names, as pydantic gives them) and its message."""

CONFLICT_MESSAGE = (
    "Someone else wrote the same data while this form was being saved, so nothing was saved. "
    "Send the form again."
)
"""What a write conflict that breaks no unique index is told (a concurrent edit)."""

_MISSING = object()
_ENCODING_ERRORS = (bson.errors.InvalidDocument, OverflowError, UnicodeEncodeError)


def pydantic_errors(exc: ValidationError) -> list[Located]:
    """The located messages of a ValidationError."""
    found = exc.errors(include_url=False, include_input=False, include_context=False)
    return [(tuple(error["loc"]), error["msg"]) for error in found]


def unstorable_errors(exc: Exception, document: Any) -> list[Located] | None:
    """The messages of a write refused before anything was sent (``exc``: pydantic's
    ValidationError from the executor, or an OverflowError from comparing a datetime beyond
    year 9999 in UTC): the deepest part of ``document`` that BSON cannot store, else the
    ValidationError's own messages; ``None`` when ``exc`` is about no value of ``document``."""
    culprit = unstorable_location(document)
    if culprit is not None:
        return [culprit]
    if isinstance(exc, ValidationError):
        return pydantic_errors(exc)
    return None


def unstorable_location(document: Any) -> Located | None:
    """Where in ``document`` BSON first refuses a value, as deep as it can be told (a key
    itself is never named: the mapping holding it is, as a key BSON cannot store may not be
    shown either), with the encoder's reason."""
    names = _names_by_key(type(document))
    for key, value in document.to_bson().items():
        found = _unstorable_in(value)
        if found is not None:
            inner, error = found
            location = (names.get(key, key), *inner)
            return location, f"Value error, cannot be stored in BSON: {error}"
    return None


def _unstorable_in(value: Any) -> tuple[tuple[int | str, ...], Exception] | None:
    """The path inside ``value`` of its deepest part that BSON refuses, and why."""
    error = _encoding_error({"v": value})
    if error is None:
        return None
    parts: list[tuple[int | str, Any]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _encoding_error({key: None}) is not None:
                return (), error  # the key: the mapping holding it is the place
            parts.append((str(key), item))
    elif isinstance(value, list | tuple):
        parts = list(enumerate(value))
    for step, item in parts:
        inner = _unstorable_in(item)
        if inner is not None:
            return (step, *inner[0]), inner[1]
    return (), error


def _encoding_error(value: Mapping[Any, Any]) -> Exception | None:
    try:
        bson.encode(value, codec_options=CODEC_OPTIONS)  # as the executor encodes
    except _ENCODING_ERRORS as error:
        return error
    return None


def is_write_conflict(exc: BaseException) -> bool:
    """Tell whether ``exc`` is the server's refusal of a write that raced another one."""
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


def duplicate_errors(model: type[Any], exc: DuplicateKey) -> list[Located]:
    """The messages of a broken unique index, one at each of its fields."""
    index = _declared_index(model, exc.index)
    if index is not None:
        return _clash_messages(model, index)
    paths = [tuple(field.split("__")) for field in exc.fields]
    if not paths:
        return [((), f"another {model.__name__} already has these values of a unique index")]
    return _messages(model, paths)


async def clash_errors(model: type[Any], stored: Mapping[str, Any]) -> list[Located]:
    """The messages of every unique index of ``model`` that another stored document breaks
    with ``stored`` (a document's stored form). Run after the write's transaction ended: it
    reads what the others committed."""
    collection = odm.get_database(model._meta.alias)[model._meta.collection]
    found: list[Located] = []
    for index in _unique_indexes(model):
        query = _clash_query(index, stored)
        if query is None:
            continue
        options = {"collation": index.collation} if index.collation is not None else {}
        if await collection.find_one(query, {"_id": 1}, **options) is not None:
            found.extend(_clash_messages(model, index))
    return found


def _unique_indexes(model: type[Any]) -> list[Index]:
    return [
        index
        for index in model._meta.indexes
        if index.unique
        and index.fields != ["_id"]
        and all(direction in (1, -1) for _, direction in index.keys)
    ]


def _declared_index(model: type[Any], name: str | None) -> Index | None:
    found = [index for index in model._meta.indexes if index.name == name]
    return found[0] if found else None


def _clash_query(index: Index, stored: Mapping[str, Any]) -> dict[str, Any] | None:
    """The filter of another document holding ``stored``'s values of ``index``; ``None`` when
    the index leaves ``stored`` out (sparse, without its fields)."""
    values = {path: get_path(stored, path, _MISSING) for path in index.fields}
    if index.sparse and all(value is _MISSING for value in values.values()):
        return None
    query: dict[str, Any] = {
        path: None if value is _MISSING else value for path, value in values.items()
    }
    query["_id"] = {"$ne": stored.get("_id")}
    if index.partial is not None:
        return {"$and": [query, index.partial]}
    return query


def _clash_messages(model: type[Any], index: Index) -> list[Located]:
    return _messages(model, [field_location(model, path) for path in index.fields])


def _messages(model: type[Any], locations: list[tuple[str, ...]]) -> list[Located]:
    """One message at each of ``locations`` (an index's fields), naming them all."""
    names = [".".join(loc) for loc in locations]
    if len(names) == 1:
        message = f"{names[0]} must be unique: another {model.__name__} already has this value"
    else:
        message = (
            f"{', '.join(names)} must be unique together: another {model.__name__} already "
            "has these values"
        )
    return [(loc, message) for loc in locations]


def field_location(model: type[Any], stored_path: str) -> tuple[str, ...]:
    """The field names (a pydantic location) of the stored dotted path ``stored_path``: each
    alias is its field's name, in embedded models too; a part that is no field stays as is."""
    location: list[str] = []
    current: Any = model
    for part in stored_path.split("."):
        fields = current.model_fields if _is_model(current) else {}
        name = _names_by_key(current).get(part, part) if fields else part
        location.append(name)
        info = fields.get(name)
        current = _embedded(info.annotation) if info is not None else None
    return tuple(location)


def _names_by_key(model: type[Any]) -> dict[str, str]:
    """The field names of ``model`` by stored key (``_id`` for ``id``, aliases)."""
    names = {}
    for name, info in model.model_fields.items():
        names[info.alias or name] = name
    if "id" in model.model_fields:
        names["_id"] = "id"
    return names


def _embedded(annotation: Any) -> Any:
    """The model a path goes on into under ``annotation`` (through Optional and lists)."""
    inner, _ = strip_optional(annotation)
    if typing.get_origin(inner) is list:
        (inner,) = typing.get_args(inner) or (Any,)
        inner, _ = strip_optional(inner)
    return inner if _is_model(inner) else None


def _is_model(value: Any) -> bool:
    return (
        isinstance(value, type)
        and not isinstance(value, types.GenericAlias)
        and issubclass(value, BaseModel)
    )
