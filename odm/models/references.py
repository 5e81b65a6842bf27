"""Refuse to write a document whose reference points to a document that was never stored.

A reference holding a document instance stores that document's id; when the instance was
never inserted the id exists nowhere, and the write would succeed with a dangling reference.
``check_saved_references`` raises :class:`odm.UnsavedReference` naming the field instead.
A reference given as an id alone cannot be checked without a query, and is written as is.

Only the fields whose declared type can hold a reference (directly, in a list or dict, or
inside an embedded model) are walked, so a model without references pays one dict lookup.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel

from ..exceptions import UnsavedReference
from .derived import derived
from .fields import Reference
from .tracking import get_snapshot

__all__ = ["check_saved_references", "reference_fields"]

#: The entry of a model's derived state (odm.models.derived) naming its reference fields.
_FIELDS: Final = "references.fields"


def reference_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names of ``model``'s fields whose type can hold a reference (cached)."""
    state = derived(model)
    found: tuple[str, ...] | None = state.get(_FIELDS)
    if found is None:
        found = state[_FIELDS] = tuple(
            name
            for name, info in model.model_fields.items()
            if _may_hold_reference(info.annotation, set())
        )
    return found


def _may_hold_reference(annotation: Any, seen: set[type[Any]]) -> bool:
    origin = get_origin(annotation)
    if annotation is Reference or origin is Reference:
        return True
    if origin is typing.Annotated:
        return _may_hold_reference(get_args(annotation)[0], seen)
    if origin is Union or origin is types.UnionType or origin is not None:
        return any(_may_hold_reference(arg, seen) for arg in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:  # a recursive embedded model: already being looked at
            return False
        seen.add(annotation)
        fields = annotation.model_fields.values()
        return any(_may_hold_reference(f.annotation, seen) for f in fields)
    return False  # a free-form value (Any, dict) never validates into a Reference


def check_saved_references(document: BaseModel) -> None:
    """Raise :class:`odm.UnsavedReference` if a reference of ``document`` holds a document
    instance that was never stored."""
    for name in reference_fields(type(document)):
        _check(document, getattr(document, name, None), name)


def _check(owner: BaseModel, value: Any, where: str) -> None:
    if isinstance(value, Reference):
        target = value.document
        if target is not None and get_snapshot(target) is None:
            raise UnsavedReference(
                f"{type(owner).__name__}.{where} refers to a {type(target).__name__} that was "
                "never saved: its id would point nowhere (insert it first, or assign the id of "
                "a stored document)",
                field=where,
            )
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(owner, item, f"{where}[{index}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check(owner, item, f"{where}[{key!r}]")
    elif isinstance(value, BaseModel) and not hasattr(type(value), "_meta"):
        # An embedded model (a Document has ``_meta`` and is not embedded by value).
        for name in reference_fields(type(value)):
            _check(owner, getattr(value, name, None), f"{where}.{name}")
