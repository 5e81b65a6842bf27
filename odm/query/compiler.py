"""Turn a :class:`~odm.query.query.Query` into what the executor sends. No I/O.

A query compiles to ``find`` arguments when it can (:class:`CompiledFind`) and to an aggregation
pipeline when it needs one (:class:`CompiledPipeline`): joins (``select_related``, lookups across a
``Reference``), ``values()`` rows, ``annotate()`` groups. The other entry points build counts,
``aggregate()`` totals, the target of ``update()`` / ``delete()`` and update documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..exceptions import QueryError
from ..models.derived import table
from .aggregates import Aggregate
from .computed import count_pipeline, rows_pipeline, selected_rows, write_pipeline
from .geo import holds_near
from .paths import (
    ID_FIELD,
    ResolvedPath,
    check_name,
    remember,
    resolve,
)
from .query import Query, _resolve_aggregate
from .reading import field_reference
from .stages import (
    CompiledAggregate,
    CompiledCount,
    CompiledFind,
    CompiledPipeline,
    CompiledWrite,
    Related,
    _distinct_stages,
    _documents_pipeline,
    _group_stages,
    _join_stages,
    _merge_joins,
    _ordering_joins,
    _Parts,
    _parts,
    _plain_filter,
    _projection,
    _related,
    _sort_spec,
    _values_project,
    _window,
    jsonable,
)
from .updates import CompiledUpdate, compile_update, compile_update_spec

__all__ = [
    "CompiledAggregate",
    "CompiledCount",
    "CompiledFind",
    "CompiledPipeline",
    "CompiledUpdate",
    "CompiledWrite",
    "Related",
    "compile_aggregate",
    "compile_count",
    "compile_exists",
    "compile_query",
    "compile_update",
    "compile_update_spec",
    "compile_write",
    "explain_command",
    "explain_query",
    "jsonable",
]


def _simple_find(query: Query) -> CompiledFind | CompiledPipeline | None:
    """Compile the common cases straight from the query: a plain find (no join in the filter
    or the ordering, no ``values()``, no grouping) to ``find`` arguments, and the same with
    ``select_related`` to ``$match`` + the cached join stages of :func:`_join_plan`.
    ``None``: take the general path (which also raises the errors a join-crossing ordering
    deserves). Gives exactly what the general path gives for these queries."""
    if query.values_fields is not None or query.annotations:
        return None
    filter = _plain_filter(query)
    if filter is None:
        return None
    ordering = query.ordering
    if ordering is None:
        ordering = query.default_ordering()
    sort = _plain_sort(query.model, ordering) if ordering else []
    if sort is None:
        return None
    if not query.related:
        # Positional: a frozen dataclass's keyword call costs a visible part of a find's
        # own time (the order is CompiledFind's fields').
        projected = query.only_fields is not None or query.deferred
        return CompiledFind(
            filter, _projection(query) if projected else None, sort or None, query.low_mark,
            query.limit, query.batch_size,
        )
    # select_related alone: nothing after the joins can drop or reorder rows, so (as in the
    # general path) match, sort and cut first, then join.
    plan = _join_plan(query.model, query.related)
    pipeline: list[dict[str, Any]] = [{"$match": filter}] if filter else []
    if sort:
        pipeline.append({"$sort": dict(sort)})
    pipeline += _window(query)
    pipeline += plan.stages
    return _documents_pipeline(query, pipeline, plan.related, plan.kept, plan.unset)


#: The entry of a model's derived state (odm.models.derived) mapping an ordering to its
#: ``find`` sort (``None``: it crosses a join): it depends only on the model and the names.
_SORTS: Final = "compiler.sorts"


def _plain_sort(model: type[Any], ordering: tuple[str, ...]) -> list[tuple[str, int]] | None:
    """Return the ``find`` sort of ``ordering`` (stored keys, each once), or ``None`` when a
    field of it is reached through a join (a pipeline sorts it)."""
    per_model = table(model, _SORTS)
    cached: tuple[tuple[str, int], ...] | None = per_model.get(ordering, _UNKNOWN)
    if cached is not _UNKNOWN:
        return None if cached is None else list(cached)  # each find its own list
    sort: list[tuple[str, int]] = []
    seen: set[str] = set()
    cacheable = True
    for item in ordering:
        target = resolve(model, item.lstrip("-+"))
        cacheable = cacheable and not target.via_subclass  # never cached, as paths.resolve
        if target.joins:
            if cacheable:
                remember(per_model, ordering, None)
            return None
        key = target.db_path
        if key not in seen:
            seen.add(key)
            sort.append((key, -1 if item.startswith("-") else 1))
    if cacheable:
        remember(per_model, ordering, tuple(sort))
    return sort


_UNKNOWN: Any = object()


@dataclass(frozen=True, slots=True)
class _JoinPlan:
    """What ``select_related(*paths)`` adds to a pipeline: it depends only on the model and the
    paths (never on a value), so it is built once per (model, paths)."""

    #: The ``$lookup`` / ``$unwind`` stages, parents first. Shared by every pipeline built
    #: from this plan: neither the ODM nor the driver changes a stage after building it.
    stages: tuple[dict[str, Any], ...]
    related: tuple[Related, ...]
    #: The keys of the joined documents (kept in a projection) and the joins only needed on
    #: the way (removed with ``$unset``).
    kept: tuple[str, ...]
    unset: tuple[str, ...]


#: The entry of a model's derived state (odm.models.derived) mapping select_related paths to
#: their join plan. Only successful builds are stored: a bad path raises every time.
_JOIN_PLANS: Final = "compiler.join_plans"


def _join_plan(model: type[Any], paths: tuple[str, ...]) -> _JoinPlan:
    """Return the (cached) join plan of ``select_related(*paths)`` on ``model``."""
    per_model = table(model, _JOIN_PLANS)
    plan: _JoinPlan | None = per_model.get(paths)
    if plan is None:
        # The general path's own helpers, so the plan is what it would build.
        probe = Query(model)
        probe.related = paths
        pairs = _related(probe)
        joins = _merge_joins([j for j, _ in pairs])
        related = tuple(dict.fromkeys(r for _, r in pairs))
        kept = tuple(dict.fromkeys(r.key for r in related))
        plan = _JoinPlan(
            stages=tuple(_join_stages(joins)),
            related=related,
            kept=kept,
            unset=tuple(j.key for j in joins if j.key not in kept),
        )
        remember(per_model, paths, plan)
    return plan


def compile_query(query: Query) -> CompiledFind | CompiledPipeline:
    """Compile the rows of a queryset: ``find`` arguments when possible, else a pipeline."""
    if query.extras.computed:  # geo_near() / search(): see odm.query.computed
        return rows_pipeline(query)
    compiled = _simple_find(query)
    if compiled is None:
        compiled = _general_pipeline(query)
    if isinstance(compiled, CompiledPipeline):
        _refuse_near_in(compiled.pipeline)
    return compiled


def _refuse_near_in(pipeline: list[dict[str, Any]]) -> None:
    """The server refuses ``$near`` in a pipeline's ``$match``: say so, naming the way."""
    for stage in pipeline:
        match = stage.get("$match")
        if match is not None and holds_near(match):
            raise QueryError(
                "a near lookup runs only in a plain find: with values(), select_related() or "
                "a filter across a reference MongoDB refuses $near; use geo_near() (or "
                "within=odm.Circle(point, metres)) instead"
            )


