"""Turning raw BSON documents into Document instances, a batch at a time.

``load_documents`` validates a whole batch in one pydantic call (a ``TypeAdapter`` over the
list), dispatches polymorphic ``_cls`` values, records the tracking snapshot and passes each
instance through the unit of work's identity map. ``load_partial`` does the same for
projected rows (``only()`` / ``defer()``).
"""

from __future__ import annotations

import copy
import datetime as _dt
import sys
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from bson import DBRef
from bson.code import Code
from pydantic import ConfigDict, TypeAdapter
from pydantic import ValidationError as _PydanticValidationError
from pydantic_core import PydanticCustomError

from ..exceptions import STORED_DOCUMENT_MARK, Invalid, QueryError
from ..gcpause import MIN_BATCH, paused_gc
from ..session import current_unit_of_work
from .copies import written
from .derived import table
from .field_types import ID_FIELD
from .fields import Field
from .model_plan import EPOCH_AWARE, EPOCH_NAIVE, DatetimeFixer, datetime_fixer
from .options import CLASS_KEY, ID_KEY, Options
from .tracking import set_partial, set_snapshot, set_snapshots

# -- reads: batch validation -----------------------------------------------------------------


def _snapshot_of(meta: Options, raw: dict[str, Any]) -> dict[str, Any]:
    if meta.shares_extras:
        return copy.deepcopy(raw)
    shared = meta.shared_keys
    if not shared:
        return raw
    snapshot = dict(raw)
    for key in shared:
        if key in snapshot:
            snapshot[key] = copy.deepcopy(snapshot[key])
    return snapshot


def _named_error(
    model: type[Any], raw: Mapping[str, Any], errors: Iterable[Mapping[str, Any]]
) -> _PydanticValidationError:
    """Return a ValidationError whose title names the model and the document's ``_id``."""
    line_errors: list[Any] = [
        {
            "type": PydanticCustomError(str(e["type"]), str(e["msg"])),
            "loc": tuple(e["loc"]),
            "input": e.get("input"),
        }
        for e in errors
    ]
    title = f"{model.__name__}{STORED_DOCUMENT_MARK}{raw.get(ID_KEY)!r}"
    return _PydanticValidationError.from_exception_data(title, line_errors)


def _validate_one(model: type[Any], raw: dict[str, Any]) -> Any:
    target = _class_for(model, raw)
    try:
        return target.model_validate(raw)
    except _PydanticValidationError as exc:
        raise _named_error(target, raw, exc.errors()) from None


def load_into(
    document: Any, raw: dict[str, Any], before: Callable[[Any], object] | None = None
) -> None:
    """Set every field of ``document`` from ``raw``, a stored form of its class, in place:
    every holder of the object (the identity map, the user) sees the new values. ``raw`` is
    validated first (pydantic's ``ValidationError`` names the model and the ``_id``; nothing
    is changed then), then ``before(document)`` runs, if given, then the fields change. The
    tracking state (snapshot, partial flag) is the caller's to set."""
    fresh = _validate_one(type(document), raw)
    if before is not None:
        before(document)
    document.__dict__.update(fresh.__dict__)
    # Past pydantic's validated assignment: this is pydantic's own bookkeeping.
    object.__setattr__(document, "__pydantic_fields_set__", set(fresh.model_fields_set))
    if fresh.__pydantic_extra__ is not None:
        object.__setattr__(document, "__pydantic_extra__", dict(fresh.__pydantic_extra__))


def load_stored(
    document: Any, raw: dict[str, Any], before: Callable[[Any], object] | None = None
) -> None:
    """Make ``document`` say what the database holds, ``raw`` (just read), in place: its
    fields (:func:`load_into`, ``before`` as there), its snapshot, what its copies know, and
    whole again if it was loaded with ``only()`` / ``defer()``. ``refresh()`` and the read
    after a queryset write (:mod:`odm.resync`) do this."""
    load_into(document, raw, before)
    snapshot = _snapshot_of(type(document)._meta, raw)
    set_snapshot(document, snapshot)
    written(document, snapshot)
    set_partial(document, False)


def _class_for(model: type[Any], raw: Mapping[str, Any]) -> type[Any]:
    family = model._meta.family
    if not family:
        return model
    found = family.get(str(raw.get(CLASS_KEY)))
    return found if found is not None and issubclass(found, model) else model


def _first_document_error(
    model: type[Any], raws: Sequence[dict[str, Any]], exc: _PydanticValidationError
) -> _PydanticValidationError:
    """The error of a batch's validation as the first failing document's own: titled with
    its ``_id``, its locations without the position in the batch."""
    errors = exc.errors()
    first = errors[0]["loc"][0]
    assert isinstance(first, int)
    mine = [{**e, "loc": e["loc"][1:]} for e in errors if e["loc"][0] == first]
    return _named_error(model, raws[first], mine)


