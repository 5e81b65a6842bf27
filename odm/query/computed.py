"""Compile a queryset with computed annotations (``geo_near()``'s distance, ``search()``'s
score) into an aggregation pipeline. No I/O.

The pipeline opens with what computes the annotation, as the server requires: ``$geoNear``
(with the queryset's filter as its ``query``) or the ``$match`` holding ``$text`` followed by
``$addFields: {score: {$meta: "textScore"}}``. The rest is the ordinary pipeline of
:mod:`odm.query.compiler` (joins, filters across them, ordering, slicing, ``values()``,
grouping), with the annotation names usable wherever a field name is.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import QueryError
from . import stages
from .geo import holds_near
from .paths import resolve
from .query import Query

__all__ = ["count_pipeline", "rows_pipeline", "selected_rows", "write_pipeline"]


def _bare(item: str) -> str:
    return item.lstrip("-+")


def _without_computed_ordering(query: Query) -> Query:
    """Return a clone whose ordering names fields only (what the compiler's helpers resolve)."""
    probe = query.clone()
    computed = query.extras.computed
    probe.ordering = tuple(i for i in query.default_ordering() if _bare(i) not in computed)
    return probe


def _lead(query: Query, pre: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the stages that select the documents and compute the annotation."""
    extras = query.extras
    if holds_near(pre):
        raise QueryError(
            "a near lookup cannot be combined with geo_near() or search(): use geo_near()'s "
            "max_distance (or within=Circle(...)) instead"
        )
    if extras.geo_near is not None:
        return [extras.geo_near.stage(pre)]
    stages: list[dict[str, Any]] = [{"$match": pre}] if pre else []
    if extras.search is not None:
        stages.append({"$addFields": {extras.search.name: {"$meta": "textScore"}}})
    return stages


def _sort(query: Query) -> dict[str, int]:
    computed = query.extras.computed
    sort: dict[str, int] = {}
    for item in query.default_ordering():
        name = _bare(item)
        key = name if name in computed else resolve(query.model, name).db_path
        sort.setdefault(key, -1 if item.startswith("-") else 1)
    return sort


def selected_rows(query: Query) -> list[dict[str, Any]]:
    """Return the stages yielding the queryset's documents (joined, filtered, ordered and
    sliced), each with its annotation: the base of rows, counts and totals."""
    probe = _without_computed_ordering(query)
    parts = stages._parts(probe)
    pipeline = _lead(query, parts.pre)
    pipeline += stages._join_stages(parts.joins)
    if parts.joined:
        pipeline.append({"$match": parts.joined})
    sort = _sort(query)
    if sort:
        pipeline.append({"$sort": sort})
    pipeline += stages._window(query)
    return pipeline


def rows_pipeline(query: Query) -> stages.CompiledPipeline:
    """Compile the rows of a queryset that has computed annotations."""
    computed = query.extras.computed
    if query.grouped:
        probe = _without_computed_ordering(query)
        parts = stages._parts(probe)
        pipeline = _lead(query, parts.pre) + stages._join_stages(parts.joins)
        if parts.joined:
            pipeline.append({"$match": parts.joined})
        if query.annotations:
            pipeline += stages._group_stages(query)
        else:
            pipeline += stages._distinct_stages(query)
        if parts.post:
            pipeline.append({"$match": parts.post})
        names = query.output_names()
        sort = stages._sort_spec(query, names)
        if sort:
            pipeline.append({"$sort": dict(sort)})
        pipeline += stages._window(query)
        return stages.CompiledPipeline(
            pipeline, rows=query.values_mode, names=names, batch_size=query.batch_size
        )
    pipeline = selected_rows(query)
    if query.values_fields is not None:
        project = stages._values_project(query)
        for name in query.output_names():
            if name in computed:
                project["$project"][name] = {"$ifNull": ["$" + name, None]}
        pipeline.append(project)
        return stages.CompiledPipeline(
            pipeline,
            rows=query.values_mode,
            names=query.output_names(),
            batch_size=query.batch_size,
        )
    parts = stages._parts(_without_computed_ordering(query))
    kept = {r.key for r in parts.related}
    temporary = [j.key for j in parts.joins if j.key not in kept]
    # An inclusion projection (only()) keeps the annotations too.
    compiled = stages._documents_pipeline(
        query, pipeline, tuple(parts.related), [*kept, *computed], temporary
    )
    return compiled


def count_pipeline(query: Query) -> list[dict[str, Any]]:
    """Return the pipeline counting the queryset's rows (slicing respected)."""
    counted = query.clone()
    counted.ordering = ()
    if query.grouped:
        return [*rows_pipeline(counted).pipeline, {"$count": "n"}]
    return [*selected_rows(counted), {"$count": "n"}]


def write_pipeline(query: Query) -> list[dict[str, Any]]:
    """Return the pipeline yielding the ``_id`` of each document an update or delete of a
    ``geo_near()`` queryset reaches."""
    target = query.clone()
    target.ordering = ()
    target.related = ()
    return [*selected_rows(target), {"$project": {"_id": 1}}]
