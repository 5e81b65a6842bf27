"""Collations: how strings compare (``{"locale": "en", "strength": 2}``: case-insensitive).

One checker shared by ``Index(collation=...)`` and ``QuerySet.collation(...)``: a collation is
sent to the server as a document, so its keys and values are checked here (known fields, the
types and choices the server accepts) and nothing else reaches it. No I/O.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["FIELDS", "LOCALES", "VARIANTS", "check_collation", "check_locale", "collation_document"]

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


#: The locales MongoDB collates by (its manual, "Collation Locales and Default Parameters").
#: The server is built with its own copy of ICU 57.1 and the data of these locales only (the
#: same from MongoDB 3.4 to 8.x), and refuses any other name, a region or a spelling ICU would
#: change ("en_GB", "EN", "en-US") included: checked here, the refusal is a typed error
#: naming the locale rather than the server's bare OperationFailure.
LOCALES: Final[frozenset[str]] = frozenset({
    "af", "am", "ar", "as", "az", "be", "bg", "bn", "bo", "bs", "bs_Cyrl", "ca", "chr", "cs",
    "cy", "da", "de", "de_AT", "dsb", "dz", "ee", "el", "en", "en_US", "en_US_POSIX", "eo",
    "es", "et", "fa", "fa_AF", "fi", "fil", "fo", "fr", "fr_CA", "ga", "gl", "gu", "ha", "haw",
    "he", "hi", "hr", "hsb", "hu", "hy", "id", "ig", "is", "it", "ja", "ka", "kk", "kl", "km",
    "kn", "ko", "kok", "ky", "lb", "lkt", "ln", "lo", "lt", "lv", "mk", "ml", "mn", "mr", "ms",
    "mt", "my", "nb", "ne", "nl", "nn", "om", "or", "pa", "pl", "ps", "pt", "ro", "ru", "se",
    "si", "sk", "sl", "smn", "sq", "sr", "sr_Latn", "sv", "sw", "ta", "te", "th", "to", "tr",
    "ug", "uk", "ur", "vi", "wae", "yi", "yo", "zh", "zh_Hant", "zu",
})

#: ``simple``: binary comparison, named explicitly.
SIMPLE: Final = "simple"

#: The variants (``"de@collation=phonebook"``) every locale has: ICU's root collations.
COMMON_VARIANTS: Final[frozenset[str]] = frozenset({"search", "eor", "emoji"})

#: The variants of some locales only, beside :data:`COMMON_VARIANTS`. The manual's table lists
#: most; the others were found by asking a MongoDB 6.0 server every CLDR collation type for
#: every locale (a variant that is the locale's default, ``zh@collation=pinyin``, is refused).
VARIANTS: Final[dict[str, frozenset[str]]] = {
    "ar": frozenset({"compat"}),
    "bn": frozenset({"traditional"}),
    "de": frozenset({"phonebook"}),
    "de_AT": frozenset({"phonebook"}),
    "es": frozenset({"traditional"}),
    "fi": frozenset({"traditional"}),
    "ja": frozenset({"unihan"}),
    "kn": frozenset({"traditional"}),
    "ko": frozenset({"searchjl", "unihan"}),
    "ln": frozenset({"phonetic"}),
    "si": frozenset({"dictionary"}),
    "sv": frozenset({"standard"}),
    "vi": frozenset({"traditional"}),
    "zh": frozenset({"big5han", "gb2312han", "standard", "stroke", "unihan", "zhuyin"}),
    "zh_Hant": frozenset({"big5han", "gb2312han", "pinyin", "standard", "unihan", "zhuyin"}),
}

_KEYWORD: Final = "@collation="


def _nearest_locale(name: str) -> str | None:
    """The known locale ``name`` most likely meant: the same up to case and ``-``, or with its
    last ``_`` parts dropped (``"cy_GB"``: ``"cy"``), as the server suggests."""
    known = {locale.lower(): locale for locale in LOCALES}
    base = name.partition("@")[0].replace("-", "_").lower()
    while base:
        if base in known:
            return known[base]
        base = base.rpartition("_")[0]
    return None


def check_locale(locale: str, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` and ``locale`` unless MongoDB collates by it:
    one of :data:`LOCALES`, optionally with ``@collation=<variant>``, or ``"simple"``."""
    if locale == SIMPLE:
        return
    base, keyword, variant = locale.partition(_KEYWORD)
    if base in LOCALES:
        if not keyword:
            return
        allowed = COMMON_VARIANTS | VARIANTS.get(base, frozenset())
        if variant in allowed:
            return
        raise ValueError(
            f"{what}: locale {base!r} has no collation variant {reprlib.repr(variant)} "
            f"(variants: {', '.join(sorted(allowed))})"
        )
    nearest = _nearest_locale(locale)
    hint = f"; did you mean {nearest!r}?" if nearest is not None else ""
    raise ValueError(
        f"{what}: unknown collation locale {reprlib.repr(locale)}: MongoDB knows ICU locale "
        f"ids such as 'en', 'fr_CA', 'zh_Hant' or 'simple'{hint}"
    )


def check_collation(collation: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Return ``collation`` as a plain dict after checking it; raise ``ValueError`` naming
    ``what`` and the culprit (an unknown field, a wrong type, a strength outside 1..5, a
    locale MongoDB does not know)."""
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
            # A string first: a dict or list from a request body is unhashable, and a bare
            # TypeError from the set lookup would name nothing.
            if not isinstance(value, str) or value not in kind:
                raise ValueError(
                    f"{what}: {key} must be one of {sorted(kind)}, not {reprlib.repr(value)}"
                )
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                raise ValueError(
                    f"{what}: strength must be an int from 1 to 5, not {reprlib.repr(value)}"
                )
        elif type(value) is not kind:
            raise ValueError(f"{what}: {key} must be a {kind.__name__}, not {reprlib.repr(value)}")
        checked[key] = value
    locale = checked.get("locale")
    if not locale or "\x00" in locale or locale.startswith("$"):
        raise ValueError(f"{what}: a collation needs a locale such as 'en' (got {locale!r})")
    check_locale(locale, what)
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
