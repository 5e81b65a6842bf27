"""Options: what the metaclass learned about one Document class (``Model._meta``).

Pure data, no I/O. The query compiler, the executor, the unit of work and the migrations'
autodetector read it; only the metaclass in :mod:`odm.models.base` writes it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from .indexes import Index

ID_FIELD = "id"
ID_KEY = "_id"
CLASS_KEY = "_cls"

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
    _list_adapter: TypeAdapter[list[Any]] | None = field(default=None, repr=False)

    @property
    def copies_snapshot(self) -> bool:
        """Tell whether a loaded document's snapshot must copy parts of its raw document."""
        return self.shares_extras or bool(self.shared_keys)

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
        adapter = self._list_adapter
        if adapter is None:
            from pydantic import TypeAdapter

            adapter = TypeAdapter(list[self.model])  # type: ignore[name-defined]
            self._list_adapter = adapter
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


_READ_PREFERENCES = {
    "primary": "PRIMARY",
    "primarypreferred": "PRIMARY_PREFERRED",
    "primary_preferred": "PRIMARY_PREFERRED",
    "secondary": "SECONDARY",
    "secondarypreferred": "SECONDARY_PREFERRED",
    "secondary_preferred": "SECONDARY_PREFERRED",
    "nearest": "NEAREST",
}


def as_read_preference(value: Any) -> Any:
    """Return a PyMongo read preference for ``value`` (a name such as ``"secondaryPreferred"``
    or a ready ``ReadPreference``); ``None`` stays ``None``. Raises ``ValueError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        from pymongo import ReadPreference

        attribute = _READ_PREFERENCES.get(value.lower())
        if attribute is None:
            raise ValueError(
                f"unknown read preference {value!r}: expected one of primary, "
                "primaryPreferred, secondary, secondaryPreferred, nearest"
            )
        return getattr(ReadPreference, attribute)
    if hasattr(value, "mongos_mode"):
        return value
    raise ValueError(f"{value!r} is not a read preference")


def as_write_concern(value: Any) -> Any:
    """Return a PyMongo ``WriteConcern`` for ``value`` (a dict such as ``{"w": "majority"}``,
    a ``w`` value such as ``"majority"`` or ``1``, or a ready ``WriteConcern``)."""
    from pymongo import WriteConcern

    if value is None or isinstance(value, WriteConcern):
        return value
    if isinstance(value, dict):
        try:
            return WriteConcern(**value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad write concern {value!r}: {exc}") from exc
    if isinstance(value, str | int) and not isinstance(value, bool):
        return WriteConcern(w=value)
    raise ValueError(f"{value!r} is not a write concern")
