"""Document and Embedded: pydantic v2 models that the metaclass turns into stored documents.

``DocumentMeta`` reads ``class Meta`` at class creation, builds ``Model._meta`` (an
:class:`~odm.models.options.Options`), gives the class its own ``DoesNotExist`` and
``MultipleObjectsReturned``, and registers it in :data:`odm.registry.registry`. A wrong
declaration raises :class:`odm.DeclarationError` there and then, naming the class and the field.

``id`` is the pydantic field name and ``_id`` its alias: ``Customer(id=...)`` and
``Customer(_id=...)`` both work, ``model_dump()`` / JSON show ``id`` (API users never see
``_id``) and the stored BSON uses ``_id`` (:meth:`Document.to_bson`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import decimal
import enum
import gc
import re
import types
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self, Union, get_args, get_origin

import bson
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic import ValidationError as _PydanticValidationError
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from .. import executor, signals
from ..exceptions import (
    DeclarationError,
    DoesNotExist,
    Invalid,
    MultipleObjectsReturned,
    QueryError,
    StaleDocument,
)
from ..queryset import DefaultManager
from ..registry import registry
from ..session import current_unit_of_work
from .fields import Field, Indexed, ObjectId
from .indexes import Index
from .options import CLASS_KEY, ID_FIELD, ID_KEY, META_OPTIONS, Options, resolve_path
from .tracking import diff, get_snapshot, set_snapshot

__all__ = [
    "Document",
    "DocumentMeta",
    "Embedded",
    "commit_update",
    "fetch_by_id",
    "load_documents",
    "prepare_update",
    "write_filter",
]

_set_slot = object.__setattr__


# -- declaration helpers ---------------------------------------------------------------------


def collection_name(class_name: str) -> str:
    """Return the default collection of a class: the snake_case plural of its name
    (``Customer`` -> ``customers``, ``OrderItem`` -> ``order_items``, ``Category`` ->
    ``categories``, ``Box`` -> ``boxes``)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()
    if re.search(r"[^aeiou]y$", snake):
        return snake[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", snake):
        return snake + "es"
    return snake + "s"


def _annotation_has(annotation: Any, wanted: type[Any]) -> bool:
    """Tell whether ``annotation`` is ``wanted`` (or a subclass), possibly inside Optional,
    a union, ``Annotated`` or a list."""
    if isinstance(annotation, type):
        return issubclass(annotation, wanted)
    return any(_annotation_has(arg, wanted) for arg in get_args(annotation))


# Immutable values: sharing them with the raw document is harmless.
_SAFE_SCALARS: tuple[type[Any], ...] = (
    str, int, float, bool, bytes, type(None), enum.Enum, _dt.date, _dt.time, _dt.timedelta,
    uuid.UUID, decimal.Decimal, bson.ObjectId, bson.Decimal128, bson.Int64,
)


def _may_share(annotation: Any, seen: set[int] | None = None) -> bool:
    """Tell whether a validated value of this type can hold mutable objects of its raw input.

    pydantic copies typed containers and builds new models, but keeps the very objects it
    finds under ``Any``, bare ``dict`` / ``list`` and the like; the tracking snapshot must
    copy those keys or an in-place change would go unseen.
    """
    seen = seen if seen is not None else set()
    if annotation is Any or annotation is object:
        return True
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            if id(annotation) in seen:
                return False
            seen.add(id(annotation))
            return any(_may_share(f.annotation, seen) for f in annotation.model_fields.values())
        if annotation in (dict, list, tuple, set, frozenset):
            return True
        return not issubclass(annotation, _SAFE_SCALARS)
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _may_share(get_args(annotation)[0], seen)
    if origin is typing.Literal:
        return False
    from .fields import Reference

    if origin is Reference:
        return False
    if origin in (Union, types.UnionType) or origin in (list, tuple, set, frozenset, dict):
        return any(_may_share(a, seen) for a in get_args(annotation) if a is not ...)
    return True


def _meta_options(class_name: str, meta: type | None) -> dict[str, Any]:
    if meta is None:
        return {}
    declared = {k: v for k, v in vars(meta).items() if not k.startswith("__")}
    unknown = sorted(set(declared) - META_OPTIONS)
    if unknown:
        raise DeclarationError(
            f"{class_name}.Meta: unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known options: {', '.join(sorted(META_OPTIONS))}"
        )
    return declared


def _is_class_attribute(name: str, value: Any) -> bool:
    """Tell whether a non-annotated class attribute should stay a plain class attribute
    (a manager such as ``objects = CustomQuerySet.as_manager()``) rather than reach pydantic,
    which would refuse it. Plain data and ``Field(...)`` still reach pydantic, so that a
    forgotten annotation keeps its clear error."""
    if name.startswith("_") or isinstance(value, FieldInfo):
        return False
    if isinstance(value, (int, float, str, bytes, list, dict, tuple, set, type(None))):
        return False
    return not isinstance(
        value, (types.FunctionType, classmethod, staticmethod, property, type)
    ) and not type(value).__module__.startswith("pydantic")


# -- the metaclass ---------------------------------------------------------------------------


class DocumentMeta(ModelMetaclass):
    """Builds ``_meta``, the per-model exceptions and the registry entry of Document classes."""

    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        namespace: dict[str, Any],
        **kwargs: Any,
    ) -> type:
        if not any(isinstance(base, DocumentMeta) for base in bases):
            # Document itself: nothing to declare.
            return super().__new__(mcs, cls_name, bases, namespace, **kwargs)
        options = _meta_options(cls_name, namespace.pop("Meta", None))
        parent: Options | None = next(
            (b._meta for b in bases if isinstance(getattr(b, "_meta", None), Options)), None
        )
        annotations: dict[str, Any] = namespace.setdefault("__annotations__", {})
        inherited_fields: set[str] = set()
        for base in bases:
            inherited_fields.update(getattr(base, "model_fields", {}))

        lock = bool(options.get("optimistic_lock", parent.optimistic_lock if parent else False))
        version_field = str(
            options.get("version_field", parent.version_field if parent else "version")
        )
        if lock and version_field not in annotations and version_field not in inherited_fields:
            # The lock's counter is an ordinary field, so it shows in dumps and schemas.
            annotations[version_field] = int
            namespace[version_field] = 0

        if ID_FIELD in annotations:
            declared = namespace.get(ID_FIELD, ...)
            if not (isinstance(declared, FieldInfo) and declared.alias):
                # A custom id type still lives in _id.
                namespace[ID_FIELD] = (
                    Field(default=declared, alias=ID_KEY)
                    if not isinstance(declared, FieldInfo)
                    else _with_alias(declared)
                )

        class_attributes = {
            name: value
            for name, value in list(namespace.items())
            if name not in annotations and _is_class_attribute(name, value)
        }
        for name in class_attributes:
            del namespace[name]

        cls = super().__new__(mcs, cls_name, bases, namespace, **kwargs)
        for name, value in class_attributes.items():
            setattr(cls, name, value)
            set_name = getattr(value, "__set_name__", None)
            if set_name is not None:
                set_name(cls, name)

        cls.DoesNotExist = type(  # type: ignore[attr-defined]
            "DoesNotExist",
            (getattr(cls, "DoesNotExist", DoesNotExist),),
            {"__module__": cls.__module__, "__qualname__": f"{cls.__qualname__}.DoesNotExist"},
        )
        cls.MultipleObjectsReturned = type(  # type: ignore[attr-defined]
            "MultipleObjectsReturned",
            (getattr(cls, "MultipleObjectsReturned", MultipleObjectsReturned),),
            {
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.MultipleObjectsReturned",
            },
        )
        meta = _build_options(cls, options, parent, lock, version_field)
        cls._meta = meta  # type: ignore[attr-defined]
        if not meta.abstract:
            registry.register(cls)
            if meta.root is not None and meta.class_name is not None:
                meta.family[meta.class_name] = cls
        return cls


