"""Collations: how strings compare (``{"locale": "en", "strength": 2}``: case-insensitive).

One checker shared by ``Index(collation=...)`` and ``QuerySet.collation(...)``: a collation is
sent to the server as a document, so its keys and values are checked here (known fields, the
types and choices the server accepts) and nothing else reaches it. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["FIELDS", "check_collation", "collation_document"]

#: The server's collation fields: name -> the type of its value, or its allowed values.
FIELDS: Final[dict[str, type | frozenset[str]]] = {
    "locale": str,
    "caseLevel": bool,
    "caseFirst": frozenset({"upper", "lower", "off"}),
    "strength": int,
    "numericOrdering": bool,
    "alternate": frozenset({"non-ignorable", "shifted"}),
    "maxVariable": frozenset({"punct", "space"}),
    "backwards": bool,
    "normalization": bool,
}


def check_collation(collation: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Return ``collation`` as a plain dict after checking it; raise ``ValueError`` naming
    ``what`` and the culprit (an unknown field, a wrong type, a strength outside 1..5)."""
    if not isinstance(collation, Mapping):
        raise ValueError(f"{what}: a collation is a dict such as {{'locale': 'en'}}")
    checked: dict[str, Any] = {}
    for key, value in collation.items():
        kind = FIELDS.get(key) if isinstance(key, str) else None
        if kind is None:
            raise ValueError(
                f"{what}: unknown collation field {key!r} (fields: {', '.join(FIELDS)})"
            )
        if isinstance(kind, frozenset):
            if value not in kind:
                raise ValueError(f"{what}: {key} must be one of {sorted(kind)}, not {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                raise ValueError(f"{what}: strength must be an int from 1 to 5, not {value!r}")
        elif type(value) is not kind:
            raise ValueError(f"{what}: {key} must be a {kind.__name__}, not {value!r}")
        checked[key] = value
    locale = checked.get("locale")
    if not locale or "\x00" in locale or locale.startswith("$"):
        raise ValueError(f"{what}: a collation needs a locale such as 'en' (got {locale!r})")
    return checked


def collation_document(
    locale: str,
    *,
    strength: int | None = None,
    case_level: bool | None = None,
    case_first: str | None = None,
    numeric_ordering: bool | None = None,
    alternate: str | None = None,
    max_variable: str | None = None,
    backwards: bool | None = None,
    normalization: bool | None = None,
) -> dict[str, Any]:
    """Return the server's collation document for these (Python-named) options, checked."""
    named = {
        "locale": locale,
        "strength": strength,
        "caseLevel": case_level,
        "caseFirst": case_first,
        "numericOrdering": numeric_ordering,
        "alternate": alternate,
        "maxVariable": max_variable,
        "backwards": backwards,
        "normalization": normalization,
    }
    return check_collation(
        {k: v for k, v in named.items() if v is not None}, "collation(...)"
    )
