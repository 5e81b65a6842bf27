"""``ModelAdmin``: how the admin shows one Document class (columns, search, read-only fields)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from odm.exceptions import QueryError

SCALARS: tuple[type[Any], ...] = (str, int, float, bool)
"""Annotations that make a default list column (after Optional is stripped)."""

DEFAULT_COLUMNS = 4
"""How many scalar fields the list shows when ``list_display`` is not given."""


@dataclass(frozen=True)
class ModelAdmin:
    """The admin options of one Document class; pass it to ``setup_admin(models=[...])``.

    ``list_display``: the list's columns (default: ``id`` and the first few scalar fields);
    ``search_fields``: the fields the search box matches (case-insensitive substring; default:
    the string columns); ``text_search``: the search box searches the model's text index
    instead (words and their stems, ``Model.objects.search()``; default: on when the model
    declares ``Index(text=[...])`` and no ``search_fields`` are given); ``readonly_fields``:
    shown but never written (``id`` and the optimistic lock's version field always are, and a
    frozen field on an edit);
    ``per_page``: rows per list page; ``ordering``: the default order (``"-id"``: newest first,
    served by the ``_id`` index).
    """

    model: type[Any]
    list_display: tuple[str, ...] = ()
    search_fields: tuple[str, ...] = ()
    text_search: bool | None = None
    readonly_fields: tuple[str, ...] = ()
    per_page: int = 50
    ordering: str = "-id"
    name: str = field(default="")

    def __post_init__(self) -> None:
        fields = self.model.model_fields
        for option in ("list_display", "search_fields", "readonly_fields"):
            for name in getattr(self, option):
                if name != "id" and name not in fields:
                    raise ValueError(
                        f"ModelAdmin({self.model.__name__}).{option}: {self.model.__name__} "
                        f"has no field {name!r}"
                    )
        for name in self.search_fields:
            self._check_searchable(name)
        if self.per_page < 1:
            raise ValueError("ModelAdmin.per_page must be at least 1")
        if self.text_search and not text_index_fields(self.model):
            raise ValueError(
                f"ModelAdmin({self.model.__name__}).text_search: {self.model.__name__} declares "
                "no text index (Meta.indexes = [Index(text=[...])])"
            )
        if not self.name:
            object.__setattr__(self, "name", self.model.__name__.lower())

    def _check_searchable(self, name: str) -> None:
        """Refuse a search field that the search's lookup does not apply to (a number, an
        enum, a date...): every search would fail, so the mistake is told where it is made.
        The query layer itself decides (``icontains``: a string, a list of strings, or Any)."""
        try:
            self.model.objects.filter(**{f"{name}__icontains": ""})
        except QueryError as exc:
            raise ValueError(
                f"{type(self).__name__}({self.model.__name__}).search_fields: {name!r} cannot "
                f"be searched as text ({exc}); a search field is a string or a list of strings"
            ) from None

    @property
    def slug(self) -> str:
        """The model's part of the admin's URLs."""
        return self.name

    @property
    def verbose_name(self) -> str:
        """The model's name as shown."""
        return str(self.model.__name__)

    def columns(self) -> tuple[str, ...]:
        """The list's columns: ``list_display`` or ``id`` and the first scalar fields."""
        if self.list_display:
            return self.list_display
        scalars = [name for name in self.model.model_fields if is_scalar(self.model, name)]
        return ("id", *[n for n in scalars if n != "id"][:DEFAULT_COLUMNS])

    def searched(self) -> tuple[str, ...]:
        """The fields the search box matches (those of the text index under text search)."""
        if self.uses_text_index():
            return text_index_fields(self.model)
        if self.search_fields:
            return self.search_fields
        return tuple(n for n in self.columns() if scalar_type(self.model, n) is str)

    def uses_text_index(self) -> bool:
        """Tell whether the search box runs ``Model.objects.search()`` on the text index."""
        if self.text_search is not None:
            return self.text_search
        return not self.search_fields and bool(text_index_fields(self.model))

    def readonly(self, *, editing: bool = False) -> frozenset[str]:
        """Fields never written through the admin; ``editing``: through the form of a stored
        document, where a frozen field (``Field(frozen=True)``, a frozen model's) is one too.

        ``id`` is one, but on the form of a new document whose id has no default (``id: str``:
        the id is the user's to give).
        """
        meta = getattr(self.model, "_meta", None)
        locked = {meta.version_field} if meta is not None and meta.optimistic_lock else set()
        frozen = frozen_fields(self.model) if editing else ()
        id_field = self.model.model_fields.get("id")
        given = not editing and id_field is not None and id_field.is_required()
        return frozenset({*(() if given else ("id",)), *self.readonly_fields, *locked, *frozen})


def frozen_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` that pydantic refuses to change once it is made."""
    if model.model_config.get("frozen"):
        return tuple(model.model_fields)
    return tuple(name for name, info in model.model_fields.items() if info.frozen)


def text_index_fields(model: type[Any]) -> tuple[str, ...]:
    """The stored paths of ``model``'s text index (empty when it has none)."""
    meta = getattr(model, "_meta", None)
    for index in getattr(meta, "indexes", ()):
        if index.is_text:
            return tuple(path for path, direction in index.keys if direction == "text")
    return ()


def strip_optional(annotation: Any) -> tuple[Any, bool]:
    """Return ``(T, True)`` for ``T | None``, else ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def scalar_type(model: type[BaseModel], name: str) -> Any:
    """The field's annotation with Optional stripped (``None`` for an unknown field)."""
    if name == "id":
        return "id"
    info = model.model_fields.get(name)
    if info is None:
        return None
    return strip_optional(info.annotation)[0]


def is_scalar(model: type[BaseModel], name: str) -> bool:
    """Tell whether a field holds one orderable value (a string, number, date, enum...)."""
    import datetime as dt
    import decimal
    import enum

    kind = scalar_type(model, name)
    if kind == "id":
        return True
    return isinstance(kind, type) and issubclass(
        kind, (*SCALARS, dt.datetime, dt.date, decimal.Decimal, enum.Enum)
    )


def as_admin(entry: type[Any] | ModelAdmin) -> ModelAdmin:
    """Return ``entry`` itself, or default options for a bare Document class."""
    return entry if isinstance(entry, ModelAdmin) else ModelAdmin(entry)
