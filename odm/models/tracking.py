"""Change tracking: what ``save()`` sends for a document that was loaded or saved before.

The snapshot is the BSON dict the document was loaded from (or last written), kept on the
instance as it came: no copy on the hot path. ``save()`` compares the document with it
(:func:`changes`), producing the smallest update:

- only fields whose value changed are written (``$set``); unknown stored keys are left alone;
- embedded documents and dicts are compared key by key, so a change writes a dotted path
  (``{"$set": {"address.city": "Lyon"}}``) and a removed key is ``$unset``;
- a changed list is written whole, except a pure append (the old list is a prefix of the new
  one), which becomes ``{"$push": {"tags": {"$each": [...]}}}`` so that concurrent appends by
  others survive;
- values equal once stored are not changes: datetimes are compared as BSON keeps them (UTC,
  milliseconds), an ``Enum`` as its value, a tuple as a list.

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
import enum
from collections.abc import Iterable, Mapping
from contextlib import suppress
from itertools import compress, repeat
from operator import is_not, itemgetter
from typing import Any

import bson

from .options import CLASS_KEY

__all__ = [
    "changes",
    "collection_model",
    "diff",
    "get_snapshot",
    "has_changes",
    "mark_clean",
    "pending_update",
    "set_snapshot",
]

_SNAPSHOT = "_odm_snapshot"
_set_slot = object.__setattr__


def set_snapshot(document: Any, raw: dict[str, Any] | None) -> None:
    """Record ``raw`` (a stored form of ``document``) as what the database holds."""
    _set_slot(document, _SNAPSHOT, raw)


def get_snapshot(document: Any) -> dict[str, Any] | None:
    """Return what the database held when ``document`` was last loaded or written, or
    ``None`` for a document that was never stored.

    A document whose ``id`` was changed since (``doc.id = ...``, ``model_copy(update={"id":
    ...})``) is a new document: ``None`` too, so ``save()`` inserts it (as Django does when
    the primary key changes) and ``delete()`` never reaches the document it was copied from.
    """
    snapshot: dict[str, Any] | None = getattr(document, _SNAPSHOT, None)
    if snapshot is not None:
        stored = snapshot.get("_id", _NO_ID)
        if stored is not _NO_ID and not _same_id(document, stored):
            return None
    return snapshot


_NO_ID = object()


def _same_id(document: Any, stored: Any) -> bool:
    """Tell whether ``document``'s id is still ``stored`` (the ``_id`` of its snapshot)."""
    fields = getattr(document, "__dict__", {})
    if "id" not in fields:
        return True
    ident = fields["id"]
    if ident is stored or (type(ident) is type(stored) and ident == stored):
        return True
    # Another type (a custom id type, say): compare the stored forms.
    dumped = type(document).__pydantic_serializer__.to_python(
        document, by_alias=True, include={"id"}
    )
    return same(stored, dumped.get("_id", _NO_ID))