def _with_alias(info: FieldInfo) -> FieldInfo:
    merged = FieldInfo.merge_field_infos(info, alias=ID_KEY)
    return merged


def _build_options(
    cls: type[Any],
    options: dict[str, Any],
    parent: Options | None,
    lock: bool,
    version_field: str,
) -> Options:
    name = cls.__qualname__

    def inherited(key: str, default: Any) -> Any:
        if key in options:
            return options[key]
        return getattr(parent, key, default) if parent is not None else default

    abstract = bool(options.get("abstract", False))
    family_parent = (
        parent if parent is not None and parent.polymorphic and not parent.abstract else None
    )
    if family_parent is not None:
        collection = family_parent.collection
        if "collection" in options and options["collection"] != collection:
            raise DeclarationError(
                f"{name}: Meta.collection {options['collection']!r} conflicts with the "
                f"polymorphic base, stored in {collection!r}"
            )
    else:
        collection = str(options.get("collection") or collection_name(cls.__name__))

    meta = Options(
        model=cls,
        collection="" if abstract else collection,
        alias=str(inherited("alias", "default")),
        abstract=abstract,
        optimistic_lock=lock,
        version_field=version_field,
        validate_on_server=bool(inherited("validate_on_server", False)),
    )
    try:
        from .options import as_read_preference, as_write_concern

        meta.read_preference = as_read_preference(inherited("read_preference", None))
        meta.write_concern = as_write_concern(inherited("write_concern", None))
    except ValueError as exc:
        raise DeclarationError(f"{name}.Meta: {exc}") from exc

    def check_path(path: str, what: str) -> str:
        try:
            return resolve_path(cls, path)
        except LookupError as exc:
            raise DeclarationError(f"{name}: {what} is on unknown field {path!r}: {exc}") from exc

    ordering = inherited("ordering", ())
    if isinstance(ordering, str):
        ordering = (ordering,)
    for item in ordering:
        check_path(str(item).lstrip("-+"), "Meta.ordering")
    meta.ordering = tuple(str(o) for o in ordering)

    shard_key = inherited("shard_key", ())
    if isinstance(shard_key, str):
        shard_key = (shard_key,)
    for key in shard_key:
        check_path(str(key), "Meta.shard_key")
    meta.shard_key = tuple(str(k) for k in shard_key)

    # Polymorphism: a family shares the root's collection, options and _cls map.
    if family_parent is not None:
        meta.polymorphic = True
        meta.root = family_parent.root
        meta.family = family_parent.family
        meta.class_name = cls.__name__
        meta.class_values = (cls.__name__,)
        existing = meta.family.get(cls.__name__)
        if existing is not None and not (
            existing.__module__ == cls.__module__ and existing.__qualname__ == cls.__qualname__
        ):
            raise DeclarationError(
                f"{name}: the polymorphic family of {meta.root.__name__ if meta.root else '?'} "
                f"already has a class named {cls.__name__!r} ({existing.__module__}); "
                "class names are the stored _cls values and must differ"
            )
        for ancestor in cls.__mro__[1:]:
            ancestor_meta = getattr(ancestor, "_meta", None)
            if (
                isinstance(ancestor_meta, Options)
                and ancestor_meta.family is meta.family
                and ancestor_meta.class_values is not None
                and cls.__name__ not in ancestor_meta.class_values
            ):
                ancestor_meta.class_values = (*ancestor_meta.class_values, cls.__name__)
    elif options.get("polymorphic") and not abstract:
        meta.polymorphic = True
        meta.root = cls
        meta.class_name = cls.__name__
        meta.family = {}
    else:
        meta.root = cls if not abstract else None
        if options.get("polymorphic") and abstract:
            raise DeclarationError(f"{name}: an abstract class cannot be polymorphic")

    # Indexes: inherited declarations, Meta.indexes, then Indexed(...) annotations.
    declared = list(parent.declared_indexes) if parent is not None else []
    own = options.get("indexes", [])
    for index in own:
        if not isinstance(index, Index):
            raise DeclarationError(
                f"{name}.Meta.indexes: {index!r} is not an odm.Index(...)"
            )
    declared.extend(own)
    meta.declared_indexes = list(declared)
    for field_name, info in cls.model_fields.items():
        for marker in info.metadata:
            if isinstance(marker, Indexed):
                declared_index = Index(
                    (field_name, marker.direction),
                    unique=marker.unique,
                    sparse=marker.sparse,
                    expire_after=marker.expire_after,
                    partial=marker.partial,
                    name=marker.name,
                )
                declared.append(declared_index)
    resolved: dict[str, Index] = {}
    for index in declared:
        for path in index.fields:
            check_path(path, f"index {index.name!r}")
        if index.expire_after is not None:
            _check_ttl(cls, name, index)
        stored = index.with_paths(lambda p: resolve_path(cls, p))
        resolved[stored.name] = stored
    meta.indexes = list(resolved.values())

    meta.shared_keys = frozenset(
        (info.alias or field_name)
        for field_name, info in cls.model_fields.items()
        if _may_share(info.annotation)
    )
    return meta


