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
(:func:`stored_set`), the same in every process whatever its hash seed, so that equality
filters and unique indexes see one array per set. Its dump is a :class:`StoredSet`, which
:func:`same` compares with a stored array as a set: an array another process wrote in another
order is the same set, so an unchanged set is never written back.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Mapping
from math import copysign
from operator import is_, itemgetter, lt
from typing import Any

import bson

from ..utf8 import encodable

__all__ = [
    "ChangeSet",
    "Path",
    "StoredSet",
    "addressable",
    "diff",
    "diff_changes",
    "diff_value",
    "same",
    "same_values",
    "stored_set",
]


def _bson_value(value: Any) -> Any:
    """Return ``value`` as it reads back from BSON, for comparisons only."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            try:
                value = value.astimezone(_dt.UTC).replace(tzinfo=None)
            except OverflowError:
                # Past year 9999 in UTC: BSON cannot hold it either. Compared as it is, it
                # differs from whatever is stored, so save() sends it and the encoder refuses
                # it naming the field, as insert() does.
                return value
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    if isinstance(value, enum.Enum):
        return _bson_value(value.value)
    return value


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
    return _same_scalar(_bson_value(a), _bson_value(b))


class StoredSet(list[Any]):
    """The stored form of a set: a list in canonical order (:func:`stored_set`), encoded as a
    BSON array like any list, and compared with another array as a set by :func:`same`."""

    __slots__ = ()


def _order_key(value: Any) -> Any:
    """``value`` as it is stored, in a form Python orders as it orders the stored values
    (an enum as its value, a date as a datetime, a tuple as a list, a set in its order)."""
    value = _bson_value(value)
    if isinstance(value, set | frozenset):
        return list(map(_order_key, stored_set(value)))
    if isinstance(value, _SEQUENCES):
        return list(map(_order_key, value))
    return value


def _bson_key(value: Any) -> tuple[int, bytes | str]:
    """A key that orders any stored value the same way in every process: its BSON encoding
    (equal for values stored alike, whose order then does not matter), or, for a value BSON
    cannot encode (refused when it is written anyway), its type's name and ``repr``."""
    try:
        return (0, bson.encode({"": _order_key(value)}))
    except Exception:  # anything the encoder refuses has no stored form
        return (1, f"{type(value).__qualname__}:{value!r}")


def _ordered_strictly(keys: list[Any]) -> bool:
    """Tell whether each key of sorted ``keys`` is below the next: then ``<`` chains them,
    and the order is the only one sorting gives, whatever order the keys came in (a NaN, or
    sets ordered by inclusion, break the chain)."""
    return all(map(lt, keys, keys[1:]))


def stored_set(values: Iterable[Any]) -> StoredSet:
    """Return the elements of a set (its dump) in the order they are stored: sorted by
    value when they sort (text by code point, which is MongoDB's order for UTF-8; numbers by
    value; enums by their value), else by their BSON encoding. The order depends only on the
    elements, never on the hash seed of the process that dumps them."""
    items = list(values)
    if len(items) < 2:
        return StoredSet(items)
    try:
        keyed = sorted(
            zip(map(_order_key, items), range(len(items)), strict=True), key=itemgetter(0)
        )
        keys = [key for key, _ in keyed]
        if _ordered_strictly(keys):
            return StoredSet(items[at] for _, at in keyed)
    except TypeError:  # elements of kinds Python does not order against each other
        pass
    return StoredSet(sorted(items, key=_bson_key))


def _same_members(a: Any, b: Any) -> bool:
    """Tell whether the arrays ``a`` and ``b`` (one the dump of a set) hold the same values
    stored alike, in any order."""
    return sorted(map(_bson_key, a)) == sorted(map(_bson_key, b))


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
    a, b = _bson_value(a), _bson_value(b)
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
    :func:`addressable`, else it is set whole; a list is pushed to when it only grew.
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
    if appended and same(old, new[: len(old)]):
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
