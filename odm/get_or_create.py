"""``get_or_create()`` and ``update_or_create()``: the checks of their keywords, and the get
that falls back on an insert.

``defaults`` only fills a document that does not exist yet (Django's keyword): its keys must be
fields of the model, none given twice (in it and in the lookups), and a queryset without a
filter needs a lookup, or ``get()`` would return whichever document exists. A concurrent
insert that wins a unique index is read back instead of failing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .exceptions import DoesNotExist, DuplicateKey, QueryError
from .query.query import Query
from .session import current_unit_of_work

__all__ = ["checked_defaults", "get_or_insert", "refuse_no_lookup"]

M = TypeVar("M")


def checked_defaults(
    model: type[Any], defaults: Any, lookups: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """Return ``defaults`` keyed by field name after checking that it maps fields of ``model``
    to values and shares no field with ``lookups`` (which would be given twice to the model)."""
    if defaults is None:
        return {}
    fields = model.model_fields
    # get_or_create(defaults=...) on a model with such a field: the caller (or a request body)
    # most likely meant the field, which only `defaults__exact=` looks up (as in Django).
    hint = (
        "; look the field 'defaults' up with defaults__exact="
        if what == "get_or_create" and "defaults" in fields
        else ""
    )
    if not isinstance(defaults, Mapping):
        raise QueryError(
            f"{what}(): defaults must be a mapping of field names to values, not "
            f"{type(defaults).__name__}{hint}",
            field="defaults",
        )
    aliases: dict[str, str] = {}
    for name, info in fields.items():
        if info.alias is not None:
            aliases[info.alias] = name
    unknown = [k for k in defaults if k not in fields and k not in aliases]
    if unknown:
        raise QueryError(
            f"{what}(): defaults name no field of {model.__name__}: "
            + ", ".join(repr(k) for k in unknown)
            + hint,
            field=str(unknown[0]),
        )
    given = {aliases.get(k, k) for k in _plain_fields(lookups)}
    twice = sorted(k for k in defaults if aliases.get(k, k) in given)
    if twice:
        raise QueryError(
            f"{what}(): {', '.join(repr(k) for k in twice)} both in the lookup and in "
            "defaults; give each field once",
            field=twice[0],
        )
    return {str(aliases.get(k, k)): v for k, v in defaults.items()}


def refuse_no_lookup(
    model: type[Any], query: Query, method: str, lookups: Mapping[str, Any]
) -> None:
    """Raise ``QueryError`` when ``method`` (``get_or_create`` / ``update_or_create``) has
    no lookup keyword and the queryset (of ``model``, holding ``query``) no filter of its own.

    Its ``get()`` would then match every document: it would return whichever one exists
    (another user's, when a request body held only ``defaults``) or raise
    ``MultipleObjectsReturned``. ``none()`` matches nothing, so it is left to create.
    """
    if lookups or query.where or query.nothing:
        return
    name = model.__name__
    raise QueryError(
        f"{method}() needs a lookup: with none, and no filter on the queryset, it would "
        f"return whichever {name} document exists (or raise MultipleObjectsReturned); "
        f"name the document ({method}(field=value, ...)) or filter first "
        f"({name}.objects.filter(owner=...).{method}(...))"
    )


async def get_or_insert(
    get: Callable[..., Awaitable[M]],
    model: type[Any],
    checked: dict[str, Any],
    lookups: dict[str, Any],
    timeout: float | None,
) -> tuple[M, bool]:
    """``(document, created)``: the one document ``get(**lookups)`` returns, else a new one
    of ``model`` made from ``lookups`` and the ``checked`` defaults and inserted; a
    concurrent insert that wins a unique index is read back. The defaults and the lookups
    come apart, so that ``update_or_create()`` can pass a lookup on a field named
    ``defaults``."""
    try:
        return await get(**lookups), False
    except DoesNotExist:
        pass
    document = model(**_plain_fields(lookups), **checked)
    try:
        await document.insert(timeout=timeout)
    except DuplicateKey:
        if current_unit_of_work() is not None:
            # The server aborted the transaction with the failed insert: a second get()
            # cannot run in it. Inside a transaction the conflicting document was there
            # before the get() above (a later concurrent insert is a WriteConflict,
            # which atomic() retries), so it does not match: say so.
            raise
        try:
            return await get(**lookups), False
        except DoesNotExist:
            raise
    return document, True


def _plain_fields(lookups: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the ``field=value`` / ``field__exact=value`` items of ``get_or_create`` kwargs."""
    fields: dict[str, Any] = {}
    for key, value in lookups.items():
        name = key.removesuffix("__exact")
        if "__" not in name:
            fields[name] = value
    return fields