def _general_pipeline(query: Query) -> CompiledPipeline:
    """Compile what :func:`_simple_find` cannot: joins in the filter or the ordering,
    ``values()``, grouping. (It also gives what the short cut gives for ``select_related``
    alone, which the tests check.)"""
    parts = _parts(query)
    pipeline: list[dict[str, Any]] = []
    if parts.pre:
        pipeline.append({"$match": parts.pre})
    names = query.output_names()
    if query.grouped:
        pipeline += _join_stages(parts.joins)
        if parts.joined:
            pipeline.append({"$match": parts.joined})
        if query.annotations:
            pipeline += _group_stages(query)
        else:  # distinct values(): group on the fields
            pipeline += _distinct_stages(query)
        if parts.post:
            pipeline.append({"$match": parts.post})
        sort = _sort_spec(query, names)
        if sort:
            pipeline.append({"$sort": dict(sort)})
        pipeline += _window(query)
        return CompiledPipeline(
            pipeline, rows=query.values_mode, names=names, batch_size=query.batch_size
        )
    sort = _sort_spec(query)
    ordering_joined = bool(_ordering_joins(query))
    if not parts.joined and not ordering_joined:
        # Nothing after the joins can drop or reorder rows: sort and cut first, so that a
        # page of 20 costs 20 $lookups, not one per matching document.
        if sort:
            pipeline.append({"$sort": dict(sort)})
        pipeline += _window(query)
        pipeline += _join_stages(parts.joins)
    else:
        pipeline += _join_stages(parts.joins)
        if parts.joined:
            pipeline.append({"$match": parts.joined})
        if sort:
            pipeline.append({"$sort": dict(sort)})
        pipeline += _window(query)
    if query.values_fields is not None:
        pipeline.append(_values_project(query))
        return CompiledPipeline(
            pipeline, rows=query.values_mode, names=names, batch_size=query.batch_size
        )
    kept = {r.key for r in parts.related}
    temporary = [j.key for j in parts.joins if j.key not in kept]
    return _documents_pipeline(query, pipeline, tuple(parts.related), kept, temporary)


