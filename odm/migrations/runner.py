"""Applying and rolling back migrations: plan, apply, rollback, list, mark, unmark.

:class:`Runner` chooses the files a verb takes (:mod:`.selection`), holds the deploy lock
(:mod:`.lock`) and runs each file (:class:`~odm.migrations.file_run.FileRun`): its steps in
order, in a transaction fenced by the lock where they can join one (:mod:`.transaction`), its
position saved after each step and fenced by the run's lock token (:mod:`.positions`), the
steps done before a failed one rolled back (:mod:`.compensation`), and where a run that did not
finish stopped said and logged (:mod:`.reporting`). A mark or an unmark writes a change of the
records decided first, journaled where no transaction holds it (:mod:`.records_change`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ..exceptions import MigrationError
from . import loader
from .compensation import rollbacks_left
from .file_run import FileRun
from .loader import Migration
from .lock import MigrationLock, read_lock, shown_holder
from .operations import StepAction, describe_action
from .planning import describe_step
from .positions import saved_position
from .recorder import AppliedRecord, Recorder, log_entry, new_record, whole_number
from .records_change import ChangeJournal, RecordsChange, said, same_change
from .reporting import failure_reason
from .scope import Direction, RunScope
from .selection import (
    State,
    Status,
    file_statuses,
    pending_files,
    refuse_changed,
    refuse_needed,
    refuse_renamed,
    refuse_rolled_back,
    refuse_stale,
    refuse_unknown,
    restarting_ids,
    rollback_targets,
    warn_copies,
)
from .transaction import (
    NO_TRANSACTIONS_ENV,
    OutcomeUnknown,
    supports_transactions,
)

__all__ = [
    "NO_TRANSACTIONS_ENV",
    "Direction",
    "OutcomeUnknown",
    "Runner",
    "State",
    "Status",
    "describe",
    "logger",
    "supports_transactions",
]

#: Where a :class:`Runner` reports its progress unless given ``echo``: at INFO level, so that
#: an application (or its test suite) that migrates on startup prints nothing unless it asks,
#: by configuring logging or passing ``echo=print``; ``odm migrate`` prints.
logger = logging.getLogger("odm.migrations")


class Runner:
    """Runs the migrations of ``directory`` against ``database`` (a driver database object).

    Progress lines go to ``echo`` when given (``echo=print`` to see them), else to the
    ``odm.migrations`` logger at INFO level: quiet by default.
    """

    def __init__(
        self,
        database: Any,
        directory: Path | str,
        *,
        echo: Callable[[str], None] | None = None,
        lock_lease: float = 60.0,
        lock_timeout: float = 30.0,
    ) -> None:
        self.database = database
        self.directory = Path(directory)
        self.echo: Callable[[str], None] = echo if echo is not None else logger.info
        self.lock_lease = lock_lease
        self.lock_timeout = lock_timeout
        self.recorder = Recorder(database)
        self.transactions = False

    def migrations(self) -> list[Migration]:
        """Load the files, in dependency order (errors name the file or the cycle)."""
        return loader.load(self.directory)

    def lock(self) -> MigrationLock:
        """Return the deploy lock with this runner's lease and timeout."""
        return MigrationLock(
            self.database, lease=self.lock_lease, timeout=self.lock_timeout, echo=self.echo
        )

    def _journal(self) -> ChangeJournal:
        """Return what makes this runner's changes of the records and keeps their journal
        (made anew: ``echo`` may have been changed since)."""
        return ChangeJournal(
            self.recorder, self.database.client, self.echo, transactions=self.transactions
        )

    async def unfinished_note(self) -> str | None:
        """Say which mark or unmark an earlier run left part-way (``None``: none), for the
        verbs that only read."""
        return await self._journal().unfinished_note()

    async def _load(self, applied: Collection[str]) -> list[Migration]:
        """Load the files, naming a dependency that is applied but whose file is missing."""
        return loader.load(self.directory, applied)

    async def status(self, *, as_finished: bool = False) -> list[Status]:
        """Return every file and every applied record: applied, pending, changed or missing.

        A file depending on an applied migration whose file is gone is listed all the same
        (``apply`` and ``plan`` refuse it, naming that dependency). ``as_finished``: with the
        records as they will be once a mark or an unmark left part-way is finished.
        """
        applied = await self._applied(as_finished)
        migrations = loader.load(self.directory, applied, allow_applied_missing=True)
        return await self._with_stopped_rollbacks(file_statuses(migrations, applied))

    async def _applied(self, as_finished: bool) -> dict[str, AppliedRecord]:
        """Return the applied records (``as_finished``: once the change under way is done)."""
        applied = await self.recorder.applied()
        change = await self._journal().unfinished() if as_finished else None
        return applied if change is None else change.applied_after(applied)

    async def _with_stopped_rollbacks(self, rows: list[Status]) -> list[Status]:
        """Note on each applied file how many steps an earlier rollback of it left rolled back.

        A rollback that failed, was killed or lost the lock part-way leaves the file recorded
        as applied, and its position says how far it went (a position edited by hand is
        refused, naming it).
        """
        stopped = await self.recorder.stopped_rollbacks()
        return [
            replace(row, rolled_back=_steps_rolled_back(stopped[row.id], row.migration))
            if row.id in stopped and row.migration is not None and row.record is not None
            else row
            for row in rows
        ]

    async def _pending_to_apply(
        self, rows: Sequence[Status], to: str | None, force: bool, restart: Sequence[str]
    ) -> tuple[list[Migration], set[str]]:
        """Return the files ``apply`` takes and those it starts over, after the refusals."""
        refuse_changed(rows, force, self.echo)
        refuse_renamed(rows)
        refuse_rolled_back(rows, force, self.echo)
        pending = pending_files(rows, to)
        warn_copies(rows, pending, self.echo)
        restarting = restarting_ids(rows, pending, restart)
        await refuse_stale(self.recorder, pending, "apply", restarting)
        return pending, restarting

    async def plan(
        self, to: str | None = None, force: bool = False, restart: Sequence[str] = ()
    ) -> list[Migration]:
        """Print what :meth:`apply` would do and return the files it would apply.

        It only reads, so it takes no lock: while a run holds it (said first), what is applied
        may change under the plan.
        """
        await self._warn_if_running()
        note = await self.unfinished_note()
        if note is not None:
            self.echo(f"{note}; this plan shows the records as that leaves them")
        await self._load(await self._applied(as_finished=True))
        rows = await self.status(as_finished=True)
        pending, restarting = await self._pending_to_apply(rows, to, force, restart)
        self.transactions = await supports_transactions(self.database)
        if not pending:
            self.echo("nothing to apply")
        name = str(getattr(self.database, "name", "db"))
        for migration in pending:
            mode = self._mode(migration)
            again = ", from its first step (--restart)" if migration.id in restarting else ""
            self.echo(f"apply {migration.id} ({len(migration.steps)} step(s), {mode}{again})")
            if migration.id not in restarting:
                left = await rollbacks_left(self.recorder, migration)
                if left is not None:
                    self.echo(left)
            use_tx = self.transactions and migration.transactional
            for number, item in enumerate(migration.steps, 1):
                self.echo(f"  {number}. {describe_step(item.apply, name, use_tx)}")
        return pending

    async def _warn_if_running(self) -> None:
        """Say so when another run holds the lock: what it does may make the plan wrong."""
        held = await read_lock(self.database)
        if held and held.get("live"):
            self.echo(
                f"note: the migrations lock is held by {shown_holder(held.get('holder', '?'))}: "
                "a run may be applying or rolling back now, and this plan shows what is recorded "
                "before it ends"
            )

    def _mode(self, migration: Migration) -> str:
        if not migration.transactional:
            return "no transaction: __transactional__ = False"
        if not self.transactions:
            return "no transaction: the server does not support them"
        return "transactional: each step says whether it runs in the transaction"

    async def apply(
        self, to: str | None = None, force: bool = False, restart: Sequence[str] = ()
    ) -> list[str]:
        """Apply the pending migrations (up to ``to`` and its dependencies) under the lock.

        ``restart`` names files to start over from their first step, forgetting the positions
        an earlier (failed or killed) run saved; a file edited since that run needs it.
        """
        await self._load(await self.recorder.applied())  # fail on a bad file before the lock
        self.transactions = await supports_transactions(self.database)
        async with self.lock() as lock:
            await self._journal().finish_unfinished(lock)
            rows = await self.status()
            await self._load([row.id for row in rows if row.record is not None])
            pending, restarting = await self._pending_to_apply(rows, to, force, restart)
            if not pending:
                self.echo("nothing to apply")
                return []
            return await self._run_files(lock, pending, "apply", restarting, force)

    async def rollback(
        self,
        to: str | None = None,
        steps: int | None = None,
        force: bool = False,
        restart: Sequence[str] = (),
    ) -> list[str]:
        """Roll back the last ``steps`` applied migrations (1 by default), or all after ``to``.

        ``restart`` names files whose rollback starts over from their last step, forgetting the
        positions an earlier (killed) rollback saved; a file edited since that run needs it.
        """
        if to is not None and steps is not None:
            raise MigrationError("rollback takes --to or --steps, not both")
        self.transactions = await supports_transactions(self.database)
        async with self.lock() as lock:
            finished = await self._journal().finish_unfinished(lock)
            if to is None:
                _refuse_shifted_count(finished, steps)
            rows = await self.status()
            refuse_unknown(rows, force, self.echo)
            targets = rollback_targets(rows, to, steps)
            refuse_needed(rows, targets)
            refuse_changed(targets, force, self.echo)
            chosen = [row.migration for row in targets if row.migration is not None]
            restarting = restarting_ids(rows, chosen, restart)
            await refuse_stale(self.recorder, chosen, "rollback", restarting)
            if not targets:
                self.echo("nothing to roll back")
                return []
            return await self._run_files(lock, chosen, "rollback", restarting, force)

    async def _run_files(
        self,
        lock: MigrationLock,
        chosen: Sequence[Migration],
        direction: Direction,
        restarting: set[str],
        forced: bool,
    ) -> list[str]:
        """Forget the positions of the files started over, then run each file in turn."""
        for mid in sorted(restarting):
            await self.recorder.clear_state(mid)
            self.echo(f"{direction} {mid}: starting over (--restart): saved positions forgotten")
        scope = RunScope(self.database, self.recorder, lock, self.transactions, self.echo)
        done = []
        for migration in chosen:
            await FileRun(scope, migration, direction, forced).run()
            done.append(migration.id)
        return done

    async def mark(self, given: str) -> str:
        """Record a migration as applied without running it (or record its edited content).

        For a renamed file (its content applied under an id whose file is gone), the applied
        record moves to the new id and the log notes the rename. A file already applied as it
        is stays as it was recorded (when, by whom, whether it ran): marking it again changes
        nothing.
        """
        mid = loader.resolve_id(await self._load(await self.recorder.applied()), given)
        self.transactions = await supports_transactions(self.database)
        async with self.lock() as lock:
            finished = await self._journal().finish_unfinished(lock)
            # Read again under the lock: the file may have been applied, edited or removed
            # while this waited for it.
            row = next((r for r in await self.status() if r.id == mid and r.migration), None)
            if row is None or row.migration is None:
                raise MigrationError(f"no migration {mid!r} in {self.directory}")
            if row.state == "applied" and same_change(finished, "mark", mid):
                return mid  # what was asked, finished (and said) above
            if row.state == "applied" and not row.rolled_back:
                self.echo(f"{mid} is already applied (nothing to mark)")
                return mid
            change = await self._marking(row, row.migration)
            await self._change_records(lock, change)
        self.echo(said(change))
        return mid

    async def _marking(self, row: Status, migration: Migration) -> RecordsChange:
        """Return what recording ``row``'s file as applied as it is now writes (a rename moves
        its record)."""
        mid, checksum = migration.id, migration.checksum
        if row.state == "renamed" and row.renamed_from is not None:
            old = row.renamed_from
            moved = await self.recorder.applied_collection.find_one({"_id": old})
            if moved is None:  # read under the lock with the rows: only a hand removes it
                raise MigrationError(f"{old} is no longer applied: nothing to rename")
            return RecordsChange(
                "rename", mid,
                log_entry(mid, "rename", checksum=checksum, renamed_from=old),
                forget_positions=(mid, old), put={**moved, "_id": mid}, remove=(old,),
            )
        log = log_entry(mid, "mark", checksum=checksum)
        if row.record is not None:
            # Applied and edited since (or its rollback stopped part-way): the record keeps
            # when, by whom and how it was applied; it takes the content as it is now.
            update = {"checksum": checksum, "depends": sorted(migration.depends)}
            return RecordsChange("mark", mid, log, forget_positions=(mid,), update=update)
        record = new_record(mid, checksum, 0, marked=True, depends=migration.depends)
        return RecordsChange("mark", mid, log, forget_positions=(mid,), put=record)

    async def _change_records(self, lock: MigrationLock, change: RecordsChange) -> None:
        """Make the writes of ``change`` (a mark or an unmark) all or none: in one transaction
        fenced by ``lock`` where the server runs them, else noted as under way until done. The
        transaction runs again when it fails transiently (a write conflict), while the lease
        lasts (:meth:`ChangeJournal.in_transaction`).

        A failure says that nothing was changed, or, without a transaction, that the next
        command finishes what was begun; a commit whose answer was lost and that cannot be read
        back says so (:class:`OutcomeUnknown`).
        """
        what = change.describe()
        journal = self._journal()
        if not self.transactions:
            await journal.journaled(lock, change)
            return
        try:
            # Run again on a transient failure (a write conflict), as a file's transaction is.
            await journal.in_transaction(lock, partial(journal.make, change))
        except OutcomeUnknown as exc:
            raise OutcomeUnknown(
                f"{what}: {exc}; `odm migrate list` shows what is recorded"
            ) from exc
        except Exception as exc:
            raise MigrationError(
                f"{what} failed, nothing was changed: {failure_reason(exc)}"
            ) from exc

    async def unmark(self, given: str) -> str:
        """Forget that a migration was applied, without running its rollback."""
        applied = await self.recorder.applied()
        unfinished = await self._journal().unfinished()
        # A mark or an unmark left part-way counts as done: it is finished under the lock.
        known = set(applied) | ({unfinished.migration} if unfinished is not None else set())
        try:
            mid = loader.resolve_id(await self._load(applied), given)
        except MigrationError:
            # An applied record whose file is gone is named from the records (id or prefix).
            try:
                mid = loader.resolve_name(sorted(known), given)
            except MigrationError:
                mid = given.removesuffix(".py")
        if mid not in known:
            raise MigrationError(f"{mid} is not applied")
        self.transactions = await supports_transactions(self.database)
        async with self.lock() as lock:
            finished = await self._journal().finish_unfinished(lock)
            # Read again under the lock: a rollback may have forgotten it while this waited.
            record = (await self.recorder.applied()).get(mid)
            if record is None and same_change(finished, "unmark", mid):
                return mid  # what was asked, finished (and said) above
            if record is None:
                raise MigrationError(f"{mid} is not applied")
            change = RecordsChange(
                "unmark", mid, log_entry(mid, "unmark", checksum=record.checksum),
                forget_positions=(mid,), remove=(mid,),
            )
            await self._change_records(lock, change)
        self.echo(said(change))
        return mid


