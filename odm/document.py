"""Document and Embedded: the pydantic v2 models users subclass, and the instance lifecycle.

``id`` is the pydantic field name and ``_id`` its alias: ``Customer(id=...)`` and
``Customer(_id=...)`` both work, ``model_dump()`` / JSON show ``id`` (API users never see
``_id``) and the stored BSON uses ``_id`` (:meth:`Document.to_bson`). What happens at class
creation is :mod:`odm.models.declaration`'s job; loading is :mod:`odm.models.loading`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

import bson
from pydantic import BaseModel, ConfigDict

from . import drivers, executor, signals
from .exceptions import (
    DoesNotExist,
    MultipleObjectsReturned,
    QueryError,
    StaleDocument,
)
from .models import copies, tracking
from .models.declaration import DocumentMeta, check_stored_keys
from .models.derived import expire_all
from .models.dumping import dump_document, serialized
from .models.fields import Field, ObjectId
from .models.loading import load_stored
from .models.options import CLASS_KEY, ID_KEY, Options
from .models.references import check_saved_references
from .models.tracking import Unsure, get_snapshot, set_snapshot, will_change
from .models.writes import (
    commit_update,
    prepare_update,
    start_version,
    take_version,
    write_filter,
)
from .outcomes import learn_outcome, mark_if_unknown
from .queryset import DefaultManager
from .session import current_unit_of_work
from .timeouts import deadline_after, time_left

_MODEL_DUMP = BaseModel.model_dump

__all__ = ["Document", "Embedded"]


def _copy_tracking(source: Any, copied: Any, memo: dict[int, Any] | None = None) -> None:
    """Give ``copied`` the tracking state of ``source`` and make it one of its copies
    (odm.models.copies: a save of either is diffed against what the other wrote)."""
    tracking.copy_state(source, copied, memo)
    copies.join(source, copied)
    tracking.copied(source, copied)  # inside a block: an abort puts the copy back too


def _unknown_outcome(document: Any, snapshot: dict[str, Any] | None) -> Unsure | None:
    """Return what ``document``'s save must read the stored document for first, as an
    :class:`Unsure` state, when a write of it or of a copy of it is of unknown outcome (it
    was cut off: :mod:`odm.outcomes`); else ``None`` (the common case: no read).

    A copy of the document that was cut off (one family: :mod:`odm.models.copies`) diffs
    against what the family last knew, which is unsure too: it reads first as that document
    would, lest its save push again an append that ran, or leave in place a value that ran
    and that the copy set back. Under ``Meta.optimistic_lock`` it need not: its own version
    in the write filter refuses it as stale if the cut-off write ran (and a cut-off write
    still queued on the server meets the version this save raised), so it keeps that
    version instead of learning the newer one and overwriting the write unseen."""
    if snapshot.__class__ is Unsure:
        return snapshot
    if snapshot is None or document._meta.optimistic_lock:
        return None
    family_knows = copies.known_state(document, snapshot)
    return family_knows if family_knows.__class__ is Unsure else None


# -- the classes users subclass --------------------------------------------------------------


class _OdmModel(BaseModel):
    """What Document and Embedded share: their pydantic config, and forgetting what was
    derived from models (odm.models.derived) whenever pydantic completes or rebuilds one."""

    __slots__ = ()  # instances keep the layout of their own class (Document's slots)

    model_config = ConfigDict(populate_by_name=True, validate_assignment=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse, as the class is made, a field stored under a key MongoDB would not read as
        one field (:func:`odm.models.declaration.check_stored_keys`)."""
        super().__pydantic_init_subclass__(**kwargs)
        check_stored_keys(cls)

    @classmethod
    def __pydantic_on_complete__(cls) -> None:
        """Forget what was derived from models before this class was complete (pydantic calls
        this when the class is created complete, or completed by a later rebuild)."""
        expire_all()

    @classmethod
    def model_rebuild(
        cls,
        *,
        force: bool = False,
        raise_errors: bool = True,
        _parent_namespace_depth: int = 2,
        _types_namespace: Any = None,
    ) -> bool | None:
        """pydantic's ``model_rebuild()``; a forced rebuild of a complete class (which pydantic
        does not report to ``__pydantic_on_complete__``) forgets what was derived too."""
        rebuilt = super().model_rebuild(
            force=force,
            raise_errors=raise_errors,
            # One frame more than pydantic counts: this method's own.
            _parent_namespace_depth=_parent_namespace_depth + 1,
            _types_namespace=_types_namespace,
        )
        expire_all()
        return rebuilt


