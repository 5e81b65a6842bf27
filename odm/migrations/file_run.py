"""One file's apply or rollback: its steps in order, resumed from its saved position.

Operations MongoDB refuses in a transaction (index builds, ``collMod``, drops,
``$out``/``$merge``) and batched updates split the file's transaction: what came before
commits, the operation runs on its own, and a new transaction starts for the steps after it.

Before each step the run proves it still holds the lock: inside the open transaction for a
step that joins one, so that a transaction commits only with a proof that it was made under the
lock; before the transaction for the first step of it (see :mod:`.transaction`). A run that
lost the lock stops there: the open transaction is aborted and nothing is undone or recorded.

When a step fails, the open transaction is aborted and the earlier steps that were committed
are rolled back, newest first, where they have a rollback (see :mod:`.compensation`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from pymongo.errors import PyMongoError

from ..exceptions import MigrationError
from .cleanup import discard, ended_on_server, error_text, quietly, settled_session
from .compensation import Compensation
from .loader import Migration
from .lock import LeaseRanOut, LockLost
from .positions import lost_lock
from .recorder import done_as_recorded, log_entry
from .records_change import fenced, log_once
from .reporting import elapsed_ms, failure_reason
from .retry import TRANSIENT, TransientRetry, is_transient
from .scope import Direction, RunScope, step_sequence
from .step_actions import joins_transaction, perform, resolve
from .transaction import OutcomeUnknown


class FileRun:
    """Runs ``migration`` in ``direction`` within ``scope`` (``forced``: as ``--force`` says)."""

    def __init__(
        self, scope: RunScope, migration: Migration, direction: Direction, forced: bool
    ) -> None:
        self.scope = scope
        self.migration = migration
        self.direction = direction
        self.forced = forced
        self.sequence = step_sequence(migration, direction)
        self.use_tx = scope.transactions and migration.transactional
        self.compensation = Compensation(scope, migration, self.sequence, self.use_tx)
        self.tx = scope.transaction()
        self.durable: list[int] = []  # positions whose effects are stored for good
        self.pending: list[int] = []  # positions done inside the open transaction
        self.position = 0  # the step being run; len(sequence): recording the file
        self.recorded = False
        self.logged = False  # the log says the run is done, for good
        self.record_in_tx = False  # the record is written in the file's transaction
        self.record_unsettled = False  # a record write cut off may still be running on the server
        self.begun = 0.0
        self.elapsed = 0
        self.entry: dict[str, Any] = {}  # the log entry of the run, once it is being recorded

    async def run(self) -> None:
        """Run the steps left, record the file, and say how long it took.

        A failure rolls back what it can and raises :class:`MigrationError` (or
        :class:`LockLost`); an interruption (Ctrl-C, a cancelled task) stops as a killed run
        would, so that the next run resumes after the last step durably done.
        """
        start = await self._resume_point()
        self.durable = list(range(start))
        self.begun = time.monotonic()
        self.position = start
        try:
            elapsed = await self._run_from(start)
        except Exception as exc:
            await quietly(self.tx.abort())
            raise await self._failure(exc) from exc
        except BaseException as exc:
            # Nothing is undone (rolling back would be more writes after being told to stop)
            # and the saved positions stay; the open transaction is aborted before the lock is
            # released, so nothing of this run commits after it.
            await quietly(self.tx.abort())
            recorded = await self._recorded_when_stopped()
            if recorded:
                await self._finish_bookkeeping()
            await self.scope.log.interrupted(
                self.migration, self.direction, self._step_number(self.position),
                self._step_number(len(self.durable)), exc, self.begun, recorded,
            )
            raise
        self.scope.echo(f"  done in {elapsed} ms")

    async def _run_from(self, start: int) -> int:
        """Run the steps from ``start`` on and record the file; return how long it took.

        A transaction that fails transiently (a write conflict with a transaction a killed run
        left open) is aborted and runs again from its first step, as the drivers'
        ``with_transaction`` does, while the lock's lease lasts (see :mod:`.retry`).
        """
        retry = TransientRetry(self.scope.lock)
        first = start
        while True:
            try:
                for position in range(first, len(self.sequence)):
                    self.position = position
                    await self._run_step(position)
                self.position = len(self.sequence)  # every step done: left is recording it
                return await self._record()
            except PyMongoError as exc:
                if not (self.tx.open or self.pending):
                    raise  # no transaction failed: what it stored stays stored
                failed_from = self.pending[0] if self.pending else self.position
                if failed_from != first:
                    # Another transaction of the file (the one retried committed): it has the
                    # whole lease it may retry for, not what is left of the earlier one's.
                    retry = TransientRetry(self.scope.lock)
                first = failed_from
                await quietly(self.tx.abort())  # before waiting: it must not hold its writes
                if not await retry.again(exc):
                    if retry.retries and is_transient(exc):
                        raise retry.gave_up("its transaction", exc) from exc
                    raise  # not a conflict: the error is the attempt's own, not the retries'
            self.pending.clear()  # aborted: none of them is stored
            if retry.retries == 1:  # said once: a conflict may last until a retry passes it
                self.scope.echo(
                    f"  {TRANSIENT}: running the transaction again from step "
                    f"{self._step_number(first) or '(recording the file)'}"
                )

    def _step_number(self, position: int) -> int | None:
        """Return the 1-based number of the step at ``position`` (``None``: past the last)."""
        return self.sequence[position][0] + 1 if position < len(self.sequence) else None

    async def _resume_point(self) -> int:
        """Claim the file's position (finishing a rollback left half done); return it."""
        migration, direction, sequence = self.migration, self.direction, self.sequence
        positions, echo = self.scope.positions, self.scope.echo
        claimed = await positions.claim(migration)
        if direction == "apply" and claimed.direction == "compensate":
            await self.compensation.finish_left(claimed)
            claimed = await positions.claim(migration)
        start = claimed.next_step if claimed.direction == direction else 0
        if start == len(sequence) and start:
            # Killed between its last step and its record: only the record is left to write.
            echo(f"{direction} {migration.id}: resuming (every step done; recording it)")
        elif start:
            echo(f"{direction} {migration.id}: resuming at step {sequence[start][0] + 1}")
        else:
            echo(f"{direction} {migration.id}")
        return start

    async def _run_step(self, position: int) -> None:
        """Run the step at ``position`` under a fresh proof of the lock, and save past it."""
        index, action = self.sequence[position]
        if action is None:
            self.scope.echo(f"  step {index + 1}: no {self.direction} (skipped)")
            target: Any = None
        else:
            target = resolve(self.migration, action, self.scope.database)
        try:
            await self._enter(target)
        except BaseException:
            discard(target)
            raise
        context = self.scope.context(self.migration, self.direction, index, self.tx.open)
        await perform(self.migration, target, context)
        # Done, whether or not its position gets saved: a failure from here on must roll it
        # back too (outside a transaction its effects are already stored).
        (self.pending if self.tx.open else self.durable).append(position)
        await self.scope.positions.save(self.migration, self.direction, position + 1)

    async def _enter(self, target: Any) -> None:
        """Commit a transaction ``target`` cannot join, open one it can, and prove the lock."""
        joinable = joins_transaction(target)
        if self.tx.open and not joinable:
            await self.tx.commit()  # proves the lock inside it first
            self.durable.extend(self.pending)
            self.pending.clear()
        if self.use_tx and joinable and target is not None and not self.tx.open:
            await self.tx.begin()  # proves the lock just before it opens
        else:
            await self.scope.lock.prove()  # inside the open transaction when there is one

    async def _record(self) -> int:
        """Record the file as done, log it, forget its positions and commit; return its time."""
        # Inside the transaction when there is one; its commit proves the lock once more.
        self.record_in_tx = self.tx.open
        await self.scope.lock.prove()
        self.elapsed = elapsed_ms(self.begun)
        self.entry = self._done_entry()
        if not self.tx.open:
            # The record and its log entry are two writes: the entry is kept with the position
            # first, so that a run cut off between them is logged by the next one.
            await self.scope.positions.save(
                self.migration, self.direction, len(self.sequence), logging=self.entry
            )
        await self._write_record(self.elapsed)
        # Outside a transaction the record is stored for good: from here on nothing may be
        # undone, or the file would be recorded as done with its steps rolled back.
        self.recorded = not self.tx.open
        await self._within_lease(self._log_done)
        await self._within_lease(partial(self.scope.recorder.clear_state, self.migration.id))
        await self.tx.commit()
        return self.elapsed

    async def _within_lease(self, write: Callable[[], Awaitable[Any]]) -> None:
        """Await ``write()``: in the open transaction (fenced by its commit), else bounded by
        what is left of the lock's lease, so that it cannot land once another run may hold
        the lock (a late forgetting of positions would undo the new holder's)."""
        if self.tx.open:
            await write()
            return
        await self.scope.lock.bounded(write)

    def _done_entry(self) -> dict[str, Any]:
        """Return the log entry saying the file's run is done (made once, with its ``_id``)."""
        if not self.entry:
            self.entry = log_entry(
                self.migration.id, self.direction, checksum=self.migration.checksum,
                duration_ms=self.elapsed, forced=self.forced,
            )
        return self.entry

    async def _log_done(self) -> None:
        """Log the file's run as done (stored for good at once outside a transaction)."""
        await log_once(self.scope.recorder, self._done_entry())
        self.logged = not self.tx.open

    async def _settle_recorded(self) -> None:
        """Log a run whose file is recorded as done and forget its positions, as the rest of its
        recording would have; the positions (holding the log entry) stay until it is logged.

        Each write is fenced by the lock (:func:`fenced`): after a failure the lease may be
        over, and another run may be running the file from its positions.
        """
        lock = self.scope.lock
        if not self.logged and not self.record_in_tx:  # a transaction logged it with the record
            await fenced(lock, self._log_done)
        await fenced(lock, partial(self.scope.recorder.clear_state, self.migration.id))

    async def _recorded_when_stopped(self) -> bool | None:
        """Tell whether an interrupted run had recorded its file as done (``None``: unknown).

        Only its last part, recording the file, can have: a commit (or a write) cut off on its
        way may have been stored all the same, so it is settled and read back.
        """
        if self.recorded or self.position < len(self.sequence):
            return self.recorded
        if self.record_unsettled:
            return None  # a record write still running may land after any reading
        try:
            await self.tx.settle()
            return await self._recorded_under_lock()
        except Exception:
            return None

    async def _finish_bookkeeping(self) -> None:
        """Log an interrupted run whose file is recorded as done, and forget its positions:
        what the cut-off rest of its recording would have done, so that the log and the
        positions agree with the record (else the next run does, from its position)."""
        await quietly(self._settle_recorded())

    async def _write_record(self, elapsed: int) -> None:
        """Record the file as applied (or forget it, rolled back).

        Outside a transaction the write has a session of its own, and is bounded by what is
        left of the lock's lease (:meth:`MigrationLock.within_lease`): stalled past it, the
        driver does not send it or the server refuses it, so it lands before the lease ends or
        never. Cut off (an error, the lease, Ctrl-C), it is ended on the server before anything
        reads the record back, so that what is then said (recorded or not) cannot be undone by
        the write landing later.
        """
        if self.tx.open:
            await self._store_record(elapsed, None)  # bound to the transaction: its commit tells
            return
        database = self.scope.database
        async with settled_session(
            database.client, self.scope.echo, self._unsettled, fence_in=database.name
        ) as session:
            try:
                await self.scope.lock.bounded(partial(self._store_record, elapsed, session))
            except (PyMongoError, LeaseRanOut) as exc:
                await self._stored_despite(session, exc)

    def _unsettled(self) -> None:
        """Note that the cut-off record write could not be seen to stop on the server."""
        self.record_unsettled = True

    async def _store_record(self, elapsed: int, session: Any) -> None:
        """Write the file's record (``session``: none, or the write's own)."""
        migration, recorder = self.migration, self.scope.recorder
        if self.direction == "apply":
            await recorder.record_applied(
                migration.id, migration.checksum, elapsed, depends=sorted(migration.depends),
                session=session,
            )
        else:
            await recorder.forget(migration.id, session=session)

    async def _stored_despite(self, session: Any, exc: PyMongoError | LeaseRanOut) -> None:
        """Return when the record write that raised ``exc`` was stored all the same (its answer
        lost: a network or write concern error, the lease running out); else raise.

        The write is ended on the server first: still running, it could land after the read.
        Then the record is read back only under a fresh proof of the lock: once the lease ran
        out, another run may have taken the lock over and written or removed the record itself,
        and what is read would be its doing, not this write's.
        """
        if isinstance(exc, LeaseRanOut) and not exc.sent:
            raise exc  # never sent: not recorded
        what = f"{type(exc).__name__} while recording it"
        database = self.scope.database
        if not await ended_on_server(database.client, session, fence_in=database.name):
            self._unsettled()
            raise OutcomeUnknown(
                f"{what}, and the write may still be running on the server, so whether it was "
                "recorded cannot be read back"
            ) from exc
        try:
            stored = await self._recorded_under_lock()
        except LockLost as lost:
            raise OutcomeUnknown(
                f"{failure_reason(exc)}; and since then {lost}: the record write landed before "
                "the lease ended or not at all, and whether it did is not this run's to read "
                "back (the run holding the lock may have changed the record since)"
            ) from exc
        except PyMongoError as unknown:
            raise OutcomeUnknown(
                f"{what}, and whether it was recorded cannot be read back "
                f"({error_text(unknown)})"
            ) from exc
        if not stored:
            raise exc

    async def _lock_lost_by(self, exc: Exception) -> LockLost | None:
        """Return the :class:`LockLost` saying the lock is no longer ours after ``exc``
        (``None``: still ours, or unknown).

        A write cut off at the lease (:class:`LeaseRanOut`) says only that another run may
        hold the lock: whether one does is asked, so that a run whose lock is still its own
        (nobody took it over) fails as any other does, rolling back what it may.
        """
        if isinstance(exc, LockLost) and not isinstance(exc, LeaseRanOut):
            return exc
        lost = await lost_lock(self.scope.lock)
        if lost is None or not isinstance(exc, LeaseRanOut):
            return lost
        return LockLost(f"{exc}; and since then {lost}", lost.holder)

    async def _recorded_under_lock(self) -> bool:
        """Prove the lock, then tell whether the record says the direction is done: with the
        lock proven still ours, no other run can have written the record since this run took
        it, so what is read is this run's doing (else :class:`LockLost`)."""
        await self.scope.lock.prove()
        return await self._recorded()

    async def _recorded(self) -> bool:
        """Tell whether the record says the direction is done (the lock keeps others out)."""
        record = (await self.scope.recorder.applied()).get(self.migration.id)
        return done_as_recorded(self.direction, self.migration.checksum, record)

    async def _failure(self, exc: Exception) -> MigrationError:
        """Undo what may be undone after ``exc``; log and return the error to raise."""
        migration, direction, sequence = self.migration, self.direction, self.sequence
        scope, durable = self.scope, self.durable
        if self.recorded or isinstance(exc, OutcomeUnknown):
            # Recorded, or unsure whether: nothing is undone. The saved positions stay after an
            # unknown commit: they say where the file stands (committed with the steps, or not).
            if self.recorded:
                await quietly(self._settle_recorded())
            return await scope.log.undoing_nothing(
                migration, direction, exc, self.begun, self.recorded
            )
        lost = await self._lock_lost_by(exc)
        if lost is not None:
            # Another deployer holds the lock now and may be resuming this very file from
            # the saved position: undoing steps or forgetting positions would corrupt its run.
            # The aborted transaction kept none of its steps.
            return await scope.log.lock_lost(
                migration, direction, lost, self._step_number(len(durable)), self.begun
            )
        index = sequence[min(self.position, len(sequence) - 1)][0] if sequence else 0
        message = f"{direction} {migration.id} failed at step {index + 1}: {failure_reason(exc)}"
        undone: list[int] = []
        compensated = True
        if direction == "apply" and durable:
            told, compensated = await self.compensation.roll_back(
                len(durable), undone, start_over=True
            )
            message += told
        elif direction == "rollback" and durable:
            message += f"; re-run rollback to resume after step {sequence[durable[-1]][0] + 1}"
        await scope.log.failed(migration, direction, message, self.begun)
        if direction == "apply" and compensated:
            # The file starts over at its first step, but resumable operations keep their
            # positions unless their step was rolled back: a batched update that failed
            # half-way (or finished, in a step without rollback) does not repeat its
            # documents when the file is applied again. Fenced: a run that lost the lock
            # meanwhile must not forget the positions the new holder's run is saving.
            forget = partial(
                scope.recorder.clear_state,
                migration.id, keep_steps_except=undone, token=scope.lock.token,
            )
            await quietly(fenced(scope.lock, forget))
        return MigrationError(message)
