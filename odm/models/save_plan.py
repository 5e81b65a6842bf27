"""What ``save()`` sends, found without dumping the whole document.

The document is compared with its snapshot following its class's plan
(:mod:`odm.models.model_plan`, read once from the pydantic core schema):

- a value that is the very object of the snapshot is unchanged (values are loaded as the
  objects of the raw document, and a write stores the dumped objects; mutable values that
  pydantic would share with the raw document are copied into the snapshot when loaded, see
  ``Options.shared_keys``);
- plain fields (whose dump is the value itself) are compared by value: all of them at once
  with ``==`` (C loops), then the ones that differ with :func:`same`;
- an embedded model (declared class, exactly) is compared field by field against the stored
  sub-document, and a list of them item by item; in-place changes are seen because the
  instance's values are compared (no dirty flags); a model whose fields are all plain,
  stored under their own names, is compared as one ``__dict__ == stored``;
- anything else is dumped on its own (:func:`odm.models.dumping.dump_field`), that field
  only, and compared as the whole dump was.

A class without a plan is dumped whole and diffed, as before; both ways send the same update.
Values ``==`` finds equal are checked with :func:`~odm.models.diffing.same` too (BSON type and
value): a stored ``True`` or ``1`` read into a ``float`` field is rewritten as the double the
model holds, and ``-0.0`` over a stored ``0.0`` is a change.

A change is only ever sent under a path whose every segment is a plain field name
(:func:`~odm.models.diffing.addressable`): dict keys and stored keys that are not are handled
by :func:`~odm.models.diffing.diff_value` (their sub-document is set whole); a declared key
that is not (an alias with a dot) sends the document through the whole-dump diff; a top-level
key that is not (a model with ``extra="allow"``) cannot be written by an update and raises
pydantic's ``ValidationError`` naming it before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from itertools import compress, repeat
from operator import is_, is_not
from typing import Any

from pydantic import ValidationError

from .diffing import (
    ChangeSet,
    Path,
    addressable,
    diff_changes,
    diff_value,
    same,
    same_values,
)
from .dumping import dump_field
from .loadable import check_loadable
from .model_plan import (
    ANY,
    MODEL,
    MODEL_LIST,
    PLAIN_LIST,
    FieldPlan,
    Group,
    ModelPlan,
    document_plan,
)
from .options import CLASS_KEY

__all__ = ["changes"]

_MISSING: Any = object()


def _same_model(plan: ModelPlan, value: Any, old: Any) -> bool:
    """Tell whether embedded ``value`` is stored as ``old`` (False when unsure)."""
    if type(value) is not plan.cls or type(old) is not dict or len(old) != plan.size:
        return False
    values = value.__dict__
    if plan.flat and values == old:
        group = plan.plain
        if group is not None:  # the values and the stored ones in field order, at C speed
            return same_values(group.names_of(values), group.keys_of(old))
        return same_values(values.values(), map(old.__getitem__, values))
    for name, key, kind, types, sub in plan.fields:
        new = values[name]
        before = old.get(key, _MISSING)
        if new is before:
            continue
        if before is _MISSING:
            return False
        if kind <= ANY:
            if type(new) in types and same(before, new):
                continue
        elif kind == MODEL:
            if sub is not None and _same_model(sub, new, before):
                continue
        elif kind == MODEL_LIST:
            if sub is not None and _same_list(sub, new, before):
                continue
        elif kind == PLAIN_LIST and _same_plain_list(new, before):
            continue
        return False
    return True


def _same_list(plan: ModelPlan, value: Any, old: Any) -> bool:
    return (
        type(value) is list
        and type(old) is list
        and len(value) == len(old)
        and all(map(_same_model, repeat(plan), value, old))
    )


def _same_plain_list(value: Any, old: Any) -> bool:
    return (
        type(value) is list
        and type(old) is list
        and len(value) == len(old)
        # The items are usually the stored objects themselves: checked at C speed first.
        and (all(map(is_, old, value)) or all(map(same, old, value)))
    )


def _stored_alike(
    kind: int, types: frozenset[type[Any]], sub: ModelPlan | None, new: Any, before: Any
) -> bool:
    """Tell whether ``new``, the value of a field of kind ``MODEL`` (a flat model),
    ``MODEL_LIST`` or ``PLAIN_LIST``, is stored as ``before`` already (False when unsure, and
    for other kinds). A list of plain values is: its dump would be a copy holding these very
    items, so the snapshot keeps its own list (snapshots are never mutated)."""
    if kind == MODEL:
        return sub is not None and sub.flat and _same_model(sub, new, before)
    if kind == MODEL_LIST:
        return sub is not None and _same_list(sub, new, before)
    if kind == PLAIN_LIST:
        return _same_plain_list(new, before) and all(map(types.__contains__, map(type, new)))
    return False


def _pending(group: Group, values: Mapping[str, Any], old: Mapping[str, Any]) -> Any:
    """The plain fields of ``group`` whose value is not the stored object (``KeyError``:
    one is not stored)."""
    now, stored = group.names_of(values), group.keys_of(old)
    if now == stored and (all(map(is_, now, stored)) or same_values(now, stored)):
        return ()
    return compress(group.fields, map(is_not, now, stored))


def _walk(
    plan: ModelPlan, owner: Any, old: Mapping[str, Any], path: Path, changes: ChangeSet
) -> None:
    """Record in ``changes`` what turns stored ``old`` into the dump of model ``owner``
    (whose class ``plan`` describes), as :func:`diff` would from the whole dump."""
    values = owner.__dict__
    fields: Iterable[FieldPlan] = plan.fields
    if plan.plain is not None:
        with suppress(KeyError):  # a field not stored yet: all of them one by one
            fields = (*_pending(plan.plain, values, old), *plan.rest)
    for field in fields:
        name, key, kind, types, sub = field
        new = values[name]
        before = old.get(key, _MISSING)
        if new is before:
            continue
        if kind <= ANY:
            if type(new) in types:
                if before is _MISSING or not same(before, new):
                    changes.sets[(*path, key)] = new
                continue
        elif _stored_alike(kind, types, sub, new, before):
            continue
        elif (
            kind == MODEL
            and sub is not None
            and type(new) is sub.cls
            and type(before) is dict
            # Keys stored by others ("a.b", "$x"...) cannot be named in an $unset: then the
            # sub-document is diffed from its dump (and set whole).
            and all(map(addressable, before))
        ):
            where = (*path, key)
            _walk(sub, new, before, where, changes)
            for stored_key in before:
                if stored_key not in sub.keys:
                    changes.unsets[(*where, stored_key)] = ""
            continue
        # The stored form of this field alone, as the whole dump has it.
        dumped = dump_field(owner, field)
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


def _refuse(cls: type[Any], path: Path, value: Any) -> ValidationError:
    """The error for a top-level key that no update can write (nothing is sent)."""
    return ValidationError.from_exception_data(
        cls.__name__,
        [{
            "type": "value_error",
            "loc": path,
            "input": value,
            "ctx": {"error": ValueError(
                f"the stored key {path[0]!r} cannot be written by an update (an empty key, a "
                "dot or a leading '$'); rename it"
            )},
        }],
    )


def _usual(
    plan: ModelPlan, values: Mapping[str, Any], snapshot: dict[str, Any], class_name: str | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """What :func:`changes` returns for the usual save, found in one pass, or ``None``: take
    the general walk.

    The usual save changes top-level plain fields only (``stock += 1``): every changed field
    holds a value of its plain types, every other field (an embedded model, a list) is still
    the stored object or stored alike, and every stored key can be named in ``$set``. Then
    the update is that ``$set`` and the new snapshot the old one with those keys replaced,
    which is what the walk, :meth:`ChangeSet.update` and :func:`_apply` give; anything else
    (a field not stored, a value of another type, a sub-document that changed) is left to the
    walk, which gives what a whole dump and diff would. One save touches a handful of
    functions this way instead of a dozen: in a request, where the driver and the server run
    between two saves, each function costs more to fetch than to run (docs/performance-internals.md,
    "Warm and cold")."""
    group = plan.plain
    if group is None or not plan.keys_addressable:
        return None
    sets: dict[str, Any] = {}
    try:
        now, stored = group.names_of(values), group.keys_of(snapshot)
        if not (now == stored and (all(map(is_, now, stored)) or same_values(now, stored))):
            for field, new, before in zip(group.fields, now, stored, strict=True):
                if new is before:
                    continue
                if type(new) not in field[3]:
                    return None  # dumped by pydantic: the walk
                if not same(before, new):
                    sets[field[1]] = new
        for name, key, kind, types, sub in plan.rest:
            new = values[name]
            before = snapshot.get(key, _MISSING)
            if new is before:
                continue
            if kind <= ANY:
                if type(new) in types and before is not _MISSING and same(before, new):
                    continue
            elif _stored_alike(kind, types, sub, new, before):
                continue
            return None  # changed, or not known to be unchanged: the walk
    except KeyError:  # a field missing from the instance or the snapshot: the walk
        return None
    if class_name is not None:
        stored_class = snapshot.get(CLASS_KEY, _MISSING)
        if stored_class is _MISSING or not same(stored_class, class_name):
            sets[CLASS_KEY] = class_name
    if not sets:
        return {}, snapshot
    new_snapshot = dict(snapshot)
    new_snapshot.update(sets)
    return {"$set": sets}, new_snapshot


def changes(
    document: Any, snapshot: dict[str, Any], *, check: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(update, new_snapshot)``: the update document that turns ``snapshot`` into
    what ``document`` stores now (``{}`` when nothing changed), and the snapshot to keep once
    it is written (``snapshot`` itself when nothing changed; never mutated).

    Raise pydantic's ``ValidationError`` for a changed top-level key that an update cannot
    name (see the module docstring), and, unless ``check`` is false (a caller that only asks
    whether something changed, and writes nothing), for a change its model would not load
    back (:func:`~odm.models.loadable.check_loadable`)."""
    cls = type(document)
    plan = document_plan(cls)
    if plan is not None:
        usual = _usual(plan, document.__dict__, snapshot, cls._meta.class_name)
        if usual is not None:
            return usual
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
            if found.unaddressable() is None:
                new_snapshot = _apply(snapshot, found)
                if check:
                    check_loadable(document, new_snapshot, found.changed_keys())
                return found.update(), new_snapshot
            # A declared key that is no plain segment: the whole-dump diff sets its ancestor.
    new_raw: dict[str, Any] = document.to_bson()
    whole = diff_changes(snapshot, new_raw)
    bad = whole.unaddressable()
    if bad is not None:
        raise _refuse(cls, bad[:1], new_raw.get(bad[0]))
    if check:
        check_loadable(document, new_raw, whole.changed_keys())
    return whole.update(), new_raw