def _check_ttl(cls: type[Any], name: str, index: Index) -> None:
    if len(index.keys) != 1:
        raise DeclarationError(
            f"{name}: TTL index {index.name!r} (expire_after) must have exactly one field, "
            f"not {index.fields}"
        )
    path = index.fields[0]
    head, _, rest = path.partition(".")
    info = cls.model_fields.get(head)
    if info is None or rest:
        return  # nested paths: the server checks the value type at expiry time
    if not _annotation_has(info.annotation, _dt.datetime):
        raise DeclarationError(
            f"{name}: TTL index {index.name!r} is on field {head!r} of type "
            f"{getattr(info.annotation, '__name__', info.annotation)!r}; expire_after needs "
            "a datetime field"
        )


# -- the classes users subclass --------------------------------------------------------------


class Embedded(BaseModel):
    """A pydantic model stored inline in a Document (no collection, no ``_id``).

    Stored keys it does not declare are not kept when it is written again; set
    ``model_config = ConfigDict(extra="allow")`` to keep them.
    """

    model_config = ConfigDict(populate_by_name=True, validate_assignment=True)


class Document(BaseModel, metaclass=DocumentMeta):
    """A pydantic model stored in a collection; see API.md section 2.

    ``id`` (stored as ``_id``) defaults to a new ObjectId, made on the client so that a new
    document knows its id before it is inserted. Assignments are validated, so invalid data
    raises pydantic's ``ValidationError`` before anything is written.
    """

    # The tracking snapshot lives in a slot: pydantic leaves it alone, and setting it costs
    # one attribute store per loaded document.
    __slots__ = ("_odm_partial", "_odm_pending", "_odm_snapshot")

    model_config = ConfigDict(populate_by_name=True, validate_assignment=True)

    id: ObjectId = Field(default_factory=bson.ObjectId, alias=ID_KEY)

    _meta: ClassVar[Options]
    objects: ClassVar[DefaultManager] = DefaultManager()
    DoesNotExist: ClassVar[type[DoesNotExist]] = DoesNotExist
    MultipleObjectsReturned: ClassVar[type[MultipleObjectsReturned]] = MultipleObjectsReturned

    # -- hooks: override as async methods ------------------------------------------------

    async def before_save(self) -> None:
        """Run before each insert or update of this document (override)."""

    async def after_save(self) -> None:
        """Run after each insert or update of this document (override)."""

    async def before_delete(self) -> None:
        """Run before this document is deleted (override)."""

    async def after_delete(self) -> None:
        """Run after this document was deleted (override)."""

    # -- stored form ---------------------------------------------------------------------

    def to_bson(self) -> dict[str, Any]:
        """Return the document as stored: aliased keys (``_id``), plus ``_cls`` when it
        belongs to a polymorphic family."""
        raw = self.model_dump(by_alias=True)
        class_name = self._meta.class_name
        if class_name is not None:
            raw[CLASS_KEY] = class_name
        return raw

    @property
    def is_stored(self) -> bool:
        """Tell whether this instance was loaded from or written to the database."""
        return get_snapshot(self) is not None

    # -- lifecycle -----------------------------------------------------------------------

    async def insert(self, *, timeout: float | None = None, write_concern: Any = None) -> Self:
        """Insert this document; raise :class:`odm.DuplicateKey` if its ``_id`` or a unique
        key is taken. Runs the save hooks and signals with ``created=True``."""
        model = type(self)
        await self.before_save()
        if signals.pre_save.has_receivers():
            await signals.pre_save.send(model, document=self, created=True)
        raw = self.to_bson()
        await executor.insert_one(model, raw, timeout=timeout, write_concern=write_concern)
        set_snapshot(self, raw)
        uow = current_unit_of_work()
        if uow is not None:
            uow.track(self)
        if signals.post_save.has_receivers():
            await signals.post_save.send(model, document=self, created=True)
        await self.after_save()
        return self

    async def save(self, *, timeout: float | None = None, write_concern: Any = None) -> Self:
        """Insert this document if it was never stored, else send only what changed.

        A save with no change sends nothing. With ``Meta.optimistic_lock`` a copy that
        someone else saved since it was loaded raises :class:`odm.StaleDocument`; a document
        deleted meanwhile raises ``Model.DoesNotExist``.
        """
        if get_snapshot(self) is None:
            return await self.insert(timeout=timeout, write_concern=write_concern)
        if getattr(self, "_odm_partial", False):
            raise QueryError(
                f"{type(self).__name__} _id={self.id!r} was loaded with only()/defer(): a "
                "partial document cannot be saved; load it whole, or use "
                "Model.objects.filter(id=...).update(...)"
            )
        model = type(self)
        await self.before_save()
        if signals.pre_save.has_receivers():
            await signals.pre_save.send(model, document=self, created=False)
        plan = prepare_update(self)
        if plan is not None:
            filter, update, new_raw = plan
            result = await executor.update_one(
                model, filter, update, timeout=timeout, write_concern=write_concern
            )
            if result.acknowledged and result.matched_count == 0:
                raise self._missing("save")
            commit_update(self, new_raw)
        if signals.post_save.has_receivers():
            await signals.post_save.send(model, document=self, created=False)
        await self.after_save()
        return self

    async def delete(self, *, timeout: float | None = None, write_concern: Any = None) -> None:
        """Delete this document (a stale copy under ``Meta.optimistic_lock`` raises
        :class:`odm.StaleDocument`). Deleting a document that is already gone does nothing."""
        model = type(self)
        await self.before_delete()
        if signals.pre_delete.has_receivers():
            await signals.pre_delete.send(model, document=self)
        result = await executor.delete_one(
            model, write_filter(self), timeout=timeout, write_concern=write_concern
        )
        stale = self._meta.optimistic_lock and get_snapshot(self) is not None
        if stale and result.acknowledged and result.deleted_count == 0:
            raise self._missing("delete")
        set_snapshot(self, None)
        if signals.post_delete.has_receivers():
            await signals.post_delete.send(model, document=self)
        await self.after_delete()

    async def refresh(self, *, timeout: float | None = None) -> Self:
        """Reload every field from the database (``Model.DoesNotExist`` if it is gone)."""
        model = type(self)
        filter = write_filter(self, with_version=False)
        raw = await executor.find_one(model, filter, timeout=timeout)
        if raw is None:
            raise model.DoesNotExist(f"{model.__name__} with _id={self.id!r} does not exist")
        fresh = _validate_one(model, raw)
        # Updated in place, so every holder of this instance (the identity map) sees it.
        self.__dict__.update(fresh.__dict__)
        _set_slot(self, "__pydantic_fields_set__", set(fresh.model_fields_set))
        set_snapshot(self, _snapshot_of(model._meta, raw))
        return self

    def _missing(self, action: str) -> Exception:
        model = type(self)
        if self._meta.optimistic_lock:
            return StaleDocument(
                f"{model.__name__} _id={self.id!r}: cannot {action}, the document was changed "
                f"or deleted since this copy was loaded (version "
                f"{(get_snapshot(self) or {}).get(self._meta.db_key(self._meta.version_field))!r});"
                " refresh() and retry"
            )
        return model.DoesNotExist(
            f"{model.__name__} _id={self.id!r}: cannot {action}, the document was deleted"
        )