class Embedded(_OdmModel):
    """A pydantic model stored inline in a Document (no collection, no ``_id``).

    Stored keys it does not declare are not kept when it is written again; set
    ``model_config = ConfigDict(extra="allow")`` to keep them.
    """


class Document(_OdmModel, metaclass=DocumentMeta):
    """A pydantic model stored in a collection; see API.md section 2.

    ``id`` (stored as ``_id``) defaults to a new ObjectId, made on the client so that a new
    document knows its id before it is inserted. Assignments are validated, so invalid data
    raises pydantic's ``ValidationError`` before anything is written.
    """

    # An instance's tracking state lives in slots (odm.models.tracking owns them): pydantic
    # leaves them alone, and setting one costs one attribute store per loaded document.
    __slots__ = tracking.SLOTS

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
        state.update(tracking.pickled_state(self))
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        copies.rejoin(self, tracking.unpickle_state(self, state))

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
                raw = serialized(self)
            else:
                raw = self.model_dump(by_alias=True)
        class_name = self._meta.class_name
        if class_name is not None:
            raw[CLASS_KEY] = class_name
        return raw

    @property
    def is_stored(self) -> bool:
        """Tell whether this instance was loaded from or written to the database (as far as it
        knows: after an insert that was cut off, not until its next ``save()`` learns that the
        insert ran)."""
        snapshot = get_snapshot(self)
        if snapshot.__class__ is Unsure:
            return snapshot.existed
        return snapshot is not None

    # -- lifecycle -----------------------------------------------------------------------

    async def insert(self, *, timeout: float | None = None, write_concern: Any = None) -> Self:
        """Insert this document; raise :class:`odm.DuplicateKey` if its ``_id`` or a unique
        key is taken. Runs the save hooks and signals with ``created=True``.

        Under ``Meta.optimistic_lock`` the insert sets the version: 0 for an id odm made for
        this object, else a fresh number no object of an earlier document of that id holds
        (see :func:`odm.models.writes.insert_version`)."""
        model = type(self)
        await self.before_save()
        if signals.pre_save.has_receivers():
            await signals.pre_save.send(model, document=self, created=True)
        check_saved_references(self)
        tracking.check_own_block(self)
        raw = self.to_bson()
        start_version(self, raw)  # under the lock: one no object of an earlier document holds
        try:
            await executor.insert_one(model, raw, timeout=timeout, write_concern=write_concern)
        except BaseException as error:
            mark_if_unknown(self, error, "insert", raw)
            if get_snapshot(self).__class__ is Unsure:  # it may be stored: as it was sent
                take_version(self, raw)
            raise
        will_change(self)
        set_snapshot(self, raw)
        take_version(self, raw)
        copies.written(self, raw)  # what its copies diff against (not a deleted incarnation)
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
        snapshot = get_snapshot(self)
        unsure = _unknown_outcome(self, snapshot)
        if unsure is not None:  # what is stored now?
            snapshot = await learn_outcome(self, unsure, timeout=timeout)
        if snapshot is None:
            return await self.insert(timeout=timeout, write_concern=write_concern)
        if tracking.is_partial(self):
            raise QueryError(
                f"{type(self).__name__} _id={self.id!r} was loaded with only()/defer(): a "
                "partial document cannot be saved; load it whole, or use "
                "Model.objects.filter(id=...).update(...)"
            )
        model = type(self)
        # Bounds the read a block may add after the update (UnitOfWork.saved) too.
        deadline = deadline_after(timeout)
        # The hooks Document declares do nothing: only a class's own are awaited (a coroutine
        # each, on every save of the one-at-a-time loops).
        hooked = model.before_save is not Document.before_save
        receivers = signals.pre_save.has_receivers()
        # A flush of the unit of work while the hooks run (a hook's queryset write autoflushes)
        # must not run them again: see UnitOfWork.hooks_start.
        uow = current_unit_of_work() if hooked or receivers else None
        if uow is not None:
            uow.hooks_start(self)
        try:
            if hooked:
                await self.before_save()
            if receivers:
                hooked = True
                await signals.pre_save.send(model, document=self, created=False)
        finally:
            if uow is not None:
                uow.hooks_end(self)
        check_saved_references(self)
        # A hook may have written this document meanwhile (or changed its id): then its
        # snapshot is read again.
        plan = prepare_update(self, snapshot=get_snapshot(self) if hooked else snapshot)
        if plan is not None:
            filter, update, new_raw = plan
            tracking.check_own_block(self)
            try:
                result = await executor.update_one(
                    model, filter, update, timeout=timeout, write_concern=write_concern
                )
            except BaseException as error:
                mark_if_unknown(self, error, "save", new_raw, update)
                raise
            if result.acknowledged and result.matched_count == 0:
                raise self._missing("save")
            will_change(self)
            commit_update(self, new_raw)
            block = current_unit_of_work()
            if block is not None:  # another object of its id held by the block learns it
                await block.saved(self, deadline=deadline)
        if signals.post_save.has_receivers():
            await signals.post_save.send(model, document=self, created=False)
        if model.after_save is not Document.after_save:
            await self.after_save()
        return self

    async def delete(self, *, timeout: float | None = None, write_concern: Any = None) -> None:
        """Delete this document (a stale copy under ``Meta.optimistic_lock`` raises
        :class:`odm.StaleDocument`). Deleting a document that is already gone does nothing."""
        model = type(self)
        snapshot = get_snapshot(self)
        if snapshot.__class__ is Unsure:  # a write of it was cut off: what is stored now?
            await learn_outcome(self, snapshot, timeout=timeout)
        await self.before_delete()
        if signals.pre_delete.has_receivers():
            await signals.pre_delete.send(model, document=self)
        tracking.check_own_block(self)
        try:
            result = await executor.delete_one(
                model, write_filter(self), timeout=timeout, write_concern=write_concern
            )
        except BaseException as error:
            mark_if_unknown(self, error, "delete", None)
            raise
        stale = self._meta.optimistic_lock and get_snapshot(self) is not None
        if stale and result.acknowledged and result.deleted_count == 0:
            raise self._missing("delete")
        tracking.gone(self)
        if signals.post_delete.has_receivers():
            await signals.post_delete.send(model, document=self)
        await self.after_delete()

    async def refresh(self, *, timeout: float | None = None) -> Self:
        """Reload every field from the database (``Model.DoesNotExist`` if it is gone)."""
        model = type(self)
        filter = write_filter(self, with_version=False)
        tracking.check_own_block(self)
        if _unknown_outcome(self, get_snapshot(self)) is not None:
            # A write of it cut off may still wait in a driver's thread (Motor): read after it,
            # both within the one timeout=.
            deadline = deadline_after(timeout)
            await drivers.thread_calls_finished(timeout)
            timeout = time_left(deadline, 0.001)
        raw = await executor.find_one(model, filter, timeout=timeout)
        if raw is None:
            raise model.DoesNotExist(f"{model.__name__} with _id={self.id!r} does not exist")
        # In place, so every holder sees it; whole again (a document loaded with only() /
        # defer() can be saved after a refresh); its copies diff against this, the freshest.
        # A read, not a write: inside a transaction that wrote, it may hold the transaction's
        # own writes, and an abort reads it back from the server (track() / was_read()); one
        # that wrote nothing read committed values, which an abort must not take away.
        # What the block saved of it stays its intent should the block abort (will_read).
        load_stored(self, raw, before=tracking.will_read)
        uow = current_unit_of_work()
        if uow is not None and uow.track(self) is not self:
            # A copy beside the object the block holds: its values were read in the block too.
            uow.was_read(self)
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


