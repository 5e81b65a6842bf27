"""DocumentMeta: what happens when a Document class is declared.

The metaclass reads ``class Meta`` at class creation, builds ``Model._meta`` (an
:class:`~odm.models.options.Options`), gives the class its own ``DoesNotExist`` and
``MultipleObjectsReturned``, and registers it in :data:`odm.registry.registry`. A wrong
declaration raises :class:`odm.DeclarationError` there and then, naming the class and the field.
No I/O here.

Forward references (``Reference["Customer"]``, or ``Reference[Customer]`` under ``from
__future__ import annotations`` with ``Customer`` declared further down) leave pydantic's model
incomplete at class creation; each time a Document class is declared the metaclass tries again
to complete the pending ones (:func:`complete_model`), with the registered Document classes as
names, and then redoes what depends on the field types (indexes, checks).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import re
import sys
import types
import typing
import uuid
import weakref
from typing import Any, ClassVar, Union, dataclass_transform, get_args, get_origin

import bson
from pydantic import BaseModel, PlainSerializer, WrapSerializer
from pydantic._internal._model_construction import ModelMetaclass, build_lenient_weakvaluedict
from pydantic.fields import Field as PydanticField
from pydantic.fields import FieldInfo, PrivateAttr

from ..concerns import as_read_preference, as_write_concern
from ..exceptions import (
    DeclarationError,
    DoesNotExist,
    MultipleObjectsReturned,
)
from ..registry import registry
from .derived import expire_all
from .field_types import ID_FIELD
from .fields import DecimalAnnotation, Field, Indexed, Reference
from .geo import geo_index_error
from .indexes import Index
from .locking import check_version_field
from .options import ID_KEY, META_OPTIONS, Options, resolve_path

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
            if annotation.model_config.get("extra") == "allow":
                return True  # undeclared keys are kept as the raw document's own objects
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


def overrides(model: type[Any], name: str) -> bool:
    """Tell whether ``model`` (a Document class) has its own ``name`` (a method such as
    ``to_bson`` or ``before_save``) instead of ``odm.Document``'s."""
    document = DocumentMeta.document_class
    return document is None or getattr(model, name) is not getattr(document, name)


# Type checkers read pydantic's dataclass_transform from the metaclass a class names, not from
# that metaclass's bases: without repeating it here, every Document's __init__ would be
# BaseModel's untyped ``**data: Any`` to mypy and pyright (no plugin).
@dataclass_transform(kw_only_default=True, field_specifiers=(PydanticField, PrivateAttr))
class DocumentMeta(ModelMetaclass):
    """Builds ``_meta``, the per-model exceptions and the registry entry of Document classes."""

    #: ``odm.Document`` itself, the one class made by this metaclass from no Document base:
    #: what the dump and load plans compare a model's methods with.
    document_class: ClassVar[type[Any] | None] = None

    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        namespace: dict[str, Any],
        **kwargs: Any,
    ) -> type:
        if not any(isinstance(base, DocumentMeta) for base in bases):
            # Document itself: nothing to declare.
            document = super().__new__(mcs, cls_name, bases, namespace, **kwargs)
            DocumentMeta.document_class = document
            return document
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

        # pydantic takes the caller's locals as the namespace of forward references: that
        # would be this method's, so give it those of the class statement's frame instead.
        namespace["__pydantic_parent_namespace__"] = _class_statement_namespace()
        kwargs["__pydantic_reset_parent_namespace__"] = False
        cls = super().__new__(mcs, cls_name, bases, namespace, **kwargs)
        for name, value in class_attributes.items():
            setattr(cls, name, value)
            set_name = getattr(value, "__set_name__", None)
            if set_name is not None:
                set_name(cls, name)

        cls.DoesNotExist = type(  # type: ignore[attr-defined]
            "DoesNotExist",
            (getattr(cls, "DoesNotExist", DoesNotExist),),
            {
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.DoesNotExist",
                "model": cls,
            },
        )
        cls.MultipleObjectsReturned = type(  # type: ignore[attr-defined]
            "MultipleObjectsReturned",
            (getattr(cls, "MultipleObjectsReturned", MultipleObjectsReturned),),
            {
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.MultipleObjectsReturned",
            },
        )
        check_version_field(cls, lock, version_field)
        meta = _build_options(cls, options, parent, lock, version_field)
        cls._meta = meta  # type: ignore[attr-defined]
        if not meta.abstract:
            registry.register(cls)
            if meta.root is not None and meta.class_name is not None:
                meta.family[meta.class_name] = cls
        if not _is_complete(cls):
            _incomplete.add(cls)
        if _incomplete:
            # This class may be what the pending ones were waiting for.
            for pending in sorted(_incomplete, key=lambda m: m.__qualname__):
                if pending is not cls:
                    complete_model(pending)
        # A new class can resolve others' forward references: nothing derived before holds.
        expire_all()
        return cls


