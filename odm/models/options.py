"""Options: what the metaclass learned about one Document class (``Model._meta``).

Pure data, no I/O. The query compiler, the executor, the unit of work and the migrations'
autodetector read it; only the metaclass in :mod:`odm.document` writes it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

from .derived import derived
from .field_types import ID_FIELD, may_nest

if TYPE_CHECKING:
    from .indexes import Index

ID_KEY = "_id"
CLASS_KEY = "_cls"
#: The entry of a model's derived state (odm.models.derived) holding its batch adapter.
_LIST_ADAPTER = "options.list_adapter"

#: The Meta options a Document may declare; any other name is refused at class creation.
META_OPTIONS = frozenset(
    {
        "abstract",
        "alias",
        "collection",
        "indexes",
        "ordering",
        "polymorphic",
        "optimistic_lock",
        "version_field",
        "shard_key",
        "read_preference",
        "write_concern",
        "validate_on_server",
    }
)


@dataclass
class Options:
    """The resolved declaration of one Document class."""

    model: type[Any]
    collection: str
    alias: str = "default"
    abstract: bool = False
    #: Indexes with stored key names (``_id``, aliases), ready for the server.
    indexes: list[Index] = field(default_factory=list)
    ordering: tuple[str, ...] = ()
    polymorphic: bool = False
    #: The ``_cls`` value stored for this class when it is part of a polymorphic family.
    class_name: str | None = None
    #: ``_cls`` values a query on this class must match (itself and its subclasses); ``None``
    #: when no filter is needed (not polymorphic, or the root of the family).
    class_values: tuple[str, ...] | None = None
    optimistic_lock: bool = False
    version_field: str = "version"
    shard_key: tuple[str, ...] = ()
    #: A ``pymongo.ReadPreference`` (names such as ``"secondaryPreferred"`` are resolved).
    read_preference: Any = None
    #: A ``pymongo.WriteConcern`` (dicts such as ``{"w": "majority"}`` are resolved).
    write_concern: Any = None
    validate_on_server: bool = False
    #: The root class of the polymorphic family (the model itself when it is the root or when
    #: it is not polymorphic).
    root: type[Any] | None = None
    #: ``_cls`` value -> class, shared by every class of one polymorphic family.
    family: dict[str, type[Any]] = field(default_factory=dict)
    #: ``Meta.indexes`` as declared (field names, not stored keys); subclasses inherit them.
    declared_indexes: list[Index] = field(default_factory=list)
    #: Stored keys whose loaded values may share mutable objects with the raw document
    #: (fields typed ``Any``, bare ``dict``...): the change-tracking snapshot copies them.
    shared_keys: frozenset[str] = frozenset()
    #: The class keeps undeclared stored keys (``extra="allow"``) as the raw document's own
    #: objects: the snapshot is a deep copy of the raw document.
    shares_extras: bool = False
    #: A loaded document's snapshot must copy parts of its raw document (``shares_extras`` or
    #: any ``shared_keys``): set with them, read on every load.
    copies_snapshot: bool = False

    @property
    def may_nest(self) -> bool:
        """Tell whether a field can hold values nested without bound (``dict``, ``Any``...):
        only then does the executor check a payload's depth before sending it."""
        return may_nest(self.model)

    def db_key(self, field_name: str) -> str:
        """Return the stored key of a field: ``_id`` for ``id``, else the field's alias or name."""
        if field_name == ID_FIELD:
            return ID_KEY
        info = getattr(self.model, "model_fields", {}).get(field_name)
        alias = getattr(info, "alias", None) if info is not None else None
        return alias or field_name

    def db_path(self, path: str) -> str:
        """Return the stored dotted path of ``path`` (``"address.city"`` or ``"address__city"``).

        Walks into embedded models so that aliases apply at every level; below a ``dict`` or
        ``Any`` field the rest of the path is taken as is. Raises ``LookupError`` naming the
        unknown part.
        """
        return resolve_path(self.model, path.replace("__", "."))

    def class_filter(self) -> dict[str, Any]:
        """Return the ``_cls`` condition a query on this class needs (empty when none)."""
        if not self.class_values:
            return {}
        if len(self.class_values) == 1:
            return {CLASS_KEY: self.class_values[0]}
        return {CLASS_KEY: {"$in": list(self.class_values)}}

    def list_adapter(self) -> TypeAdapter[list[Any]]:
        """Return the cached ``TypeAdapter(list[Model])`` that validates batches of documents."""
        state = derived(self.model)
        adapter: TypeAdapter[list[Any]] | None = state.get(_LIST_ADAPTER)
        if adapter is None:
            adapter = state[_LIST_ADAPTER] = TypeAdapter(list[self.model])  # type: ignore[name-defined]
        return adapter


class _Opaque:
    """Marks a type whose inside the ODM does not know (``dict``, ``Any``): paths go on as is."""


class _Scalar:
    """Marks a type with no fields inside (``str``, ``int``...): a path cannot go deeper."""


def inner_type(annotation: Any) -> type[BaseModel] | type[_Opaque] | type[_Scalar]:
    """Return the model a path continues into below a field of type ``annotation``.

    ``Optional``, unions, ``Annotated`` and containers (``list[Address]``) are looked through,
    since MongoDB paths reach into array elements.
    """
    if annotation is Any or annotation is object:
        return _Opaque
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return annotation
        if issubclass(annotation, dict | list | tuple | set | frozenset):
            return _Opaque
        return _Scalar
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        return inner_type(args[0])
    if origin is dict or (isinstance(origin, type) and issubclass(origin, dict)):
        return _Opaque
    if origin in (Union, types.UnionType) or (
        isinstance(origin, type) and issubclass(origin, list | tuple | set | frozenset)
    ):
        found: list[Any] = [inner_type(a) for a in args if a is not type(None) and a is not ...]
        models = [f for f in found if f is not _Scalar]
        if not models:
            return _Scalar
        return models[0] if len(models) == 1 else _Opaque
    if origin is typing.Literal:
        return _Scalar
    if isinstance(origin, type):
        return _Scalar
    return _Opaque


def find_field(model: type[BaseModel], name: str) -> tuple[str, Any] | None:
    """Return ``(stored key, annotation)`` of field ``name`` (or of the one stored as ``name``)."""
    fields = model.model_fields
    info = fields.get(name)
    if info is None:
        for field_name, candidate in fields.items():
            if candidate.alias == name:
                name, info = field_name, candidate
                break
        else:
            return None
    return info.alias or name, info.annotation


def resolve_path(model: type[BaseModel], dotted: str) -> str:
    """Return the stored dotted path of ``dotted`` on ``model`` (see :meth:`Options.db_path`)."""
    parts = dotted.split(".")
    stored: list[str] = []
    current: Any = model
    for index, part in enumerate(parts):
        if current is _Opaque:
            stored.extend(parts[index:])
            break
        if part.isdigit():  # an array position: stays, and the element type stays too
            stored.append(part)
            continue
        if current is _Scalar:
            where = ".".join(parts[:index])
            raise LookupError(f"{where!r} holds a plain value, it has no field {part!r}")
        found = find_field(current, part)
        if found is None:
            known = ", ".join(sorted(current.model_fields)) or "none"
            raise LookupError(
                f"{current.__name__} has no field {part!r} (fields: {known})"
            )
        key, annotation = found
        stored.append(key)
        current = inner_type(annotation)
    return ".".join(stored)
