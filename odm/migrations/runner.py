"""Applying and rolling back migrations: plan, apply, rollback, list, mark, unmark.

:class:`Runner` chooses the files a verb takes (:mod:`.selection`), holds the deploy lock
(:mod:`.lock`) and runs each file (:class:`~odm.migrations.file_run.FileRun`): its steps in
order, in a transaction fenced by the lock where they can join one (:mod:`.transaction`), its
position saved after each step and fenced by the run's lock token (:mod:`.positions`), the
steps done before a failed one rolled back (:mod:`.compensation`), and where a run that did not
finish stopped said and logged (:mod:`.reporting`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..exceptions import MigrationError
from . import loader
from .cleanup import quietly
from .compensation import rollbacks_left
from .file_run import FileRun
from .loader import Migration
from .lock import MigrationLock, read_lock, shown_holder
from .operations import StepAction, describe_action
from .planning import describe_step
from .positions import saved_position
from .recorder import Recorder, whole_number
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
    FencedTransaction,
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

    async def _load(self, applied: Collection[str]) -> list[Migration]:
        """Load the files, naming a dependency that is applied but whose file is missing."""
        return loader.load(self.directory, applied)

    async def status(self) -> list[Status]:
        """Return every file and every applied record: applied, pending, changed or missing.

        A file depending on an applied migration whose file is gone is listed all the same
        (``apply`` and ``plan`` refuse it, naming that dependency).
        """
        applied = await self.recorder.applied()
        migrations = loader.load(self.directory, applied, allow_applied_missing=True)
        return await self._with_stopped_rollbacks(file_statuses(migrations, applied))

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
        await self._load(await self.recorder.applied())
        rows = await self.status()
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
            # Read again under the lock: the file may have been applied, edited or removed
            # while this waited for it.
            row = next((r for r in await self.status() if r.id == mid and r.migration), None)
            if row is None or row.migration is None:
                raise MigrationError(f"no migration {mid!r} in {self.directory}")
            if row.state == "applied" and not row.rolled_back:
                self.echo(f"{mid} is already applied (nothing to mark)")
                return mid
            migration = row.migration
            done = await self._all_or_nothing(
                lock, f"mark {mid}", lambda: self._mark_row(row, migration)
            )
        self.echo(done)
        return mid

    async def _all_or_nothing(
        self, lock: MigrationLock, what: str, write: Callable[[], Awaitable[str]]
    ) -> str:
        """Make the writes of ``write`` (a mark or an unmark, several writes) all or none:
        in one transaction fenced by ``lock`` where the server runs them; return what
        ``write`` says it did.

        A failure says that nothing was changed; a commit whose answer was lost and that cannot
        be read back says so (:class:`OutcomeUnknown`). Without transactions (a standalone
        server) the writes run one after the other.
        """
        if not self.transactions:
            return await write()
        tx = FencedTransaction(self.database.client, lock)
        try:
            await tx.begin()
            said = await write()
            await tx.commit()
        except OutcomeUnknown as exc:
            raise OutcomeUnknown(
                f"{what}: {exc}; `odm migrate list` shows what is recorded"
            ) from exc
        except Exception as exc:
            await quietly(tx.abort())
            raise MigrationError(
                f"{what} failed, nothing was changed: {failure_reason(exc)}"
            ) from exc
        except BaseException:
            await quietly(tx.abort())
            raise
        return said

    async def _mark_row(self, row: Status, migration: Migration) -> str:
        """Record ``row``'s file as applied as it is now (a rename moves its record); return
        what was done."""
        mid = migration.id
        await self.recorder.clear_state(mid)
        if row.state == "renamed" and row.renamed_from is not None:
            await self.recorder.clear_state(row.renamed_from)
            await self.recorder.rename(row.renamed_from, mid)
            await self.recorder.log(
                mid, "rename", checksum=migration.checksum, renamed_from=row.renamed_from
            )
            return f"recorded {row.renamed_from} as renamed to {mid} (already applied)"
        if row.record is not None:
            # Applied and edited since (or its rollback stopped part-way): the record keeps
            # when, by whom and how it was applied; it takes the content as it is now.
            await self.recorder.record_content(mid, migration.checksum, migration.depends)
        else:
            await self.recorder.record_applied(
                mid, migration.checksum, 0, marked=True, depends=sorted(migration.depends)
            )
        await self.recorder.log(mid, "mark", checksum=migration.checksum)
        return f"marked {mid} as applied"

    async def unmark(self, given: str) -> str:
        """Forget that a migration was applied, without running its rollback."""
        applied = await self.recorder.applied()
        try:
            mid = loader.resolve_id(await self._load(applied), given)
        except MigrationError:
            # An applied record whose file is gone is named from the records (id or prefix).
            try:
                mid = loader.resolve_name(sorted(applied), given)
            except MigrationError:
                mid = given.removesuffix(".py")
        if mid not in applied:
            raise MigrationError(f"{mid} is not applied")
        self.transactions = await supports_transactions(self.database)
        async with self.lock() as lock:
            # Read again under the lock: a rollback may have forgotten it while this waited.
            record = (await self.recorder.applied()).get(mid)
            if record is None:
                raise MigrationError(f"{mid} is not applied")

            async def forget() -> str:
                await self.recorder.clear_state(mid)
                await self.recorder.forget(mid)
                await self.recorder.log(mid, "unmark", checksum=record.checksum)
                return f"unmarked {mid}"

            done = await self._all_or_nothing(lock, f"unmark {mid}", forget)
        self.echo(done)
        return mid


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
