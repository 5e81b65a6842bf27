"""Document and Embedded: the pydantic v2 models users subclass, and the instance lifecycle.

``id`` is the pydantic field name and ``_id`` its alias: ``Customer(id=...)`` and
``Customer(_id=...)`` both work, ``model_dump()`` / JSON show ``id`` (API users never see
``_id``) and the stored BSON uses ``_id`` (:meth:`Document.to_bson`). What happens at class
creation is :mod:`odm.models.declaration`'s job; loading is :mod:`odm.models.loading`'s.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar, Self

import bson
from pydantic import BaseModel, ConfigDict

from .. import executor, signals
from ..exceptions import (
    DoesNotExist,
    MultipleObjectsReturned,
    QueryError,
    StaleDocument,
)
from ..queryset import DefaultManager
from ..session import current_unit_of_work
from . import copies
from .declaration import DocumentMeta
from .dumping import dump_document
from .fields import Field, ObjectId
from .loading import _snapshot_of, _validate_one
from .options import CLASS_KEY, ID_KEY, Options
from .references import check_saved_references
from .tracking import get_snapshot, set_snapshot, will_change
from .writes import commit_update, prepare_update, write_filter

_set_slot = object.__setattr__
_MODEL_DUMP = BaseModel.model_dump

__all__ = ["Document", "Embedded"]


def _copy_tracking(source: Any, copied: Any, memo: dict[int, Any] | None = None) -> None:
    """Give ``copied`` the tracking state of ``source`` (its snapshot deep-copied along with
    the fields when ``memo`` is given) and make it one of its copies (odm.models.copies: a
    save of either is diffed against what the other wrote). A pending flush stays with
    ``source``."""
    snapshot = getattr(source, "_odm_snapshot", None)
    if memo is not None and snapshot is not None:
        snapshot = copy.deepcopy(snapshot, memo)
    _set_slot(copied, "_odm_snapshot", snapshot)
    _set_slot(copied, "_odm_partial", getattr(source, "_odm_partial", False))
    copies.join(source, copied)


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
    __slots__ = (
        "_odm_annotations",  # computed values of a geo_near()/search() (odm.annotations_of)
        "_odm_family",
        "_odm_partial",
        "_odm_pending",
        "_odm_snapshot",
    )

    model_config = ConfigDict(populate_by_name=True, validate_assignment=True)

    if TYPE_CHECKING:
        # Type checkers name the constructor's parameter after the alias: show them ``id``,
        # the name the API uses (``Customer(id=...)``); ``_id=`` works at run time too.
        id: ObjectId = Field(default_factory=bson.ObjectId)
    else:
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

    # -- copies --------------------------------------------------------------------------
    # A copy (copy, deepcopy, model_copy, pickle) of a stored document is the same stored
    # document: it keeps the tracking snapshot, so save() sends an update, not an insert
    # that the _id would refuse. Give the copy a new id to make a new document of it.

    def __copy__(self) -> Self:
        copied = super().__copy__()
        _copy_tracking(self, copied)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        copied = super().__deepcopy__(memo)
        _copy_tracking(self, copied, memo)
        return copied

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["__odm_snapshot__"] = getattr(self, "_odm_snapshot", None)
        state["__odm_partial__"] = getattr(self, "_odm_partial", False)
        # Objects pickled together share one family token (pickle's memo): they stay copies.
        state["__odm_family__"] = getattr(self, "_odm_family", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        _set_slot(self, "_odm_snapshot", state.get("__odm_snapshot__"))
        _set_slot(self, "_odm_partial", state.get("__odm_partial__", False))
        copies.rejoin(self, state.get("__odm_family__"))

    # -- stored form ---------------------------------------------------------------------

    def to_bson(self) -> dict[str, Any]:
        """Return the document as stored: aliased keys (``_id``), plus ``_cls`` when it
        belongs to a polymorphic family."""
        # What model_dump(by_alias=True) returns, built from the class's plan (see
        # odm.models.dumping: pydantic's serializer only for the fields the plan cannot vouch
        # for); a class without a plan (an overridden model_dump...) is dumped by pydantic.
        raw = dump_document(self)
        if raw is None:
            cls = type(self)
            if cls.model_dump is _MODEL_DUMP:
                raw = cls.__pydantic_serializer__.to_python(self, by_alias=True)
            else:
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
        check_saved_references(self)
        raw = self.to_bson()
        await executor.insert_one(model, raw, timeout=timeout, write_concern=write_concern)
        will_change(self)
        set_snapshot(self, raw)
        uow = current_unit_of_work()
        if uow is not None:
            uow.inserted(self)
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
        check_saved_references(self)
        plan = prepare_update(self)
        if plan is not None:
            filter, update, new_raw = plan
            result = await executor.update_one(
                model, filter, update, timeout=timeout, write_concern=write_concern
            )
            if result.acknowledged and result.matched_count == 0:
                raise self._missing("save")
            will_change(self)
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
        will_change(self)
        set_snapshot(self, None)
        uow = current_unit_of_work()
        if uow is not None:
            uow.forget(self)
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
        will_change(self)
        # Updated in place, so every holder of this instance (the identity map) sees it.
        self.__dict__.update(fresh.__dict__)
        _set_slot(self, "__pydantic_fields_set__", set(fresh.model_fields_set))
        snapshot = _snapshot_of(model._meta, raw)
        set_snapshot(self, snapshot)
        copies.written(self, snapshot)  # the freshest knowledge: its copies diff against it
        # Whole again: a document loaded with only()/defer() can be saved after a refresh.
        _set_slot(self, "_odm_partial", False)
        uow = current_unit_of_work()
        if uow is not None:
            uow.track(self)
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


