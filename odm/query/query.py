"""``Query``: the cloneable state of a queryset. No I/O.

A :class:`~odm.queryset.QuerySet` holds one ``Query``; every chaining method clones it and
changes the clone. Filters are validated and compiled when they are added (a bad field, lookup
or value raises :class:`~odm.exceptions.QueryError` at ``filter()`` time); turning the whole
state into ``find`` arguments or a pipeline is :mod:`odm.query.compiler`'s job.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any, Final, Literal

from ..exceptions import QueryError
from ..models.derived import table
from ..models.field_types import INT64_MAX, int_text
from .aggregates import Aggregate
from .extras import NO_EXTRAS, Extras
from .paths import (
    ID_FIELD,
    FieldType,
    Kind,
    check_name,
    names_a_field,
    not_a_field_name,
    remember,
    resolve,
)
from .q import Q
from .reading import check_readable
from .where import Where, compile_kwargs, compile_q

__all__ = ["Query", "ValuesMode"]

_new_query = object.__new__

#: The entry of each model's derived state holding the orderings that passed
#: :meth:`Query.set_ordering`'s checks on the model's own fields.
_ORDERINGS_CHECKED: Final = "query.orderings_checked"

#: How rows come back: model instances, dicts, tuples or single values.
ValuesMode = Literal["documents", "dicts", "tuples", "flat"]


class Query:
    """Hold what a queryset asks for: filters, ordering, slice, projection, grouping."""

    __slots__ = (
        "annotations",
        "batch_size",
        "deferred",
        "distinct",
        "extras",
        "high_mark",
        "lenient",
        "low_mark",
        "model",
        "nothing",
        "only_fields",
        "ordering",
        "read_preference",
        "related",
        "timeout",
        "values_fields",
        "values_mode",
        "where",
    )

    def __init__(self, model: type[Any]) -> None:
        self.model = model
        #: Compiled filter fragments, ANDed together.
        self.where: tuple[Where, ...] = ()
        #: ``None``: the model's ``Meta.ordering``; ``()``: explicitly unordered.
        self.ordering: tuple[str, ...] | None = None
        self.low_mark = 0
        self.high_mark: int | None = None
        self.only_fields: tuple[str, ...] | None = None
        self.deferred: tuple[str, ...] = ()
        self.values_fields: tuple[str, ...] | None = None
        self.values_mode: ValuesMode = "documents"
        self.distinct = False
        self.annotations: dict[str, Any] = {}
        self.related: tuple[str, ...] = ()
        self.batch_size: int | None = None
        self.timeout: float | None = None
        self.read_preference: Any = None
        self.lenient = False
        #: ``none()``: the queryset matches nothing and sends nothing.
        self.nothing = False
        #: geo_near() / search() / collation() (:mod:`odm.query.extras`).
        self.extras: Extras = NO_EXTRAS

    def clone(self) -> Query:
        """Return a copy that can be changed without touching this one (cheap: tuples shared)."""
        # Spelled out (not a loop over __slots__): a queryset clones its Query on every
        # chained call, and getattr/setattr by name costs several times as much.
        new = _new_query(Query)
        new.model = self.model
        new.where = self.where
        new.ordering = self.ordering
        new.low_mark = self.low_mark
        new.high_mark = self.high_mark
        new.only_fields = self.only_fields
        new.deferred = self.deferred
        new.values_fields = self.values_fields
        new.values_mode = self.values_mode
        new.distinct = self.distinct
        annotations = self.annotations
        new.annotations = dict(annotations) if annotations else {}  # the only mutable one
        new.related = self.related
        new.batch_size = self.batch_size
        new.timeout = self.timeout
        new.read_preference = self.read_preference
        new.lenient = self.lenient
        new.nothing = self.nothing
        new.extras = self.extras
        return new

    # -- filters -----------------------------------------------------------------------------

    def add_q(self, q: Q, *, negate: bool = False) -> None:
        """Validate and add a condition (negated, for ``exclude``)."""
        types = {name: agg.output for name, agg in self.annotations.items()}
        self.where = (*self.where, *compile_q(self.model, q, negate=negate, annotations=types))

    # filter/exclude take nothing but Q objects and lookups: a keyword such as ``negate=`` here
    # would be bound by a request body expanded into ``filter(**body)``.

    def add_filter(self, *args: Q, **kwargs: Any) -> None:
        """Add ``filter(*args, **kwargs)``: every keyword is a lookup."""
        if args or self.annotations:
            self.add_q(Q(*args, **kwargs))
        else:
            self.where = (*self.where, *compile_kwargs(self.model, kwargs))

    def add_exclude(self, *args: Q, **kwargs: Any) -> None:
        """Add ``exclude(*args, **kwargs)``: every keyword is a lookup."""
        self.add_q(Q(*args, **kwargs), negate=True)

    # -- ordering ----------------------------------------------------------------------------

    def set_ordering(self, *fields: str) -> None:
        """Replace the ordering (``"-name"`` descends); no fields: unordered."""
        # On the model's own fields the checks depend on the names only: an ordering that
        # passed them once is taken as it is (most querysets repeat one ordering).
        plain = not self.annotations and not self.extras.computed and self.values_fields is None
        checked = table(self.model, _ORDERINGS_CHECKED) if plain else None
        cacheable = checked is not None
        if checked is not None:
            try:
                if fields in checked:
                    self.ordering = fields
                    return
            except TypeError:  # an unhashable name: refused below, naming it
                cacheable = False
        arrays: dict[str, str] = {}
        for name in fields:
            if not isinstance(name, str) or not name:
                raise not_a_field_name("order_by", name)
            bare = name[1:] if name[0] in "-+" else name
            if not bare or bare[0] in "-+":
                raise QueryError(f"order_by({name!r}) names no field", field=name)
            if bare == "?":
                raise QueryError(
                    "random ordering is not supported; use aggregate_pipeline($sample)"
                )
            computed = bare in self.extras.computed
            if (
                bare.split("__", 1)[0] not in self.annotations
                and not computed
                and self.values_fields is None
            ):
                # Raises on an unknown field, now rather than later.
                if resolve(self.model, bare).via_subclass:
                    cacheable = False  # as paths.resolve: a subclass's field is never cached
                root = _array_root(self.model, bare)
                if root is not None:
                    arrays.setdefault(root, bare)
            else:
                check_name(bare.split("__", 1)[0])
        _check_sort_size(fields)
        if len(arrays) > 1:
            # The server refuses it ("parallel arrays") only once a document holds both.
            names = ", ".join(arrays.values())
            raise QueryError(
                f"order_by({names}): these fields are in different lists, and MongoDB cannot "
                "sort on two arrays at once (parallel arrays); order by one of them",
                field=next(iter(arrays.values())),
            )
        self.ordering = fields
        if cacheable and checked is not None:
            remember(checked, fields, True)

    def default_ordering(self) -> tuple[str, ...]:
        """Return the ordering in force: explicit, else the model's ``Meta.ordering``."""
        if self.ordering is not None:
            return self.ordering
        if self.annotations or self.distinct:
            return ()  # as in Django, Meta.ordering does not apply to grouped queries
        if self.extras.computed:
            return self.extras.default_order()  # nearest / best match first
        meta = getattr(self.model, "_meta", None)
        return tuple(getattr(meta, "ordering", ()) or ())

    def reverse_ordering(self, what: str = "last") -> None:
        """Reverse the ordering in force (for ``last()``); unordered becomes ``-id``.

        Refused (``QueryError`` naming ``what`` and the field) when the ordering goes through a
        list field, the model's or a referenced document's (``author__tags``): MongoDB sorts
        a list ascending by its smallest element and descending by its largest, so the
        reversed sort is not the reversed order.
        """
        current = self.default_ordering() or (ID_FIELD,)
        for item in current:
            bare = item[1:] if item[:1] in ("-", "+") else item
            if bare.split("__", 1)[0] in self.annotations or bare in self.extras.computed:
                continue
            try:
                sorts_a_list = _reaches_list(self.model, bare)
            except QueryError:
                continue  # not a path of the model (a values() name): nothing to reverse wrongly
            if sorts_a_list:
                raise QueryError(
                    f"{what}() cannot reverse an ordering on the list field {bare!r}: MongoDB "
                    "sorts a list ascending by its smallest element and descending by its "
                    "largest, so the reversed sort is not the reversed order; use "
                    "an explicit order_by(...) and first() instead",
                    field=bare,
                )
        self.ordering = tuple(f[1:] if f.startswith("-") else "-" + f.lstrip("+") for f in current)

    # -- slicing -----------------------------------------------------------------------------

    @property
    def is_sliced(self) -> bool:
        """Return whether a skip or a limit is set."""
        return self.low_mark != 0 or self.high_mark is not None

    @property
    def is_empty(self) -> bool:
        """Return whether the query selects no row at all: ``none()``, or a slice such as
        ``qs[5:5]`` or ``to_list(0)``.

        MongoDB reads a limit of 0 as "no limit", so such a query must not be sent.
        """
        return self.nothing or (self.high_mark is not None and self.high_mark <= self.low_mark)

    @property
    def limit(self) -> int:
        """Return the limit to send (0: none)."""
        return 0 if self.high_mark is None else self.high_mark - self.low_mark

    def apply_slice(self, key: slice | int) -> None:
        """Narrow to ``[start:stop]`` (or the single row ``[i]``) of the current window.

        Slices compose, as in Django: ``qs[10:20][2:5]`` is rows 12 to 15. Negative indexes
        and steps are refused: MongoDB cannot count from the end without counting everything.
        """
        if isinstance(key, bool) or not isinstance(key, int | slice):
            raise QueryError(f"querysets are sliced with ints, not {type(key).__name__}")
        if isinstance(key, int):
            start: int | None = key
            stop: int | None = key + 1
        else:
            if key.step not in (None, 1):
                raise QueryError("slicing a queryset with a step is not supported")
            start, stop = key.start, key.stop
        for bound in (start, stop):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise QueryError(f"querysets are sliced with ints, not {type(bound).__name__}")
            if bound is not None and bound < 0:
                raise QueryError(
                    "negative indexing is not supported: MongoDB cannot count from the end; "
                    "reverse the ordering instead (qs.order_by('-field')[:n])"
                )
        low = self.low_mark + (start or 0)
        high = self.high_mark
        if stop is not None:
            high = self.low_mark + stop if high is None else min(high, self.low_mark + stop)
        if high is not None:
            low = min(low, high)
        if (low if high is None else high) > INT64_MAX:  # high >= low once set
            raise _beyond_int64(key, low if high is None else high)
        self.low_mark, self.high_mark = low, high

    # -- projection --------------------------------------------------------------------------

    def _fields(self, names: tuple[str, ...], what: str) -> tuple[str, ...]:
        for name in names:
            try:
                target = resolve(self.model, name)
            except QueryError:
                if isinstance(name, str):
                    raise
                # Named here rather than checked first: the resolution is cached per name.
                raise not_a_field_name(what, name) from None
            if target.joins:
                raise QueryError(f"{what}() cannot reach through a reference: {name!r}", field=name)
            if target.positioned:
                # MongoDB's projection reads "tags.0" as a field "0" of each element: the
                # document would show an empty list, or elements with their fields unset.
                raise QueryError(
                    f"{what}() cannot take a list position: {name!r} (a projection would "
                    "read it as a field of each element); name the whole list",
                    field=name,
                )
        return names

    def add_only(self, *fields: str) -> None:
        """Load only these fields (plus ``id``); replaces an earlier ``only()``."""
        self.only_fields = self._fields(fields, "only")
        self.deferred = ()

    def add_defer(self, *fields: str) -> None:
        """Leave these fields out when loading; adds to earlier ``defer()`` calls."""
        if ID_FIELD in fields:
            raise QueryError("the id cannot be deferred", field=ID_FIELD)
        self._fields(fields, "defer")
        if self.only_fields is not None:
            self.only_fields = tuple(f for f in self.only_fields if f not in fields)
        else:
            self.deferred = (*self.deferred, *(f for f in fields if f not in self.deferred))

    def clear_projection(self) -> None:
        """Load every field again (``QuerySet.defer(None)``): no ``only()``, no ``defer()``."""
        self.only_fields = None
        self.deferred = ()

    # -- values and grouping -----------------------------------------------------------------

    def set_values(self, fields: tuple[str, ...], mode: ValuesMode) -> None:
        """Return rows as dicts/tuples/single values of these fields (paths may cross refs)."""
        if mode == "flat" and len(fields) != 1:
            raise QueryError("values_list(flat=True) takes exactly one field")
        for name in fields:
            try:
                if name in self.annotations or name in self.extras.computed:
                    continue
                target = resolve(self.model, name)
            except (TypeError, QueryError):
                if isinstance(name, str):
                    raise
                # An unhashable name fails the dict lookup (TypeError), another non-string
                # the resolution: both are named here, leaving the usual path as it was.
                raise not_a_field_name(
                    "values" if mode == "dicts" else "values_list", name
                ) from None
            if any(j.many for j in target.joins):
                raise QueryError(f"values() cannot read through a list of references: {name!r}")
            check_readable(target, "values" if mode == "dicts" else "values_list")
        if self.annotations:
            self._check_grouping_kept(fields, "values" if mode == "dicts" else "values_list")
        self.values_fields = fields
        self.values_mode = mode

    def _grouped_by(self, fields: tuple[str, ...]) -> list[str]:
        """The names rows are grouped by when ``fields`` are the values() names: those that
        are no annotation (every field of the model for none)."""
        names = fields or tuple(self.model.model_fields)
        return [name for name in names if name not in self.annotations]

    def _check_grouping_kept(self, fields: tuple[str, ...], what: str) -> None:
        """Refuse a ``values()`` after ``annotate()`` naming other fields than those the groups
        are made by: it would group the rows anew (``values("owner").annotate(n=Count())
        .values("n")`` would count every document as one group), where Django keeps the
        groups."""
        grouped = self._grouped_by(self.values_fields or ())
        asked = self._grouped_by(fields)
        if set(asked) == set(grouped):
            return
        culprit = next(
            (name for name in (*asked, *grouped) if (name in asked) != (name in grouped)),
            None,
        )
        shown = ", ".join(map(reprlib.repr, fields[:4])) + (", ..." if len(fields) > 4 else "")
        raise QueryError(
            f"{what}() after annotate() names the fields the groups are made by "
            f"({', '.join(map(reprlib.repr, grouped[:4]))}{', ...' if len(grouped) > 4 else ''})"
            f" and annotations: {what}({shown}) would group the rows anew (call values() "
            "before annotate() instead)",
            field=culprit,
        )

    def add_annotations(self, annotations: Mapping[str, Any]) -> None:
        """Add aggregates computed per group of ``values(...)``: ``annotate(n=Count())``."""
        if not self.values_fields:
            raise QueryError(
                "annotate() groups by the fields of a values(...) call before it; "
                "use aggregate() for totals over the whole queryset"
            )
        for name, agg in annotations.items():
            check_name(name, where="annotation")
            if "__" in name or name == "_id":
                raise QueryError(f"annotation name {name!r} is not allowed", field=name)
            if not isinstance(agg, Aggregate):
                raise QueryError(f"annotate({name}=...) takes an aggregate such as Count()")
            if name in self.values_fields or name in self.annotations:
                raise QueryError(f"annotation {name!r} clashes with a field", field=name)
            self._check_annotation_free(name)
            _resolve_aggregate(self.model, agg)
        self.annotations.update(annotations)

    def _check_annotation_free(self, name: str) -> None:
        """Refuse an ``annotate()`` name that a field or a computed value (``search()``'s
        score, ``geo_near()``'s distance) has: ``filter()``, ``order_by()`` and the rows would
        take the annotation for it, as Django refuses ("conflicts with a field")."""
        if names_a_field(self.model, name):
            raise QueryError(
                f"annotation {name!r} conflicts with a field of {self.model.__name__}: "
                "name it otherwise",
                field=name,
            )
        if name in self.extras.computed:
            raise QueryError(
                f"annotation {name!r} conflicts with the computed value of that name "
                "(search() or geo_near()): name it otherwise",
                field=name,
            )

    @property
    def grouped(self) -> bool:
        """Return whether rows are groups (``values().annotate()`` or a distinct ``values()``)."""
        return bool(self.annotations) or (self.distinct and self.values_fields is not None)

    def output_names(self) -> tuple[str, ...]:
        """Return the keys of values() rows, in order (fields, then annotations)."""
        fields = self.values_fields
        if fields is None:
            return ()
        if not fields:
            return tuple(self.model.model_fields)
        return (*fields, *(n for n in self.annotations if n not in fields))

    # -- relations ---------------------------------------------------------------------------

    def add_related(self, *paths: str) -> None:
        """Join these references in the same pipeline (``select_related``); none: clear."""
        if not paths:
            self.related = ()
            return
        checked = table(self.model, _RELATED_CHECKED)
        for path in paths:
            try:
                known = path in checked
            except TypeError:  # an unhashable path (a list or dict from a request body)
                raise not_a_field_name("select_related", path) from None
            if not known:
                if not isinstance(path, str):
                    raise not_a_field_name("select_related", path)
                _check_related(self.model, path)
                remember(checked, path, True)
        self.related = (*self.related, *(p for p in paths if p not in self.related))

    def __repr__(self) -> str:
        return f"<Query {self.model.__name__}>"