# -- forward references ----------------------------------------------------------------------


def _class_statement_namespace() -> dict[str, Any] | None:
    """Return the locals of the frame running the ``class`` statement (held weakly, as
    pydantic does), or ``None`` at module level, where the module's globals serve."""
    frame = sys._getframe(2)  # 0: here, 1: DocumentMeta.__new__, 2: the class statement
    if frame.f_code.co_name == "<module>" or frame.f_back is None:
        return None
    return build_lenient_weakvaluedict(dict(frame.f_locals))


#: Document classes whose annotations named a class not declared yet.
_incomplete: weakref.WeakSet[type[Any]] = weakref.WeakSet()


def _is_complete(model: type[Any]) -> bool:
    return bool(getattr(model, "__pydantic_complete__", True))


def _names_for(model: type[Any]) -> dict[str, Any]:
    """Return the names a forward reference of ``model`` may use: the registered Document
    classes (those of its own module first; a name two other modules use is left out), then
    its module's globals."""
    by_name: dict[str, list[type[Any]]] = {}
    for candidate in registry:
        by_name.setdefault(candidate.__name__, []).append(candidate)
    names: dict[str, Any] = {}
    for name, classes in by_name.items():
        chosen = [c for c in classes if c.__module__ == model.__module__] or classes
        if len(chosen) == 1:
            names[name] = chosen[0]
    module = sys.modules.get(model.__module__)
    if module is not None:
        names.update(vars(module))
    return names


def complete_model(model: type[Any]) -> bool:
    """Finish a Document class whose annotations named classes not declared at the time.

    Resolves the names against the registered Document classes and the model's module, then
    redoes what depends on the field types (``Indexed`` markers, index paths, checks). Returns
    whether the model is complete; a model still waiting for a class stays pending and is
    tried again when the next Document class is declared (pydantic also retries on first use).
    Raises :class:`odm.DeclarationError` for a declaration that the resolved types make wrong.
    """
    if _is_complete(model):
        _incomplete.discard(model)
    else:
        model.model_rebuild(raise_errors=False, _types_namespace=_names_for(model))
        if not _is_complete(model):
            return False
        _incomplete.discard(model)
        expire_all()
    meta = getattr(model, "_meta", None)
    if meta is not None and getattr(meta, "model", None) is model:
        _resolve_fields(model, meta)
    return True


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
        meta.read_preference = as_read_preference(inherited("read_preference", None))
        meta.write_concern = as_write_concern(inherited("write_concern", None))
    except ValueError as exc:
        raise DeclarationError(f"{name}.Meta: {exc}") from exc

    ordering = inherited("ordering", ())
    if isinstance(ordering, str):
        ordering = (ordering,)
    meta.ordering = tuple(str(o) for o in ordering)

    shard_key = inherited("shard_key", ())
    if isinstance(shard_key, str):
        shard_key = (shard_key,)
    meta.shard_key = tuple(str(k) for k in shard_key)
    _check_paths(cls, meta)

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

    # Indexes: inherited declarations and Meta.indexes (Indexed(...) markers: _resolve_fields).
    declared = list(parent.declared_indexes) if parent is not None else []
    own = options.get("indexes", [])
    for index in own:
        if not isinstance(index, Index):
            raise DeclarationError(
                f"{name}.Meta.indexes: {index!r} is not an odm.Index(...)"
            )
    declared.extend(own)
    meta.declared_indexes = list(declared)
    _resolve_fields(cls, meta)
    return meta


