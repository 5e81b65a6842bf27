"""A queryset's ``update()`` and ``delete()``: one write to every document its filter matches.

What is written to comes from the compiler (:func:`~odm.query.compiler.compile_write`); before
the write, the unit of work's tracked documents are flushed (autoflush) and an update's checks
run (:mod:`odm.update_prechecks`); after it, the unit of work reads its documents of the
collection again (:mod:`odm.resync`). A filter on one ``_id`` value is sent as
``update_one`` / ``delete_one``, which MongoDB retries on failover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from . import executor, resync
from .exceptions import QueryError
from .models.options import ID_KEY
from .query import compiler
from .query.compiler import CompiledWrite
from .query.query import Query
from .session import current_unit_of_work
from .update_prechecks import checked_filter

if TYPE_CHECKING:
    from .uow import UnitOfWork

__all__ = ["delete", "update", "write_filter", "write_target"]


async def update(model: type[Any], query: Query, values: Mapping[str, Any]) -> int:
    """Run ``QuerySet.update(**values)`` for the queryset of ``model`` holding ``query``;
    return how many documents matched."""
    if not values:
        raise QueryError("update() needs at least one field=value")
    compiled = compiler.compile_update_spec(model, values)
    update = compiled.update
    if query.nothing:
        return 0  # checked like any update, sent nowhere
    meta = model._meta
    if meta.optimistic_lock:
        version = meta.db_key(meta.version_field)
        update.setdefault("$inc", {})[version] = 1
    target, flush = write_target(query)
    filter = target.filter
    if filter is None or flush is not None:
        filter = await write_filter(model, query, target, flush)
    aggregated: list[Mapping[str, Any]] = []
    if target.pipeline is not None and compiled.matched_lists:
        filter, aggregated = _with_first_tests(filter, target.pipeline)
    options: dict[str, Any] = _collation(query)
    single = _single(filter)
    written = await checked_filter(
        model, filter, compiled, single=single, timeout=query.timeout, options=options,
        aggregated=aggregated,
    )
    if compiled.array_filters:
        options["array_filters"] = compiled.array_filters
    write = executor.update_one if single else executor.update_many
    result = await write(
        model, written, compiled.document(options), timeout=query.timeout, **options
    )
    if flush is not None:  # the unit of work tracks documents: they may have changed
        await resync.read_again(
            flush, model, only=filter[ID_KEY] if single else None, write="update"
        )
    return int(result.matched_count)


async def delete(model: type[Any], query: Query) -> int:
    """Run ``QuerySet.delete()`` for the queryset of ``model`` holding ``query``; return how
    many documents were deleted."""
    if query.nothing:
        return 0
    target, flush = write_target(query)
    filter = target.filter
    if filter is None or flush is not None:
        filter = await write_filter(model, query, target, flush)
    single = _single(filter)
    write = executor.delete_one if single else executor.delete_many
    result = await write(model, filter, timeout=query.timeout, **_collation(query))
    if flush is not None:  # the unit of work tracks documents: some may be gone
        await resync.read_again(
            flush, model, only=filter[ID_KEY] if single else None, write="delete"
        )
    return int(result.deleted_count)


def write_target(query: Query) -> tuple[CompiledWrite, UnitOfWork | None]:
    """Compile what ``update()`` / ``delete()`` write to (refusing a sliced, ``values()``
    or ``annotate()`` queryset before anything is sent) and note the write in the unit
    of work; also return that unit of work when its tracked documents must be flushed
    first (else ``None``).

    Autoflush, as SQLAlchemy does before it queries: changes to tracked documents made
    earlier in this unit of work reach the server before a bulk write, so that an F()
    update applies on top of them instead of being overwritten by them at commit. A
    plain function, not a coroutine: most writes have nothing to flush.
    """
    target = compiler.compile_write(query)
    uow: UnitOfWork | None = current_unit_of_work()
    if uow is None:
        return target, None
    uow.note_write()
    return target, uow if len(uow.identity) else None


async def write_filter(
    model: type[Any], query: Query, target: CompiledWrite, flush: UnitOfWork | None
) -> dict[str, Any]:
    """Flush the unit of work ``flush`` (unless ``None``); return the filter of
    ``target``, the ids its pipeline matched when it has no plain filter."""
    if flush is not None:
        await flush.flush()
    if target.filter is not None:
        return target.filter
    assert target.pipeline is not None
    rows = await executor.aggregate_list(
        model, target.pipeline, timeout=query.timeout, **_collation(query)
    )
    return {ID_KEY: {"$in": [row[ID_KEY] for row in rows]}}


def _with_first_tests(
    ids: dict[str, Any], pipeline: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """For a ``matched()`` update of documents an aggregation chose (a filter through a
    reference, a ``geo_near()``), whose ids are ``ids``: return the filter to write with and
    the tests of the aggregation's later stages, which the write cannot run.

    ``$`` writes the element of the list that the write's own filter matched, and ``ids``
    alone matches none: the filter written adds the tests the aggregation's first stage ran
    on the collection's own fields (``tags="a"`` beside ``owner__name="x"``), which every
    document found meets and which tell MongoDB the element. The later stages test the
    joined documents, which the write does not see, so they cannot move ``$``; they are
    returned only to name the list in an error when the written filter chooses no element.
    """
    first = _first_tests(pipeline[0]) if pipeline else None
    later = [
        stage["$match"] for stage in pipeline[1:] if isinstance(stage.get("$match"), Mapping)
    ]
    if not first:
        return ids, later
    return {"$and": [dict(first), ids]}, later


def _first_tests(stage: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The filter of the collection's own documents that opens an aggregation: a
    ``$match``, or the ``query`` of a ``$geoNear`` (``None``: neither)."""
    tests = stage.get("$match")
    if tests is None and isinstance(near := stage.get("$geoNear"), Mapping):
        tests = near.get("query")
    return tests if isinstance(tests, Mapping) else None


def _collation(query: Query) -> dict[str, Any]:
    """Return ``{"collation": ...}`` for a driver call when the queryset has one, else ``{}``."""
    collation = query.extras.collation
    return {} if collation is None else {"collation": collation}


def _single(filter: Mapping[str, Any]) -> bool:
    """Tell whether ``filter`` can match one document at most: ``_id`` equals one value."""
    value = filter.get(ID_KEY, _MISSING)
    if type(value) in _PLAIN_IDS:  # the usual ids, told without the Mapping ABC's check
        return True
    return value is not _MISSING and not isinstance(value, Mapping | list)


_MISSING = object()

#: The types of most ids: none is a Mapping or a list.
_PLAIN_IDS = frozenset({ObjectId, str, int})
