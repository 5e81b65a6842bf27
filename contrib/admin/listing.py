"""The list view's query: filters, search, ordering and keyset pagination from a query string.

Nothing from the query string becomes query structure. A filter parameter is ``field`` or
``field__lookup`` for a declared field and a lookup of :data:`LOOKUPS`, and its value goes
through ``Model.objects.filter(**{key: value})``, which validates it against the field's type
as for any code; anything else is a :class:`ListError` naming the parameter (a 400).

Pages are keyset pages: the query orders by ``(field, id)`` and a page starts after (or ends
before) the ``(value, id)`` of a row of the page before, so a page costs an index range and a
limit, never a skip over the rows before it. The cursor is that pair as JSON in base64url.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bson

from odm.exceptions import QueryError
from odm.executor import CODEC_OPTIONS
from odm.query.compiler import compile_query
from odm.query.q import Q
from odm.queryset import QuerySet

from ..aiohttp.strict_json import strict_loads
from .options import ModelAdmin, is_scalar, scalar_type
from .writes import ENCODING_ERRORS

LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "isnull",
    }
)
"""The lookups a filter parameter may use."""

RESERVED = frozenset({"o", "q", "after", "before", "msg"})
"""Parameters of the list itself: ordering, search, the two cursors, and a notice's code."""

MAX_SEARCH = 200
"""The longest search text taken."""

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
"""The values an ``__isnull`` parameter takes for True (in any case)."""

FALSE_WORDS = frozenset({"0", "false", "no", "off"})
"""The values an ``__isnull`` parameter takes for False (in any case)."""


class ListError(ValueError):
    """A query-string parameter the list refuses; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"parameter {parameter!r}: {message}")
        self.parameter = parameter


@dataclass(frozen=True)
class Page:
    """One page of the list and the cursors of its neighbours (``None``: no such page)."""

    rows: list[Any]
    ordering: str
    next_cursor: str | None
    previous_cursor: str | None
    filters: dict[str, str]
    search: str


FLOAT_TAG = "float"
"""The key of a cursor's tagged value, ``{"float": "NaN"}`` (or ``"Infinity"``,
``"-Infinity"``): a stored NaN or infinity, which JSON has no number for."""

NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
"""The texts a tagged float may hold (each one ``float()`` reads back)."""


def encode_cursor(value: Any, id: Any) -> str:
    """The cursor of a row: its ordering value and id, as base64url JSON (strict JSON: a NaN
    or an infinity is a tagged value, see :data:`FLOAT_TAG`)."""
    text = json.dumps([_jsonable(value), str(id)], separators=(",", ":"), allow_nan=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(parameter: str, cursor: str) -> tuple[Any, str]:
    """The ``(value, id)`` of a cursor; a malformed one is a :class:`ListError`.

    Read as every JSON input of the admin is (``strict_loads``): a cursor the admin wrote is
    strict JSON, so one holding ``NaN`` or a key twice was made by hand.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, id = strict_loads(raw.decode())
        value = _untagged(value)
    except (binascii.Error, ValueError, TypeError):  # JSONDecodeError is a ValueError
        raise ListError(parameter, "not a cursor of this list") from None
    if not isinstance(id, str) or isinstance(value, dict | list):
        raise ListError(parameter, "not a cursor of this list")
    return value, id


def _untagged(value: Any) -> Any:
    """``value`` read back: the float of a tagged value (a ValueError for any other object)."""
    if not isinstance(value, dict):
        return value
    if value.keys() != {FLOAT_TAG} or value[FLOAT_TAG] not in NON_FINITE:
        raise ValueError("not a tagged float")
    return float(value[FLOAT_TAG])