def explain_query(query: Query) -> dict[str, Any]:
    """Return what the queryset will send, as JSON: ``{"find": ...}`` or ``{"aggregate": ...}``."""
    return compile_query(query).explain()


def explain_command(query: Query) -> dict[str, Any]:
    """Return the command whose plan ``explain()`` asks the server for: the ``find`` or the
    ``aggregate`` the queryset sends, with its collation."""
    compiled = compile_query(query)
    name = query.model._meta.collection
    command: dict[str, Any]
    if isinstance(compiled, CompiledFind):
        command = {"find": name, "filter": compiled.filter}
        if compiled.projection is not None:
            command["projection"] = compiled.projection
        if compiled.sort:
            command["sort"] = dict(compiled.sort)
        if compiled.skip:
            command["skip"] = compiled.skip
        if compiled.limit:
            command["limit"] = compiled.limit
    else:
        command = {"aggregate": name, "pipeline": compiled.pipeline, "cursor": {}}
    collation = query.extras.collation
    if collation is not None:
        command["collation"] = collation
    return command


def compile_count(query: Query) -> CompiledCount:
    """Compile ``count()``: ``count_documents`` arguments, or a pipeline ending in ``$count``.

    The ordering and ``select_related`` are dropped first, and the choice between the two is
    made on what is left: neither changes how many rows there are (their joins are left joins
    of one document, and a slice ``[a:b]`` keeps ``min(b, n) - a`` rows whatever the order),
    and deciding on the query as given took the pipeline branch for the joins of an ordering
    across a reference (``order_by("author__name")``) that the unordered query then no longer
    had, so it compiled to a ``find``.
    """
    if query.extras.computed:
        return CompiledCount(pipeline=count_pipeline(query))
    counted = query.clone()
    counted.ordering = ()
    counted.related = ()
    parts = _parts(counted)
    _refuse_near(parts, "count()")
    if not parts.joins and not query.grouped:
        return CompiledCount(filter=parts.pre, skip=query.low_mark, limit=query.limit)
    compiled = compile_query(counted)
    assert isinstance(compiled, CompiledPipeline)
    pipeline = [s for s in compiled.pipeline if not ({"$unset", "$project"} & s.keys())]
    if query.grouped:
        pipeline = compiled.pipeline
    return CompiledCount(pipeline=[*pipeline, {"$count": "n"}])