def _refuse_shifted_count(finished: RecordsChange | None, steps: int | None) -> None:
    """Stop a rollback of the last ``steps`` after finishing ``finished`` (a mark or an unmark
    an earlier run left part-way) when it changes which migrations are applied: the last ones
    are then not those the user saw when typing the command (an unfinished unmark of the last
    would shift the rollback onto the one before it)."""
    if finished is None or not finished.changes_which_applied():
        return
    last = "last applied migration" if steps in (None, 1) else f"last {steps} applied migrations"
    raise MigrationError(
        f"rollback stopped after finishing `{finished.describe()}`, which changed which "
        f"migrations are applied, so the {last} may not be what you meant: nothing was rolled "
        "back; check `odm migrate list` and run the command again"
    )


def _steps_rolled_back(position: dict[str, Any], migration: Migration) -> int:
    """Return how many steps of ``migration`` a stopped rollback's ``position`` rolled back."""
    if position.get("checksum") == migration.checksum:
        return saved_position(position, migration).next_step
    # Saved for other content of the file (edited since, which `plan` and `rollback` refuse to
    # resume): its count is of other steps; what it tells is that the rollback went part-way.
    count: Any = position.get("next_step")
    return int(count) if whole_number(count) and count >= 1 else 1


def describe(action: StepAction | None) -> str:
    """Describe a step action (re-exported for the CLI)."""
    return describe_action(action)
