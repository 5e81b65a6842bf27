"""The unit of work: ``odm.transaction()``, ``odm.atomic`` and ``odm.run_in_transaction``.

``transaction()`` starts a driver session and a transaction and binds both in context variables
(:mod:`odm.session`), so every ODM operation inside runs in it without a ``session=`` argument;
with PyMongo >= 4.17 it also enters the driver's own ``AsyncClientSession.bind()`` so raw driver
calls inside join the transaction too. Leaving the block flushes the changes of tracked documents
(one ``bulk_write`` per collection, only the changed fields), commits, and then runs the
``on_commit`` callbacks; an exception aborts and drops them.

Concurrency rule: operations of a transaction must run in the task that opened it. A task
spawned inside the block (``asyncio.gather``, ``create_task``) inherits the context, and the
executor refuses its operations with :class:`odm.TransactionError` instead of interleaving them
on one session, which the server cannot order and which SQLAlchemy documents as unsafe too.
Once the block has ended, however it ended, its unit of work takes no more work, and such a
task's operations run outside any transaction (:meth:`UnitOfWork.end`).

Retries follow the driver specification of the convenient transactions API: ``atomic`` re-runs
the whole body on ``TransientTransactionError`` (from the body or the commit), retries only the
commit on ``UnknownTransactionCommitResult`` (not after ``MaxTimeMSExpired``), aborts before
retrying, backs off ``jitter * min(5 ms * 1.5**attempt, 500 ms)`` and gives up at a time limit
(120 s, or ``timeout=``). The plain ``transaction()`` block cannot re-run its body: it retries the
commit only.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import sys
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncContextDecorator, suppress
from typing import Any, Final, ParamSpec, TypeVar, overload

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, WriteConcernError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from . import drivers, executor, signals
from .connection import DEFAULT_ALIAS, alias_for, get_client
from .exceptions import (
    OnCommitError,
    OperationTimeout,
    StaleDocument,
    TransactionError,
    TransactionsNotSupported,
)
from .holders import async_generator_holding
from .identity import IdentityMap
from .journal import Journal
from .models import tracking, writes
from .models.declaration import overrides
from .session import _bound_session, _bound_uow, current_unit_of_work
from .shielding import shielded
from .timeouts import check_timeout, is_cut_off, is_timeout, operation_timeout

logger = logging.getLogger("odm.uow")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_TIME_LIMIT = 120.0
MAX_TIME_MS_EXPIRED = 50
# id(client) -> (a weak reference to that client, whether its server runs transactions).
# The reference must still point at the client asked about: an id() can be reused by a later
# client once the first is gone (a standalone after a replica set) and would answer for the
# wrong server. Not a WeakKeyDictionary: its lookups hash the client, which PyMongo does in
# Python (several calls), and every transaction asks.
_supports_transactions: dict[int, tuple[weakref.ref[Any], bool]] = {}


def _known_support(client: Any) -> bool | None:
    """Whether ``client``'s server was found to run transactions (``None``: not asked yet)."""
    known = _supports_transactions.get(id(client))
    if known is None or known[0]() is not client:
        return None
    return known[1]


def _remember_support(client: Any, supported: bool) -> None:
    key = id(client)

    def forget(_ref: weakref.ref[Any]) -> None:
        # Only this client's entry: a later client with the same id may have replaced it.
        if _supports_transactions.get(key, (None,))[0] is _ref:
            del _supports_transactions[key]

    _supports_transactions[key] = (weakref.ref(client, forget), supported)


