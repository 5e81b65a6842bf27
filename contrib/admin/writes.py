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
from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError
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
ENCODING_ERRORS = (bson.errors.InvalidDocument, OverflowError, UnicodeEncodeError)
"""What the BSON encoder raises for a value it cannot store."""


def pydantic_errors(exc: ValidationError, model: type[Any]) -> list[Located]:
    """The located messages of a ValidationError of ``model``, located by field names (see
    :func:`named_location`: a missing field is located by its alias, ``_id`` for ``id``)."""
    found = exc.errors(include_url=False, include_input=False, include_context=False)
    return [(named_location(model, tuple(error["loc"])), error["msg"]) for error in found]


def unstorable_errors(exc: Exception, document: Any) -> list[Located] | None:
    """The messages of a write refused before anything was sent (``exc``: pydantic's
    ValidationError from the executor, or an OverflowError from comparing a datetime beyond
    year 9999 in UTC): the deepest part of ``document`` that BSON cannot store, else the
    ValidationError's own messages; ``None`` when ``exc`` is about no value of ``document``."""
    culprit = unstorable_location(document)
    if culprit is not None:
        return [culprit]
    if isinstance(exc, ValidationError):
        return pydantic_errors(exc, type(document))  # located by stored paths
    return None


def unstorable_location(document: Any) -> Located | None:
    """Where in ``document`` BSON first refuses a value, as deep as it can be told (a key
    itself is never named: the mapping holding it is, as a key BSON cannot store may not be
    shown either), with the encoder's reason."""
    for key, value in document.to_bson().items():
        found = _unstorable_in(value)
        if found is not None:
            inner, error = found
            location = named_location(type(document), (key, *inner))
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
    except ENCODING_ERRORS as error:
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
    return tuple(str(part) for part in named_location(model, tuple(stored_path.split("."))))


def named_location(model: type[Any], stored: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The location ``stored`` (a path into ``model``'s stored form or into what pydantic
    validated, with a list's positions) in field names, as the form's inputs are named: each
    key is its field's name (``_id`` is ``id``, an alias or validation alias its field) at
    every depth, embedded models and their lists too; a position, or a part that is no field,
    stays as is."""
    location: list[int | str] = []
    current: Any = model
    for part in stored:
        name = _field_named(current, part)
        if name is not None:
            location.append(name)
            current = _embedded(current.model_fields[name].annotation)
        elif isinstance(part, int) or part.isdigit():
            location.append(part)  # a position in a list of ``current``: its rows go on
        else:
            location.append(part)
            current = None
    return tuple(location)


def _field_named(model: Any, part: int | str) -> str | None:
    """The name of the field of ``model`` that ``part`` of a location names, if it is one."""
    if not isinstance(part, str) or not _is_model(model):
        return None
    return _names_by_key(model).get(part)


def _names_by_key(model: type[Any]) -> dict[str, str]:
    """The field names of ``model`` by stored key (``_id`` for ``id``, aliases), then by
    name and by validation alias where no stored key is that (a location may be in names
    already, or name what pydantic looked for)."""
    names = {}
    for name, info in model.model_fields.items():
        names[info.serialization_alias or info.alias or name] = name
    if "id" in model.model_fields:
        names["_id"] = "id"
    for name in model.model_fields:
        names.setdefault(name, name)
    for name, info in model.model_fields.items():
        for key in _validation_keys(info.validation_alias):
            names.setdefault(key, name)
    return names


def _validation_keys(alias: str | AliasPath | AliasChoices | None) -> list[str]:
    """The keys pydantic reads a field from (an AliasPath's first step), as its locations
    name them."""
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasPath):
        return [alias.path[0]] if alias.path and isinstance(alias.path[0], str) else []
    if isinstance(alias, AliasChoices):
        return [key for choice in alias.choices for key in _validation_keys(choice)]
    return []


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