def _resolve_fields(cls: type[Any], meta: Options) -> None:
    """Check and resolve what depends on the field types: ordering and shard key paths,
    indexes (with the ``Indexed`` markers), the keys the tracking snapshot copies, storable
    types. Run at class creation, and again once forward references are resolved."""
    name = cls.__qualname__
    _check_paths(cls, meta)

    declared = list(meta.declared_indexes)
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
            _check_path(cls, path, f"index {index.name!r}")
        if index.expire_after is not None:
            _check_ttl(cls, name, index)
        for path, direction in index.keys:
            problem = geo_index_error(cls, path) if direction == "2dsphere" else None
            if problem is not None:
                raise DeclarationError(f"{name}: index {index.name!r}: {problem}")
        stored = index.with_paths(lambda p: resolve_path(cls, p))
        resolved[stored.name] = stored
    meta.indexes = list(resolved.values())

    meta.shared_keys = frozenset(
        (info.alias or field_name)
        for field_name, info in cls.model_fields.items()
        if _may_share(info.annotation)
    )
    meta.shares_extras = cls.model_config.get("extra") == "allow"
    meta.copies_snapshot = meta.shares_extras or bool(meta.shared_keys)
    if _is_complete(cls):
        _check_storable(cls, name)


def _check_path(cls: type[Any], path: str, what: str) -> str:
    try:
        return resolve_path(cls, path)
    except LookupError as exc:
        raise DeclarationError(
            f"{cls.__qualname__}: {what} is on unknown field {path!r}: {exc}"
        ) from exc


def _check_paths(cls: type[Any], meta: Options) -> None:
    for item in meta.ordering:
        _check_path(cls, item.lstrip("-+"), "Meta.ordering")
    for key in meta.shard_key:
        _check_path(cls, key, "Meta.shard_key")


# -- storable types --------------------------------------------------------------------------


def _converts(marker: Any) -> bool:
    """Tell whether an ``Annotated`` marker gives the value its own schema or serializer."""
    return (
        marker is DecimalAnnotation
        or isinstance(marker, PlainSerializer | WrapSerializer)
        or hasattr(marker, "__get_pydantic_core_schema__")
    )


def _bare_decimal(annotation: Any, seen: set[int]) -> str | None:
    """Return where a plain ``decimal.Decimal`` hides in ``annotation`` (``""`` for the
    annotation itself, ``"Line.price"`` inside an embedded model), or ``None``."""
    if annotation is decimal.Decimal:
        return ""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if id(annotation) in seen or not _is_complete(annotation):
            return None
        seen.add(id(annotation))
        if annotation.__pydantic_decorators__.model_serializers:
            return None
        for field_name, info in annotation.model_fields.items():
            found = _field_bare_decimal(annotation, field_name, info, seen)
            if found is not None:
                return f"{annotation.__name__}.{field_name}" + (f".{found}" if found else "")
        return None
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        if any(_converts(marker) for marker in args[1:]):
            return None
        return _bare_decimal(args[0], seen)
    for arg in args:
        found = _bare_decimal(arg, seen)
        if found is not None:
            return found
    return None


def _field_bare_decimal(
    model: type[BaseModel], field_name: str, info: FieldInfo, seen: set[int]
) -> str | None:
    if any(_converts(marker) for marker in info.metadata):
        return None
    for decorator in model.__pydantic_decorators__.field_serializers.values():
        if field_name in decorator.info.fields or "*" in decorator.info.fields:
            return None
    return _bare_decimal(info.annotation, seen)


def check_stored_keys(model: type[Any]) -> None:
    """Refuse a field of ``model`` (a Document or an Embedded) whose stored key (its alias,
    else its name) MongoDB would not read as one field, naming the class and the field.

    The ODM's updates and filters name a field by its key. In them MongoDB reads a key with
    a ``.`` as a path into an embedded document (``$set: {"a.b": 1}`` writes
    ``{"a": {"b": 1}}`` beside the stored ``"a.b"``) and one starting with ``$`` as an
    operator; an empty key is one pydantic stores but the ODM's paths never name. Each would
    let the object say one thing and the database another; BSON cannot store a NUL in a key.
    """
    for field_name, info in model.model_fields.items():
        key = info.serialization_alias if info.serialization_alias is not None else field_name
        problem = _stored_key_problem(key)
        if problem is not None:
            raise DeclarationError(
                f"{model.__name__}.{field_name}: stored under {key!r}, which {problem}; "
                "give the field an alias MongoDB reads as one field"
            )


