"""The unit of work: one transaction's state, from its block's start to its end.

A :class:`UnitOfWork` holds the session of an ``odm.transaction()`` block (:mod:`odm.blocks`
opens and ends it), the identity map of the documents it loaded, the journal of their tracking
states to put back on abort, the ``on_commit`` callbacks, and why it can only be rolled back
(an inner block failed, a call was cut off or refused). Its flush writes the changes of the
tracked documents, one ``bulk_write`` per collection, only the changed fields, with the save
hooks and signals a ``save()`` runs.

Concurrency rule: operations of a transaction must run in the task that opened it. A task
spawned inside the block (``asyncio.gather``, ``create_task``) inherits the context, and the
executor refuses its operations with :class:`odm.TransactionError` instead of interleaving them
on one session, which the server cannot order and which SQLAlchemy documents as unsafe too.
Once the block has ended, however it ended, its unit of work takes no more work, and such a
task's operations run outside any transaction (:meth:`UnitOfWork.end`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from pydantic import ValidationError
from pymongo.errors import PyMongoError

from . import drivers, executor, signals
from .connection import alias_for, get_connection
from .exceptions import (
    NotConnected,
    OnCommitError,
    StaleDocument,
    TransactionError,
)
from .identity import IdentityMap, Key
from .journal import Journal
from .models import tracking, writes
from .models.declaration import overrides
from .models.options import ID_KEY
from .server_transactions import ABORT_TIME_LIMIT, abort_server_transaction, commit_outcome_unknown
from .shielding import shielded
from .timeouts import is_cut_off, left_unanswered, time_left

logger = logging.getLogger("odm.uow")

R = TypeVar("R")


COMMITTED: Final = "it committed"
"""What :attr:`UnitOfWork.ended` holds once its block committed."""


class UnitOfWork:
    """One transaction's state: its session, identity map, the tracking states to put back on
    abort (:class:`~odm.journal.Journal`), and the callbacks to run after commit. It serves
    one block: once that has ended (:meth:`end`), it refuses work."""

    def __init__(
        self, session: Any, alias: str, options: dict[str, Any] | None = None
    ) -> None:
        self.session = session
        self.alias = alias
        #: The driver's ``start_transaction`` keywords of the block.
        self.options = options or {}
        self.identity = IdentityMap()
        self.journal = Journal(self)
        #: Whether the transaction sent a write yet (see :meth:`track`).
        self.wrote = False
        self.owner: asyncio.Task[Any] | None = asyncio.current_task()
        #: Why the transaction can only be rolled back (an inner block failed, or the block's
        #: own error is aborting it), or ``None``.
        self.failure: str | None = None
        #: Whether :attr:`failure` is an inner block's (the outer block may still go on).
        self._inner_failure = False
        #: How the block ended (:data:`COMMITTED`, or what failed it), or ``None`` while it is
        #: open: see :meth:`end`.
        self.ended: str | None = None
        #: The driver call that a cancellation or a deadline cut off in the block, or ``None``
        #: (see :meth:`cut_off`).
        self.interrupted: str | None = None
        #: Whether a call was cut off before its answer came: its command may still reach the
        #: server, after the abort (see :func:`~odm.server_transactions.fence_session`).
        self.unanswered = False
        #: Why the transaction can only be rolled back although nothing failed or was cut off
        #: (a write of the block went through in part: see :meth:`rollback_only`), or ``None``.
        self.doomed: str | None = None
        self._on_commit: list[tuple[Callable[[], Any], bool]] = []
        #: Whether the ``on_commit`` callbacks are running (one may register another).
        self._running_callbacks = False
        #: Documents whose save hooks ran (or run) in the flush pass in progress, by ``id()``;
        #: ``None`` when no pass is running its hooks or writes (see :meth:`flush`).
        self._hooked: dict[int, Any] | None = None
        #: Documents whose ``save()`` runs its hooks now, by ``id()`` (see :meth:`hooks_start`).
        self._saving: dict[int, Any] = {}
        #: Documents the flushes wrote so far (a flush returns what it adds to this).
        self._flushed = 0
        #: Flushes running, one inside another (a ``post_save`` hook's queryset write
        #: autoflushes): bounded as the passes of one flush are.
        self._nested_flushes = 0
        #: The objects held for ids deleted in the block, each with what it held before the
        #: delete, by map key: until their id is inserted again (see :meth:`inserted`).
        self._deleted: dict[Key, list[tuple[Any, dict[str, Any] | None]]] = {}
        #: The objects that learnt an insert of their id through another object (see
        #: :meth:`inserted`), by map key: no longer the map's, yet a later delete of that id
        #: in the block tells them too (see :meth:`forget`).
        self._learnt: dict[Key, list[Any]] = {}
        #: Driver futures whose thread may still run (Motor): see :meth:`outlive`.
        self._running: set[asyncio.Future[Any]] = set()

    def track(self, document: Any) -> Any:
        """Return the canonical object for ``document`` (just loaded) within this unit of
        work. A document first loaded after the transaction wrote is marked to be read back
        if it aborts: it may have been loaded with the transaction's own writes
        (:meth:`was_read`)."""
        held = self.identity.add(document)
        if self.wrote and held is document:  # was_read(), inline: once per loaded document
            self.journal.read(document)
        return held

    def was_read(self, document: Any) -> None:
        """Note that ``document``'s fields were just set from the database (loaded, refreshed,
        or read again after a bulk write): once the transaction has written, they may hold
        its writes, so an abort reads the document back and takes back every value the block
        did not change itself (see :class:`~odm.journal.Journal`)."""
        if self.wrote:
            self.journal.read(document)

    def remember(self, document: Any) -> None:
        """Keep ``document``'s tracking state as it is before its first change in this block,
        so that an abort puts it back (see :class:`~odm.journal.Journal`)."""
        self.wrote = True
        self._keep(document)

    def _keep(self, document: Any) -> None:
        """:meth:`remember` ``document`` without noting a write. One the block loaded before
        its first write is not trusted as it was loaded: a raw driver call of the block may
        have written it unseen (:meth:`_read_back_every_load`), so, as one loaded after a
        write, it is read back on abort and the block's changes merged onto what is stored."""
        journal = self.journal
        if document not in self.identity or not journal.read_back(document):
            journal.remember(document)

    def note_write(self) -> None:
        """Record that the transaction wrote without an instance (a queryset update or
        delete): documents loaded from now on are read back if it aborts."""
        self.wrote = True

    def inserted(self, document: Any) -> None:
        """Track ``document``, just inserted, as the object of its id (replacing one held
        for a document deleted earlier in the block).

        The objects held before, which the delete told that their document was gone
        (:meth:`forget`), would go on saying so while their id is stored again, and their
        next ``save()`` would be refused as a duplicate key: each learns what the insert
        stored, as from a save through another object (:meth:`saved`), and stays a copy of
        its time from then on (a later delete of the id in the block tells it too). Should
        its own changes on top of that make values its model refuses, pydantic's
        ``ValidationError`` is raised and the transaction becomes rollback-only.

        One that cannot stand for what was inserted stays not stored, its next ``save()``
        refused as a duplicate key rather than writing over the insert: an object of another
        class of a polymorphic family (its save would store its own class), or one with
        changes of its own under ``Meta.optimistic_lock`` (they were made on a document
        deleted since, not on what was inserted, whose version differs)."""
        self.identity.replace(document)
        if not self._deleted:
            return
        key = self.identity.key(document)
        for deleted, before in self._held_before_delete(document, key):
            self._learn_insert(deleted, before, document)
            if tracking.get_snapshot(deleted) is not None:
                assert key is not None  # the held objects were found by it
                self._learnt.setdefault(key, []).append(deleted)

    def _learn_insert(self, deleted: Any, before: dict[str, Any], document: Any) -> None:
        """Make ``deleted``, an object whose document the block deleted (``before``: its
        snapshot then), learn what the insert of ``document`` stored under its id, or leave
        it not stored (see :meth:`inserted`)."""
        raw = tracking.get_snapshot(document)
        assert raw is not None  # just inserted
        tracking.set_snapshot(deleted, before)  # what its own changes were made on
        try:
            learnt = writes.learn_stored(deleted, raw)
        except ValidationError as error:
            tracking.set_snapshot(deleted, None)
            model = tracking.collection_model(type(document))
            self.rollback_only(
                f"the object the block held for {model.__name__} _id={raw.get(ID_KEY)!r} "
                "before its document was deleted has changes of its own that its model "
                "refuses on top of what an insert through another object of that id stored",
                error,
            )
            raise
        if not learnt:  # its own changes under the lock: stale, not a copy of the insert
            tracking.set_snapshot(deleted, None)

    def _held_before_delete(
        self, document: Any, key: Key | None
    ) -> list[tuple[Any, dict[str, Any]]]:
        """Return the objects the block held for ``document``'s id (map key ``key``) until a
        delete in the block, each with its snapshot then, and forget them; leave out those
        that are not to learn that ``document``'s insert stored their id again: ``document``
        itself, one that learnt what is stored since, one given another id (a new document),
        one of another class (see :meth:`inserted`)."""
        if key is None:
            return []
        # An object told by several deletes learns on what it held before the last one.
        latest = {id(deleted): (deleted, before) for deleted, before in self._deleted.pop(key, ())}
        return [
            (deleted, before)
            for deleted, before in latest.values()
            if before is not None
            and deleted is not document
            and type(deleted) is type(document)
            and tracking.get_snapshot(deleted) is None
            and self.identity.key(deleted) == key
        ]

    async def saved(self, document: Any, *, deadline: float | None = None) -> None:
        """Note that ``document`` was just saved in the block (an update was sent). When the
        block holds another object for its id, not a copy of it (one loaded before the block,
        an unpickled one, one whose ``id`` was changed away and back), that object's stored
        document has moved under it: both read it (one ``find``, on this path only) and learn
        it (:func:`~odm.models.writes.learn_stored`), so that the held one's next change and
        the flush start from what is stored, and write only what it changed itself.

        Copies learn from one another without a read (:mod:`odm.models.copies`). The read
        ends by ``deadline`` (``time.monotonic()``'s clock: the save's own ``timeout=``). If it
        fails, the held object cannot learn, and its next write or the flush could send values
        this save replaced: the transaction becomes rollback-only (:meth:`rollback_only`) and
        the read's error is raised, noted so; so is pydantic's ``ValidationError`` when the held
        object's own changes on top of what this save stored make values its model refuses (a
        validator across fields: its next write would store a document no query can load)."""
        held = self.identity.get(document)
        if held is None or not writes.another_object(document, held):
            return
        model = tracking.collection_model(type(document))
        stored_id = tracking.stored_id(document)
        try:
            timeout = time_left(deadline, 0.001)
            raw = await executor.find_one(model, {ID_KEY: stored_id}, timeout=timeout)
        except BaseException as error:
            self.rollback_only(
                f"the read after a save of {model.__name__} _id={stored_id!r} failed (the "
                "block holds another object of that id, which could not learn what the save "
                f"wrote: {type(error).__name__})",
                error,
            )
            raise
        if raw is None:  # deleted since by a raw driver call: what the next write will tell
            return
        try:
            writes.learn_stored(held, raw)
            writes.learn_stored(document, raw)
        except ValidationError as error:
            # The held object's next write would store its own changes on top of this save's,
            # which its model refuses: a document no query could load again.
            self.rollback_only(
                f"the object the block holds for {model.__name__} _id={stored_id!r} has "
                "changes of its own that its model refuses on top of what a save through "
                "another object of that id stored",
                error,
            )
            raise

    def forget(self, document: Any, snapshot: dict[str, Any] | None = None) -> None:
        """Stop tracking ``document`` (it was deleted; ``snapshot``: what it held before).
        Another object held for its id (a copy was deleted, or a document loaded before the
        block), or one that learnt an insert of its id in the block (:meth:`inserted`),
        stood for the same stored document: it is gone too, or its changes would be dropped
        from the flush while it still said it was stored. The objects told are kept with
        what they held before, until an insert of their id in the block (:meth:`inserted`).
        """
        key = self.identity.key(document)
        if key is None:
            return
        held = self.identity.discard(document)
        others = [held] if held is not None else []
        others += [
            learner
            for learner in self._learnt.pop(key, ())
            if learner is not held and self.identity.key(learner) == key
        ]
        told = self._deleted.setdefault(key, [])
        for other in others:
            if other is document:
                told.append((document, snapshot))
            elif tracking.get_snapshot(other) is not None:
                told.append((other, tracking.raw_snapshot(other)))
                tracking.gone(other)  # its forget() finds nothing more to tell
        if not told:
            del self._deleted[key]

    def outlive(self, future: asyncio.Future[R]) -> Awaitable[R]:
        """Return an awaitable of ``future``, a driver call running in a thread (Motor), that a
        cancellation of the caller does not cut off from the thread.

        Cancelling a thread's future does not stop the thread: the call may still send its
        command after the block was aborted and its server session killed, and the first
        command of a transaction (the one carrying ``startTransaction``) would then open it
        anew, holding its locks until the server's lifetime limit. So the unit of work keeps
        the future until its thread is done, and its abort waits for it (:meth:`settle`).
        (A block that catches the cancellation and goes on cannot commit: see
        :meth:`cut_off`.)"""
        running = self._running
        running.add(future)
        future.add_done_callback(running.discard)
        return asyncio.shield(future)

    async def settle(self) -> None:
        """Wait (at most :data:`ABORT_TIME_LIMIT` seconds) until no driver call of the block
        still runs in a thread: a call cut off by a cancellation finishes first."""
        running = self._running
        if running:
            await asyncio.wait(tuple(running), timeout=ABORT_TIME_LIMIT)

    def cut_off(self, call: str, *, answered: bool = False) -> None:
        """Record that ``call`` (a driver call of the block) was cut off by a cancellation or a
        deadline: it may have run on the server or not, and whoever called it (a ``save()``,
        a flush) could not record what it did. So the transaction can only be rolled back, as
        after an inner block failed: a block that catches the cancellation or the timeout and
        goes on gets :class:`odm.TransactionError` at its next operation or at its end, and
        nothing of it is committed. (Committing would keep a write the documents do not know
        of: a ``save()`` cut off after its ``$push`` was applied would push again.)"""
        if self.interrupted is None:
            self.interrupted = call
        if not answered:
            self.unanswered = True

    def rollback_only(self, reason: str, error: BaseException | None = None) -> None:
        """Make the transaction rollback-only because of ``reason`` (a sentence naming a write
        of the block that went through in part, so that its documents cannot tell which part:
        a batch of updates of which fewer matched than were sent, say). As after a cut-off
        call, the block's next operation and its end raise :class:`odm.TransactionError`, and
        nothing of it is committed. ``error``, the error about to be raised for that write,
        gets a note saying so (whoever catches it learns the block cannot go on)."""
        if self.doomed is None:
            self.doomed = reason
        if error is not None and not _noted(error):
            error.add_note(
                f"{_NOTE}{reason}: the transaction can only be rolled back now "
                "(odm.TransactionError at the block's next operation and at its end); retry "
                "the whole block"
            )

    def refused(self, call: str, error: BaseException, shown: str | None = None) -> None:
        """Record that the server refused ``call`` (a driver call of the block: an insert that
        breaks a unique index, an update a stored value refuses, a query it cannot run) with
        ``error``. MongoDB aborts the transaction at such an error, so the block's next
        operation would only get ``NoSuchTransaction``, labelled transient, which names nothing
        and makes ``atomic`` run the body again to meet the same refusal. So, as Django does
        for a query that failed inside ``atomic()``, the transaction becomes rollback-only
        (:meth:`rollback_only`): the block's next operation and its end raise
        :class:`odm.TransactionError` naming the refused call. An error labelled
        ``TransientTransactionError`` (a write conflict) is left alone: ``atomic`` retries it.
        ``shown``: what to say of the refusal instead of the server's message, which quotes
        stored values for some (an update a stored value refused, :mod:`odm.refusals`).
        """
        if isinstance(error, PyMongoError) and error.has_error_label(
            "TransientTransactionError"
        ):
            return
        self.rollback_only(
            f"{call} was refused by the server in this transaction ({_refusal(error, shown)})",
            error,
        )

    def on_commit(self, callback: Callable[[], Any], *, robust: bool = False) -> None:
        """Run ``callback`` (sync or async, no arguments) after a successful commit only.

        Callbacks run in order, once, after the commit and outside any retry. Every callback
        runs even when one before it raised. A ``robust`` callback's error is logged; the
        first error of another is raised, after all ran, as :class:`odm.OnCommitError` (the
        transaction stays committed). A callback registered by a running callback runs in the
        same round, after those registered before it (the transaction has committed: Django
        runs such a callback at once). Once the block has ended otherwise (it failed, or its
        callbacks have run), registering raises :class:`odm.TransactionError`.
        """
        if self._running_callbacks:
            self._on_commit.append((callback, robust))
            return
        self.check_usable()
        self._on_commit.append((callback, robust))

    def hooks_start(self, document: Any) -> None:
        """Note that ``document``'s ``save()`` starts running its ``before_save`` / ``pre_save``
        hooks: a flush meanwhile (the autoflush of a queryset write that a hook or receiver
        makes) writes the document as it is but runs none of its hooks, which would run the
        hook's own write again, and again. The save sends what is left and runs
        ``post_save`` once. Call :meth:`hooks_end` once they have run."""
        self._saving[id(document)] = document

    def hooks_end(self, document: Any) -> None:
        """Note that ``document``'s ``save()`` has run its hooks (see :meth:`hooks_start`)."""
        self._saving.pop(id(document), None)

    def end(self, how: str) -> None:
        """Mark the block ended (``how``: ``"it committed"``, or what failed it): the unit of
        work takes no more work (:meth:`check_usable` refuses it), and its session and unit of
        work no longer bind the tasks spawned inside the block, which inherited them: their
        operations run outside any transaction from now on (:mod:`odm.session`)."""
        if self.ended is None:
            self.ended = how

    @property
    def committed(self) -> bool:
        """Whether the block ended by committing its transaction."""
        return self.ended == COMMITTED

    def check_usable(self, model: type[Any] | None = None) -> None:
        """Refuse an operation the transaction cannot run: after the block ended, after it (or
        an inner block) failed, from another task, or on a model of another connection alias
        (``model``)."""
        if self.ended is not None:
            raise TransactionError(
                f"the block has ended ({self.ended}): its unit of work takes no more work; "
                "run what remains in a new odm.transaction() (a callback that on_commit() "
                "would take now: call it directly)"
            )
        if self.failure is not None:
            if not self._inner_failure:
                raise TransactionError(
                    f"the block failed ({self.failure}); its transaction is being rolled "
                    "back and takes no more work"
                )
            raise TransactionError(
                "an inner atomic block failed; the transaction was rolled back and can only "
                f"be left now (the failure: {self.failure})"
            )
        if self.interrupted is not None:
            raise TransactionError(
                f"{self.interrupted} was cut off by a cancellation, a deadline or a lost "
                "connection in this transaction: it may or may not have run on the server, so "
                "the transaction can "
                "only be rolled back; leave the block (catching the cancellation or the timeout "
                "inside odm.transaction() does not save it: retry the whole block)"
            )
        if self.doomed is not None:
            raise TransactionError(
                f"{self.doomed}, so the transaction can only be rolled back; leave the block "
                "(catching the error inside odm.transaction() does not save it: retry the whole "
                "block)"
            )
        if self.owner is not None and asyncio.current_task() is not self.owner:
            raise TransactionError(
                "an ODM operation ran in a task spawned inside odm.transaction() (asyncio.gather "
                "or create_task): operations of one transaction must run in the task that "
                "opened it, one after another; await them in sequence, or give each task its "
                "own odm.transaction()"
            )
        if model is not None:
            alias = alias_for(model)  # connect(models=...) binds a model to another alias
            if alias != self.alias:
                raise TransactionError(
                    f"{model.__name__} uses the connection alias {alias!r}, but the open "
                    f"transaction is on alias {self.alias!r}: a transaction cannot span two "
                    f"clients; use {model.__name__} outside the block or in a "
                    f"transaction({alias!r}) of its own"
                )

    async def flush(self) -> int:
        """Write the changes of every tracked document, one ``bulk_write`` per collection,
        running each changed document's save hooks and signals as ``save()`` does.

        Order, per pass: ``before_save`` and ``pre_save`` of every changed document (until no
        hook changes another document), the writes, then ``post_save`` and ``after_save``. A
        hook that changes documents again starts another pass. Documents are marked clean only
        after their collection's write succeeded. Return the number of documents written.

        A flush asked for while a pass runs its ``before_save`` / ``pre_save`` hooks (by a hook
        or receiver, or the autoflush of a queryset write it makes) does not start another
        flush, which would run the same hooks again, and so on without end: it runs the hooks
        of the changed documents whose hooks have not run in this pass yet, and writes the
        changes made so far, so that the hook's write applies on top of them and the documents
        read again after it lose none (:mod:`odm.resync`). Each document's hooks still run once
        per pass, and its ``post_save`` / ``after_save`` once, after the pass's writes.
        """
        self.check_usable()
        if not len(self.identity):
            return 0
        if self._hooked is not None:
            return await self._flush_within()
        if self._nested_flushes >= MAX_FLUSH_PASSES:  # post_save hooks flushing, nested
            raise TransactionError(_NOT_SETTLED)
        before = self._flushed
        self._nested_flushes += 1
        try:
            for _ in range(MAX_FLUSH_PASSES):
                flushed = self._flushed
                await self._flush_pass()
                if self._flushed == flushed:
                    return self._flushed - before
        finally:
            self._nested_flushes -= 1
        raise TransactionError(_NOT_SETTLED)

    async def _flush_pass(self) -> None:
        saving = self._saving
        # A document whose save() runs its hooks now is left to that save(), its hooks as if
        # run (see hooks_start): the pass writes what it holds, and runs no hook of it.
        hooked = self._hooked = dict(saving)
        try:
            await _run_before_save(self.identity, hooked)
            await self._write_changes()
        finally:
            self._hooked = None
        for key, document in hooked.items():
            if key in saving:
                continue
            model = type(document)
            if signals.post_save.has_receivers():
                await signals.post_save.send(model, document=document, created=False)
            await document.after_save()

    async def _flush_within(self) -> int:
        """The flush asked for by a hook of the pass in progress (see :meth:`flush`)."""
        hooked = self._hooked
        assert hooked is not None
        await _run_before_save(self.identity, hooked)
        flushed = self._flushed
        await self._write_changes()
        return self._flushed - flushed

    async def _write_changes(self) -> None:
        """Write the changes of every tracked document, one ``bulk_write`` per collection, and
        mark each written document clean (no hook runs here)."""
        pending: dict[type[Any], list[tuple[Any, Any]]] = defaultdict(list)
        for document in self.identity:
            operation = writes.pending_update(document)
            if operation is not None:
                pending[tracking.collection_model(type(document))].append((document, operation))
        if pending:  # documents read from now on may hold these writes (see track)
            self.wrote = True
        for model, items in pending.items():
            result = await executor.bulk_write(model, [op for _, op in items], ordered=True)
            if result.acknowledged and result.matched_count != len(items):
                # The updates that matched were applied, and the result does not say which:
                # committing would keep them while every document still says it is changed.
                mismatch = _flush_mismatch(model, len(items), result.matched_count)
                self.rollback_only(
                    f"a flush matched {result.matched_count} of the {len(items)} changed "
                    f"{model.__name__} documents it wrote",
                    mismatch,
                )
                raise mismatch
            for document, _ in items:
                self._keep(document)
                writes.mark_clean(document)
            self._flushed += len(items)

    @property
    def has_callbacks(self) -> bool:
        """Whether ``on_commit`` callbacks wait to run after the commit."""
        return bool(self._on_commit)

    async def run_callbacks(self) -> None:
        """Run the ``on_commit`` callbacks, those they register included (see
        :meth:`on_commit`)."""
        callbacks = self._on_commit
        first_error: BaseException | None = None
        # A cancellation cuts off the callback it reaches, as it would any code; the callbacks
        # after it still run (the transaction committed: dropping them would be a silent loss),
        # and it is raised once all ran, saying the transaction committed.
        cancelled: asyncio.CancelledError | None = None
        self._running_callbacks = True
        try:
            index = 0
            while index < len(callbacks):  # a callback may register another
                callback, robust = callbacks[index]
                index += 1
                try:
                    result = callback()
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError as exc:
                    cancelled = cancelled or exc
                except Exception as exc:
                    if robust:
                        logger.exception("on_commit callback %r failed", callback)
                    elif first_error is None:
                        first_error = exc
        finally:
            self._running_callbacks = False
            self._on_commit = []
        if cancelled is not None:
            raise asyncio.CancelledError(
                "cancelled while the on_commit callbacks ran: the transaction committed, and "
                "every callback was run (the one the cancellation reached was cut off there)"
            ) from first_error
        if first_error is not None:
            raise OnCommitError(
                f"the transaction committed, but an on_commit callback failed: "
                f"{type(first_error).__name__}: {first_error}"
            ) from first_error

    async def fail(self, exc: BaseException, *, inner: bool = False) -> None:
        """Abort the transaction that ``exc`` ended (the whole block, or an ``inner`` one: the
        transaction is then rollback-only) and make its documents tell the truth.

        The server transaction ends now (its session killed when an operation was cut off, and
        fenced when one may still be on its way: :func:`~odm.server_transactions.fence_session`),
        the callbacks are dropped, and the tracking states are put back; after a commit of
        unknown outcome they stay in the journal, to be read again from the server once the
        session is gone. A cancellation that came meanwhile is re-raised."""
        self._on_commit.clear()
        if self.failure is not None:  # aborted already (an inner block failed)
            # The transaction fenced off after that abort (_fence) holds what raw driver
            # calls wrote since: it goes too (and the next nested failure fences again).
            await shielded(abort_server_transaction(self.session))
            self.journal.restore()
            return
        self.failure = f"{type(exc).__name__}: {exc}"
        self._inner_failure = inner
        self._read_back_every_load()
        # An operation cut off by a cancellation or a deadline may have reached the server
        # without the driver knowing: it may even be the one that started the server
        # transaction, which the driver's abort would then not end. One cut off before its
        # answer came may even reach it after the abort: the session is then fenced too.
        interrupted = self.interrupted is not None or is_cut_off(exc)
        unanswered = self.unanswered or left_unanswered(exc)
        cancelled = await shielded(self._abort(kill=interrupted or unanswered, fence=unanswered))
        if not commit_outcome_unknown(exc):
            self.journal.restore()
        if cancelled and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError("cancelled while the transaction was aborted") from exc

    def refuse_outside(self, document: Any) -> None:
        """Raise :class:`odm.TransactionError` when this block is open and keeps a state of
        ``document`` (it wrote or read it): the caller, outside the block, is about to write
        or read it (see :func:`~odm.models.tracking.check_own_block`). Once the block has
        ended, the document is free again."""
        owner = self.owner
        if self.ended is not None or not self.journal.holds(document):
            return
        if owner is not None and owner.done():  # a block whose task died without ending it
            return
        name = owner.get_name() if owner is not None else "?"
        raise TransactionError(
            f"{type(document).__name__} _id={tracking.stored_id(document)!r} has uncommitted "
            f"changes of the transaction block open in task {name!r}: write or refresh it "
            "inside that block, or once the block has ended (from outside, the write would "
            "wait on the block's own uncommitted write, and the object would then say what "
            "neither committed)"
        )

    def _read_back_every_load(self) -> None:
        """Mark every document the block loaded to be read back after the abort, not only those
        loaded after one of odm's writes (:meth:`track`): a raw driver call in the block
        (``session=odm.current_session()``, or PyMongo's ``bind()`` with no ``session=`` at
        all) writes unseen, and a document loaded after it would keep the aborted values, which
        its next ``save()`` would store as the user's. SQLAlchemy expires every instance of a
        session on rollback for the same reason. Documents the journal holds already (written
        by the block, or read after its writes) keep their entries."""
        journal = self.journal
        for document in self.identity:
            journal.read_back(document)

    async def fence(self) -> None:
        """Give the session, just aborted by a failed inner block, a new transaction that is
        never committed.

        After an inner block failed, the outer one may go on (it caught the error) until it
        ends with :class:`odm.TransactionError`. odm's own operations refuse to run meanwhile,
        but a raw driver call bound to the session (PyMongo's ``bind()``, or
        ``session=odm.current_session()``) would run outside any transaction, committed at
        once. In this transaction its writes are rolled back with the block instead."""
        session = self.session
        if session.in_transaction or session.has_ended:
            return
        try:
            await drivers.start_transaction(session, **self.options)
        except PyMongoError:  # the block is failing: its own error goes on
            logger.warning("could not fence off the aborted transaction's session", exc_info=True)

    async def _abort(self, *, kill: bool, fence: bool) -> None:
        await self.settle()  # a command still to be sent would reopen the transaction
        fence_in = self._fence_database() if fence else None
        await abort_server_transaction(self.session, kill=kill, fence_in=fence_in)

    def _fence_database(self) -> str | None:
        """The database of the block's connection, which a fence of its session reads (see
        :func:`~odm.server_transactions.fence_session`): the one the application may read."""
        try:
            return get_connection(self.alias).database.name  # type: ignore[no-any-return]
        except NotConnected:  # disconnected meanwhile: the kill alone must do
            return None