def _bson_value(value: Any) -> Any:
    """Return ``value`` as it reads back from BSON, for comparisons only."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    if isinstance(value, enum.Enum):
        return _bson_value(value.value)
    return value


def same(a: Any, b: Any) -> bool:
    """Tell whether ``a`` and ``b`` are stored as the same BSON value."""
    if a == b:
        # True == 1 in Python, but BSON stores a bool and an int differently.
        return (type(a) is not bool and type(b) is not bool) or type(a) is type(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(_bson_value(a) == _bson_value(b))


#: A change set under construction: ``$set`` / ``$unset`` / ``$push`` keyed by path (a tuple
#: of stored keys: a key may itself hold a dot).
_Path = tuple[str, ...]


class _Changes:
    __slots__ = ("dumped", "pushes", "sets", "unsets")

    def __init__(self) -> None:
        self.sets: dict[_Path, Any] = {}
        self.unsets: dict[_Path, Any] = {}
        self.pushes: dict[_Path, Any] = {}
        # Unchanged values that were dumped to be compared: the new snapshot keeps these
        # copies (as it kept the whole dump before), not the objects it had.
        self.dumped: dict[_Path, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.sets or self.unsets or self.pushes)

    def update(self) -> dict[str, Any]:
        update: dict[str, Any] = {}
        if self.sets:
            update["$set"] = {".".join(path): value for path, value in self.sets.items()}
        if self.unsets:
            update["$unset"] = {".".join(path): "" for path in self.unsets}
        if self.pushes:
            update["$push"] = {".".join(path): value for path, value in self.pushes.items()}
        return update


def _diff_value(path: _Path, old: Any, new: Any, changes: _Changes) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping) and new:
        for key, value in new.items():
            if key in old:
                if not same(old[key], value):
                    _diff_value((*path, key), old[key], value, changes)
            else:
                changes.sets[(*path, key)] = value
        for key in old:
            if key not in new:
                changes.unsets[(*path, key)] = ""
        return
    appended = isinstance(old, list) and isinstance(new, list | tuple) and len(old) < len(new)
    if appended and same(old, new[: len(old)]):
        changes.pushes[path] = {"$each": list(new[len(old) :])}
        return
    changes.sets[path] = new


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Return the update document that turns stored ``old`` into ``new`` (``{}``: no change).

    Only keys of ``new`` (the model's dump) are considered at the top level, so keys stored
    by others and unknown to the model are never touched.
    """
    changes = _Changes()
    for key, value in new.items():
        if key in old:
            before = old[key]
            if before is value or same(before, value):
                continue
            _diff_value((key,), before, value, changes)
        else:
            changes.sets[(key,)] = value
    return changes.update()


def has_changes(document: Any, dumped: Mapping[str, Any]) -> bool:
    """Tell whether ``dumped`` (the document's stored form now) differs from its snapshot."""
    snapshot = get_snapshot(document)
    return snapshot is None or bool(diff(snapshot, dumped))


# -- change detection without a whole dump ---------------------------------------------------

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
    plan: _ModelPlan, owner: Any, old: Mapping[str, Any], path: _Path, changes: _Changes
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
            _diff_value((*path, key), before, dumped, changes)


def _apply(snapshot: Mapping[str, Any], changes: _Changes) -> dict[str, Any]:
    """Return a new snapshot: ``snapshot`` with ``changes`` applied, copying the
    sub-documents on the changed paths (``snapshot`` itself is left as it is)."""
    new = dict(snapshot)
    copied = {id(new)}

    def holder(path: _Path) -> dict[str, Any]:
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
        found = _Changes()
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


# -- for the unit of work's flush ------------------------------------------------------------

_PENDING = "_odm_pending"


def pending_update(document: Any) -> Any:
    """Return a PyMongo ``UpdateOne`` for what changed in ``document`` since it was loaded,
    or ``None`` when nothing did (or it was never stored). After the write succeeded, call
    :func:`mark_clean`."""
    from pymongo import UpdateOne

    from .writes import prepare_update

    if getattr(document, "_odm_partial", False):
        return None  # loaded with only()/defer(): never written back (save() refuses it too)
    plan = prepare_update(document)
    if plan is None:
        return None
    filter, update, new_snapshot = plan
    _set_slot(document, _PENDING, new_snapshot)
    return UpdateOne(filter, update)


def mark_clean(document: Any) -> None:
    """Record that the update from :func:`pending_update` is stored."""
    new_snapshot = getattr(document, _PENDING, None)
    if new_snapshot is not None:
        from .writes import commit_update

        commit_update(document, new_snapshot)
        _set_slot(document, _PENDING, None)


def collection_model(model: type[Any]) -> type[Any]:
    """Return the class that owns ``model``'s collection (the root of a polymorphic family)."""
    root: type[Any] | None = model._meta.root
    return root if root is not None else model