def _validate_batch(
    model: type[Any], raws: Sequence[dict[str, Any]], lenient: bool
) -> list[Any]:
    # The adapter's core validator itself (TypeAdapter.validate_python only forwards to it).
    validate = model._meta.list_adapter().validator.validate_python
    try:
        if len(raws) < MIN_BATCH:  # paused_gc leaves a page alone: not entered at all
            return validate(raws)  # type: ignore[no-any-return]
        with paused_gc(len(raws)):
            return validate(raws)  # type: ignore[no-any-return]
    except _PydanticValidationError as exc:
        if not lenient:
            raise _first_document_error(model, raws, exc) from None
    results: list[Any] = []
    for raw in raws:
        try:
            results.append(model.model_validate(raw))
        except _PydanticValidationError as exc:
            results.append(Invalid(raw, _named_error(model, raw, exc.errors())))
    return results


#: Whether decoding datetimes naive and making them aware in the class's fix-up loop costs
#: less than the driver's aware decoding. It does where ``datetime.replace(tzinfo=...)``, the
#: driver's way, is slow: 0.7-0.8 µs a value on Python 3.11 and 3.12, where a loaded document
#: then costs 0.87-0.90 of the aware decoding's CPU time. Python 3.13 made ``replace`` about
#: four times faster, and there the fix-up costs more than it saves (1.02; the same for a page
#: of 20 documents and a batch of 1,000; docs/performance.md).
NAIVE_DECODING_PAYS: Final = sys.version_info < (3, 13)


def naive_fixer(model: type[Any]) -> DatetimeFixer | None:
    """Return the fix-up to hand :func:`load_documents` when documents of ``model`` are best
    decoded with naive datetimes, else ``None`` (decode them aware): its class has a datetime
    fix-up (:func:`odm.models.model_plan.datetime_fixer`), and on this Python the fix-up costs
    less than the aware decoding (:data:`NAIVE_DECODING_PAYS`)."""
    return datetime_fixer(model) if NAIVE_DECODING_PAYS else None


def _aware(value: Any) -> Any:
    """Return ``value`` as the aware decoding gives it: every naive datetime in it made aware
    UTC (dicts and lists changed in place; DBRefs and scoped code rebuilt)."""
    cls = value.__class__
    if cls is _dt.datetime:
        return EPOCH_AWARE + (value - EPOCH_NAIVE) if value.tzinfo is None else value
    if cls is dict:
        for key, item in value.items():
            value[key] = _aware(item)
    elif cls is list:
        value[:] = map(_aware, value)
    elif cls is DBRef:
        extra = getattr(value, "_DBRef__kwargs", {})
        return DBRef(
            value.collection,
            _aware(value.id),
            value.database,
            **{key: _aware(item) for key, item in extra.items()},
        )
    elif cls is Code and value.scope is not None:
        return Code(str(value), _aware(value.scope))
    return value


def make_aware(raws: Sequence[dict[str, Any]]) -> None:
    """Turn naive-decoded documents into what the aware decoding gives, in place."""
    for raw in raws:
        _aware(raw)


def load_documents(
    model: type[Any],
    raws: Sequence[dict[str, Any]],
    *,
    lenient: bool = False,
    fixer: DatetimeFixer | None = None,
) -> list[Any]:
    """Validate a batch of raw BSON documents into instances of ``model`` (see
    :func:`_load_documents`).

    ``fixer``: the documents were decoded with naive datetimes, and this is the class's fix-up
    (:func:`naive_fixer`; the caller has it already). The datetimes of the places it knows are
    made aware (one generated loop); if a document has a key the fix-up does not know, or the
    batch does not validate, every datetime of the batch is made aware (:func:`make_aware`)
    and the batch loaded again, so instances, snapshots and errors are those of the aware
    decoding.
    """
    if fixer is not None:
        if lenient or not fixer(raws):
            make_aware(raws)
        else:
            try:
                return _load_documents(model, raws, lenient=False)
            except _PydanticValidationError:
                make_aware(raws)
    return _load_documents(model, raws, lenient=lenient)