# -- writes by instance (shared with the unit of work's flush) -------------------------------


def write_filter(document: Document, *, with_version: bool = True) -> dict[str, Any]:
    """Return the filter that targets ``document`` in a write: its ``_id``, the shard key
    (from the stored values, so the write goes to the shard that holds it) and, under
    ``Meta.optimistic_lock``, the version it was loaded with."""
    meta = document._meta
    snapshot = get_snapshot(document)
    filter: dict[str, Any] = {ID_KEY: snapshot[ID_KEY] if snapshot else document.id}
    if meta.shard_key:
        current = snapshot if snapshot is not None else document.to_bson()
        for key in meta.shard_key:
            path = meta.db_path(key)
            if path != ID_KEY:
                filter[path] = _get_path(current, path)
    if with_version and meta.optimistic_lock and snapshot is not None:
        filter[meta.db_key(meta.version_field)] = snapshot.get(meta.db_key(meta.version_field))
    return filter


def _get_path(raw: Mapping[str, Any], path: str) -> Any:
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def prepare_update(
    document: Document,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """Return ``(filter, update, new_snapshot)`` for what changed since ``document`` was
    loaded, or ``None`` when nothing changed (or it was never stored).

    After the update succeeded, call :func:`commit_update` with ``new_snapshot``. Under
    ``Meta.optimistic_lock`` the update also raises the version by one.
    """
    snapshot = get_snapshot(document)
    if snapshot is None:
        return None
    new_raw = document.to_bson()
    update = diff(snapshot, new_raw)
    if not update:
        return None
    meta = document._meta
    filter = write_filter(document)
    if meta.optimistic_lock:
        key = meta.db_key(meta.version_field)
        version = (snapshot.get(key) or 0) + 1
        update.setdefault("$set", {})[key] = version
        for operator in ("$unset", "$push"):
            update.get(operator, {}).pop(key, None)
        new_raw[key] = version
    return filter, update, new_raw


def commit_update(document: Document, new_snapshot: dict[str, Any]) -> None:
    """Record that ``new_snapshot`` (from :func:`prepare_update`) is now stored."""
    meta = document._meta
    if meta.optimistic_lock:
        document.__dict__[meta.version_field] = new_snapshot[meta.db_key(meta.version_field)]
    set_snapshot(document, new_snapshot)


# -- reads: batch validation -----------------------------------------------------------------


def _snapshot_of(meta: Options, raw: dict[str, Any]) -> dict[str, Any]:
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
    title = f"{model.__name__} document _id={raw.get(ID_KEY)!r}"
    return _PydanticValidationError.from_exception_data(title, line_errors)


def _validate_one(model: type[Any], raw: dict[str, Any]) -> Any:
    target = _class_for(model, raw)
    try:
        return target.model_validate(raw)
    except _PydanticValidationError as exc:
        raise _named_error(target, raw, exc.errors()) from None


def _class_for(model: type[Any], raw: Mapping[str, Any]) -> type[Any]:
    family = model._meta.family
    if not family:
        return model
    found = family.get(str(raw.get(CLASS_KEY)))
    return found if found is not None and issubclass(found, model) else model


#: Batches at least this long are validated with the cyclic GC paused (see _validate_batch).
_GC_PAUSE_MIN = 64


def _validate_batch(
    model: type[Any], raws: Sequence[dict[str, Any]], lenient: bool
) -> list[Any]:
    adapter: TypeAdapter[list[Any]] = model._meta.list_adapter()
    try:
        if len(raws) < _GC_PAUSE_MIN or not gc.isenabled():
            return adapter.validate_python(raws)
        # Validating a batch allocates several objects per document, none of them in a
        # reference cycle; left on, the cyclic GC would run dozens of collections that walk
        # the fresh (young) raw documents again and again: ~40 % of the batch's time.
        gc.disable()
        try:
            return adapter.validate_python(raws)
        finally:
            gc.enable()
    except _PydanticValidationError as exc:
        if not lenient:
            errors = exc.errors()
            first = errors[0]["loc"][0]
            assert isinstance(first, int)
            mine = [{**e, "loc": e["loc"][1:]} for e in errors if e["loc"][0] == first]
            raise _named_error(model, raws[first], mine) from None
    results: list[Any] = []
    for raw in raws:
        try:
            results.append(model.model_validate(raw))
        except _PydanticValidationError as exc:
            results.append(Invalid(raw, _named_error(model, raw, exc.errors())))
    return results


def load_documents(
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
    if meta.shared_keys or lenient or meta.family:
        for doc, raw in zip(docs, raws, strict=True):
            if not isinstance(doc, Invalid):
                set_snapshot(doc, _snapshot_of(doc._meta, raw))
    else:
        for doc, raw in zip(docs, raws, strict=True):
            _set_slot(doc, "_odm_snapshot", raw)
    uow = current_unit_of_work()
    if uow is not None:
        docs = [d if isinstance(d, Invalid) else uow.track(d) for d in docs]
    return docs


async def fetch_by_id(model: type[Any], id: Any, *, timeout: float | None = None) -> Any:
    """Load the ``model`` document with ``_id`` ``id``; raise ``model.DoesNotExist`` if none."""
    raw = await executor.find_one(
        model, {ID_KEY: id, **model._meta.class_filter()}, timeout=timeout
    )
    if raw is None:
        raise model.DoesNotExist(f"{model.__name__} with _id={id!r} does not exist")
    return load_documents(model, [raw])[0]


_partial_adapters: dict[tuple[type[Any], frozenset[str]], TypeAdapter[list[Any]]] = {}


def _partial_adapter(model: type[Any], names: frozenset[str]) -> TypeAdapter[list[Any]]:
    key = (model, names)
    adapter = _partial_adapters.get(key)
    if adapter is None:
        from pydantic import create_model

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
        adapter = TypeAdapter(list[partial])
        _partial_adapters[key] = adapter
    return adapter


def loaded_fields(
    model: type[Any], only: Sequence[str] | None, deferred: Sequence[str]
) -> frozenset[str]:
    """Return the top-level fields a projection loads (``id`` always)."""
    if only is not None:
        names = {name.split("__", 1)[0] for name in only}
    else:
        skipped = {name for name in deferred if "__" not in name}
        names = set(model.model_fields) - skipped
    names.add(ID_FIELD)
    return frozenset(names)


def load_partial(
    model: type[Any],
    raws: Sequence[dict[str, Any]],
    *,
    only: Sequence[str] | None = None,
    deferred: Sequence[str] = (),
    lenient: bool = False,
) -> list[Any]:
    """Build documents from projected rows: the loaded fields validated (in one batch), the
    others left unset. Such documents cannot be saved (``save()`` says why)."""
    names = loaded_fields(model, only, deferred)
    try:
        partials = _partial_adapter(model, names).validate_python(raws)
    except _PydanticValidationError as exc:
        if not lenient:
            first = exc.errors()[0]["loc"][0]
            assert isinstance(first, int)
            raise _named_error(model, raws[first], exc.errors()) from None
        return [_partial_one(model, names, raw) for raw in raws]
    documents = []
    for raw, partial in zip(raws, partials, strict=True):
        present = {n for n in names if model._meta.db_key(n) in raw}
        document = model.model_construct(
            _fields_set=present, **{n: getattr(partial, n) for n in present}
        )
        set_snapshot(document, raw)
        _set_slot(document, "_odm_partial", True)
        documents.append(document)
    uow = current_unit_of_work()
    if uow is not None:
        documents = [uow.track(d) for d in documents]
    return documents


def _partial_one(model: type[Any], names: frozenset[str], raw: dict[str, Any]) -> Any:
    try:
        return load_partial(model, [raw], only=sorted(names))[0]
    except _PydanticValidationError as exc:
        return Invalid(raw, exc)
