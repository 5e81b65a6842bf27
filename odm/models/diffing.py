"""Comparing stored forms (BSON dicts) and building the update between two of them.

:func:`same` tells whether two values are stored as the same BSON value; :func:`diff` returns
the update document (``$set`` / ``$unset`` / ``$push $each``) that turns one stored form into
another; :class:`ChangeSet` collects such changes by path while they are found. The rules
(dotted paths, unknown stored keys left alone, appends as ``$push``) are listed in
:mod:`odm.models.tracking`.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from typing import Any

__all__ = ["ChangeSet", "Path", "diff", "diff_value", "same"]

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


#: Where a change applies: a tuple of stored keys (a key may itself hold a dot).
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


def diff_value(path: Path, old: Any, new: Any, changes: ChangeSet) -> None:
    """Record in ``changes`` what turns the stored value ``old`` at ``path`` into ``new``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping) and new:
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
    changes = ChangeSet()
    for key, value in new.items():
        if key in old:
            before = old[key]
            if before is value or same(before, value):
                continue
            diff_value((key,), before, value, changes)
        else:
            changes.sets[(key,)] = value
    return changes.update()
