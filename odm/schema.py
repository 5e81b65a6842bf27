"""``ensure_indexes``: create the indexes the models declare, never drop one.

Collections are handled concurrently (one ``asyncio.gather``); each gets one
``create_indexes`` call for what is missing. An index that exists under the same name with
other keys or options is reported by :class:`IndexConflict` (naming the index, the
collection and the difference) rather than dropped: changing an index is a migration's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from pymongo.errors import OperationFailure

from . import executor
from .connection import DEFAULT_ALIAS, alias_for, connections, get_connection
from .exceptions import IndexConflict, TransactionError
from .models.indexes import Index, index_differences
from .registry import registry
from .session import current_session

__all__ = ["IndexConflict", "ensure_indexes"]

# Server codes for an index that clashes with an existing one (IndexOptionsConflict,
# IndexKeySpecsConflict, IndexAlreadyExists).
_CONFLICT_CODES = frozenset({85, 86, 68})


def _models_for(alias: str | None, models: Iterable[type[Any]] | None) -> list[type[Any]]:
    if models is not None:
        chosen = list(models)
    else:
        aliases = [alias] if alias is not None else [c.alias for c in connections()]
        chosen = []
        for name in aliases:
            bound = get_connection(name).models
            chosen.extend(bound or registry.models(alias=name))
    return [m for m in chosen if not m._meta.abstract]


async def _ensure_collection(
    model: type[Any], indexes: list[Index], timeout: float | None
) -> list[str]:
    meta = model._meta
    existing = {i["name"]: i for i in await executor.list_indexes(model, timeout=timeout)}
    missing: list[Index] = []
    for index in indexes:
        server = existing.get(index.name)
        if server is None:
            missing.append(index)
            continue
        differences = index_differences(index.spec(), server)
        if differences:
            raise IndexConflict(
                f"index {index.name!r} on collection {meta.collection!r} differs from "
                f"{model.__name__}'s declaration: {'; '.join(differences)}. ensure_indexes "
                "never drops an index: change it with a migration (odm migrate make)"
            )
    if not missing:
        return []
    try:
        return await executor.create_indexes(
            model, [i.to_index_model() for i in missing], timeout=timeout
        )
    except OperationFailure as exc:
        if exc.code in _CONFLICT_CODES:
            names = ", ".join(repr(i.name) for i in missing)
            raise IndexConflict(
                f"cannot create index(es) {names} on collection {meta.collection!r} for "
                f"{model.__name__}: {exc.details.get('errmsg') if exc.details else exc}"
            ) from exc
        raise


async def ensure_indexes(
    alias: str | None = DEFAULT_ALIAS,
    models: Iterable[type[Any]] | None = None,
    *,
    timeout: float | None = None,
) -> dict[str, list[str]]:
    """Create the indexes that ``models`` declare (default: those bound to ``alias``, every
    connected alias when ``alias`` is ``None``); return ``{collection: [created names]}``.

    Existing indexes that match are left alone; one with the same name but other keys or
    options raises :class:`IndexConflict`. Refused inside a transaction, where the server
    cannot build indexes on existing collections.
    """
    session = current_session()
    if session is not None and getattr(session, "in_transaction", False):
        raise TransactionError(
            "ensure_indexes() cannot run inside a transaction: call it at startup, or "
            "outside the odm.transaction() block"
        )
    # One entry per (alias, collection): a polymorphic family's indexes go together.
    per_collection: dict[tuple[str, str], tuple[type[Any], dict[str, Index]]] = {}
    for model in _models_for(alias, models):
        meta = model._meta
        key = (alias_for(model), meta.collection)
        _, indexes = per_collection.setdefault(key, (meta.root or model, {}))
        for index in meta.indexes:
            indexes.setdefault(index.name, index)
    results = await asyncio.gather(
        *(
            _ensure_collection(owner, list(indexes.values()), timeout)
            for owner, indexes in per_collection.values()
        )
    )
    return {
        collection: created
        for (_, collection), created in zip(per_collection, results, strict=True)
    }