MAX_FLUSH_PASSES = 10
_NOT_SETTLED = (
    f"the flush did not settle after {MAX_FLUSH_PASSES} passes: save hooks keep changing "
    "tracked documents"
)
#: How a note of :meth:`UnitOfWork.rollback_only` begins (an error gets one such note).
_NOTE = "odm: "


def _has_save_hooks(model: type[Any]) -> bool:
    return (
        overrides(model, "before_save")
        or overrides(model, "after_save")
        or signals.pre_save.has_receivers()
        or signals.post_save.has_receivers()
    )


async def _run_before_save(identity: IdentityMap, hooked: dict[int, Any]) -> None:
    """Run ``before_save`` and ``pre_save`` for every changed tracked document that has hooks
    and is not in ``hooked`` (by ``id()``: those whose hooks ran or run in this pass), again
    for documents a hook changed, until none is left; add each to ``hooked`` as its hooks
    start (a hook's own flush, nested, runs the others': see ``UnitOfWork.flush``)."""
    while True:
        due = [
            document
            for document in identity
            if id(document) not in hooked
            and _has_save_hooks(type(document))
            and writes.is_dirty(document)
        ]
        if not due:
            return
        for document in due:
            if id(document) in hooked:  # a hook's nested flush ran its hooks meanwhile
                continue
            hooked[id(document)] = document
            await document.before_save()
            if signals.pre_save.has_receivers():
                await signals.pre_save.send(type(document), document=document, created=False)


