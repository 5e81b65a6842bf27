"""A queryset's reads: the compiled find or pipeline run, and its rows made into results.

A read sends what the compiler made of the :class:`~odm.query.query.Query` (a ``find``, or an
aggregation for joins, ``values()`` and grouping) through the executor, all at once (``await
qs``) or batch by batch (``async for``), and makes each batch of rows into what the queryset
yields: documents (whole or partial, joined references attached, references prefetched, a
distance or score kept beside them) or ``values()`` rows.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from . import executor
from .exceptions import Invalid, QueryError
from .models.fields import Reference, reference_target
from .models.loading import load_documents, load_partial, naive_fixer
from .models.model_plan import DatetimeFixer
from .models.options import ID_KEY
from .query import compiler, extras
from .query.paths import not_a_field_name
from .query.query import Query
from .query.results import row_converter

__all__ = ["batches", "documents", "fetch_all", "read_options", "reference_field", "shape_rows"]


def read_options(query: Query) -> dict[str, Any]:
    """The options of a read of ``query``: its timeout, read preference and collation."""
    options = {"timeout": query.timeout, "read_preference": query.read_preference}
    collation = query.extras.collation
    if collation is not None:
        options["collation"] = collation
    return options


async def fetch_all(model: type[Any], query: Query, prefetch: tuple[str, ...]) -> list[Any]:
    """Every result of the queryset of ``model`` holding ``query`` (``prefetch``: its
    ``prefetch_related()`` paths), as a list."""
    if query.is_empty:
        return []
    compiled = compiler.compile_query(query)
    if query.batch_size:
        results: list[Any] = []
        async for batch in batches(model, query, prefetch, compiled):
            results.extend(batch)
        return results
    # One driver to_list() and one validation of the whole list.
    if isinstance(compiled, compiler.CompiledFind):
        fixer = _naive_fixer(model, query)
        raws = await executor.find_list(
            model, **compiled.kwargs(), **read_options(query), tz_aware=fixer is None
        )
        if prefetch or query.only_fields is not None or query.deferred:
            return await documents(model, query, prefetch, raws, fixer=fixer)
        # Whole models and nothing to prefetch: what documents() does, without its
        # coroutine (a find of one document pays it on top of the round trip).
        return load_documents(model, raws, lenient=query.lenient, fixer=fixer)
    # A pipeline (joins, values(), grouping).
    rows = await executor.aggregate_list(model, compiled.pipeline, **read_options(query))
    if compiled.rows != "documents":
        return shape_rows(query, rows, compiled.rows, compiled.names)
    return await documents(model, query, prefetch, rows, compiled.related)


async def batches(
    model: type[Any],
    query: Query,
    prefetch: tuple[str, ...],
    compiled: compiler.CompiledFind | compiler.CompiledPipeline | None = None,
) -> AsyncGenerator[list[Any], None]:
    """Yield the results batch by batch, each batch validated at once (``compiled``: the
    query already compiled by the caller)."""
    if query.is_empty:
        return
    if compiled is None:
        compiled = compiler.compile_query(query)
    options = read_options(query)
    if isinstance(compiled, compiler.CompiledFind):
        fixer = _naive_fixer(model, query)
        source = executor.find(model, **compiled.kwargs(), **options, tz_aware=fixer is None)
        async with aclosing(source) as raw_batches:
            async for raws in raw_batches:
                yield await documents(model, query, prefetch, raws, fixer=fixer)
        return
    kwargs = compiled.kwargs()
    batch_size = kwargs.pop("batchSize", 0)
    source = executor.aggregate(model, kwargs["pipeline"], batch_size=batch_size, **options)
    async with aclosing(source) as raw_batches:
        async for raws in raw_batches:
            if compiled.rows == "documents":
                yield await documents(model, query, prefetch, raws, compiled.related)
            else:
                yield shape_rows(query, raws, compiled.rows, compiled.names)


def _naive_fixer(model: type[Any], query: Query) -> DatetimeFixer | None:
    """Return the datetime fix-up when the documents of a plain find are best decoded with
    naive datetimes (whole models of a class with a fix-up, see
    ``loading.load_documents(fixer=...)``), else ``None``: decode them aware."""
    if query.lenient or query.only_fields is not None or query.deferred:
        return None
    return naive_fixer(model)


async def documents(
    model: type[Any],
    query: Query,
    prefetch: tuple[str, ...],
    raws: list[dict[str, Any]],
    related: Sequence[compiler.Related] = (),
    *,
    fixer: DatetimeFixer | None = None,
) -> list[Any]:
    """Load ``raws`` (``fixer``: decoded with naive datetimes, see :func:`_naive_fixer`)."""
    joined = [[raw.pop(r.key, None) for raw in raws] for r in related]
    computed = query.extras.computed
    # The distance / score are not fields: kept beside the document, not loaded into it.
    annotations = [{n: raw.pop(n, None) for n in computed} for raw in raws] if computed else ()
    if query.only_fields is not None or query.deferred:
        loaded = _load_partial(model, raws, query)
    else:
        loaded = load_documents(model, raws, lenient=query.lenient, fixer=fixer)
    if annotations:
        extras.set_annotations(loaded, list(annotations))
    for relation, targets in zip(related, joined, strict=True):
        _attach(loaded, relation, targets, query.lenient)
    if prefetch:
        await _prefetch(model, loaded, prefetch, read_options(query))
    return loaded


def _load_partial(model: type[Any], raws: list[dict[str, Any]], query: Query) -> list[Any]:
    """Build documents from a projection: loaded fields validated, the others left unset.

    Such documents are read-only views: ``save()`` refuses them (it would not know the
    fields that were not loaded).
    """
    return load_partial(
        model, raws, only=query.only_fields, deferred=query.deferred, lenient=query.lenient
    )


def shape_rows(
    query: Query, rows: list[dict[str, Any]], mode: str, names: tuple[str, ...]
) -> list[Any]:
    """Return ``values()`` rows as dicts, tuples or values, each value in its field's Python
    type (:mod:`odm.query.results`); a distance or score is a float as it came."""
    computed = query.extras.computed
    typed = tuple(n for n in names if n not in computed) if computed else names
    convert = row_converter(query.model, typed, query.annotations)
    rows = [convert(row) for row in rows]
    if mode == "dicts":
        return rows
    if mode == "flat":
        name = names[0]
        return [row.get(name) for row in rows]
    return [tuple(row.get(name) for name in names) for row in rows]


# -- references: joined (select_related) and prefetched (prefetch_related) --------------------


def _attach(
    loaded: list[Any], relation: compiler.Related, targets: list[Any], lenient: bool
) -> None:
    """Put each joined document of ``relation`` into its row's Reference."""
    present = [(i, t) for i, t in enumerate(targets) if isinstance(t, dict)]
    if not present:
        return
    joined = load_documents(relation.target, [t for _, t in present], lenient=lenient)
    path = relation.path.split("__")
    for (position, _), target in zip(present, joined, strict=True):
        owner = loaded[position]
        if isinstance(owner, Invalid) or isinstance(target, Invalid):
            continue
        for name in path[:-1]:
            owner = _through_reference(getattr(owner, name, None))
        reference = getattr(owner, path[-1], None) if owner is not None else None
        if isinstance(reference, Reference):
            reference.document = target


