"""Comparing stored forms (BSON dicts) and building the update between two of them.

:func:`same` tells whether two values are stored as the same BSON value; :func:`diff` returns
the update document (``$set`` / ``$unset`` / ``$push $each``) that turns one stored form into
another; :class:`ChangeSet` collects such changes by path while they are found. The rules
(dotted paths, unknown stored keys left alone, appends as ``$push``) are listed in
:mod:`odm.models.tracking`.

Two rules keep an update faithful to the values it writes:

- equal in Python is not enough: ``1 == 1.0 == True`` and ``0.0 == -0.0``, but BSON stores an
  int32, an int64, a double and a bool apart, and keeps the sign of zero; :func:`same`
  compares BSON type and value;
- a dict key is data, not structure: a key is addressed in an update path only when it is a
  plain path segment (:func:`addressable`); a change under any other key (``"a.b"``,
  ``"$x"``, ``""``, a non-string) rewrites the nearest ancestor that can be addressed, whole.

A ``set`` or ``frozenset`` field is stored as an array in one canonical order
(:func:`odm.stored_order.stored_set`), the same in every process whatever its hash seed, so that
equality filters and unique indexes see one array per set. Its dump is a
:class:`~odm.stored_order.StoredSet`, which :func:`same` compares with a stored array as a set:
an array another process wrote in another order is the same set, so an unchanged set is never
written back.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from math import copysign
from operator import is_
from typing import Any

import bson

from ..stored_order import StoredSet, bson_key, bson_value
from ..utf8 import encodable

__all__ = [
    "ChangeSet",
    "Path",
    "addressable",
    "diff",
    "diff_changes",
    "diff_value",
    "same",
    "same_values",
]


#: Types whose equal values are stored alike: ``a == b`` with ``type(a) is type(b)`` is enough.
_PLAIN_EQUAL: frozenset[type[Any]] = frozenset(
    {str, int, bool, bytes, type(None), bson.ObjectId, bson.Int64, bson.Decimal128, _dt.datetime}
)
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def _number_type(value: Any) -> int:
    """The BSON type number of a number (double 1, bool 8, int32 16, int64 18), 0 for any
    other value: the types that Python's ``==`` takes for one another."""
    if type(value) is bool:
        return 8
    if isinstance(value, float):
        return 1
    if isinstance(value, bson.Int64):
        return 18
    if isinstance(value, int):
        # PyMongo stores a Python int in 32 bits when it fits, else in 64.
        return 16 if _INT32_MIN <= value <= _INT32_MAX else 18
    return 0


def _same_scalar(a: Any, b: Any) -> bool:
    """For ``a == b``: tell whether they are also stored as the same BSON type (and a zero
    with the same sign: BSON keeps ``-0.0``)."""
    kind = _number_type(a)
    if kind != _number_type(b):
        return False
    return kind != 1 or a != 0.0 or copysign(1.0, a) == copysign(1.0, b)


#: The containers stored as BSON arrays (a tuple: ``list | tuple`` builds a union per call).
_SEQUENCES = (list, tuple)


def _same_equal(a: Any, b: Any) -> bool:
    """For ``a == b`` (not of one of the :data:`_PLAIN_EQUAL` types): tell whether BSON
    stores them alike too, looking into containers (``[1] == [1.0]``)."""
    # The items are usually the very same objects (a dump keeps the scalars it was given):
    # checked at C speed first, item by item only when some are not.
    # (Exact types tested first: an ABC isinstance costs more than the rest.)
    kind = type(a)
    if kind is list or kind is tuple or (kind is not dict and isinstance(a, _SEQUENCES)):
        return isinstance(b, _SEQUENCES) and (all(map(is_, a, b)) or all(map(same, a, b)))
    if kind is dict or isinstance(a, Mapping):
        if type(b) is not dict and not isinstance(b, Mapping):
            return False
        return all(map(is_, a.values(), map(b.__getitem__, a))) or all(
            same(value, b[key]) for key, value in a.items()
        )
    return _same_scalar(bson_value(a), bson_value(b))


def _same_members(a: Any, b: Any) -> bool:
    """Tell whether the arrays ``a`` and ``b`` (one the dump of a set) hold the same values
    stored alike, in any order."""
    return sorted(map(bson_key, a)) == sorted(map(bson_key, b))


