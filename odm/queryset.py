"""QuerySet and Manager: lazy, chainable, typed; they run only when awaited or iterated.

Every chaining method returns a NEW queryset and sends nothing; the state lives in a
:class:`~odm.query.query.Query`, the compiler turns it into ``find`` arguments or a pipeline,
and the executor runs that. A queryset runs when awaited (a list), iterated with ``async for``
(streams batch by batch, memory stays flat) or through a terminal method (``first``, ``get``,
``count``, ``update``...).
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, Self, TypeVar, cast, overload

from bson import Timestamp
from pydantic import BaseModel

from . import executor, filtered_writes, reads
from .bulk import BulkInsert
from .changestream import BeforeChange, ChangeStream, FullDocument, watch_query
from .changestream import ChangeEvent as ChangeEvent  # re-exported: its home before 0.x
from .collation import collation_document
from .concerns import as_read_preference
from .exceptions import Invalid, QueryError
from .get_or_create import checked_defaults, get_or_insert, refuse_no_lookup
from .models.derived import derived
from .models.field_types import INT64_MAX, int_text
from .models.loading import load_documents
from .models.references import check_saved_references
from .query import compiler, extras
from .query.q import Q
from .query.query import Query
from .query.results import aggregate_reader
from .query.where import id_filter
from .timeouts import check_timeout

if TYPE_CHECKING:
    from .models.geo import Point

M = TypeVar("M")
QS = TypeVar("QS", bound="QuerySet[Any]")
D = TypeVar("D", bound=BaseModel)  # a Document class

#: Documents per round trip when a queryset is iterated with ``async for`` and no
#: ``batch_size()`` was given. Without a bound the server sends batches of up to 16 MiB,
#: which the driver decodes at once (~158 MB of dicts for 300-byte documents); 1,000 keeps
#: memory flat at a small cost in round trips (see docs/performance.md).
STREAM_BATCH_SIZE = 1000

#: ``get()`` keywords that look a document up by ``_id`` (served by one ``find_one``).
_ID_LOOKUPS = frozenset({"id", "id__exact"})


class QuerySet(Generic[M]):
    """A lazy query over one Document class; ``await`` it for ``list[M]``."""

    __slots__ = ("_model", "_prefetch", "_query")

    def __init__(self, model: type[Any], query: Query | None = None) -> None:
        self._model = model
        self._query = query if query is not None else Query(model)
        self._prefetch: tuple[str, ...] = ()

    # -- building (no I/O) -------------------------------------------------------------------

    @property
    def model(self) -> type[Any]:
        """The Document class this queryset reads."""
        return self._model

    @property
    def query(self) -> Query:
        """The query state (read it; chain methods to change it)."""
        return self._query

    def _chain(self) -> Self:
        clone = type(self).__new__(type(self))
        clone._model = self._model
        clone._query = self._query.clone()
        clone._prefetch = self._prefetch
        return clone

    def all(self) -> Self:
        """Return a copy of this queryset."""
        return self._chain()

    def none(self) -> Self:
        """Return a queryset that matches nothing and never reaches the server.

        Awaiting it gives ``[]``, ``count()`` 0, ``exists()`` False, ``update()`` and
        ``delete()`` 0, ``get()`` raises ``DoesNotExist``; chaining more methods keeps it empty
        (Django's ``none()``). A view returns it where a permission check leaves nothing to see,
        and the code after it needs no special case.
        """
        clone = self._chain()
        clone._query.nothing = True
        return clone

    def _refuse_sliced(self, method: str, fix: str = "") -> None:
        """Raise ``QueryError`` naming ``method`` when this queryset is sliced (Django's
        ``TypeError`` "Cannot filter a query once a slice has been taken").

        ``filter()``, ``order_by()`` and the like after a slice would apply before it, to the
        whole collection: ``order_by("a")[:3].filter(a__gte=5)`` would be ``[5, 6, 7]``, not
        ``[]``. The internal slices and orderings of ``first()``, ``get()``, ``count()``,
        ``exists()`` go to the :class:`Query` directly and are not checked here.
        """
        if self._query.is_sliced:
            raise QueryError(
                f"{method}() cannot be used once a slice has been taken: it would apply "
                f"before the slice, to every document; {fix or f'call {method}() before slicing'}"
            )

    def filter(self, *args: Q, **kwargs: Any) -> Self:
        """Return a new queryset with these conditions ANDed to the filter."""
        if args or kwargs:
            self._refuse_sliced("filter")
        clone = self._chain()
        clone._query.add_filter(*args, **kwargs)
        return clone

    def exclude(self, *args: Q, **kwargs: Any) -> Self:
        """Return a new queryset without the documents matching these conditions."""
        if args or kwargs:
            self._refuse_sliced("exclude")
        clone = self._chain()
        clone._query.add_exclude(*args, **kwargs)
        return clone

    def order_by(self, *fields: str) -> Self:
        """Return a new queryset sorted by ``fields`` (``-name`` descending); none: unsorted."""
        self._refuse_sliced("order_by")
        clone = self._chain()
        clone._query.set_ordering(*fields)
        return clone

    def only(self, *fields: str) -> Self:
        """Return a new queryset loading only these fields (the others stay unset)."""
        clone = self._chain()
        clone._query.add_only(*fields)
        return clone

    def defer(self, *fields: str | None) -> Self:
        """Return a new queryset that does not load these fields; ``defer(None)`` loads every
        field again, clearing ``only()`` and ``defer()`` (as in Django)."""
        clone = self._chain()
        if fields == (None,):
            clone._query.clear_projection()
        else:
            # A None among names is refused there, naming it, as any name not a string is.
            clone._query.add_defer(*cast("tuple[str, ...]", fields))
        return clone

    def values(self, *fields: str) -> QuerySet[dict[str, Any]]:
        """Return a new queryset yielding dicts of these fields (``address__city`` keys), each
        value as the field gives it on a loaded document (a ``Decimal``, not BSON's
        ``Decimal128``); a reference gives its id."""
        clone: QuerySet[Any] = self._chain()
        clone._query.set_values(fields, "dicts")
        return clone

    def values_list(self, *fields: str, flat: bool = False) -> QuerySet[Any]:
        """Return a new queryset yielding tuples of these fields (or values, with ``flat``)."""
        if flat and len(fields) != 1:
            raise QueryError("values_list(flat=True) takes exactly one field")
        clone: QuerySet[Any] = self._chain()
        clone._query.set_values(fields, "flat" if flat else "tuples")
        return clone

    def distinct(self) -> Self:
        """Return a new queryset yielding each ``values()`` row once."""
        self._refuse_sliced("distinct")
        clone = self._chain()
        clone._query.distinct = True
        return clone

    def annotate(self, **aggregates: Any) -> QuerySet[dict[str, Any]]:
        """Return a new queryset grouping ``values()`` rows with these aggregates
        (one ``$group`` stage)."""
        self._refuse_sliced("annotate")
        clone: QuerySet[Any] = self._chain()
        clone._query.add_annotations(aggregates)
        return clone

    def select_related(self, *paths: str) -> Self:
        """Return a new queryset loading these references in the same round trip
        (``$lookup``); ``ref.document`` is then the loaded document."""
        clone = self._chain()
        clone._query.add_related(*paths)
        return clone

    def prefetch_related(self, *paths: str) -> Self:
        """Return a new queryset loading these references (lists of them too) with one
        extra query per relation, not per row."""
        clone = self._chain()
        for path in paths:
            reads.reference_field(self._model, path)
        clone._prefetch = (*self._prefetch, *paths) if paths else ()
        return clone

    def batch_size(self, size: int) -> Self:
        """Return a new queryset fetching ``size`` documents per round trip."""
        _check_count("batch_size", size, low=1)
        clone = self._chain()
        clone._query.batch_size = size
        return clone

    def timeout(self, seconds: float | None) -> Self:
        """Return a new queryset whose operations must finish within ``seconds``."""
        check_timeout(seconds)
        clone = self._chain()
        clone._query.timeout = seconds
        return clone

    def read_preference(self, preference: Any) -> Self:
        """Return a new queryset reading with ``preference`` (``"secondaryPreferred"``...)."""
        clone = self._chain()
        clone._query.read_preference = as_read_preference(preference)
        return clone

    def search(self, terms: str, language: str | None = None, *, score: str = "score") -> Self:
        """Return a new queryset of the documents matching ``terms`` by the model's text
        index (``$text``; ``QueryError`` when the model declares none), best match first.

        Each document's text score is the annotation ``score``: ``order_by("-score")``,
        ``values("title", "score")``, ``odm.annotations_of(doc)["score"]``. ``language`` picks
        the stemming and stop words (``"english"``, ``"french"``, ``"none"``...); the
        index's default otherwise. Composes with ``filter``, ``order_by`` and slicing.
        """
        self._refuse_sliced("search")
        clone = self._chain()
        extras.with_search(clone._query, terms, language, score)
        return clone

    def geo_near(
        self,
        field: str,
        point: Point | Mapping[str, Any],
        *,
        distance: str = "distance",
        max_distance: float | None = None,
        min_distance: float | None = None,
    ) -> Self:
        """Return a new queryset ordered by distance (metres, on the sphere) from ``point`` to
        the GeoJSON ``field`` (which needs a ``2dsphere`` index), nearest first.

        The distance is the annotation ``distance``: usable in ``order_by()``, ``values()``
        and ``odm.annotations_of(doc)``. ``max_distance`` / ``min_distance`` bound it. Runs as a
        ``$geoNear`` stage holding the queryset's filter.
        """
        self._refuse_sliced("geo_near")
        clone = self._chain()
        extras.with_geo_near(
            clone._query,
            field,
            point,
            distance=distance,
            max_distance=max_distance,
            min_distance=min_distance,
        )
        return clone

    def collation(
        self,
        locale: str | None,
        *,
        strength: int | None = None,
        case_level: bool | None = None,
        case_first: str | None = None,
        numeric_ordering: bool | None = None,
        alternate: str | None = None,
        max_variable: str | None = None,
        backwards: bool | None = None,
        normalization: bool | None = None,
    ) -> Self:
        """Return a new queryset comparing strings by ``locale``'s rules, in its filters,
        ordering, counts, updates and deletes: ``collation("en", strength=2)`` ignores case
        (``strength=1`` accents too). An index is used only when its own ``collation=`` is
        the same. ``collation(None)``: the collection's default again."""
        self._refuse_sliced("collation")
        document = None
        if locale is not None:
            try:
                document = collation_document(
                    locale,
                    strength=strength,
                    case_level=case_level,
                    case_first=case_first,
                    numeric_ordering=numeric_ordering,
                    alternate=alternate,
                    max_variable=max_variable,
                    backwards=backwards,
                    normalization=normalization,
                )
            except ValueError as exc:
                raise QueryError(str(exc)) from None
        clone = self._chain()
        extras.with_collation(clone._query, document)
        return clone

    def lenient(self) -> QuerySet[M | Invalid]:
        """Return a new queryset yielding ``odm.Invalid`` for stored documents that no
        longer validate, instead of failing."""
        clone: QuerySet[Any] = self._chain()
        clone._query.lenient = True
        return clone

    @overload
    def __getitem__(self, key: slice) -> Self: ...

    @overload
    def __getitem__(self, key: int) -> _Single[M]: ...

    def __getitem__(self, key: slice | int) -> Self | _Single[M]:
        """Slice (``qs[10:20]``: skip/limit) or pick one row (``await qs[3]``)."""
        if isinstance(key, slice):
            clone = self._chain()
            clone._query.apply_slice(key)
            return clone
        if not isinstance(key, int):
            raise TypeError(f"QuerySet indices must be integers or slices, not {type(key)}")
        clone = self._chain()
        clone._query.apply_slice(key)
        return _Single(clone, key)

    def explain_query(self) -> dict[str, Any]:
        """Return what this queryset will send (``{"find": ...}`` or ``{"aggregate": ...}``;
        ``{}`` after ``none()``, which sends nothing)."""
        if self._query.nothing:
            return {}
        return compiler.explain_query(self._query)

    def __repr__(self) -> str:
        return f"<QuerySet {self._model.__name__} {self.explain_query()}>"

    # -- sync misuse fails fast --------------------------------------------------------------
    # A queryset runs on the event loop. Without these, Python would fall back on
    # ``__getitem__`` for ``for x in qs`` / ``list(qs)`` / ``x in qs`` and build an endless
    # stream of unawaited ``qs[0]``, ``qs[1]``... (hanging, memory growing); ``bool(qs)`` would
    # be True for an empty queryset. Each raises at once, saying what to write instead.

    if TYPE_CHECKING:
        # Declared None for type checkers, so that mypy flags `for x in qs`, `list(qs)`,
        # `len(qs)` and `x in qs` as errors before they run.
        __iter__: ClassVar[None]
        __len__: ClassVar[None]
        __contains__: ClassVar[None]
    else:
        def __iter__(self) -> NoReturn:
            """Refuse ``for x in qs`` / ``list(qs)``: use ``async for x in qs`` / ``await qs``."""
            raise TypeError(_sync_misuse("iterated with `for` (or list(), tuple(), unpacking)",
                                         "`async for x in qs`, or `await qs` for a list"))

        def __len__(self) -> NoReturn:
            """Refuse ``len(qs)``: use ``await qs.count()``."""
            raise TypeError(_sync_misuse("measured with len()", "`await qs.count()`"))

        def __contains__(self, item: object) -> NoReturn:
            """Refuse ``x in qs``: use ``await qs.filter(id=x.id).exists()``."""
            raise TypeError(_sync_misuse(
                "searched with `in`", "`await qs.filter(id=x.id).exists()`, or `x in await qs`"
            ))

    def __bool__(self) -> NoReturn:
        """Refuse ``bool(qs)`` / ``if qs:``: use ``await qs.exists()``."""
        raise TypeError(_sync_misuse("tested for truth (bool(), if qs:)", "`await qs.exists()`"))

    # -- running -----------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, list[M]]:
        """Run the query and return every result as a list."""
        return reads.fetch_all(self._model, self._query, self._prefetch).__await__()

    async def __aiter__(self) -> AsyncIterator[M]:
        """Stream the results: one batch in memory at a time (:data:`STREAM_BATCH_SIZE`
        documents per round trip unless ``batch_size()`` says otherwise).

        Leaving the loop early (``break``, ``return``, an exception) drops this iterator, and
        the event loop closes it at its next turn, which kills the server cursor; code that
        keeps the iterator around closes it itself with ``contextlib.aclosing``.
        """
        query = self._query
        if not query.batch_size:
            query = query.clone()
            query.batch_size = STREAM_BATCH_SIZE
        # The batches are closed with this generator, in the same step: an ``async for``
        # alone would leave them to be finalized one event-loop turn later, cursor still open.
        async with aclosing(reads.batches(self._model, query, self._prefetch)) as batches:
            async for batch in batches:
                for item in batch:
                    yield item

    async def to_list(self, length: int | None = None) -> list[M]:
        """Return at most ``length`` results (all with ``None``), as Motor's cursors do."""
        if length is None:
            return await self
        _check_count("to_list length", length, low=0)
        return await self[:length]

    async def first(self) -> M | None:
        """Return the first result (ordered by ``id`` when no ordering applies), or ``None``."""
        clone = self._chain()
        if not clone._query.default_ordering():
            # Ordering an unordered slice by id would change which rows the slice holds
            # (Django's first() raises there too, through order_by("pk")).
            self._refuse_sliced(
                "first", "order the queryset before slicing it (order_by('id')[n:].first())"
            )
            clone._query.set_ordering("id")
        rows = await clone[:1]
        return rows[0] if rows else None

    async def last(self) -> M | None:
        """Return the last result (in reverse ordering), or ``None``."""
        if self._query.is_sliced:
            raise QueryError("last() cannot be used on a sliced queryset; order it instead")
        clone = self._chain()
        clone._query.reverse_ordering("last")
        rows = await clone[:1]
        return rows[0] if rows else None

    async def get(self, *args: Q, **kwargs: Any) -> M:
        """Return the one result matching these conditions; raise ``Model.DoesNotExist`` or
        ``Model.MultipleObjectsReturned``."""
        model = self._model
        if not args and len(kwargs) == 1 and self._by_id_only():
            ((key, value),) = kwargs.items()
            if key in _ID_LOOKUPS and value is not None:
                # get(id=value): the value validated as the id field's type (the condition
                # filter(id=value) makes), then one find_one: _id is unique, so no second row.
                # Inline rather than a coroutine of its own: a get() pays one frame less.
                query = self._query
                raw = await executor.find_one(
                    model,
                    id_filter(model, key, value),
                    timeout=query.timeout,
                    read_preference=query.read_preference,
                )
                if raw is None:
                    what = _describe((), {key: value})
                    raise model.DoesNotExist(f"{model.__name__} matching {what} does not exist")
                # _by_id_only() ruled out projections, joins and prefetches: a plain load.
                return load_documents(model, [raw], lenient=query.lenient)[0]  # type: ignore[no-any-return]
        if args or kwargs:
            self._refuse_sliced("get", "filter before slicing, or call get() without conditions")
            clone = self.filter(*args, **kwargs)
        else:
            clone = self._chain()
        clone._query.apply_slice(slice(0, 2))
        rows = await clone
        if not rows:
            what = _describe(args, kwargs)
            raise model.DoesNotExist(f"{model.__name__} matching {what} does not exist")
        if len(rows) > 1:
            what = _describe(args, kwargs)
            raise model.MultipleObjectsReturned(
                f"get() of {model.__name__} matching {what} found more than one document"
            )
        return rows[0]

    def _by_id_only(self) -> bool:
        """Tell whether this queryset adds nothing to a lookup by ``_id`` (no filter, slice,
        projection, grouping, join or prefetch), so ``get(id=...)`` can be one ``find_one``."""
        query = self._query
        return (
            not query.nothing
            and not query.where
            and not query.low_mark
            and query.high_mark is None
            and query.only_fields is None
            and not query.deferred
            and query.values_fields is None
            and not query.annotations
            and not query.related
            and not self._prefetch
            and query.extras is extras.NO_EXTRAS
        )

    async def count(self) -> int:
        """Return how many documents match (slicing respected)."""
        if self._query.is_empty:
            return 0
        compiled = compiler.compile_count(self._query)
        options = reads.read_options(self._query)
        if compiled.filter is not None:
            return await executor.count_documents(self._model, **compiled.kwargs(), **options)
        assert compiled.pipeline is not None
        rows = await executor.aggregate_list(self._model, compiled.pipeline, **options)
        return int(rows[0]["n"]) if rows else 0

    async def exists(self) -> bool:
        """Tell whether any document matches (fetches at most one ``_id``)."""
        if self._query.is_empty:
            return False
        compiled = compiler.compile_exists(self._query)
        options = reads.read_options(self._query)
        if isinstance(compiled, compiler.CompiledFind):
            rows = await executor.find_list(self._model, **compiled.kwargs(), **options)
        else:
            rows = await executor.aggregate_list(self._model, compiled.pipeline, **options)
        return bool(rows)

    async def aggregate(self, **aggregates: Any) -> dict[str, Any]:
        """Return ``{name: value}`` for aggregates over the matching documents
        (``aggregate(n=Count(), avg_age=Avg("age"))``), in one round trip.

        ``Sum``/``Min``/``Max`` over a field give that field's type (a ``Decimal`` over an
        ``odm.Decimal`` field), ``Avg``/``StdDev`` a float (a ``Decimal`` over decimals)."""
        if not aggregates:
            raise QueryError("aggregate() needs at least one name=Aggregate(...)")
        compiled = compiler.compile_aggregate(self._query, aggregates)
        if self._query.is_empty:
            return compiled.result([])
        rows = await executor.aggregate_list(
            self._model, compiled.pipeline, **reads.read_options(self._query)
        )
        result = compiled.result(rows)
        for name, value in result.items():
            if value is not None:
                result[name] = aggregate_reader(self._model, aggregates[name])(value)
        return result

    async def aggregate_pipeline(self, pipeline: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Run a raw aggregation ``pipeline`` (the explicit escape hatch: nothing in it is
        checked) after this queryset's filter; return the raw rows."""
        if self._query.nothing:
            return []
        target = compiler.compile_write(self._query)
        stages: list[dict[str, Any]] = []
        if target.filter:
            stages.append({"$match": target.filter})
        elif target.pipeline is not None:
            stages.extend(target.pipeline[:-1])
        stages.extend(dict(stage) for stage in pipeline)
        return await executor.aggregate_list(self._model, stages, **reads.read_options(self._query))

    async def update(self, **values: Any) -> int:
        """Update every matching document in one ``update_many``; return how many matched.

        A filter on one ``id`` value (``filter(id=x)``) sends ``update_one`` instead: it can
        match one document only, and unlike ``update_many`` MongoDB retries it on failover.

        Plain values become ``$set``; ``F("n") + 1`` ``$inc``; ``F("n") * 2`` ``$mul``;
        ``F("n").least(x)`` / ``Least(F("n"), x)`` ``$min``, ``.greatest(x)`` / ``Greatest``
        ``$max``; ``Now()`` ``$currentDate``; ``F("tags").push(x)`` / ``.pull(x)`` /
        ``.add_to_set(x)`` the array operators. Under
        ``Meta.optimistic_lock`` the version is bumped too, so copies loaded before go stale.

        Inside ``odm.transaction()`` the documents the unit of work holds in the collection are
        read again after the write; if one cannot be (the update left a value its model
        refuses), that error is raised and the transaction can only be rolled back
        (:mod:`odm.resync`).
        """
        return await filtered_writes.update(self._model, self._query, values)

    async def delete(self) -> int:
        """Delete every matching document in one ``delete_many``; return how many
        (``delete_one``, which MongoDB retries on failover, for a filter on one ``id``).

        Per-instance hooks and signals do not run (as with Django's bulk delete they would
        need every document loaded); delete instances one by one when they must.
        """
        return await filtered_writes.delete(self._model, self._query)

    async def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> tuple[M, bool]:
        """Return ``(document, created)``: the one matching ``kwargs``, else a new one made
        from ``kwargs`` and ``defaults`` and inserted. A concurrent insert that wins a unique
        index is read back instead of failing.

        ``defaults`` (Django's keyword) only fills a document that does not exist yet: it
        never enters the query and never changes a stored document, so a request body that
        binds it (``get_or_create(**body)``) sets no more than the body's own keys would.
        Its keys must be fields of the model and may not repeat a field of ``kwargs``
        (``QueryError`` naming them). On a model with a field named ``defaults``, the keyword
        is still this parameter, as in Django: look the field up with ``defaults__exact=``.

        With no lookup keyword the queryset must be filtered
        (``filter(owner=me).get_or_create(defaults=...)``): on an unfiltered one a
        ``QueryError`` is raised, since ``get()`` would return whichever document exists.
        """
        checked = checked_defaults(self._model, defaults, kwargs, "get_or_create")
        refuse_no_lookup(self._model, self._query, "get_or_create", kwargs)
        return await get_or_insert(self.get, self._model, checked, kwargs, self._query.timeout)

    async def update_or_create(
        self, defaults: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> tuple[M, bool]:
        """Return ``(document, created)`` after setting ``defaults`` on the one matching
        ``kwargs`` (only the changed fields are sent) or inserting a new one.

        ``defaults`` is positional only (``update_or_create({"age": 4}, email=...)``): it is
        written to a stored document, so a key of a request body expanded into the call
        (``update_or_create(**body)``) must not be able to bind it. Every keyword is a lookup;
        ``defaults=`` is the lookup on a field named ``defaults`` and is refused with a
        ``QueryError`` when the model has no such field. As for :meth:`get_or_create`, an
        unfiltered queryset needs at least one lookup keyword.
        """
        if "defaults" in kwargs and "defaults" not in self._model.model_fields:
            raise QueryError(
                "update_or_create() takes its defaults positionally "
                "(update_or_create({...}, field=value)): every keyword is a lookup, and "
                f"{self._model.__name__} has no field 'defaults'",
                field="defaults",
            )
        checked = checked_defaults(self._model, defaults, kwargs, "update_or_create")
        refuse_no_lookup(self._model, self._query, "update_or_create", kwargs)
        # Not self.get_or_create(checked, **kwargs): a lookup `defaults=` would bind its
        # parameter a second time (a TypeError).
        document, created = await get_or_insert(
            self.get, self._model, checked, kwargs, self._query.timeout
        )
        if not created and checked:
            for name, value in checked.items():
                setattr(document, name, value)
            await document.save(timeout=self._query.timeout)  # type: ignore[attr-defined]
        return document, created

    async def in_bulk(self, ids: Iterable[Any] | None = None) -> dict[Any, M]:
        """Return ``{id: document}`` for these ids (every match when ``None``).

        ``ids`` is checked as ``filter(id__in=ids)`` checks it: a string, bytes or a mapping
        (which would be read as its characters or its keys) and ids the id field refuses raise
        :class:`QueryError` naming ``in_bulk``.
        """
        query = self._query
        if query.is_sliced:
            raise QueryError("in_bulk() cannot be used on a sliced queryset (as in Django)")
        if query.values_fields is not None or query.grouped or query.annotations:
            raise QueryError(
                "in_bulk() cannot be used with values(), values_list() or annotate(): it "
                "returns documents keyed by id"
            )
        qs = self
        if ids is not None:
            if isinstance(ids, str | bytes | Mapping) or not isinstance(ids, Iterable):
                # Checked here rather than left to filter(): its message names the lookup
                # 'in', which the caller of in_bulk never wrote.
                raise QueryError(
                    f"in_bulk() takes a list of ids or None, not {type(ids).__name__}",
                    field="id",
                )
            try:
                qs = self.filter(id__in=ids)
            except QueryError as exc:
                raise QueryError(f"in_bulk(): {exc}", field=exc.field) from None
        return {getattr(doc, "id", None): doc async for doc in qs}

    async def bulk_create(
        self, documents: Iterable[Any], *, ordered: bool = True
    ) -> list[Any]:
        """Insert these documents (hooks and signals do not run); return them.

        Up to 1,000 documents go in ONE ``insert_many``. A longer list is sent in chunks (of
        1,000), one at a time: the next chunk is dumped while the server inserts the previous
        one (:mod:`odm.bulk`). ``ordered=True`` keeps MongoDB's semantics: the insert stops at
        the first failing document and nothing after it is sent. ``ordered=False`` attempts
        every document and raises the write errors of all chunks together (in a transaction,
        which the server aborts at a write error, it stops at the chunk that has one). Errors
        are those of one ``insert_many`` (:class:`odm.DuplicateKey` when every failure is a
        duplicate key, else the driver's ``BulkWriteError`` indexing the whole list);
        ``timeout=`` bounds the whole call.

        After a failure, the documents the server acknowledged are marked stored (``is_stored``,
        so ``[d for d in docs if not d.is_stored]`` are the ones to retry) and the others are
        not; those acknowledged with a write concern error are of unknown outcome, as
        ``insert()``'s would be (their next ``save()`` reads first). A document that cannot be
        stored (a value BSON cannot hold, a document over 16 MB) stops the insert before its
        chunk is sent. Inside ``odm.transaction()`` a failure marks
        none: unless it came before anything was sent, the transaction can only be rolled back
        then (the server aborts it at a write error; after any other failure, such as a later
        chunk that cannot be encoded, the block's next operation and its end raise
        :class:`odm.TransactionError`). Outside one, the documents of a chunk whose insert
        failed without telling whether it ran (a cancellation, a deadline, a lost connection)
        may be stored or not: their next ``save()`` reads the stored document first
        (docs/documents.md, "A write cut off"). A list of up to 1,000 that the driver split
        into several messages is read back once after such a failure, so that each document
        is marked as what is stored; only when that read fails do they stay unknown.
        """

        docs = list(documents)
        if not docs:
            return []
        model = self._model
        for doc in docs:
            if not isinstance(doc, model):
                raise QueryError(
                    f"bulk_create on {model.__name__} got a {type(doc).__name__}: pass "
                    f"{model.__name__} instances"
                )
        for doc in docs:
            check_saved_references(doc)
        # The job marks each document however it ends (stored, not stored, or unknown).
        await BulkInsert(model, docs, ordered=ordered, timeout=self._query.timeout).run()
        return docs

    async def explain(self) -> dict[str, Any]:
        """Return the server's plan for this queryset (``queryPlanner`` verbosity): which
        index it would use; ``{}`` after ``none()``, which sends nothing)."""
        if self._query.nothing:
            return {}
        command = compiler.explain_command(self._query)
        return await executor.explain(self._model, command, timeout=self._query.timeout)

    def watch(
        self,
        *,
        full_document: FullDocument = "updateLookup",
        full_document_before_change: BeforeChange | None = None,
        resume_after: Mapping[str, Any] | None = None,
        start_after: Mapping[str, Any] | None = None,
        start_at_operation_time: Timestamp | None = None,
        batch_size: int | None = None,
        max_await_time_ms: int | None = None,
    ) -> ChangeStream[M]:
        """Return a :class:`~odm.changestream.ChangeStream` of the changes to the matching
        documents; open it with ``async with qs.watch() as stream:`` or
        ``stream = await qs.watch()``, and every change after that line is delivered.

        ``full_document``: what ``event.document`` holds for an update (``"updateLookup"``,
        the default: the current document, looked up; ``"default"``: nothing, only the
        ``updateDescription`` of the raw event; ``"whenAvailable"`` / ``"required"``: the
        post-image the collection keeps). ``full_document_before_change``
        (``"whenAvailable"`` / ``"required"``) fills ``event.before`` from the collection's
        pre-images. Start from a resume token (``resume_after``, or ``start_after``, which
        also goes past an invalidate) or from a cluster time (``start_at_operation_time``);
        one of them at most. With ``lenient()``, a changed document that no longer fits the
        model comes as an ``odm.Invalid``.

        Needs a replica set or a sharded cluster (a standalone server raises
        :class:`odm.ConfigurationError` when the stream opens). An event is delivered only
        when the filter can be proved on it. A filter on ``id`` alone (``filter(id=x)``,
        ``id__in``, ``exclude(id=x)``) is proved on every event, deletes included; any other
        filter is proved on the changed document (inserts, replaces, updates with
        ``full_document="updateLookup"``) or, for a delete, on the document before it (only
        with ``full_document_before_change`` on a collection that keeps pre-images). On a
        polymorphic subclass the class is part of the filter: a delete without a pre-image is
        delivered only when the filter names ids (``id=x``, ``id__in``). ``drop``, ``rename``
        and ``invalidate`` are delivered whatever the filter; after ``invalidate`` the stream
        ends (``is_open`` is False).

        Refused with :class:`odm.QueryError` before anything is sent: ``none()``, a slice,
        ``values()``, ``annotate()``, ``search()``, ``geo_near()``, a ``__near`` filter,
        ``F()``, a filter across a reference, and a filter with ``collation()`` (a change
        stream compares strings binary).
        """
        return watch_query(
            self._query,
            full_document=full_document,
            full_document_before_change=full_document_before_change,
            resume_after=resume_after,
            start_after=start_after,
            start_at_operation_time=start_at_operation_time,
            batch_size=batch_size,
            max_await_time_ms=max_await_time_ms,
        )

    # -- managers ----------------------------------------------------------------------------

    @classmethod
    def as_manager(cls) -> Manager[Self]:
        """Return a manager whose querysets are of this class (Django's idiom)::

        class Customer(Document):
            objects = CustomerQuerySet.as_manager()
        """
        return Manager(cls)


class _Single(Generic[M]):
    """``await qs[3]``: one row by position; ``IndexError`` when there is none."""

    __slots__ = ("_index", "_queryset")

    def __init__(self, queryset: QuerySet[M], index: int) -> None:
        self._queryset = queryset
        self._index = index

    async def _get(self) -> M:
        rows = await self._queryset
        if not rows:
            raise IndexError(f"queryset index {self._index} out of range")
        return rows[0]

    def __await__(self) -> Generator[Any, None, M]:
        return self._get().__await__()


class DefaultManager:
    """``Model.objects``: the ``QuerySet[Model]`` of every document of the class.

    Every method of a queryset leaves it as it is (chaining returns a new one), so one
    queryset per class serves every access; it is kept with the class's derived state.
    """

    def __get__(self, instance: object, owner: type[D]) -> QuerySet[D]:
        if instance is not None:
            raise AttributeError(
                f"{owner.__name__}.objects is reached through the class, not an instance"
            )
        state = derived(owner)
        root: QuerySet[D] | None = state.get(_ROOT_QUERYSET)
        if root is None:
            root = state[_ROOT_QUERYSET] = QuerySet(owner)
        return root


_ROOT_QUERYSET = "root_queryset"


class Manager(DefaultManager, Generic[QS]):
    """A manager whose querysets are of a custom class (made by ``QuerySet.as_manager()``)."""

    def __init__(self, queryset_class: type[QS]) -> None:
        self.queryset_class = queryset_class

    def __get__(self, instance: object, owner: type[Any]) -> QS:
        if instance is not None:
            raise AttributeError(
                f"{owner.__name__}.objects is reached through the class, not an instance"
            )
        return self.queryset_class(owner)


# -- helpers ---------------------------------------------------------------------------------


def _sync_misuse(what: str, instead: str) -> str:
    return (
        f"a QuerySet cannot be {what}: it runs on the event loop and sends nothing until "
        f"awaited; use {instead}"
    )


def _check_count(what: str, value: Any, *, low: int) -> None:
    """Refuse a count that is not an int from ``low`` to BSON's int64 (a bool, a float, a
    string from a query string), naming ``what``: the driver would otherwise fail untyped,
    or the server refuse the command, after the queryset was built."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= INT64_MAX:
        raise QueryError(f"{what} must be an int from {low} to {INT64_MAX}, not {int_text(value)}")


def _describe(args: tuple[Q, ...], kwargs: Mapping[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    text = ", ".join(parts) or "the queryset's filter"
    return text if len(text) <= 200 else text[:197] + "..."