#: The most fields MongoDB sorts on at once ("too many compound keys" past it).
MAX_SORT_FIELDS: Final = 32


def _check_sort_size(fields: tuple[str, ...]) -> None:
    """Refuse an ordering on more fields than MongoDB sorts on (a list of names taken from
    a request), naming the first one past the limit."""
    distinct = dict.fromkeys(name.lstrip("-+") for name in fields)
    if len(distinct) > MAX_SORT_FIELDS:
        extra = list(distinct)[MAX_SORT_FIELDS]
        raise QueryError(
            f"order_by() names {len(distinct)} fields: MongoDB sorts on at most "
            f"{MAX_SORT_FIELDS} ({reprlib.repr(extra)} is one too many)",
            field=extra,
        )


def _beyond_int64(key: slice | int, mark: int) -> QueryError:
    """The error of a slice whose rows lie beyond what MongoDB counts: its skip and limit
    are 64-bit integers (past them the driver fails to encode the command, with an error
    that names neither the slice nor the queryset)."""
    shown = (
        _bound_text(key)
        if isinstance(key, int)
        else f"{_bound_text(key.start)}:{_bound_text(key.stop)}"
    )
    return QueryError(
        f"queryset slice [{shown}]: row {int_text(mark)} is beyond MongoDB's skip and "
        f"limit, which stop at {INT64_MAX} (a 64-bit integer)"
    )