def backoff_delay(attempt: int) -> float:
    """Seconds to sleep before retry number ``attempt`` (1-based), per the driver spec."""
    return random.random() * min(0.005 * 1.5**attempt, 0.5)


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
        self.journal = Journal()
        #: Whether the transaction sent a write yet (see :meth:`track`).
        self.wrote = False
        self.owner: asyncio.Task[Any] | None = asyncio.current_task()
        #: Why the transaction can only be rolled back (an inner block failed, or the block's
        #: own error is aborting it), or ``None``.
        self.failure: str | None = None
        #: Whether :attr:`failure` is an inner block's (the outer block may still go on).
        self._inner_failure = False
        #: How the block ended (``"it committed"``...), or ``None`` while it is open: see
        #: :meth:`end`.
        self.ended: str | None = None
        #: The driver call that a cancellation or a deadline cut off in the block, or ``None``
        #: (see :meth:`cut_off`).
        self.interrupted: str | None = None
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
        self.journal.remember(document)

    def note_write(self) -> None:
        """Record that the transaction wrote without an instance (a queryset update or
        delete): documents loaded from now on are read back if it aborts."""
        self.wrote = True

    def inserted(self, document: Any) -> None:
        """Track ``document``, just inserted, as the object of its id (replacing one held
        for a document deleted earlier in the block)."""
        self.identity.replace(document)

    def forget(self, document: Any) -> None:
        """Stop tracking ``document`` (it was deleted). Another object held for its id (a copy
        was deleted, or a document loaded before the block) stood for the same stored
        document: it is gone too, or its changes would be dropped from the flush while it
        still said it was stored."""
        held = self.identity.discard(document)
        if held is not None and held is not document:
            tracking.gone(held)

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

    def cut_off(self, call: str) -> None:
        """Record that ``call`` (a driver call of the block) was cut off by a cancellation or a
        deadline: it may have run on the server or not, and whoever called it (a ``save()``,
        a flush) could not record what it did. So the transaction can only be rolled back, as
        after an inner block failed: a block that catches the cancellation or the timeout and
        goes on gets :class:`odm.TransactionError` at its next operation or at its end, and
        nothing of it is committed. (Committing would keep a write the documents do not know
        of: a ``save()`` cut off after its ``$push`` was applied would push again.)"""
        if self.interrupted is None:
            self.interrupted = call

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

    def refused(self, call: str, error: BaseException) -> None:
        """Record that the server refused ``call`` (a driver call of the block: an insert that
        breaks a unique index, an update a stored value refuses, a query it cannot run) with
        ``error``. MongoDB aborts the transaction at such an error, so the block's next
        operation would only get ``NoSuchTransaction``, labelled transient, which names nothing
        and makes ``atomic`` run the body again to meet the same refusal. So, as Django does
        for a query that failed inside ``atomic()``, the transaction becomes rollback-only
        (:meth:`rollback_only`): the block's next operation and its end raise
        :class:`odm.TransactionError` naming the refused call. An error labelled
        ``TransientTransactionError`` (a write conflict) is left alone: ``atomic`` retries it.
        """
        if isinstance(error, PyMongoError) and error.has_error_label(
            "TransientTransactionError"
        ):
            return
        self.rollback_only(
            f"{call} was refused by the server in this transaction ({_refusal(error)})", error
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
                self.journal.remember(document)
                writes.mark_clean(document)
            self._flushed += len(items)

    async def _run_callbacks(self) -> None:
        """Run the ``on_commit`` callbacks, those they register included (see
        :meth:`on_commit`)."""
        callbacks = self._on_commit
        first_error: BaseException | None = None
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
                except Exception as exc:
                    if robust:
                        logger.exception("on_commit callback %r failed", callback)
                    elif first_error is None:
                        first_error = exc
        finally:
            self._running_callbacks = False
            self._on_commit = []
        if first_error is not None:
            raise OnCommitError(
                f"the transaction committed, but an on_commit callback failed: "
                f"{type(first_error).__name__}: {first_error}"
            ) from first_error

    async def _fail(self, exc: BaseException, *, inner: bool = False) -> None:
        """Abort the transaction that ``exc`` ended (the whole block, or an ``inner`` one: the
        transaction is then rollback-only) and make its documents tell the truth.

        The server transaction ends now (its session killed when an operation was cut off),
        the callbacks are dropped, and the tracking states are put back; after a commit of
        unknown outcome they stay in the journal, to be read again from the server once the
        session is gone. A cancellation that came meanwhile is re-raised."""
        self._on_commit.clear()
        if self.failure is not None:  # aborted already (an inner block failed)
            # The transaction fenced off after that abort (_fence) holds what raw driver
            # calls wrote since: it goes too (and the next nested failure fences again).
            await shielded(_abort_server_transaction(self.session))
            self.journal.restore()
            return
        self.failure = f"{type(exc).__name__}: {exc}"
        self._inner_failure = inner
        # An operation cut off by a cancellation or a deadline may have reached the server
        # without the driver knowing: it may even be the one that started the server
        # transaction, which the driver's abort would then not end.
        interrupted = self.interrupted is not None or is_cut_off(exc)
        cancelled = await shielded(self._abort(kill=interrupted))
        if not _commit_outcome_unknown(exc):
            self.journal.restore()
        if cancelled and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError("cancelled while the transaction was aborted") from exc

    async def _fence(self) -> None:
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

    async def _abort(self, *, kill: bool) -> None:
        await self.settle()  # a command still to be sent would reopen the transaction
        await _abort_server_transaction(self.session, kill=kill)


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


def _refusal(error: BaseException) -> str:
    """The server's refusal ``error`` in a few words: its type and the server's message (a
    bulk write's first write error), on one line and cut to a readable length."""
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


async def _check_transactions_supported(client: Any) -> None:
    supported = _known_support(client)
    if supported is None:
        hello = await client.admin.command("hello")
        supported = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        _remember_support(client, supported)
    if not supported:
        raise TransactionsNotSupported(
            "this MongoDB server is a standalone mongod, which cannot run multi-document "
            "transactions; run it as a replica set (even a single-node one: `odm server`, or "
            "mongod --replSet rs0 then rs.initiate()) or use the writes without transaction()"
        )


def _is_unknown_commit(exc: PyMongoError) -> bool:
    if not exc.has_error_label("UnknownTransactionCommitResult"):
        return False
    return not (isinstance(exc, OperationFailure) and exc.code == MAX_TIME_MS_EXPIRED)


async def _commit(session: Any, deadline: float, bounded: bool) -> None:
    """Commit, retrying an unknown commit result until ``deadline``; ``bounded``: the caller
    gave a timeout, so each attempt runs under what is left of it (as with the driver's own
    ``with_transaction``, an attempt is otherwise not timed: a client-side deadline costs
    ~25 µs per commit)."""
    attempt = 0
    while True:
        try:
            if bounded:
                left = max(deadline - time.monotonic(), 0.001)
                with operation_timeout(left, "commitTransaction"):
                    await drivers.resolve(session.commit_transaction())
            else:
                await drivers.resolve(session.commit_transaction())
            return
        except PyMongoError as exc:
            attempt += 1
            if _is_unknown_commit(exc) and time.monotonic() < deadline:
                # The driver's commit retry already upgraded the write concern to majority;
                # trying again is safe because a commit is idempotent.
                await asyncio.sleep(backoff_delay(attempt))
                continue
            raise


#: ``transaction()``'s options, none given (``write_concern=0`` is one: not a falsy test).
_NO_OPTIONS: Final = (None, None, None, None)


def _transaction_options(
    read_concern: ReadConcern | str | None,
    write_concern: WriteConcern | str | int | None,
    read_preference: Any,
    max_commit_time_ms: int | None,
) -> dict[str, Any]:
    """The driver's ``start_transaction`` keywords for the options given (``None``: left out)."""
    options = {
        "read_concern": _concern(read_concern, ReadConcern),
        "write_concern": _concern(write_concern, WriteConcern),
        "read_preference": read_preference,
        "max_commit_time_ms": max_commit_time_ms,
    }
    return {k: v for k, v in options.items() if v is not None}


def _concern(value: Any, kind: type[Any]) -> Any:
    if value is None or isinstance(value, kind):
        return value
    if kind is ReadConcern:
        return ReadConcern(str(value))
    return WriteConcern(w=value)


class transaction(AsyncContextDecorator):  # lower case: used as a function (contextlib.suppress)
    """Run the block in one transaction; ``async with odm.transaction() as uow`` gives its
    :class:`UnitOfWork`.

    A nested ``transaction()`` joins the enclosing one (one entered in a task spawned inside
    the block is a transaction of that task's own); an exception leaving it makes the whole
    transaction rollback-only (MongoDB has no savepoints): it is aborted at once, and anything
    else in the outer block, or leaving it normally, raises :class:`odm.TransactionError`.
    ``timeout`` bounds every operation of the block and the commit (:class:`odm.OperationTimeout`
    past it, and the transaction is aborted). The commit is retried on
    ``UnknownTransactionCommitResult`` until ``timeout`` (default 120 s); the body is never
    re-run here (use :func:`atomic` for that). Whatever ends the block, the documents it
    wrote say what the database holds afterwards (see docs/unit-of-work.md).

    One object serves one block at a time; as a decorator (``@odm.transaction()``) each call
    of the function gets a block of its own.
    """

    # A class rather than an @asynccontextmanager generator with an AsyncExitStack: the
    # generator's frames and the stack's bookkeeping cost each transaction ~18 µs of CPU in
    # a loop of transfers (docs/performance.md). The exits below keep the order that stack had.
    __slots__ = (
        "_alias", "_bind", "_deadline", "_ending", "_options", "_outer", "_scope",
        "_session_token", "_timeout", "_uow", "_uow_token",
    )

    def __init__(
        self,
        alias: str = DEFAULT_ALIAS,
        *,
        read_concern: ReadConcern | str | None = None,
        write_concern: WriteConcern | str | int | None = None,
        read_preference: Any = None,
        max_commit_time_ms: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self._alias = alias
        self._timeout = timeout
        self._options = (read_concern, write_concern, read_preference, max_commit_time_ms)
        self._outer: UnitOfWork | None = None
        self._uow: UnitOfWork | None = None

    def _recreate_cm(self) -> transaction:
        """A block of its own for each call of a decorated function."""
        read_concern, write_concern, read_preference, max_commit_time_ms = self._options
        return transaction(
            self._alias, read_concern=read_concern, write_concern=write_concern,
            read_preference=read_preference, max_commit_time_ms=max_commit_time_ms,
            timeout=self._timeout,
        )

    async def __aenter__(self) -> UnitOfWork:
        timeout = self._timeout
        check_timeout(timeout)
        generator = async_generator_holding(sys._getframe(1))
        if generator is not None:
            raise TransactionError(
                f"odm.transaction() cannot be held open by the async generator {generator}(): "
                "while it waits at a yield inside the block, the code consuming it would run in "
                "the transaction, and a consumer that stops early would leave the block open; "
                "open the transaction around the loop in the consumer, or in a coroutine that "
                "the generator awaits (an @asynccontextmanager around odm.transaction() is "
                "fine)"
            )
        if self._uow is not None or self._outer is not None:
            raise RuntimeError(
                "this odm.transaction() object is in use by another block; call "
                "odm.transaction() again for each block"
            )
        alias = self._alias
        outer: UnitOfWork | None = current_unit_of_work()
        if outer is not None and outer.owner is not asyncio.current_task():
            # A task spawned inside a block inherited its context: its own transaction() is a
            # transaction of its own (joining would run two tasks' operations on one session).
            outer = None
        if outer is not None:
            if outer.alias != alias:
                raise TransactionError(
                    f"a transaction on alias {outer.alias!r} is open; a transaction cannot span "
                    f"two clients (asked for alias {alias!r})"
                )
            outer.check_usable()
            self._outer = outer
            return outer
        client = get_client(alias)
        if _known_support(client) is not True:  # asked once per client
            await _check_transactions_supported(client)
        self._deadline = time.monotonic() + (timeout or DEFAULT_TIME_LIMIT)
        session = await drivers.start_session(client)
        try:
            # Most blocks give no option: no dict to build and filter for them.
            given = self._options != _NO_OPTIONS
            options = _transaction_options(*self._options) if given else {}
            await drivers.start_transaction(session, **options)
        except BaseException:
            await shielded(drivers.end_session(session))
            raise
        uow = UnitOfWork(session, alias, options)
        # Ended last, shielded: a cancellation cannot leave the server session half-closed.
        ending = self._ending = _SessionEnd(session)
        self._session_token = _bound_session.set(session)
        self._uow_token = _bound_uow.set(uow)
        self._bind = self._scope = None
        try:
            if drivers.supports_bind(session):
                bind = session.bind(end_session=False)
                await bind.__aenter__()
                self._bind = bind
            if timeout:
                # timeout= bounds every operation of the block and the commit (CSOT-style);
                # the abort runs outside it, so that a late block still aborts at once.
                scope = operation_timeout(timeout, "transaction")
                scope.__enter__()
                self._scope = scope
        except BaseException as error:
            _bound_uow.reset(self._uow_token)
            _bound_session.reset(self._session_token)
            uow.end(f"it failed to start: {type(error).__name__}")
            await self._unbind(error)
            await ending.run(type(error), error, error.__traceback__)
            raise
        self._uow = uow
        return uow

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        outer = self._outer
        if outer is not None:  # a nested block: the enclosing one commits
            self._outer = None
            if exc is not None and not isinstance(exc, GeneratorExit):
                try:
                    await outer._fail(exc, inner=True)
                finally:
                    await outer._fence()  # the outer block may go on: see _fence
            return False
        uow = self._uow
        if uow is None:
            raise RuntimeError("odm.transaction() left without being entered")
        self._uow = None
        ending = self._ending
        cancelled_at_commit = False
        committed = False
        # Each try below is one layer of the block, innermost first: the timeout scope, the
        # abort on failure, the context variables, the driver's bind, the session end, the
        # documents read back. The block's own error is raised again in the innermost layer
        # (never out of this frame: a StopIteration would turn into a RuntimeError), so that
        # every layer sees what ends the block as the generator form did.
        try:
            try:
                try:
                    try:
                        try:
                            try:
                                if exc is not None:
                                    raise exc
                                uow.check_usable()
                                if len(uow.identity):  # nothing tracked: nothing to flush
                                    await uow.flush()
                                # Once sent, the commit's outcome is awaited and honoured,
                                # whatever cancellation comes meanwhile (asyncio's convention:
                                # it is re-raised after the callbacks of the committed
                                # transaction ran).
                                cancelled_at_commit = await shielded(
                                    ending.after_commit(
                                        _commit(uow.session, self._deadline, bool(self._timeout))
                                    )
                                )
                                committed = True
                            except BaseException as error:
                                scope = self._scope
                                if scope is None or not scope.__exit__(
                                    type(error), error, error.__traceback__
                                ):
                                    raise
                            else:
                                if self._scope is not None:
                                    self._scope.__exit__(None, None, None)
                        except GeneratorExit:
                            raise
                        except BaseException as error:
                            await uow._fail(error)
                            raise
                    finally:
                        _bound_uow.reset(self._uow_token)
                        _bound_session.reset(self._session_token)
                        uow.end(_how_it_ended(uow, committed))
                except BaseException as error:
                    try:
                        await self._unbind(error)
                    except BaseException as replaced:
                        await ending.run(type(replaced), replaced, replaced.__traceback__)
                        raise
                    await ending.run(type(error), error, error.__traceback__)
                    raise
                await self._unbind(None)
                await ending.run()
            except GeneratorExit:
                raise
            except BaseException:
                if len(uow.journal):  # documents whose truth must be read back, now unbound
                    await shielded(uow.journal.reload())
                raise
        except BaseException as final:
            if final is exc:  # the block's own error, unchanged: let it go on as it was
                exc.__traceback__ = tb
                return False
            raise
        uow.journal.clear()
        try:
            if uow._on_commit:
                await uow._run_callbacks()
        finally:
            if cancelled_at_commit or ending.cancelled:
                raise asyncio.CancelledError("cancelled while the transaction committed")
        return False

    async def _unbind(self, error: BaseException | None) -> None:
        """Leave the driver's implicit session binding, if the block entered it."""
        bind, self._bind = self._bind, None
        if bind is not None:
            await bind.__aexit__(
                type(error) if error is not None else None,
                error,
                error.__traceback__ if error is not None else None,
            )


def _how_it_ended(uow: UnitOfWork, committed: bool) -> str:
    """Say how the block of ``uow`` ended, for :meth:`UnitOfWork.end`."""
    if committed:
        return "it committed"
    if uow.failure is not None:
        return f"it failed: {uow.failure}"
    return "it did not commit"


def _commit_outcome_unknown(exc: BaseException) -> bool:
    """Tell whether ``exc``, which ended a transaction, may hide a commit that went through."""
    seen: BaseException | None = exc
    while isinstance(seen, OperationTimeout | asyncio.CancelledError):
        seen = seen.__cause__
    if not isinstance(seen, PyMongoError):
        return False
    if isinstance(seen, WriteConcernError):
        # The commit was applied where it ran and only its acknowledgement failed; the driver
        # labels that UnknownTransactionCommitResult except for a write concern the set can
        # never satisfy (UnsatisfiableWriteConcern, UnknownReplWriteConcern), which commits
        # all the same. (Inside a transaction only the commit carries a write concern.)
        return True
    if isinstance(seen, OperationFailure) and not is_timeout(seen):
        return seen.has_error_label("UnknownTransactionCommitResult")
    return (
        seen.has_error_label("UnknownTransactionCommitResult")
        or is_timeout(seen)
        or isinstance(seen, ConnectionFailure)
    )


class _SessionEnd:
    """Ends a transaction's session, shielded, remembering a cancellation that came meanwhile:
    after a commit it is re-raised only once the callbacks ran; after a failure at once.

    After a commit the session is ended by the commit's own task (:meth:`after_commit`): one
    shielded task instead of two, which on Python 3.11 (no eager tasks) saves the event loop
    turns of scheduling and waking up from a second one."""

    __slots__ = ("cancelled", "ended", "session")

    def __init__(self, session: Any) -> None:
        self.session = session
        self.cancelled = False
        self.ended = False

    async def after_commit(self, commit: Awaitable[None]) -> None:
        """Await ``commit``, then end the session. Whatever stops the session end (an error,
        or this task cancelled as its event loop closes) is no failure of the commit, which
        went through: it is left to :meth:`run`, which tries again where a session end always
        did, and reports what stops it there."""
        await commit
        try:
            await drivers.end_session(self.session)
        except BaseException:  # not the commit's failure: run() tries again (see above)
            return
        self.ended = True

    async def run(
        self, exc_type: Any = None, exc: BaseException | None = None, tb: Any = None
    ) -> None:
        if self.ended:
            return
        self.cancelled = await shielded(drivers.end_session(self.session))
        if self.cancelled and exc is not None and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError("cancelled while the session ended") from exc


async def _abort_server_transaction(session: Any, *, kill: bool = False) -> None:
    """End the server transaction of ``session`` now, whatever state it is in.

    The driver ignores abort errors (as its spec says), will not abort after a commit was sent,
    and does not know of an operation it was cut off from (a cancellation); a transaction
    left so would hold its locks on the server until its lifetime limit (a minute or more).
    So when the abort fails (the driver swallows its error: :func:`odm.drivers.abort_transaction`
    tells), a commit was sent (and failed, or its outcome is unknown), or ``kill`` is given (an
    operation was interrupted), the server session is killed, which ends its transaction at
    once (a commit that did go through stays committed). An abort that succeeds costs nothing
    more."""
    if session.in_transaction:
        try:
            with pymongo.timeout(ABORT_TIME_LIMIT):
                ended = await drivers.abort_transaction(session)
            if ended and not kill:
                return
        except PyMongoError:
            pass
    with suppress(PyMongoError), pymongo.timeout(ABORT_TIME_LIMIT):
        await session.client.admin.command("killSessions", [session.session_id])


#: Seconds an abort (or the killSessions after it) may take.
ABORT_TIME_LIMIT = 10.0


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


async def run_in_transaction(
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    retries: int = 5,
    timeout: float = DEFAULT_TIME_LIMIT,
    alias: str = DEFAULT_ALIAS,
    **kwargs: Any,
) -> R:
    """Run ``await fn(*args, **kwargs)`` in a transaction, re-running it on transient errors.

    The body may run more than once: keep side effects out of it, or put them in
    ``uow.on_commit``. Inside an enclosing transaction it simply joins it (no retry there).
    """
    check_timeout(timeout)
    if current_unit_of_work() is not None:
        async with transaction(alias):
            return await fn(*args, **kwargs)
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            async with transaction(alias, timeout=max(deadline - time.monotonic(), 0.001)):
                return await fn(*args, **kwargs)
        except PyMongoError as exc:
            if not _is_transient(exc) or attempt > retries or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(backoff_delay(attempt))


@overload
def atomic(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


@overload
def atomic(
    *, retries: int = 5, timeout: float = DEFAULT_TIME_LIMIT, alias: str = DEFAULT_ALIAS
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def atomic(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    retries: int = 5,
    timeout: float = DEFAULT_TIME_LIMIT,
    alias: str = DEFAULT_ALIAS,
) -> Any:
    """Decorate an async function to run in a transaction, re-run on transient errors.

    Use as ``@odm.atomic`` or ``@odm.atomic(retries=5, timeout=30)``. The body may run more
    than once (see :func:`run_in_transaction`).
    """
    check_timeout(timeout)  # at decoration, not at the first call

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await run_in_transaction(
                func, *args, retries=retries, timeout=timeout, alias=alias, **kwargs
            )

        return wrapper

    return decorate(fn) if fn is not None else decorate
