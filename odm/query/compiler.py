"""Turn a :class:`~odm.query.query.Query` into what the executor sends. No I/O.

A query compiles to ``find`` arguments when it can (:class:`CompiledFind`) and to an aggregation
pipeline when it needs one (:class:`CompiledPipeline`): joins (``select_related``, lookups across a
``Reference``), ``values()`` rows, ``annotate()`` groups. The other entry points build counts,
``aggregate()`` totals, the target of ``update()`` / ``delete()`` and update documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bson import json_util

from ..exceptions import QueryError
from ..models.derived import table
from .aggregates import Aggregate
from .paths import (
    ID_FIELD,
    RELATED_PREFIX,
    Join,
    ResolvedPath,
    check_name,
    resolve,
)
from .query import Query, _resolve_aggregate
from .updates import CompiledUpdate, compile_update, compile_update_spec
from .where import and_mql

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
    "explain_query",
    "jsonable",
]


def jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON data (ObjectIds, dates... in MongoDB extended JSON)."""
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


@dataclass(frozen=True, slots=True)
class CompiledFind:
    """Arguments of ``collection.find()``."""

    filter: dict[str, Any]
    projection: dict[str, Any] | None = None
    sort: list[tuple[str, int]] | None = None
    skip: int = 0
    limit: int = 0
    batch_size: int | None = None

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for ``collection.find(**kwargs)`` (defaults left out)."""
        out: dict[str, Any] = {"filter": self.filter}
        if self.projection is not None:
            out["projection"] = self.projection
        if self.sort:
            out["sort"] = self.sort
        if self.skip:
            out["skip"] = self.skip
        if self.limit:
            out["limit"] = self.limit
        if self.batch_size:
            out["batch_size"] = self.batch_size
        return out

    def explain(self) -> dict[str, Any]:
        """Return ``{"find": {...}}`` as plain JSON data."""
        out = self.kwargs()
        if self.sort:
            out["sort"] = dict(self.sort)
        return {"find": jsonable(out)}


@dataclass(frozen=True, slots=True)
class Related:
    """A ``select_related`` join: the joined document of ``path`` is at ``raw[key]``."""

    path: str
    key: str
    target: type[Any]


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    """An aggregation pipeline and how to read its rows."""

    pipeline: list[dict[str, Any]]
    #: ``"documents"`` (model rows, select_related docs under :attr:`related` keys) or a
    #: values mode: rows are dicts keyed by :attr:`names`.
    rows: str = "documents"
    related: tuple[Related, ...] = ()
    names: tuple[str, ...] = ()
    batch_size: int | None = None

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments for ``collection.aggregate(**kwargs)``."""
        out: dict[str, Any] = {"pipeline": self.pipeline}
        if self.batch_size:
            out["batchSize"] = self.batch_size
        return out

    def explain(self) -> dict[str, Any]:
        """Return ``{"aggregate": [...]}`` as plain JSON data."""
        return {"aggregate": jsonable(self.pipeline)}


@dataclass(frozen=True, slots=True)
class CompiledCount:
    """A count: ``count_documents(filter, skip=, limit=)``, or a pipeline ending in ``$count``.

    With a pipeline the count is ``rows[0]["n"]`` (no row: 0).
    """

    filter: dict[str, Any] | None = None
    skip: int = 0
    limit: int = 0
    pipeline: list[dict[str, Any]] | None = None

    def kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of ``count_documents`` (when :attr:`filter` is set)."""
        out: dict[str, Any] = {"filter": self.filter}
        if self.skip:
            out["skip"] = self.skip
        if self.limit:
            out["limit"] = self.limit
        return out


@dataclass(frozen=True, slots=True)
class CompiledAggregate:
    """An ``aggregate(**totals)`` pipeline; read ``rows[0]`` or, with no row, :attr:`empty`."""

    pipeline: list[dict[str, Any]]
    empty: dict[str, Any] = field(default_factory=dict)

    def result(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Return the totals dict from the pipeline's rows."""
        row = rows[0] if rows else {}
        return {name: row.get(name, default) for name, default in self.empty.items()}


@dataclass(frozen=True, slots=True)
class CompiledWrite:
    """Target of ``update()`` / ``delete()``: a filter, or a pipeline yielding ``_id``s.

    A pipeline (filters across references) means: run it, then write ``{"_id": {"$in": ids}}``.
    """

    filter: dict[str, Any] | None = None
    pipeline: list[dict[str, Any]] | None = None


# -- helpers ---------------------------------------------------------------------------------


def _class_filter(query: Query) -> dict[str, Any]:
    meta = getattr(query.model, "_meta", None)
    if meta is None or not hasattr(meta, "class_filter"):
        return {}
    return dict(meta.class_filter())