def _stored_key_problem(key: str) -> str | None:
    """Say why MongoDB would not read ``key`` as one stored field (``None``: it would)."""
    if not key:
        return "is empty: no update or filter can name it"
    if key.startswith("$"):
        return "starts with '$': updates and filters would read it as an operator"
    if "." in key:
        return "contains '.': updates and filters would read it as a path into a document"
    if "\x00" in key:
        return "contains a NUL character, which BSON cannot store in a key"
    return None


def _check_storable(cls: type[Any], name: str) -> None:
    """Refuse a field whose values BSON cannot store: a plain ``decimal.Decimal``, or a set
    whose elements cannot be set elements once dumped (:func:`_unhashable_set_element`)."""
    if cls.__pydantic_decorators__.model_serializers:
        return
    for field_name, info in cls.model_fields.items():
        found = _field_bare_decimal(cls, field_name, info, set())
        if found is not None:
            where = f" (at {found})" if found else ""
            raise DeclarationError(
                f"{name}.{field_name}: a decimal.Decimal{where} cannot be stored in BSON as is; "
                "annotate it odm.Decimal (a Decimal stored as BSON Decimal128)"
            )
        unhashable = _unhashable_set_element(info.annotation, set())
        if unhashable is not None:
            raise DeclarationError(
                f"{name}.{field_name}: a set cannot hold {unhashable}: pydantic dumps a set as a "
                "set, and such a value cannot be in one (every dump of the document would fail); "
                "declare a list (list[...]) instead"
            )


#: The containers whose values cannot be set elements, and what they are stored as.
_UNHASHABLE_ORIGINS: dict[Any, str] = {list: "a list", dict: "a dict", set: "a set"}


def _unhashable_set_element(annotation: Any, seen: set[int]) -> str | None:
    """Return what, in ``annotation`` (through unions, containers and embedded models), is
    the element type of a ``set`` / ``frozenset`` whose values, or their dumps, cannot be
    set elements (an ``odm.Decimal``, dumped as an unhashable ``Decimal128``; an embedded
    model, dumped as a dict; a list...), named with where it is; else ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if id(annotation) in seen or not _is_complete(annotation):
            return None
        seen.add(id(annotation))
        for field_name, info in annotation.model_fields.items():
            found = _unhashable_set_element(info.annotation, seen)
            if found is not None:
                return f"{found} (at {annotation.__name__}.{field_name})"
        return None
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (set, frozenset) and args:
        found = _unhashable_dump(args[0])
        if found is not None:
            return found
    for arg in args:
        found = _unhashable_set_element(arg, seen)
        if found is not None:
            return found
    return None


def _unhashable_dump(annotation: Any) -> str | None:
    """Return what a value of ``annotation``, as pydantic dumps it in Python mode, is when it
    cannot be a set element (``None``: it can, or a serializer of the user's decides)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *markers = get_args(annotation)
        if any(marker is DecimalAnnotation for marker in markers):
            return "an odm.Decimal (stored as a bson.Decimal128, which cannot be in a set)"
        if any(_converts(marker) for marker in markers):
            return None
        return _unhashable_dump(inner)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"an embedded {annotation.__name__} (dumped as a dict)"
    base = origin if origin is not None else annotation
    if isinstance(base, type) and base in _UNHASHABLE_ORIGINS:
        return _UNHASHABLE_ORIGINS[base]
    if origin in (Union, types.UnionType, tuple, frozenset):
        for arg in get_args(annotation):
            found = _unhashable_dump(arg)
            if found is not None:
                return found
    return None


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
    if isinstance(info.annotation, str | typing.ForwardRef):
        return  # not resolved yet: checked again once it is (complete_model)
    if not _annotation_has(info.annotation, _dt.datetime):
        raise DeclarationError(
            f"{name}: TTL index {index.name!r} is on field {head!r} of type "
            f"{getattr(info.annotation, '__name__', info.annotation)!r}; expire_after needs "
            "a datetime field"
        )