def _noted(error: BaseException) -> bool:
    """Tell whether ``error`` carries a note of :meth:`UnitOfWork.rollback_only` already (a
    refused call's error is noted by the executor, then by whoever reads back after it)."""
    return any(note.startswith(_NOTE) for note in getattr(error, "__notes__", ()))


#: Characters of the server's message a refusal quotes (it may quote a long key value).
_REFUSAL_CHARS = 300


def _refusal(error: BaseException, shown: str | None = None) -> str:
    """The server's refusal ``error`` in a few words: its type and the server's message (a
    bulk write's first write error), or ``shown`` instead of that message, on one line and
    cut to a readable length."""
    message = shown
    if message is None:
        details = getattr(error, "details", None) or {}
        errors = details.get("writeErrors") if isinstance(details, dict) else None
        source = errors[0] if errors and isinstance(errors[0], dict) else details
        message = source.get("errmsg") if isinstance(source, dict) else None
    text = " ".join(str(message or error).split())
    if len(text) > _REFUSAL_CHARS:
        text = text[: _REFUSAL_CHARS - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _flush_mismatch(model: type[Any], expected: int, matched: int) -> Exception:
    missing = expected - matched
    what = (
        f"{missing} of {expected} changed {model.__name__} document(s) could not be written at "
        "commit: "
    )
    if model._meta.optimistic_lock:
        return StaleDocument(what + "changed or deleted by someone else since they were loaded")
    return model.DoesNotExist(what + "deleted since they were loaded")  # type: ignore[no-any-return]