def _sort_spec(query: Query, names: tuple[str, ...] | None = None) -> list[tuple[str, int]]:
    """Return ``[(db path, ±1), ...]``; with ``names`` (grouped rows) the output names."""
    spec: list[tuple[str, int]] = []
    for item in query.default_ordering():
        direction = -1 if item.startswith("-") else 1
        name = item.lstrip("-+")
        if names is not None:
            if name not in names:
                raise QueryError(
                    f"order_by({item!r}): grouped rows can be ordered by {', '.join(names)}",
                    field=name,
                )
            key = name
        else:
            key = resolve(query.model, name).db_path
        if key not in dict(spec):
            spec.append((key, direction))
    return spec


def _ordering_joins(query: Query) -> list[Join]:
    if query.grouped:
        return []
    joins: list[Join] = []
    for item in query.default_ordering():
        target = resolve(query.model, item.lstrip("-+"))
        if any(j.many for j in target.joins):
            raise QueryError(f"cannot order by {item!r}: it goes through a list of references")
        joins.extend(target.joins)
    return joins


def _related(query: Query) -> list[tuple[Join, Related]]:
    out: list[tuple[Join, Related]] = []
    for path in query.related:
        target = resolve(query.model, path)
        assert target.field.target is not None
        key = RELATED_PREFIX + path
        join = Join(path, target.db_path, key, target.field.target, False)
        for parent in target.joins:
            out.append((parent, Related(parent.path, parent.key, parent.target)))
        out.append((join, Related(path, key, join.target)))
    return out


def _merge_joins(*groups: list[Join]) -> list[Join]:
    """Dedupe joins by key, parents first (a key is a prefix of its children's)."""
    seen: dict[str, Join] = {}
    for group in groups:
        for join in group:
            seen.setdefault(join.key, join)
    return sorted(seen.values(), key=lambda j: j.path.count("__"))


def _join_stages(joins: list[Join]) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    for join in joins:
        stages.extend(join.stages())
    return stages


def _values_paths(query: Query) -> dict[str, ResolvedPath]:
    return {
        name: resolve(query.model, name)
        for name in query.output_names()
        if name not in query.annotations
    }


def _projection(query: Query) -> dict[str, Any] | None:
    meta = getattr(query.model, "_meta", None)
    if query.only_fields is not None:
        paths = sorted({resolve(query.model, f).db_path for f in query.only_fields})
        keep: list[str] = []
        for path in paths:  # "address" covers "address.city": MongoDB refuses both
            if not any(path.startswith(p + ".") for p in keep):
                keep.append(path)
        projection: dict[str, Any] = dict.fromkeys(keep, 1)
        if meta is not None and (meta.polymorphic or meta.class_name):
            projection["_cls"] = 1  # needed to build the right subclass
        if meta is not None and meta.optimistic_lock:
            projection[meta.db_key(meta.version_field)] = 1
        return projection
    if query.deferred:
        return {resolve(query.model, f).db_path: 0 for f in query.deferred}
    return None


@dataclass
class _Parts:
    """The pieces of a query's pipeline, before choosing find or aggregate."""

    pre: dict[str, Any]
    joins: list[Join]
    joined: dict[str, Any]
    post: dict[str, Any]
    related: list[Related]


def _parts(
    query: Query, extra_joins: list[Join] | None = None, *, rows: bool = True
) -> _Parts:
    """Split the query's filter around its joins. ``rows=False`` (a write's target): the
    ordering and ``select_related`` do not matter, so their joins are not gathered."""
    class_filter = _class_filter(query)
    pre: list[dict[str, Any]] = [class_filter] if class_filter else []
    joined: list[dict[str, Any]] = []
    post: list[dict[str, Any]] = []
    where_joins: list[Join] = []
    for where in query.where:
        if where.post:
            post.append(where.mql)
        elif where.joins:
            joined.append(where.mql)
            where_joins.extend(where.joins)
        else:
            pre.append(where.mql)
    wants_related = rows and not query.grouped and query.values_fields is None
    related = _related(query) if wants_related else []
    value_joins = [j for p in _values_paths(query).values() for j in p.joins]
    joins = _merge_joins(
        where_joins,
        _ordering_joins(query) if rows else [],
        [j for j, _ in related],
        value_joins,
        extra_joins or [],
    )
    return _Parts(
        pre=and_mql(pre),
        joins=joins,
        joined=and_mql(joined),
        post=and_mql(post),
        related=list(dict.fromkeys(r for _, r in related)),
    )


def _window(query: Query) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    if query.low_mark:
        stages.append({"$skip": query.low_mark})
    if query.high_mark is not None:
        stages.append({"$limit": query.limit})
    return stages


def _group_stages(query: Query) -> list[dict[str, Any]]:
    paths = _values_paths(query)
    by_name = {name: target.db_path for name, target in paths.items()}
    group: dict[str, Any] = {"_id": {name: "$" + path for name, path in by_name.items()}}
    project: dict[str, Any] = {"_id": 0}
    project.update({name: "$_id." + name for name in by_name})
    for name, agg in query.annotations.items():
        resolved = _resolve_aggregate(query.model, agg)
        group[name] = agg.as_accumulator(lambda n, r=resolved: r[n].db_path)
        project[name] = agg.finalize(name)
    return [{"$group": group}, {"$project": project}]