def _load_documents(
    model: type[Any], raws: Sequence[dict[str, Any]], *, lenient: bool = False
) -> list[Any]:
    """Validate a batch of raw BSON documents into instances of ``model`` (or, in a
    polymorphic family, of the class each ``_cls`` names), in one pydantic call per class.

    Each instance remembers its raw document for change tracking; inside ``odm.transaction()``
    the unit of work's identity map gives back the instance it already holds for an ``_id``.
    A stored document that does not fit raises pydantic's ``ValidationError`` titled with the
    model and the ``_id``; with ``lenient=True`` it comes back as ``odm.Invalid(raw, error)``.
    """
    if not raws:
        return []
    meta: Options = model._meta
    if len(raws) == 1 and not (lenient or meta.family or meta.copies_snapshot):
        # One plain document (get(id=...)): the model's own validator, without the list
        # adapter's wrapping; half of get()'s own time otherwise.
        raw = raws[0]
        try:
            doc = model.__pydantic_validator__.validate_python(raw)
        except _PydanticValidationError as exc:
            raise _named_error(model, raw, exc.errors()) from None
        set_snapshot(doc, raw)
        uow = current_unit_of_work()
        return [doc if uow is None else uow.track(doc)]
    if meta.family and len(meta.family) > 1:
        groups: dict[type[Any], list[int]] = {}
        for position, raw in enumerate(raws):
            groups.setdefault(_class_for(model, raw), []).append(position)
        if len(groups) == 1:
            (only,) = groups
            docs = _validate_batch(only, raws, lenient)
        else:
            docs = [None] * len(raws)
            for cls, positions in groups.items():
                part = _validate_batch(cls, [raws[p] for p in positions], lenient)
                for position, doc in zip(positions, part, strict=True):
                    docs[position] = doc
    else:
        docs = _validate_batch(model, raws, lenient)
    if meta.copies_snapshot or lenient or meta.family:
        for doc, raw in zip(docs, raws, strict=True):
            if not isinstance(doc, Invalid):
                set_snapshot(doc, _snapshot_of(doc._meta, raw))
    else:
        # The snapshot is the raw document itself: one slot store per document, in C.
        set_snapshots(docs, raws)
    uow = current_unit_of_work()
    if uow is not None:
        docs = [d if isinstance(d, Invalid) else uow.track(d) for d in docs]
    return docs


class _PartialPlan:
    """How projected rows of one model become documents, for one set of loaded fields: the
    adapter validating the loaded fields of a batch, and what ``model_construct`` would do
    with them, worked out once (it looks every field's alias and default up per call, the
    better part of a partial load's time)."""

    __slots__ = ("adapter", "extra", "fields", "loaded", "model", "plain")

    def __init__(self, model: type[Any], names: frozenset[str]) -> None:
        from pydantic import create_model

        self.model = model
        fields: dict[str, Any] = {}
        for name in names:
            info = model.model_fields[name]
            # Defaults are not validated, so None stands for "not loaded" whatever the type.
            annotation: Any = info.annotation
            if info.metadata:
                annotation = typing.Annotated[(annotation, *info.metadata)]
            fields[name] = (annotation, Field(default=None, alias=info.alias))
        partial = create_model(
            f"{model.__name__}Partial", __config__=ConfigDict(populate_by_name=True), **fields
        )
        self.adapter: TypeAdapter[list[Any]] = TypeAdapter(list[partial])
        #: (name, stored key) of each loaded field.
        self.loaded = tuple((name, model._meta.db_key(name)) for name in sorted(names))
        #: Every field of the model, in order: (name, FieldInfo, required).
        self.fields = tuple(
            (name, info, info.is_required()) for name, info in model.__pydantic_fields__.items()
        )
        self.extra = model.model_config.get("extra") == "allow"
        # model_construct also runs model_post_init (private attributes...): left to it.
        self.plain = not (model.__pydantic_root_model__ or model.__pydantic_post_init__)

    def construct(self, values: dict[str, Any], present: set[str]) -> Any:
        """What ``model.model_construct(_fields_set=present, **{n: values[n] for n in
        present})`` returns: ``present`` fields set, the others at their defaults (a
        factory called, a mutable default copied) or unset when required."""
        model: Any = self.model
        if not self.plain:
            return model.model_construct(
                _fields_set=present, **{name: values[name] for name in present}
            )
        fields_values: dict[str, Any] = {}
        for name, info, required in self.fields:
            if name in present:
                fields_values[name] = values[name]
            elif not required:
                # validated_data: a factory may take the fields set so far (pydantic 2.10).
                fields_values[name] = info.get_default(
                    call_default_factory=True, validated_data=fields_values
                )
        document = model.__new__(model)
        # pydantic's own attributes, set as its model_construct() does (past validation).
        object.__setattr__(document, "__dict__", fields_values)
        object.__setattr__(document, "__pydantic_fields_set__", present)
        object.__setattr__(document, "__pydantic_extra__", {} if self.extra else None)
        object.__setattr__(document, "__pydantic_private__", None)
        return document


#: The entry of a model's derived state (odm.models.derived): loaded field names -> plan.
_PARTIAL_PLANS: Final = "loading.partial_plans"


def _partial_plan(model: type[Any], names: frozenset[str]) -> _PartialPlan:
    plans = table(model, _PARTIAL_PLANS)
    plan: _PartialPlan | None = plans.get(names)
    if plan is None:
        plan = plans[names] = _PartialPlan(model, names)
    return plan


