"""The parts every compilation is built from: the compiled forms, and the stages of a query.

:mod:`odm.query.compiler` (a queryset's finds, counts, totals and write targets) and
:mod:`odm.query.computed` (queries led by ``$geoNear`` or ``$text``) assemble these; nothing
here chooses between a ``find`` and a pipeline. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from bson.binary import UuidRepresentation

from ..exceptions import QueryError
from .paths import (
    RELATED_PREFIX,
    Join,
    ResolvedPath,
    resolve,
)
from .query import Query, _resolve_aggregate
from .reading import field_reference, read_expression
from .where import and_mql

__all__ = [
    "CompiledAggregate",
    "CompiledCount",
    "CompiledFind",
    "CompiledPipeline",
    "CompiledWrite",
    "Related",
    "jsonable",
]


#: Relaxed extended JSON, UUIDs written as the ODM stores them (standard binary subtype 4).
_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS.with_options(
    uuid_representation=UuidRepresentation.STANDARD
)


def jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON data (ObjectIds, dates... in MongoDB extended JSON)."""
    return json.loads(json_util.dumps(value, json_options=_JSON_OPTIONS))


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
    """The ``_cls`` condition of the query's class (a new dict), empty when it needs none."""
    meta: Any = getattr(query.model, "_meta", None)
    # Only Options has class_values: another _meta (or none) needs no condition.
    return meta.class_filter() if getattr(meta, "class_values", None) else {}


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
        if name not in query.annotations and name not in query.extras.computed
    }


def _projection(query: Query) -> dict[str, Any] | None:
    meta = getattr(query.model, "_meta", None)
    if query.only_fields is not None:
        keep = _outermost(resolve(query.model, f).db_path for f in query.only_fields)
        projection: dict[str, Any] = dict.fromkeys(keep, 1)
        if meta is not None and (meta.polymorphic or meta.class_name):
            projection["_cls"] = 1  # needed to build the right subclass
        if meta is not None and meta.optimistic_lock:
            projection[meta.db_key(meta.version_field)] = 1
        return projection
    if query.deferred:
        return dict.fromkeys(
            _outermost(resolve(query.model, f).db_path for f in query.deferred), 0
        )
    return None


def _outermost(paths: Iterable[str]) -> list[str]:
    """The stored paths of a projection, each once and without those inside another one
    (``address`` covers ``address.city``): MongoDB refuses a projection naming both, with
    an untyped "Path collision" error."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path.startswith(p + ".") for p in kept):
            kept.append(path)
    return kept


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
        _annotation_joins(query),
        extra_joins or [],
    )
    return _Parts(
        pre=and_mql(pre),
        joins=joins,
        joined=and_mql(joined),
        post=and_mql(post),
        related=list(dict.fromkeys(r for _, r in related)),
    )


def _annotation_joins(query: Query) -> list[Join]:
    """The joins the ``annotate()`` aggregates' paths need (``Count("author__name")``)."""
    return [
        join
        for agg in query.annotations.values()
        for target in _resolve_aggregate(query.model, agg).values()
        for join in target.joins
    ]


def _window(query: Query) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    if query.low_mark:
        stages.append({"$skip": query.low_mark})
    if query.high_mark is not None:
        stages.append({"$limit": query.limit})
    return stages


def _group_keys(query: Query) -> dict[str, Any]:
    """The ``$group`` key of grouped rows: each values() name (the expression reading a field, or a
    computed distance or score, which sits at the top of the row under its own name)."""
    paths = _values_paths(query)
    computed = query.extras.computed
    keys: dict[str, Any] = {}
    for name in query.output_names():
        if name in paths:
            keys[name] = read_expression(paths[name])
        elif name in computed and name not in query.annotations:
            keys[name] = "$" + name
    return keys


def _group_stages(query: Query) -> list[dict[str, Any]]:
    by_name = _group_keys(query)
    group: dict[str, Any] = {"_id": by_name}
    project: dict[str, Any] = {"_id": 0}
    project.update({name: "$_id." + name for name in by_name})
    for name, agg in query.annotations.items():
        resolved = _resolve_aggregate(query.model, agg)
        group[name] = agg.as_accumulator(lambda n, r=resolved: field_reference(r[n]))
        project[name] = agg.finalize(name)
    return [{"$group": group}, {"$project": project}]


def _values_project(query: Query) -> dict[str, Any]:
    # $ifNull: a missing field still gives its key (None), so every row has every name.
    project: dict[str, Any] = {"_id": 0}
    for name, target in _values_paths(query).items():
        project[name] = {"$ifNull": [read_expression(target), None]}
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


def _distinct_stages(query: Query) -> list[dict[str, Any]]:
    keys = _group_keys(query)
    group = {"_id": keys}
    project: dict[str, Any] = {"_id": 0}
    project.update({name: "$_id." + name for name in keys})
    return [{"$group": group}, {"$project": project}]