def compile_exists(query: Query) -> CompiledFind | CompiledPipeline:
    """Compile ``exists()``: the cheapest read of at most one row (only its ``_id``)."""
    probe = query.clone()
    probe.ordering = ()
    probe.related = ()
    probe.apply_slice(slice(0, 1))
    if probe.values_fields is None and not probe.grouped:
        probe.only_fields = (ID_FIELD,)
        probe.deferred = ()
    return compile_query(probe)


def compile_aggregate(query: Query, aggregates: Mapping[str, Any]) -> CompiledAggregate:
    """Compile ``aggregate(name=Count(), ...)`` into one ``$group`` over the queryset."""
    if not aggregates:
        raise QueryError("aggregate() needs at least one aggregate, e.g. aggregate(n=Count())")
    if query.grouped:
        raise QueryError("aggregate() over values().annotate() is not supported")
    resolved: dict[str, dict[str, ResolvedPath]] = {}
    for name, agg in aggregates.items():
        check_name(name, where="aggregate")
        if name == "_id":
            raise QueryError("'_id' cannot name an aggregate", field=name)
        if not isinstance(agg, Aggregate):
            raise QueryError(f"aggregate({name}=...) takes an aggregate such as Count()")
        resolved[name] = _resolve_aggregate(query.model, agg)
    agg_joins = [j for r in resolved.values() for p in r.values() for j in p.joins]
    base = query.clone()
    base.values_fields = None
    base.related = ()
    if not base.is_sliced:
        base.ordering = ()  # order does not change totals; leave the sort out
    if base.extras.computed:
        if agg_joins:
            raise QueryError(
                "aggregate() after geo_near()/search() cannot reach through a reference"
            )
        pipeline = selected_rows(base)
    else:
        parts = _parts(base, agg_joins)
        _refuse_near(parts, "aggregate()")
        pipeline = _matched_and_joined(parts)
    if base.is_sliced and not base.extras.computed:
        sort = _sort_spec(base)
        if sort:
            pipeline.append({"$sort": dict(sort)})
        pipeline += _window(base)
    group: dict[str, Any] = {"_id": None}
    project: dict[str, Any] = {"_id": 0}
    for name, agg in aggregates.items():
        paths = resolved[name]
        group[name] = agg.as_accumulator(lambda n, p=paths: field_reference(p[n]))
        project[name] = agg.finalize(name)
    pipeline += [{"$group": group}, {"$project": project}]
    return CompiledAggregate(pipeline, {name: agg.empty for name, agg in aggregates.items()})


def _refuse_near(parts: _Parts, what: str) -> None:
    """The server refuses ``$near`` in counts and ``$match`` stages: say so, naming the way."""
    if holds_near(parts.pre) or holds_near(parts.joined):
        raise QueryError(
            f"{what} cannot run a near lookup (MongoDB refuses $near there): filter with "
            "within=odm.Circle(point, metres), or use geo_near()"
        )


def _matched_and_joined(parts: _Parts) -> list[dict[str, Any]]:
    """Return the stages that select the rows: match what needs no join, join, match the rest."""
    pipeline: list[dict[str, Any]] = []
    if parts.pre:
        pipeline.append({"$match": parts.pre})
    pipeline += _join_stages(parts.joins)
    if parts.joined:
        pipeline.append({"$match": parts.joined})
    return pipeline


def compile_write(query: Query) -> CompiledWrite:
    """Compile the target of ``update()`` / ``delete()``: a filter, or an ``_id`` pipeline."""
    if query.is_sliced:
        raise QueryError("cannot update or delete a sliced queryset; filter it instead")
    if query.values_fields is not None or query.grouped:
        raise QueryError("cannot update or delete from values() or annotate()")
    if query.extras.geo_near is not None:
        return CompiledWrite(pipeline=write_pipeline(query))
    filter = _plain_filter(query)
    if filter is not None:
        return CompiledWrite(filter=filter)
    parts = _parts(query, rows=False)
    if not parts.joins:
        return CompiledWrite(filter=parts.pre)
    pipeline = _matched_and_joined(parts)
    pipeline.append({"$project": {"_id": 1}})
    return CompiledWrite(pipeline=pipeline)