def loaded_fields(
    model: type[Any], only: Sequence[str] | None, deferred: Sequence[str]
) -> frozenset[str]:
    """Return the top-level fields of ``model`` a projection loads (``id`` always). A name
    that is not a field of ``model`` (one of a sibling class in a polymorphic family, which
    a base-class queryset may name) is not loaded."""
    fields = model.model_fields
    if only is not None:
        names = {top for top in _tops(only) if top in fields}
    else:
        skipped = {name for name in deferred if "__" not in name}
        names = set(fields) - skipped
    names.add(ID_FIELD)
    return frozenset(names)


def _tops(names: Iterable[str]) -> set[str]:
    """The top-level field of each path (``address__city``: ``address``)."""
    return {name.split("__", 1)[0] for name in names}


def _check_names(model: type[Any], only: Sequence[str] | None, deferred: Sequence[str]) -> None:
    """Raise QueryError naming a field of ``only`` / ``deferred`` that neither ``model`` nor
    any class below it in its polymorphic family declares (no row could load it)."""
    fields = model.model_fields
    for top in _tops((*(only or ()), *deferred)):
        if top in fields:
            continue
        family = model._meta.family.values()
        if not any(issubclass(cls, model) and top in cls.model_fields for cls in family):
            raise QueryError(
                f"{model.__name__} has no field {top!r} (nor has any of its subclasses)",
                field=top,
            )


def load_partial(
    model: type[Any],
    raws: Sequence[dict[str, Any]],
    *,
    only: Sequence[str] | None = None,
    deferred: Sequence[str] = (),
    lenient: bool = False,
) -> list[Any]:
    """Build documents from projected rows: the loaded fields validated (in one batch per
    class), the others left unset. In a polymorphic family each row becomes an instance of
    the class its ``_cls`` names (as a full load gives), with the fields of that class among
    those asked for. Such documents cannot be saved (``save()`` says why)."""
    _check_names(model, only, deferred)
    family = model._meta.family
    if not family or len(family) < 2:
        documents = _load_partial_class(model, raws, only, deferred, lenient)
    else:
        documents = _load_partial_family(model, raws, only, deferred, lenient)
    uow = current_unit_of_work()
    if uow is not None:
        # A partial document never enters the identity map: a later full load of its id
        # must not return it, and the flush must not write it (its unloaded fields hold
        # defaults). The object already held for the id, whole, is returned instead.
        held = [uow.identity.get(d) for d in documents]
        documents = [d if h is None else h for d, h in zip(documents, held, strict=True)]
    return documents


def _load_partial_family(
    model: type[Any],
    raws: Sequence[dict[str, Any]],
    only: Sequence[str] | None,
    deferred: Sequence[str],
    lenient: bool,
) -> list[Any]:
    """:func:`_load_partial_class` once per class of the rows' ``_cls``, in the rows' order."""
    groups: dict[type[Any], list[int]] = {}
    for position, raw in enumerate(raws):
        groups.setdefault(_class_for(model, raw), []).append(position)
    if len(groups) == 1:
        (cls,) = groups
        return _load_partial_class(cls, raws, only, deferred, lenient)
    documents: list[Any] = [None] * len(raws)
    for cls, positions in groups.items():
        part = _load_partial_class(cls, [raws[p] for p in positions], only, deferred, lenient)
        for position, document in zip(positions, part, strict=True):
            documents[position] = document
    return documents


def _load_partial_class(
    model: type[Any],
    raws: Sequence[dict[str, Any]],
    only: Sequence[str] | None,
    deferred: Sequence[str],
    lenient: bool,
) -> list[Any]:
    """Build documents of ``model`` itself from projected rows of that class."""
    names = loaded_fields(model, only, deferred)
    plan = _partial_plan(model, names)
    documents = []
    # One pause for validating and building: neither makes anything cyclic.
    with paused_gc(len(raws)):
        try:
            partials = plan.adapter.validate_python(raws)
        except _PydanticValidationError as exc:
            if not lenient:
                raise _first_document_error(model, raws, exc) from None
            return [_partial_one(model, names, raw) for raw in raws]
        for raw, partial in zip(raws, partials, strict=True):
            present = {name for name, key in plan.loaded if key in raw}
            document = plan.construct(partial.__dict__, present)
            set_snapshot(document, raw)
            set_partial(document, True)
            documents.append(document)
    return documents


def _partial_one(model: type[Any], names: frozenset[str], raw: dict[str, Any]) -> Any:
    try:
        return _load_partial_class(model, [raw], sorted(names), (), lenient=False)[0]
    except _PydanticValidationError as exc:
        return Invalid(raw, exc)