def _bound_text(bound: int | None) -> str:
    """A slice bound as written (``""`` when left out), a huge one by its size."""
    return "" if bound is None else int_text(bound)


#: The entry of a model's derived state (odm.models.derived) holding the select_related paths
#: found valid on it: whether a path can be joined depends only on the model, so it is checked
#: once (a bad path raises every time).
_RELATED_CHECKED: Final = "query.related_checked"


def _check_related(model: type[Any], path: str) -> None:
    """Raise QueryError unless ``path`` is a single Reference that ``select_related`` joins."""
    target = resolve(model, path)
    field = target.field
    while field.kind is Kind.LIST and field.item is not None:
        field = field.item
    if field is not target.field and field.kind is Kind.REFERENCE:
        raise QueryError(
            f"select_related({path!r}) is a list of references; use prefetch_related",
            field=path,
        )
    if target.field.kind is not Kind.REFERENCE:
        raise QueryError(
            f"select_related({path!r}): {path!r} is not a Reference field", field=path
        )
    reference = path.rsplit("__", 1)[0]
    if target.names[-1] == "id" and resolve(model, reference).db_path == target.db_path:
        # "customer__id" resolves to the id the reference stores, the very field, but the
        # join would attach the document under a name no field has: nothing would be loaded.
        raise QueryError(
            f"select_related({path!r}) names the id a reference stores, not the reference: "
            f"write select_related({reference!r})",
            field=path,
        )
    if target.through_list or target.positioned or any(j.many for j in target.joins):
        raise QueryError(
            f"select_related({path!r}) goes through a list; use prefetch_related",
            field=path,
        )