def same(a: Any, b: Any) -> bool:
    """Tell whether ``a`` and ``b`` are stored as the same BSON value (type and value)."""
    if a is b:
        return True
    if a == b:
        kind = type(a)
        if kind is type(b) and kind in _PLAIN_EQUAL:
            return True
        return _same_equal(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        if len(a) != len(b):
            return False
        if all(map(same, a, b)):
            return True
        # A set is the same set in any order (one stored by another process, say).
        return (type(a) is StoredSet or type(b) is StoredSet) and _same_members(a, b)
    if type(a) is float and type(b) is float:
        return a != a and b != b  # NaN is stored as NaN (and NaN != NaN)
    a, b = bson_value(a), bson_value(b)
    return bool(a == b) and _same_scalar(a, b)


def same_values(new: Iterable[Any], old: Iterable[Any]) -> bool:
    """Tell whether each value of ``new`` is stored as the one of ``old`` at its position:
    the check that follows a C-level ``==`` found them equal (identity first, so the usual
    unchanged values cost one comparison each)."""
    return all(map(is_, new, old)) or all(map(same, new, old))


def addressable(key: Any) -> bool:
    """Tell whether a dict key can be one segment of an update path: a non-empty ``str``
    with no dot that does not start with ``$`` (neither an operator nor a positional form:
    ``$``, ``$[]``, ``$[name]``) and holds no NUL byte and no lone surrogate. Any other key
    would name another field, or none (a NUL or a lone surrogate, which UTF-8 cannot encode:
    BSON refuses it, and the error then names the field it is in rather than nothing, since
    the key would be part of the path the update names)."""
    return (
        type(key) is str
        and key != ""
        and "." not in key
        and key[0] != "$"
        and "\x00" not in key
        and encodable(key)
    )


#: Where a change applies: a tuple of stored keys, each :func:`addressable` once the change
#: set is complete (:meth:`ChangeSet.unaddressable` finds the exceptions).
Path = tuple[str, ...]


class ChangeSet:
    """A change set under construction: ``$set`` / ``$unset`` / ``$push`` keyed by path."""

    __slots__ = ("dumped", "pushes", "sets", "unsets")

    def __init__(self) -> None:
        self.sets: dict[Path, Any] = {}
        self.unsets: dict[Path, Any] = {}
        self.pushes: dict[Path, Any] = {}
        # Unchanged values that were dumped to be compared: the new snapshot keeps these
        # copies (as it kept the whole dump before), not the objects it had.
        self.dumped: dict[Path, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.sets or self.unsets or self.pushes)

    def changed_keys(self) -> set[str]:
        """Return the top-level stored keys this change set writes."""
        return {path[0] for changed in (self.sets, self.unsets, self.pushes) for path in changed}

    def unaddressable(self) -> Path | None:
        """Return the first path of a change with a segment that is not
        :func:`addressable` (a declared key such as an alias with a dot, or a top-level key
        of a model with ``extra="allow"``), or ``None``."""
        for changed in (self.sets, self.unsets, self.pushes):
            for path in changed:
                if not all(map(addressable, path)):
                    return path
        return None

    def update(self) -> dict[str, Any]:
        """Return the update document (dotted paths)."""
        update: dict[str, Any] = {}
        if self.sets:
            update["$set"] = {".".join(path): value for path, value in self.sets.items()}
        if self.unsets:
            update["$unset"] = {".".join(path): "" for path in self.unsets}
        if self.pushes:
            update["$push"] = {".".join(path): value for path, value in self.pushes.items()}
        return update


def _keys_addressable(old: Mapping[Any, Any], new: Mapping[Any, Any]) -> bool:
    """Tell whether every key a change between sub-documents ``old`` and ``new`` would name
    in a path is :func:`addressable` (keys whose value is unchanged are never named)."""
    if all(map(addressable, new)) and all(map(addressable, old)):
        return True
    for key, value in new.items():
        if not addressable(key) and (key not in old or not same(old[key], value)):
            return False
    return all(addressable(key) or key in new for key in old)


def diff_value(path: Path, old: Any, new: Any, changes: ChangeSet) -> None:
    """Record in ``changes`` what turns the stored value ``old`` at ``path`` into ``new``.

    A sub-document is changed key by key when every key a change names is
    :func:`addressable`, else it is set whole; a list (not a set) is pushed to when it only
    grew.
    """
    mappings = isinstance(old, Mapping) and isinstance(new, Mapping) and new
    if mappings and _keys_addressable(old, new):
        for key, value in new.items():
            if key in old:
                if not same(old[key], value):
                    diff_value((*path, key), old[key], value, changes)
            else:
                changes.sets[(*path, key)] = value
        for key in old:
            if key not in new:
                changes.unsets[(*path, key)] = ""
        return
    appended = isinstance(old, list) and isinstance(new, _SEQUENCES) and len(old) < len(new)
    # A set is set whole, never pushed to: its snapshot may hold it in another order than
    # the stored array (a set stored in another order is the same set, so the snapshot takes
    # the dump's), and a push would keep that order, which equality filters then miss.
    if appended and type(new) is not StoredSet and same(old, new[: len(old)]):
        changes.pushes[path] = {"$each": list(new[len(old) :])}
        return
    changes.sets[path] = new


def diff_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> ChangeSet:
    """Return the changes that turn stored ``old`` into ``new``; see :func:`diff`."""
    changes = ChangeSet()
    for key, value in new.items():
        if key in old:
            before = old[key]
            if before is value or same(before, value):
                continue
            diff_value((key,), before, value, changes)
        else:
            changes.sets[(key,)] = value
    return changes


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Return the update document that turns stored ``old`` into ``new`` (``{}``: no change).

    Only keys of ``new`` (the model's dump) are considered at the top level, so keys stored
    by others and unknown to the model are never touched. The top-level keys are the
    caller's to check (:meth:`ChangeSet.unaddressable`): there is no ancestor to set whole.
    """
    return diff_changes(old, new).update()