def _values_project(query: Query) -> dict[str, Any]:
    # $ifNull: a missing field still gives its key (None), so every row has every name.
    project: dict[str, Any] = {"_id": 0}
    for name, target in _values_paths(query).items():
        project[name] = {"$ifNull": ["$" + target.db_path, None]}
    return {"$project": project}


# -- entry points ----------------------------------------------------------------------------


def _plain_filter(query: Query) -> dict[str, Any] | None:
    """Return the query's filter when no condition crosses a join or runs after grouping
    (the usual case: one ``find`` / write filter), else ``None``."""
    class_filter = _class_filter(query)
    pre: list[dict[str, Any]] = [class_filter] if class_filter else []
    for where in query.where:
        if where.joins or where.post:
            return None
        pre.append(where.mql)
    return and_mql(pre)


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
    sort: list[tuple[str, int]] = []
    ordering = query.default_ordering()
    if ordering:
        model = query.model
        seen: set[str] = set()
        for item in ordering:
            target = resolve(model, item.lstrip("-+"))
            if target.joins:
                return None
            key = target.db_path
            if key not in seen:
                seen.add(key)
                sort.append((key, -1 if item.startswith("-") else 1))
    if not query.related:
        # Positional: a frozen dataclass's keyword call costs a visible part of a find's
        # own time (the order is CompiledFind's fields').
        return CompiledFind(
            filter, _projection(query), sort or None, query.low_mark, query.limit,
            query.batch_size,
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


def _documents_pipeline(
    query: Query,
    pipeline: list[dict[str, Any]],
    related: tuple[Related, ...],
    kept: Iterable[str],
    temporary: Sequence[str],
) -> CompiledPipeline:
    """End a pipeline of documents: drop the ``temporary`` joins, project (keeping the
    joined documents under ``kept``) and say how its rows are read."""
    if temporary:
        pipeline.append({"$unset": list(temporary)})
    projection = _projection(query)
    if projection is not None:
        if any(v == 1 for v in projection.values()):
            projection.update(dict.fromkeys(kept, 1))
        pipeline.append({"$project": projection})
    return CompiledPipeline(
        pipeline, rows="documents", related=related, batch_size=query.batch_size
    )


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
        plan = per_model[paths] = _JoinPlan(
            stages=tuple(_join_stages(joins)),
            related=related,
            kept=kept,
            unset=tuple(j.key for j in joins if j.key not in kept),
        )
    return plan


def compile_query(query: Query) -> CompiledFind | CompiledPipeline:
    """Compile the rows of a queryset: ``find`` arguments when possible, else a pipeline."""
    simple = _simple_find(query)
    if simple is not None:
        return simple
    return _general_pipeline(query)


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


def _distinct_stages(query: Query) -> list[dict[str, Any]]:
    paths = _values_paths(query)
    group = {"_id": {name: "$" + target.db_path for name, target in paths.items()}}
    project: dict[str, Any] = {"_id": 0}
    project.update({name: "$_id." + name for name in paths})
    return [{"$group": group}, {"$project": project}]


def explain_query(query: Query) -> dict[str, Any]:
    """Return what the queryset will send, as JSON: ``{"find": ...}`` or ``{"aggregate": ...}``."""
    return compile_query(query).explain()


def compile_count(query: Query) -> CompiledCount:
    """Compile ``count()``: ``count_documents`` arguments, or a pipeline ending in ``$count``."""
    parts = _parts(query)
    if not parts.joins and not query.grouped:
        return CompiledCount(filter=parts.pre, skip=query.low_mark, limit=query.limit)
    counted = query.clone()
    counted.ordering = ()
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
    parts = _parts(base, agg_joins)
    pipeline = _matched_and_joined(parts)
    if base.is_sliced:
        sort = _sort_spec(base)
        if sort:
            pipeline.append({"$sort": dict(sort)})
        pipeline += _window(base)
    group: dict[str, Any] = {"_id": None}
    project: dict[str, Any] = {"_id": 0}
    for name, agg in aggregates.items():
        paths = resolved[name]
        group[name] = agg.as_accumulator(lambda n, p=paths: p[n].db_path)
        project[name] = agg.finalize(name)
    pipeline += [{"$group": group}, {"$project": project}]
    return CompiledAggregate(pipeline, {name: agg.empty for name, agg in aggregates.items()})


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
    filter = _plain_filter(query)
    if filter is not None:
        return CompiledWrite(filter=filter)
    parts = _parts(query, rows=False)
    if not parts.joins:
        return CompiledWrite(filter=parts.pre)
    pipeline = _matched_and_joined(parts)
    pipeline.append({"$project": {"_id": 1}})
    return CompiledWrite(pipeline=pipeline)