def _array_root(model: type[Any], path: str) -> str | None:
    """Return the stored path of the first list ``path`` goes through or ends on, if any."""
    names = path.split("__")
    for end in range(1, len(names) + 1):
        target = resolve(model, "__".join(names[:end]))
        if target.joins:
            return None  # sorted after a $lookup: not a stored array of this collection
        if target.field.kind is Kind.LIST:
            return target.db_path
    return None


def _reaches_list(model: type[Any], path: str) -> bool:
    """Tell whether ``path`` goes through or ends on a list field, of ``model`` or, across a
    reference, of the joined document (``author__tags``): sorting on it sorts by a list."""
    names = path.split("__")
    return any(
        resolve(model, "__".join(names[:end])).field.kind is Kind.LIST
        for end in range(1, len(names) + 1)
    )


def _resolve_aggregate(model: type[Any], agg: Any) -> dict[str, Any]:
    """Check an aggregate's fields against ``model``; return {name: ResolvedPath}."""
    found: dict[str, Any] = {}
    for name in agg.fields():
        target = resolve(model, name)
        check_readable(target, f"{type(agg).__name__}({reprlib.repr(name)})")
        if any(j.many for j in target.joins):
            raise QueryError(f"{agg!r}: cannot aggregate through a list of references", field=name)
        field: FieldType = target.field
        if agg.numeric and field.kind not in (Kind.NUMBER, Kind.ANY):
            raise QueryError(
                f"{type(agg).__name__}() needs a number field; {name!r} is {field.label}",
                field=name,
            )
        found[name] = target
    return found
