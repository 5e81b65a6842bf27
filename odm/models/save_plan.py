"""What ``save()`` sends, found without dumping the whole document.

The comparison follows a plan read once per class from its pydantic core schema (what its
serializer does with each field), so that ``save()`` does not dump the whole document:

- a value that is the very object of the snapshot is unchanged (values are loaded as the
  objects of the raw document, and a write stores the dumped objects; mutable values that
  pydantic would share with the raw document are copied into the snapshot when loaded, see
  ``Options.shared_keys``);
- a field whose dump is the value itself (``str``, ``int``, ``float``, ``bool``, ``bytes``,
  ``datetime``, ``date``, ``ObjectId``, enums, literals, ``None``; no serializer of its own)
  is compared by value: all such fields of a model at once with ``==`` (C loops), then the
  ones that differ with :func:`same`;
- an embedded model (declared class, exactly) is compared field by field against the stored
  sub-document, and a list of them item by item; in-place changes are seen because the
  instance's values are compared (no dirty flags); a model whose fields are all such
  immutable values, stored under their own names, is compared as one ``__dict__ == stored``;
- anything else (other containers, ``Any``, custom types, serializers, a subclass
  instance...) is dumped on its own, that field only, and compared as the whole dump was.

A class the plan cannot describe (a model serializer, computed fields, ``extra="allow"``,
an overridden ``model_dump`` / ``to_bson``...) is dumped whole and diffed, as before. The one
difference from diffing a whole dump: a stored BSON ``bool`` read into an ``int`` / ``float``
field (``True`` loaded as ``1``) is equal to it, so a save does not rewrite it as a number.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from contextlib import suppress
from itertools import compress, repeat
from operator import is_not, itemgetter
from typing import Any

import bson

from .diffing import ChangeSet, Path, diff, diff_value, same
from .options import CLASS_KEY

__all__ = ["changes"]

_MISSING: Any = object()

# Field kinds of a plan.
_PLAIN = 0  # the dump of a value whose type is in ``types`` is the value itself
_ANY = 1  # the same, but the value may be of any type (``Any``): never compared in bulk
_MODEL = 2  # an embedded model of class ``sub.cls``: compared field by field
_MODEL_LIST = 3  # a list of such models: compared item by item
_OTHER = 4  # anything else: dumped on its own unless it is the very object of the snapshot

#: The types that pydantic's serializer returns as they are when it infers (``Any``, or a
#: serializer used in JSON mode only, such as ``odm.ObjectId``'s).
_AS_IS: frozenset[type[Any]] = frozenset(
    {str, int, float, bool, bytes, type(None), _dt.datetime, bson.ObjectId}
)
_SCALAR_SCHEMAS: dict[str, type[Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
    "datetime": _dt.datetime,
    "date": _dt.date,
    "none": type(None),
}
#: Core schema wrappers whose serializer is that of the schema they wrap.
_TRANSPARENT = frozenset({"default", "function-before", "function-after"})
#: The keys of a ``model-field`` schema a plan understands (``serialization_exclude_if``,
#: say, decides per value: such a model is dumped whole).
_FIELD_KEYS = frozenset(
    {
        "type",
        "schema",
        "validation_alias",
        "serialization_alias",
        "serialization_exclude",
        "frozen",
        "metadata",
    }
)

#: One field of a plan: (name, stored key, kind, types, plan of the embedded model).
_FieldPlan = tuple[str, str, int, frozenset[type[Any]], "_ModelPlan | None"]


class _Group:
    """Plain fields read all at once (``itemgetter``: C loops) from the instance's
    ``__dict__`` and from the stored sub-document, so that only the fields that may have
    changed are looked at one by one."""

    __slots__ = ("fields", "keys_of", "names_of")

    def __init__(self, fields: list[_FieldPlan]) -> None:
        self.fields = tuple(fields)
        self.names_of = itemgetter(*(field[0] for field in fields))
        self.keys_of = itemgetter(*(field[1] for field in fields))


class _ModelPlan:
    """How one model class is dumped, field by field (see the module docstring)."""

    __slots__ = ("cls", "fields", "flat", "keys", "plain", "rest", "size")

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.fields: tuple[_FieldPlan, ...] = ()
        self.keys: frozenset[str] = frozenset()
        self.size = 0
        # Every field plain and stored under its own name: an instance is unchanged when its
        # ``__dict__`` equals the stored sub-document (one C-level comparison, which tries
        # identity first). Only a ``bool`` stored where an ``int`` / ``float`` equal to it is
        # loaded differs from comparing with :func:`same`: such a value is not rewritten.
        self.flat = False
        # The plain fields (two at least), compared at once with ``==``, then those that
        # are other objects than the stored ones one by one; and the other fields.
        self.plain: _Group | None = None
        self.rest: tuple[_FieldPlan, ...] = ()

    def finish(self, fields: list[_FieldPlan]) -> None:
        self.fields = tuple(fields)
        self.keys = frozenset(field[1] for field in fields)
        self.size = len(fields)
        self.flat = all(kind == _PLAIN and name == key for name, key, kind, _, _ in fields)
        plain = [field for field in fields if field[2] == _PLAIN]
        if len(plain) >= 2:
            self.plain = _Group(plain)
            self.rest = tuple(field for field in fields if field[2] != _PLAIN)
        else:
            self.rest = self.fields


def _json_only(serialization: Mapping[str, Any]) -> bool:
    """Tell whether a ``serialization`` schema leaves Python-mode dumps alone."""
    return serialization.get("type") == "function-plain" and (
        serialization.get("when_used") == "json"
    )


def _unwrap(
    schema: Mapping[str, Any], definitions: Mapping[str, Any]
) -> tuple[Mapping[str, Any] | None, bool]:
    """Follow the wrappers that do not change a dump; return the schema that decides it and
    whether ``None`` is allowed, or ``None`` when a serializer of its own is in the way."""
    nullable = False
    while True:
        kind = schema.get("type")
        if "serialization" in schema and not (
            kind == "json-or-python" and _json_only(schema["serialization"])
        ):
            return None, nullable
        if kind in _TRANSPARENT:
            schema = schema["schema"]
        elif kind == "nullable":
            nullable = True
            schema = schema["schema"]
        elif kind == "definition-ref":
            target = definitions.get(schema.get("schema_ref", ""))
            if target is None:
                return None, nullable
            schema = target
        else:
            return schema, nullable


def _instance_classes(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> set[type[Any]]:
    """The classes of the ``is-instance`` checks of a validator (alone or in a union)."""
    target, _ = _unwrap(schema, definitions)
    if target is None:
        return set()
    choices = target.get("choices", ()) if target.get("type") == "union" else (target,)
    return {
        choice["cls"]
        for choice in choices
        if isinstance(choice, Mapping)
        and choice.get("type") == "is-instance"
        and isinstance(choice.get("cls"), type)
    }


def _field_plan(
    name: str,
    key: str,
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    plans: dict[int, _ModelPlan | None],
) -> _FieldPlan:
    other: _FieldPlan = (name, key, _OTHER, frozenset(), None)
    target, nullable = _unwrap(schema, definitions)
    if target is None:
        return other
    none: set[type[Any]] = {type(None)} if nullable else set()
    kind = target.get("type")
    if kind in _SCALAR_SCHEMAS:
        return (name, key, _PLAIN, frozenset({_SCALAR_SCHEMAS[kind], *none}), None)
    if kind == "json-or-python":  # with a JSON-only serializer (_unwrap): odm.ObjectId
        classes = _instance_classes(target.get("python_schema", {}), definitions)
        if classes:
            return (name, key, _PLAIN, frozenset(classes & _AS_IS | none), None)
        return (name, key, _ANY, _AS_IS, None)
    if kind == "any":
        return (name, key, _ANY, _AS_IS, None)
    if kind == "enum" and isinstance(target.get("cls"), type):
        return (name, key, _PLAIN, frozenset({target["cls"], *none}), None)
    if kind == "literal":
        types = {type(value) for value in target.get("expected", ())}
        return (name, key, _PLAIN, frozenset(types | none), None)
    if kind == "model":
        sub = _model_plan(target, definitions, plans)
        if sub is not None:
            return (name, key, _MODEL, frozenset(none), sub)
    if kind == "list" and not nullable and "items_schema" in target:
        items, items_nullable = _unwrap(target["items_schema"], definitions)
        if items is not None and not items_nullable and items.get("type") == "model":
            sub = _model_plan(items, definitions, plans)
            if sub is not None:
                return (name, key, _MODEL_LIST, frozenset(), sub)
    return other


def _model_plan(
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    plans: dict[int, _ModelPlan | None],
) -> _ModelPlan | None:
    """Return the plan of a ``model`` core schema, or ``None`` if it must be dumped whole."""
    if id(schema) in plans:  # seen already (or being built: a recursive model)
        return plans[id(schema)]
    plans[id(schema)] = None
    cls = schema.get("cls")
    fields_schema = schema.get("schema", {})
    config = schema.get("config") or {}
    if (
        not isinstance(cls, type)
        or schema.get("root_model")
        or "serialization" in schema
        or "allow" in (schema.get("extra_behavior"), config.get("extra_fields_behavior"))
        or fields_schema.get("type") != "model-fields"
        or "serialization" in fields_schema
        or fields_schema.get("computed_fields")
        or fields_schema.get("extra_behavior") == "allow"
        or not fields_schema.get("fields")
        or any(not field.keys() <= _FIELD_KEYS for field in fields_schema["fields"].values())
    ):
        return None
    plan = _ModelPlan(cls)
    plans[id(schema)] = plan
    fields: list[_FieldPlan] = []
    for name, field in fields_schema["fields"].items():
        if field.get("serialization_exclude"):
            continue
        key = field.get("serialization_alias") or name
        fields.append(_field_plan(name, key, field["schema"], definitions, plans))
    plan.finish(fields)
    if not fields:
        plans[id(schema)] = None
        return None
    return plan


_PLAN_SLOT = "__odm_save_plan__"


def _document_plan(cls: type[Any]) -> _ModelPlan | None:
    """Return the plan of a Document class (built once, again if pydantic rebuilt the
    class), or ``None`` when its documents are dumped whole."""
    schema = cls.__pydantic_core_schema__
    cached = cls.__dict__.get(_PLAN_SLOT)
    if cached is not None and cached[0] is schema:
        plan: _ModelPlan | None = cached[1]
        return plan
    plan = _build_document_plan(cls, schema)
    type.__setattr__(cls, _PLAN_SLOT, (schema, plan))
    return plan


def _build_document_plan(cls: type[Any], schema: Any) -> _ModelPlan | None:
    from pydantic import BaseModel

    from .base import Document

    if (
        not getattr(cls, "__pydantic_complete__", False)
        or not isinstance(schema, Mapping)
        or cls.model_dump is not BaseModel.model_dump
        or cls.to_bson is not Document.to_bson
    ):
        return None
    definitions: dict[str, Any] = {}
    if schema.get("type") == "definitions":
        definitions = {d["ref"]: d for d in schema.get("definitions", ()) if "ref" in d}
        schema = schema["schema"]
    while schema.get("type") in _TRANSPARENT and "serialization" not in schema:
        schema = schema["schema"]
    if schema.get("type") != "model" or schema.get("cls") is not cls:
        return None
    return _model_plan(schema, definitions, {})


def _same_model(plan: _ModelPlan, value: Any, old: Any) -> bool:
    """Tell whether embedded ``value`` is stored as ``old`` (False when unsure)."""
    if type(value) is not plan.cls or type(old) is not dict or len(old) != plan.size:
        return False
    values = value.__dict__
    if plan.flat and values == old:
        return True
    for name, key, kind, types, sub in plan.fields:
        new = values[name]
        before = old.get(key, _MISSING)
        if new is before:
            continue
        if before is _MISSING:
            return False
        if kind <= _ANY:
            if type(new) in types and same(before, new):
                continue
        elif kind == _MODEL:
            if sub is not None and _same_model(sub, new, before):
                continue
        elif kind == _MODEL_LIST and sub is not None and _same_list(sub, new, before):
            continue
        return False
    return True


def _same_list(plan: _ModelPlan, value: Any, old: Any) -> bool:
    return (
        type(value) is list
        and type(old) is list
        and len(value) == len(old)
        and all(map(_same_model, repeat(plan), value, old))
    )


def _pending(group: _Group, values: Mapping[str, Any], old: Mapping[str, Any]) -> Any:
    """The plain fields of ``group`` whose value is not the stored object (``KeyError``:
    one is not stored)."""
    now, stored = group.names_of(values), group.keys_of(old)
    if now == stored:
        return ()
    return compress(group.fields, map(is_not, now, stored))


def _walk(
    plan: _ModelPlan, owner: Any, old: Mapping[str, Any], path: Path, changes: ChangeSet
) -> None:
    """Record in ``changes`` what turns stored ``old`` into the dump of model ``owner``
    (whose class ``plan`` describes), as :func:`diff` would from the whole dump."""
    values = owner.__dict__
    fields: Iterable[_FieldPlan] = plan.fields
    if plan.plain is not None:
        with suppress(KeyError):  # a field not stored yet: all of them one by one
            fields = (*_pending(plan.plain, values, old), *plan.rest)
    for name, key, kind, types, sub in fields:
        new = values[name]
        before = old.get(key, _MISSING)
        if new is before:
            continue
        if kind <= _ANY:
            if type(new) in types:
                if before is _MISSING or not same(before, new):
                    changes.sets[(*path, key)] = new
                continue
        elif kind == _MODEL:
            if sub is not None and type(new) is sub.cls and type(before) is dict:
                if not (sub.flat and new.__dict__ == before):
                    where = (*path, key)
                    _walk(sub, new, before, where, changes)
                    for stored in before:
                        if stored not in sub.keys:
                            changes.unsets[(*where, stored)] = ""
                continue
        elif kind == _MODEL_LIST and sub is not None and _same_list(sub, new, before):
            continue
        # The stored form of this field alone, as the whole dump has it.
        dumped = type(owner).__pydantic_serializer__.to_python(
            owner, by_alias=True, include={name}
        )[key]
        if before is _MISSING:
            changes.sets[(*path, key)] = dumped
        elif before is dumped or same(before, dumped):
            changes.dumped[(*path, key)] = dumped
        else:
            diff_value((*path, key), before, dumped, changes)


def _apply(snapshot: Mapping[str, Any], changes: ChangeSet) -> dict[str, Any]:
    """Return a new snapshot: ``snapshot`` with ``changes`` applied, copying the
    sub-documents on the changed paths (``snapshot`` itself is left as it is)."""
    new = dict(snapshot)
    copied = {id(new)}

    def holder(path: Path) -> dict[str, Any]:
        node = new
        for part in path[:-1]:
            child = node[part]
            if id(child) not in copied:
                child = dict(child)
                node[part] = child
                copied.add(id(child))
            node = child
        return node

    for path, value in changes.dumped.items():
        holder(path)[path[-1]] = value
    for path, value in changes.sets.items():
        holder(path)[path[-1]] = value
    for path in changes.unsets:
        holder(path).pop(path[-1], None)
    for path, push in changes.pushes.items():
        node = holder(path)
        node[path[-1]] = [*node[path[-1]], *push["$each"]]
    return new


def changes(document: Any, snapshot: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(update, new_snapshot)``: the update document that turns ``snapshot`` into
    what ``document`` stores now (``{}`` when nothing changed), and the snapshot to keep once
    it is written (``snapshot`` itself when nothing changed; never mutated)."""
    cls = type(document)
    plan = _document_plan(cls)
    if plan is not None:
        found = ChangeSet()
        try:
            _walk(plan, document, snapshot, (), found)
        except KeyError:  # a field missing from the instance (model_construct...)
            plan = None
        else:
            class_name = cls._meta.class_name
            if class_name is not None:
                stored = snapshot.get(CLASS_KEY, _MISSING)
                if stored is _MISSING or not same(stored, class_name):
                    found.sets[(CLASS_KEY,)] = class_name
            if not found:
                return {}, snapshot
            return found.update(), _apply(snapshot, found)
    new_raw: dict[str, Any] = document.to_bson()
    return diff(snapshot, new_raw), new_raw