def _non_finite_text(value: float) -> str:
    """How JSON's neighbours (and ``float()``) spell a NaN or an infinity."""
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {FLOAT_TAG: _non_finite_text(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "value") and not hasattr(value, "isoformat"):  # an enum member
        return _jsonable(value.value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def filter_kwargs(admin: ModelAdmin, query: Mapping[str, str]) -> dict[str, Any]:
    """The lookups of the filter parameters of ``query``, checked by name (not yet by value)."""
    fields = admin.model.model_fields
    kwargs: dict[str, Any] = {}
    for key, value in query.items():
        if key in RESERVED:
            continue
        name, _, lookup = key.partition("__")
        if name != "id" and name not in fields:
            raise ListError(key, f"{admin.verbose_name} has no field {name!r}")
        if lookup and lookup not in LOOKUPS:
            raise ListError(key, f"unknown lookup {lookup!r}; known: {', '.join(sorted(LOOKUPS))}")
        if lookup in ("in",):
            kwargs[key] = [part for part in value.split(",") if part]
        elif lookup == "isnull":
            kwargs[key] = _switch(key, value)
        else:
            kwargs[key] = value
    return kwargs


def _sendable(queryset: QuerySet[Any], parameter: str) -> QuerySet[Any]:
    """``queryset`` (just narrowed by ``parameter``), once its query is known to encode.

    A value the query layer accepts may still be one that BSON refuses (a datetime past the
    year 9999 once in UTC, a lone surrogate in a cursor's JSON): the query would fail only
    when it is sent, naming no parameter.
    """
    try:
        # As the executor will send it (explain_query() is JSON: it encodes anything).
        bson.encode(compile_query(queryset.query).kwargs(), codec_options=CODEC_OPTIONS)
    except ENCODING_ERRORS as error:
        raise ListError(parameter, f"the value cannot be searched for: {error}") from None
    return queryset


def _switch(key: str, value: str) -> bool:
    """The boolean a parameter names; any other value (a typo, an empty value) is refused
    rather than read as False, which would silently filter nothing."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    known = ", ".join(sorted(TRUE_WORDS | FALSE_WORDS))
    raise ListError(key, f"{value!r} is not true or false; use one of {known}")


def _filtered(admin: ModelAdmin, query: Mapping[str, str]) -> QuerySet[Any]:
    queryset: QuerySet[Any] = admin.model.objects.all()
    for key, value in filter_kwargs(admin, query).items():
        try:
            queryset = _sendable(queryset.filter(**{key: value}), key)
        except QueryError as exc:
            raise ListError(key, str(exc)) from None
    search = query.get("q", "").strip()[:MAX_SEARCH]
    if not search:
        return queryset
    try:
        return _searched(admin, queryset, search)
    except QueryError as exc:
        raise ListError("q", str(exc)) from None


def _searched(admin: ModelAdmin, queryset: QuerySet[Any], search: str) -> QuerySet[Any]:
    """``queryset`` narrowed to the documents ``search`` finds."""
    if admin.uses_text_index():
        return queryset.search(search)  # a string, matched as words: never an operator
    fields = admin.searched()
    if not fields:
        return queryset
    either = Q()
    for name in fields:
        either = either | Q(**{f"{name}__icontains": search})
    return queryset.filter(either)


def _ordering(admin: ModelAdmin, query: Mapping[str, str]) -> tuple[str, bool]:
    ordering = query.get("o") or admin.ordering
    name = ordering.removeprefix("-")
    if not is_scalar(admin.model, name) or name not in ("id", *admin.columns()):
        raise ListError("o", f"cannot order by {name!r}; order by one of the columns")
    return name, ordering.startswith("-")


def _after(name: str, value: Any, id: str, descending: bool, floats: bool) -> Q:
    """The rows after ``(value, id)`` in the order ``(name, id)``, both ``descending`` or not;
    ``floats``: the column is a float field, which may hold NaN.

    MongoDB's order of a number column, ascending: null (and missing), NaN, -Infinity, the
    numbers, Infinity. Yet no comparison but equality matches NaN (``$gt``/``$lt`` of a number
    or of NaN leave it out), so the rows past a NaN are the numbers ``>= -Infinity``, and a
    descending page past a number asks for the NaN rows by equality.
    """
    beyond = "lt" if descending else "gt"
    if name == "id":
        return Q(**{f"id__{beyond}": id})
    tie = Q(**{name: value, f"id__{beyond}": id})
    nulls = Q(**{f"{name}__isnull": True})
    if value is None:
        return tie if descending else tie | Q(**{f"{name}__isnull": False})
    if _is_nan(value):
        return tie | nulls if descending else tie | Q(**{f"{name}__gte": -math.inf})
    rest = tie | Q(**{f"{name}__{beyond}": value})
    if not descending:
        return rest
    return rest | Q(**{name: math.nan}) | nulls if floats else rest | nulls


def _is_nan(value: Any) -> bool:
    """Tell whether ``value`` is a float NaN (equal to nothing, itself included)."""
    return isinstance(value, float) and math.isnan(value)


def _holds_floats(admin: ModelAdmin, name: str) -> bool:
    """Tell whether the column ``name`` is a float field (which may hold NaN)."""
    kind = scalar_type(admin.model, name)
    return isinstance(kind, type) and issubclass(kind, float)


@dataclass(frozen=True)
class ListQuery:
    """The query of one list page: at most ``per_page + 1`` rows (one more tells that another
    page follows), and how to read them."""

    queryset: QuerySet[Any]
    column: str
    backwards: bool
    cursor: str | None


def list_query(admin: ModelAdmin, query: Mapping[str, str]) -> ListQuery:
    """Build (without running it) the query of the list page that ``query`` asks for."""
    name, descending = _ordering(admin, query)
    queryset = _filtered(admin, query)
    after, before = query.get("after"), query.get("before")
    backwards = before is not None and after is None
    cursor_parameter = "before" if backwards else "after"
    cursor = before if backwards else after
    # Reading backwards is reading forwards in the reversed order, then turning the page over.
    reverse = descending != backwards
    order = [f"-{name}", "-id"] if reverse else [name, "id"]
    if name == "id":
        order = order[:1]
    if cursor is not None:
        value, id = decode_cursor(cursor_parameter, cursor)
        try:
            queryset = _sendable(
                queryset.filter(_after(name, value, id, reverse, _holds_floats(admin, name))),
                cursor_parameter,
            )
        except QueryError as exc:
            raise ListError(cursor_parameter, str(exc)) from None
    limited = queryset.order_by(*order)[: admin.per_page + 1]
    return ListQuery(limited, name, backwards, cursor)


async def page(admin: ModelAdmin, query: Mapping[str, str]) -> Page:
    """Run the list's query for ``query`` (the request's query string) and return the page."""
    planned = list_query(admin, query)
    name, backwards, cursor = planned.column, planned.backwards, planned.cursor
    rows = await planned.queryset
    more = len(rows) > admin.per_page
    rows = rows[: admin.per_page]
    if backwards:
        rows.reverse()
    first = encode_cursor(_value(rows[0], name), rows[0].id) if rows else None
    last = encode_cursor(_value(rows[-1], name), rows[-1].id) if rows else None
    if backwards:
        next_cursor, previous_cursor = last, (first if more else None)
    else:
        next_cursor = last if more else None
        previous_cursor = first if cursor is not None else None
    filters = {k: v for k, v in query.items() if k not in RESERVED}
    return Page(
        rows=rows,
        ordering=query.get("o") or admin.ordering,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        filters=filters,
        search=query.get("q", ""),
    )


def _value(row: Any, name: str) -> Any:
    return getattr(row, name)
