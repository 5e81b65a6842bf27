"""A save must not store what its model would refuse to load.

Pydantic validates a value when a model is built and when a field is assigned, but not when a
value it holds is changed in place (``doc.tags.append(123)`` on a ``list[str]``, an embedded
model's list, a ``dict`` field), nor a value written to ``__dict__``. ``save()`` finds those
changes by comparing the instance with its stored snapshot, so it would otherwise store them
as they are: a document that every later read refuses with a ``ValidationError``, long after
the write that broke it.

So before an update is sent, what it stores is validated again as a read would validate it,
and pydantic's ``ValidationError`` names the field; nothing is sent. A class with validators of
its own (``@model_validator``, ``@field_validator``: they may read other fields, which must
then be validated already) has its whole new stored document validated, as a read does. Any
other class has only its changed top-level fields validated, each from the value the update
stores, with the class's own validator (``validate_assignment`` on a shallow stand-in of the
instance).

A save that changes only plain values of their fields' types (``stock += 1``: pydantic's
validated assignment) validates nothing again: :func:`odm.models.save_plan.changes` finds it
in one pass and does not call this. An insert is not checked either (see docs/documents.md,
"Change tracking": it would validate every document twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from .derived import table

__all__ = ["check_loadable"]

#: The entry of each model's derived state: stored key -> field name.
_FIELD_OF_KEY: Final = "loadable.field_of_key"

_new = object.__new__
_set = object.__setattr__


def _field_of_key(model: type[Any]) -> dict[str, str]:
    """Return ``{stored key: field name}`` for the declared fields of ``model`` (cached)."""
    names = table(model, _FIELD_OF_KEY)
    if not names:
        meta = model._meta
        names.update({meta.db_key(name): name for name in model.model_fields})
    return names


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


def check_loadable(document: Any, new_raw: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Raise pydantic's ``ValidationError`` (naming the field) when a value that an update of
    ``document`` stores under one of the top-level stored ``keys`` is one its model would not
    load back; ``new_raw`` is the stored document once the update is applied. Keys that are
    not declared fields (``_cls``, an ``extra="allow"`` key) and removed keys are left alone:
    a read does not validate the former, and gives the default for the latter."""
    model = type(document)
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or decorators.field_validators:
        model.model_validate(new_raw)  # what a read does (odm.models.loading)
        return
    field_of_key = _field_of_key(model)
    stand_in = None
    validator = model.__pydantic_validator__
    for key in keys:
        name = field_of_key.get(key)
        if name is None or key not in new_raw:
            continue
        if stand_in is None:
            stand_in = _stand_in(document)
        validator.validate_assignment(stand_in, name, new_raw[key])
