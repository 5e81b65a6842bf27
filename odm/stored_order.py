"""The order a set is stored in, and a value as BSON reads it back: the ground under
:mod:`odm.models.diffing` (which compares stored forms) and under the executor's encoder (which
stores a set found where no dump plan ordered it).

A ``set`` or ``frozenset`` is stored as an array in one canonical order (:func:`stored_set`),
the same in every process whatever its hash seed, so that equality filters and unique indexes
see one array per set.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable
from operator import itemgetter, lt
from typing import Any

import bson

__all__ = ["StoredSet", "bson_key", "bson_value", "stored_set"]

#: The containers stored as BSON arrays.
_SEQUENCES = (list, tuple)
#: The types of the numbers :func:`_nans_first` orders (a bool is stored as a bool).
_NUMBERS = (int, float)


def bson_value(value: Any) -> Any:
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
        return bson_value(value.value)
    return value


class StoredSet(list[Any]):
    """The stored form of a set: a list in canonical order (:func:`stored_set`), encoded as a
    BSON array like any list, and compared with another array as a set by :func:`same`."""

    __slots__ = ()


def _order_key(value: Any) -> Any:
    """``value`` as it is stored, in a form Python orders as it orders the stored values
    (an enum as its value, a date as a datetime, a tuple as a list, a set in its order)."""
    value = bson_value(value)
    if isinstance(value, set | frozenset):
        return list(map(_order_key, stored_set(value)))
    if isinstance(value, _SEQUENCES):
        return list(map(_order_key, value))
    return value


def bson_key(value: Any) -> tuple[int, bytes | str]:
    """Return a key that orders any stored value the same way in every process: its BSON encoding
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
    value, a NaN below them all, as MongoDB sorts them; enums by their value), else by their
    BSON encoding. The order depends only on the elements, never on the hash seed of the
    process that dumps them. Elements stored alike (two datetimes in one millisecond, say) are
    stored once, as the one value they are."""
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
        in_order = _ties_stored_alike(items, keyed)
        if in_order is not None:
            return in_order
    except TypeError:  # elements of kinds Python does not order against each other
        pass
    with_nans = _nans_first(items)
    return with_nans if with_nans is not None else _by_encoding(items)


def _nans_first(items: list[Any]) -> StoredSet | None:
    """Return numbers holding a NaN in MongoDB's order (its NaNs, each stored value once,
    below every other number, then the others by value), which an update adding to the set
    on the server keeps; ``None`` when ``items`` are not all numbers, or their order is
    not that simple (two zeros of both signs, which compare equal)."""
    if not all(type(item) in _NUMBERS for item in items):
        return None
    nans = [item for item in items if item != item]
    others = [item for item in items if item == item]
    if not nans or not _ordered_strictly(sorted(others)):
        return None
    return StoredSet([*_by_encoding(nans), *sorted(others)])


def _ties_stored_alike(items: list[Any], keyed: list[tuple[Any, int]]) -> StoredSet | None:
    """Return the elements of ``items`` in the order of ``keyed`` (their order keys, sorted),
    each stored value once, when every two neighbours are in strict order or tie as values
    stored alike (two datetimes in one millisecond, an aware and a naive one for the same
    instant); else ``None`` (a NaN, sets ordered by inclusion: they are ordered by encoding)."""
    kept = StoredSet([items[keyed[0][1]]])
    last_key = keyed[0][0]
    for key, at in keyed[1:]:
        if last_key < key:
            kept.append(items[at])
            last_key = key
        elif not (last_key == key and _stored_alike(kept[-1], items[at])):
            return None
    return kept


def _stored_alike(first: Any, second: Any) -> bool:
    """Tell whether BSON encodes ``first`` and ``second`` alike (never for a value it cannot
    encode: that one is kept, for the encoder to refuse by name)."""
    key = bson_key(first)
    return key[0] == 0 and key == bson_key(second)


def _by_encoding(items: list[Any]) -> StoredSet:
    """Return ``items`` sorted by :func:`bson_key`, each stored value once: elements that
    differ in Python but are stored alike (two datetimes in one millisecond, an aware and a
    naive one for the same instant, two NaNs) are one element of the stored set, as MongoDB
    and every other process read it back (else the array holds a value twice, an equality
    filter or a unique index sees another array for the same set, and the set read back is
    written back by the next save)."""
    keyed = sorted(zip(map(bson_key, items), range(len(items)), strict=True), key=itemgetter(0))
    kept = StoredSet()
    previous: Any = None
    for key, at in keyed:
        # A value BSON cannot encode (key[0] == 1) is kept: the encoder refuses it by name.
        if key != previous or key[0] != 0:
            kept.append(items[at])
        previous = key
    return kept
