"""A save must not store what its model would refuse to load.

Pydantic validates a value when a model is built and when a field is assigned, but not when a
value it holds is changed in place (``doc.tags.append(123)`` on a ``list[str]``, an embedded
model's list, a ``dict`` field), nor a value written to ``__dict__``. ``save()`` finds those
changes by comparing the instance with its stored snapshot, so it would otherwise store them
as they are: a document that every later read refuses with a ``ValidationError``, long after
the write that broke it.

So before an update is sent, what it stores is validated again as a read would validate it,
and pydantic's ``ValidationError`` names the field; nothing is sent. A class with a validator
that may read other fields (a ``@model_validator``; a field validator given ``info``, whose
``info.data`` holds the fields declared before, as a read validated them) or a frozen field
(which refuses any assignment) has its whole new stored document validated, as a read does.
Any other class has only its changed top-level fields validated, each from the value the
update stores, with the class's own validator (``validate_assignment`` on a shallow stand-in
of the instance).

A save that changes only plain values of their fields' types (``stock += 1``: pydantic's
validated assignment) validates nothing again: :func:`odm.models.save_plan.changes` finds it
in one pass and does not call this. An insert is not checked either (see docs/documents.md,
"Change tracking": it would validate every document twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import bson
from bson.errors import BSONError

from ..codec import CODEC_OPTIONS
from .derived import derived

__all__ = ["check_loadable"]

#: The entry of each model's derived state: ``{stored key: field name}``, or ``None`` when
#: the whole new document is validated instead (see :func:`_field_of_key`).
_FIELD_OF_KEY: Final = "loadable.field_of_key"

#: Not worked out yet (``None`` is an answer: validate the whole document).
_UNKNOWN: Final = object()

_new = object.__new__
_set = object.__setattr__


def _field_of_key(model: type[Any]) -> dict[str, str] | None:
    """Return ``{stored key: field name}`` for the declared fields of ``model``, or ``None``
    when one field cannot be validated apart from the others (cached per class): a model
    validator, or a validator given ``info`` (:func:`_reads_other_fields`), may read other
    fields, and a frozen field refuses any assignment, even of a valid value (a frozen list
    is still changed in place)."""
    state = derived(model)
    plan: Any = state.get(_FIELD_OF_KEY, _UNKNOWN)
    if plan is _UNKNOWN:
        whole = bool(model.__pydantic_decorators__.model_validators) or any(
            info.frozen for info in model.model_fields.values()
        )
        whole = whole or _reads_other_fields(model.__pydantic_core_schema__)
        meta = model._meta
        plan = state[_FIELD_OF_KEY] = None if whole else {
            meta.db_key(name): name for name in model.model_fields
        }
    return plan  # type: ignore[no-any-return]


#: Keys of a core schema that hold no validation: how a value is dumped, and annotations.
_NOT_VALIDATION: Final = frozenset({"serialization", "metadata", "function", "json_schema"})


def _reads_other_fields(schema: Mapping[str, Any]) -> bool:
    """Tell whether a validator of the model whose core schema is ``schema`` may read other
    fields: a function validator given ``info`` (``@field_validator`` with an ``info``
    argument, ``Annotated[..., AfterValidator(f)]`` where ``f`` takes one), in a field or
    its items; ``info.data`` then holds the fields declared before. Validators inside an
    embedded model see that model's own fields only, which validating it whole provides. A
    definition the schema names but does not hold counts as a yes (unknown)."""
    definitions: dict[str, Any] = {}
    if schema.get("type") == "definitions":
        definitions = {str(d.get("ref")): d for d in schema.get("definitions", ())}
        schema = schema["schema"]
    if schema.get("type") == "definition-ref":
        schema = definitions.get(str(schema.get("schema_ref")), {})
    followed: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "model" and node is not schema:
            continue  # an embedded model: its validators see its own fields
        if kind == "definition-ref":
            ref = str(node.get("schema_ref"))
            if ref not in followed:
                followed.add(ref)
                if ref not in definitions:
                    return True
                stack.append(definitions[ref])
            continue
        if isinstance(kind, str) and kind.startswith("function-"):
            function = node.get("function")
            if not isinstance(function, dict) or function.get("type") != "no-info":
                return True
        stack.extend(
            value for key, value in node.items()
            if key not in _NOT_VALIDATION and isinstance(value, dict | list)
        )
    return False


def _stand_in(document: Any) -> Any:
    """Return a shallow copy of ``document`` made without running anything of its class
    (no ``__init__``, ``model_post_init`` or odm's tracking): only validators read it."""
    stand_in = _new(type(document))
    _set(stand_in, "__dict__", dict(document.__dict__))
    _set(stand_in, "__pydantic_fields_set__", set(document.__pydantic_fields_set__))
    extra = document.__pydantic_extra__
    _set(stand_in, "__pydantic_extra__", None if extra is None else dict(extra))
    private = document.__pydantic_private__
    _set(stand_in, "__pydantic_private__", None if private is None else dict(private))
    return stand_in


#: What encoding a value may raise: BSON has no type for it, or an int is out of range. The
#: driver raises the same when it encodes the write, and the executor names the culprit.
_UNENCODABLE: Final = (BSONError, OverflowError, TypeError, ValueError)


def _read_back(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return ``document`` as a read gets it back from the server (encoded and decoded with
    the collections' codec: an enum member comes back as its value, a ``date`` as a
    datetime, a tuple as a list), or ``None`` when it cannot be encoded."""
    try:
        return bson.decode(bson.encode(document, codec_options=CODEC_OPTIONS), CODEC_OPTIONS)
    except _UNENCODABLE:
        return None


def check_loadable(document: Any, new_raw: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Raise pydantic's ``ValidationError`` (naming the field) when a value that an update of
    ``document`` stores under one of the top-level stored ``keys`` is one its model would not
    load back; ``new_raw`` is the stored document once the update is applied. What is
    validated is what a read gets back (:func:`_read_back`). Keys that are not declared fields
    (``_cls``, an ``extra="allow"`` key) are left alone: a read does not validate them; nor
    is a key the update removes (a declared field is never removed whole: a ``del`` of one
    sends nothing). A value BSON cannot hold is left to the driver, which refuses to encode
    the update."""
    model = type(document)
    field_of_key = _field_of_key(model)
    if field_of_key is None:
        stored = _read_back(new_raw)
        if stored is not None:  # else the driver refuses to encode the write
            model.model_validate(stored)  # what a read does (odm.models.loading)
        return
    changed = {
        name: key
        for key in keys
        if key in new_raw and (name := field_of_key.get(key)) is not None
    }
    if not changed:
        return
    stored = _read_back({key: new_raw[key] for key in changed.values()})
    if stored is None:
        return
    stand_in = _stand_in(document)
    validator = model.__pydantic_validator__
    for name, key in changed.items():
        validator.validate_assignment(stand_in, name, stored[key])