def _through_reference(value: Any) -> Any:
    """Step from a value on a ``select_related`` path to the object holding the next name:
    through a Reference, its (already attached, parents first) document."""
    return value.document if isinstance(value, Reference) else value


def reference_field(model: type[Any], name: str) -> type[Any]:
    """The target class of ``model``'s Reference field ``name`` (or list of them)."""
    try:
        info = model.model_fields.get(name)
    except TypeError:  # an unhashable name (a list or dict from a request body)
        raise not_a_field_name("prefetch_related", name) from None
    target = reference_target(info.annotation) if info is not None else None
    if target is None:
        if not isinstance(name, str):
            raise not_a_field_name("prefetch_related", name)
        raise QueryError(
            f"prefetch_related({name!r}): {model.__name__}.{name} is not a Reference or a "
            "list of References",
            field=name,
        )
    return target


async def _prefetch(
    model: type[Any], loaded: list[Any], paths: tuple[str, ...], options: dict[str, Any]
) -> None:
    """Load the references of ``paths`` with one query per path and attach them."""
    for name in dict.fromkeys(paths):
        target = reference_field(model, name)
        references: list[Reference[Any]] = []
        for document in loaded:
            value = getattr(document, name, None)
            if isinstance(value, Reference):
                references.append(value)
            elif isinstance(value, list):
                references.extend(v for v in value if isinstance(v, Reference))
        ids = list({ref.id for ref in references if ref.id is not None})
        if not ids:
            continue
        raws = await executor.find_list(
            target, {ID_KEY: {"$in": ids}, **target._meta.class_filter()}, **options
        )
        by_id = {doc.id: doc for doc in load_documents(target, raws, lenient=False)}
        for ref in references:
            ref.document = by_id.get(ref.id)
