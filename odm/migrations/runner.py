"""Applying and rolling back migrations: plan, apply, rollback, list, mark, unmark.

A file's steps run in order. Where the server runs transactions (a replica set or mongos, with
PyMongo's async driver) and the file does not say ``__transactional__ = False``, the steps run
in a transaction bound with ``session.bind()``, so that the steps' own driver calls and the
applied record join it without passing ``session=``. Operations MongoDB refuses in a
transaction (index builds, ``collMod``, drops, ``$out``/``$merge``) and batched updates split
it: what came before commits, the operation runs on its own, and a new transaction starts for
the steps after it.

Before each step the run proves it still holds the lock (:meth:`MigrationLock.prove`): inside
the open transaction for a step that joins one, so that a transaction commits only with a
proof that it was made under the lock; before the transaction for the first step of it, since a
proof inside would hold the lock document until the commit (and ``break-lock`` with it). The
last proof of a transaction is made just before it commits. A run that lost the lock stops
there: the open transaction is aborted and nothing is undone or recorded.

After each step the position is saved (inside the transaction when there is one), so that a
run that was killed resumes after the last step that was durably done. When a step fails, the
open transaction is aborted and the earlier steps that were committed are rolled back, newest
first, where they have a rollback.

A run claims a file's position when it starts the file (storing its lock token in it, in the
same write that reads it); every save of the position is a compare-and-set on that token, so a
run that lost the lock cannot move the position under the new holder. When the steps done
before a failed step are rolled back (the compensation), where that stands is saved too
(direction ``compensate``): the next apply finishes it before starting the file over.

Every saved position carries the checksum of the file it was saved for. A file edited since is
refused rather than resumed (its steps may have moved, and positions are kept by step), until
the run is told to start it over (``restart``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pymongo.errors import PyMongoError

from .. import drivers
from ..exceptions import MigrationError
from . import loader
from .loader import Migration
from .lock import LockLost, MigrationLock
from .operations import (
    Context,
    Operation,
    StepAction,
    bind_context,
    describe_action,
    resolve_action,
    unbind_context,
)
from .planning import describe_step
from .recorder import AppliedRecord, Recorder

#: Set to ``1`` to run as on a server without transactions (tests of the standalone path).
NO_TRANSACTIONS_ENV = "ODM_MIGRATIONS_NO_TRANSACTIONS"

Direction = Literal["apply", "rollback"]
State = Literal["applied", "pending", "changed", "missing", "renamed"]


@dataclass(frozen=True)
class Status:
    """One row of ``list``: a migration file and/or its applied record.

    ``renamed``: a file not applied under its id whose content (checksum) is that of an applied
    migration whose file is gone, ``renamed_from``; ``record`` is that migration's record.
    """

    id: str
    state: State
    migration: Migration | None
    record: AppliedRecord | None
    renamed_from: str | None = None


async def supports_transactions(database: Any) -> bool:
    """Tell whether migrations on ``database`` can run in transactions.

    That needs a replica set or mongos, and PyMongo's async driver (whose ``session.bind()``
    lets a step's own calls join the transaction); Motor runs without.
    """
    if os.environ.get(NO_TRANSACTIONS_ENV) == "1":
        return False
    try:
        if drivers.driver_of(database.client) != "pymongo":
            return False
    except MigrationError:
        return False
    hello = await database.client.admin.command("hello")
    replicated = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    return replicated and "logicalSessionTimeoutMinutes" in hello


class OutcomeUnknown(MigrationError):
    """A commit (or the record's write) failed, and whether it happened cannot be read back.

    The run then undoes nothing and keeps its saved positions, which were written with what
    they describe: the next run reads what was stored and goes on from there.
    """


class _Transaction:
    """A transaction bound to the running task, opened lazily and closed between segments.

    It opens only after a proof of the lock made outside it, with the heartbeat paused: from
    then on only a takeover or ``break-lock`` writes the lock document, and the proofs made
    inside the transaction fail on exactly that. It commits only after one more proof in it.
    """

    def __init__(self, client: Any, lock: MigrationLock) -> None:
        self.client = client
        self.lock = lock
        self.session: Any = None
        self.binding: Any = None

    @property
    def open(self) -> bool:
        return self.session is not None

    async def begin(self) -> None:
        if self.session is not None:
            return
        await self.lock.pause()
        try:
            await self.lock.prove()
            self.session = await drivers.start_session(self.client)
            await drivers.start_transaction(self.session)
            self.binding = self.session.bind(end_session=False)
            await self.binding.__aenter__()
        except BaseException:
            await self._close(commit=False)
            raise

    async def _close(self, commit: bool) -> None:
        session, binding = self.session, self.binding
        self.session = self.binding = None
        try:
            if session is None:
                return
            stamp = uuid.uuid4().hex
            try:
                try:
                    if commit:
                        # Bound: the proof joins the transaction and commits with it, or
                        # fails it (LockLost) and nothing of the transaction is kept.
                        await self.lock.prove(stamp=stamp)
                finally:
                    if binding is not None:
                        await binding.__aexit__(None, None, None)
                if commit:
                    await self._commit(session, stamp)
            finally:
                if session.in_transaction:  # not committed: an abort, or a failed proof
                    await _quietly(session.abort_transaction())
                await drivers.resolve(session.end_session())
        finally:
            self.lock.resume()

    async def _commit(self, session: Any, stamp: str) -> None:
        try:
            await session.commit_transaction()
        except PyMongoError as exc:
            # The answer may be lost after the commit happened (a network error, a write concern
            # error): undoing steps or starting the file over would then repeat committed work.
            # The lock proof made last in the transaction carries a stamp only its commit stores.
            # Killing the session first settles it: a commit still on its way cannot land after
            # the stamp is read, and one that failed leaves no open transaction behind holding
            # locks (the driver does not abort after a failed commit; a rollback's DDL would
            # wait for the server to reap it).
            try:
                await self.client.admin.command({"killSessions": [session.session_id]})
                committed = await self.lock.stamped(stamp)
            except PyMongoError as unknown:
                raise OutcomeUnknown(
                    f"{type(exc).__name__} while committing, and whether it committed cannot be "
                    f"read back ({type(unknown).__name__}: {unknown})"
                ) from exc
            if not committed:
                raise

    async def commit(self) -> None:
        """Commit with a last proof of the lock; an answer lost after the commit is no error."""
        await self._close(commit=True)

    async def abort(self) -> None:
        await self._close(commit=False)


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
        known = {m.id for m in migrations}
        gone: dict[str, list[str]] = {}  # checksum -> applied ids whose file is gone
        for mid in sorted(set(applied) - known):
            gone.setdefault(applied[mid].checksum, []).append(mid)
        renamed_away: set[str] = set()
        rows = []
        for migration in migrations:
            record = applied.get(migration.id)
            if record is not None:
                state: State = "applied" if record.checksum == migration.checksum else "changed"
                rows.append(Status(migration.id, state, migration, record))
            elif migration.checksum in gone:
                old = gone[migration.checksum][0]
                renamed_away.add(old)
                rows.append(Status(migration.id, "renamed", migration, applied[old], old))
            else:
                rows.append(Status(migration.id, "pending", migration, None))
        for mid in sorted(set(applied) - known - renamed_away):
            rows.append(Status(mid, "missing", None, applied[mid]))
        return rows

    def _refuse_changed(self, rows: Sequence[Status], force: bool) -> None:
        changed = [row.id for row in rows if row.state == "changed"]
        if changed and not force:
            raise MigrationError(
                f"changed since applied: {', '.join(changed)} (the file's checksum differs "
                "from the recorded one); restore the file, record the edit with `odm migrate "
                "mark ID`, or pass --force"
            )
        for mid in changed:
            self.echo(f"warning: {mid} changed since it was applied (--force)")

    def _refuse_renamed(self, rows: Sequence[Status]) -> None:
        # No --force: applying a renamed file would run the same migration a second time.
        renamed = [row for row in rows if row.state == "renamed"]
        if renamed:
            pairs = ", ".join(f"{row.id} (applied as {row.renamed_from})" for row in renamed)
            raise MigrationError(
                f"renamed since applied: {pairs}: the same content is applied under the old id, "
                f"whose file is gone, and will not be applied again; record the new name with "
                f"`odm migrate mark {renamed[0].id}`, or restore the old file name"
            )

    def _warn_copies(self, rows: Sequence[Status], pending: Sequence[Migration]) -> None:
        """Warn of a pending file whose content is that of a file applied under another id.

        Not refused: the same steps may be meant to run twice (a re-run backfill); but a copy
        made by mistake would repeat them, so both files are named.
        """
        applied = {
            row.migration.checksum: row.id
            for row in rows if row.state == "applied" and row.migration is not None
        }
        for migration in pending:
            twin = applied.get(migration.checksum)
            if twin is not None:
                self.echo(
                    f"warning: {migration.id} ({migration.path.name}) has the same content "
                    f"(checksum) as {twin}, which is applied: applying it runs the same steps "
                    "again"
                )

    def _pending(self, rows: Sequence[Status], to: str | None) -> list[Migration]:
        pending = [row.migration for row in rows if row.state == "pending" and row.migration]
        if to is None:
            return pending
        migrations = [row.migration for row in rows if row.migration]
        target = loader.resolve_id(migrations, to)
        wanted = loader.ancestors(migrations, target) | {target}
        return [m for m in pending if m.id in wanted]

    async def plan(
        self, to: str | None = None, force: bool = False, restart: Sequence[str] = ()
    ) -> list[Migration]:
        """Print what :meth:`apply` would do and return the files it would apply."""
        await self._load(await self.recorder.applied())
        rows = await self.status()
        self._refuse_changed(rows, force)
        self._refuse_renamed(rows)
        pending = self._pending(rows, to)
        self._warn_copies(rows, pending)
        restarting = self._restarting(rows, pending, restart)
        await self._refuse_stale(pending, "apply", restarting)
        self.transactions = await supports_transactions(self.database)
        if not pending:
            self.echo("nothing to apply")
        name = str(getattr(self.database, "name", "db"))
        for migration in pending:
            mode = self._mode(migration)
            again = ", from its first step (--restart)" if migration.id in restarting else ""
            self.echo(f"apply {migration.id} ({len(migration.steps)} step(s), {mode}{again})")
            if migration.id not in restarting:
                await self._plan_compensation(migration)
            use_tx = self.transactions and migration.transactional
            for number, item in enumerate(migration.steps, 1):
                self.echo(f"  {number}. {describe_step(item.apply, name, use_tx)}")
        return pending

    async def _plan_compensation(self, migration: Migration) -> None:
        """Say which rollbacks an earlier run left to do before the file starts over."""
        state = await self.recorder.file_state(migration.id)
        if state is None or state.get("direction") != "compensate":
            return
        left = [
            str(index + 1)
            for index in reversed(range(min(int(state.get("next_step", 0)), len(migration.steps))))
            if migration.steps[index].rollback is not None
        ]
        self.echo(
            f"  first finishes rolling back step(s) {', '.join(left) or '(none left)'}: an "
            "earlier run stopped while rolling back after a failure"
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
            self._refuse_changed(rows, force)
            self._refuse_renamed(rows)
            pending = self._pending(rows, to)
            self._warn_copies(rows, pending)
            restarting = self._restarting(rows, pending, restart)
            await self._refuse_stale(pending, "apply", restarting)
            if not pending:
                self.echo("nothing to apply")
                return []
            await self._forget_positions(restarting, "apply")
            done = []
            for migration in pending:
                await self._run(migration, "apply", lock, forced=force)
                done.append(migration.id)
            return done

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
            applied_rows = [row for row in rows if row.state in ("applied", "changed")]
            self._refuse_unknown(rows, force)
            if to is not None:
                migrations = [row.migration for row in rows if row.migration]
                target = loader.resolve_id(migrations, to)
                keep = loader.ancestors(migrations, target) | {target}
                targets = [row for row in reversed(applied_rows) if row.id not in keep]
            else:
                count = 1 if steps is None else steps
                if count < 1:
                    raise MigrationError(f"--steps must be at least 1, not {count}")
                targets = list(reversed(applied_rows))[:count]
            self._refuse_needed(rows, targets)
            self._refuse_changed(targets, force)
            chosen = [row.migration for row in targets if row.migration is not None]
            restarting = self._restarting(rows, chosen, restart)
            await self._refuse_stale(chosen, "rollback", restarting)
            if not targets:
                self.echo("nothing to roll back")
                return []
            await self._forget_positions(restarting, "rollback")
            done = []
            for row in targets:
                assert row.migration is not None
                await self._run(row.migration, "rollback", lock, forced=force)
                done.append(row.id)
            return done

    def _restarting(
        self, rows: Sequence[Status], chosen: Sequence[Migration], restart: Sequence[str]
    ) -> set[str]:
        """Return the ids ``restart`` names, each of a file this run is about to run."""
        migrations = [row.migration for row in rows if row.migration]
        ids = {m.id for m in chosen}
        restarting: set[str] = set()
        for given in restart:
            mid = loader.resolve_id(migrations, given)
            if mid not in ids:
                raise MigrationError(
                    f"--restart {given}: {mid} is not among the files this run would run "
                    f"({', '.join(sorted(ids)) or 'none'})"
                )
            restarting.add(mid)
        return restarting

    async def _refuse_stale(
        self, chosen: Sequence[Migration], direction: Direction, restarting: set[str]
    ) -> None:
        """Refuse to resume a file from positions saved for other content of it.

        Positions are kept by step index and operation count: after an edit they would point
        at other steps, skipping new ones and repeating done ones, so nothing is resumed.
        """
        stale = [
            m for m in chosen
            if m.id not in restarting
            and await self.recorder.saved_for_other_content(m.id, m.checksum)
        ]
        if not stale:
            return
        names = ", ".join(f"{m.id} ({m.path})" for m in stale)
        flags = " ".join(f"--restart {m.id}" for m in stale)
        raise MigrationError(
            f"changed since an earlier {direction} of it stopped part-way: {names}; the "
            "positions that run saved are for other content of the file (its checksum differs, "
            "or was not recorded), and resuming from them could skip or repeat steps. Check "
            "what that run left done (steps without a rollback stay done), then start the file "
            f"over: run `odm migrate {direction}` again with `{flags}`; or restore the file to "
            "resume"
        )

    async def _forget_positions(self, restarting: set[str], direction: Direction) -> None:
        for mid in sorted(restarting):
            await self.recorder.clear_state(mid)
            self.echo(f"{direction} {mid}: starting over (--restart): saved positions forgotten")

    def _refuse_unknown(self, rows: Sequence[Status], force: bool) -> None:
        # An applied migration without its file (or under another name) cannot be rolled back,
        # and what it depends on is only known from its record: refuse unless told to go on.
        unknown = [
            f"{row.renamed_from} (its file renamed to {row.id})" if row.state == "renamed"
            else row.id
            for row in rows if row.state in ("missing", "renamed")
        ]
        if unknown and not force:
            raise MigrationError(
                f"applied but the file is missing: {', '.join(unknown)}; restore the file, "
                "`odm migrate mark` a renamed one, `odm migrate unmark` one that is gone for "
                "good, or pass --force to roll back what nothing applied depends on"
            )
        for name in unknown:
            self.echo(f"warning: {name} is applied but its file is missing (--force)")

    def _refuse_needed(self, rows: Sequence[Status], targets: Sequence[Status]) -> None:
        """Refuse to roll back a migration that one staying applied depends on."""
        applied = [row for row in rows if row.record is not None]
        staying = {row.record.id: row for row in applied if row.record is not None}
        for target in targets:
            staying.pop(target.id, None)
            assert target.record is not None
            for row in staying.values():
                record = row.record
                assert record is not None
                name = record.id if row.migration is not None else f"{record.id} (file missing)"
                if row.migration is not None:
                    depends: frozenset[str] | None = row.migration.depends
                elif record.depends is not None:
                    depends = frozenset(record.depends)
                else:
                    depends = None
                if depends is not None and target.id not in depends:
                    continue
                if depends is None and not _applied_after(record, target.record):
                    continue
                why = "depends on it" if depends is not None else (
                    "was applied after it and its dependencies were not recorded"
                )
                raise MigrationError(
                    f"cannot roll back {target.id}: {name}, which stays applied, {why}; roll "
                    "that back first (restore its file if it is missing)"
                )

    async def mark(self, given: str) -> str:
        """Record a migration as applied without running it (or record its edited content).

        For a renamed file (its content applied under an id whose file is gone), the applied
        record moves to the new id and the log notes the rename.
        """
        migrations = await self._load(await self.recorder.applied())
        mid = loader.resolve_id(migrations, given)
        migration = next(m for m in migrations if m.id == mid)
        async with self.lock():
            row = next(row for row in await self.status() if row.id == mid)
            await self.recorder.clear_state(mid)
            if row.state == "renamed" and row.renamed_from is not None:
                await self.recorder.clear_state(row.renamed_from)
                await self.recorder.rename(row.renamed_from, mid)
                await self.recorder.log(
                    mid, "rename", checksum=migration.checksum, renamed_from=row.renamed_from
                )
                self.echo(f"recorded {row.renamed_from} as renamed to {mid} (already applied)")
                return mid
            await self.recorder.record_applied(
                mid, migration.checksum, 0, marked=True, depends=sorted(migration.depends)
            )
            await self.recorder.log(mid, "mark", checksum=migration.checksum)
        self.echo(f"marked {mid} as applied")
        return mid

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
        async with self.lock():
            await self.recorder.clear_state(mid)
            await self.recorder.forget(mid)
            await self.recorder.log(mid, "unmark", checksum=applied[mid].checksum)
        self.echo(f"unmarked {mid}")
        return mid

    def _sequence(self, migration: Migration, direction: Direction) -> list[tuple[int, Any]]:
        if direction == "apply":
            return [(i, s.apply) for i, s in enumerate(migration.steps)]
        return [(i, s.rollback) for i, s in reversed(list(enumerate(migration.steps)))]

    def _context(
        self, migration: Migration, direction: str, index: int, tx: bool, lock: MigrationLock
    ) -> Context:
        return Context(
            prove=lock.prove,
            database=self.database,
            migration_id=migration.id,
            checksum=migration.checksum,
            direction=direction,
            step_index=index,
            state=self.recorder.state,
            in_transaction=tx,
            transactions=self.transactions,
            echo=self.echo,
        )

    def _resolve(self, migration: Migration, action: StepAction) -> Any:
        with _exit_is_failure(migration):
            return resolve_action(action, self.database)

    async def _perform(self, migration: Migration, target: Any, context: Context) -> None:
        token = bind_context(context)
        try:
            with _exit_is_failure(migration):
                if isinstance(target, Operation):
                    await target.run(context)
                elif target is not None:
                    await target
        finally:
            unbind_context(token)

    async def _run(
        self, migration: Migration, direction: Direction, lock: MigrationLock, forced: bool
    ) -> None:
        sequence = self._sequence(migration, direction)
        use_tx = self.transactions and migration.transactional
        claimed = await self._claim(migration, lock)
        if direction == "apply" and claimed.get("direction") == "compensate":
            await self._finish_compensation(migration, sequence, claimed, lock, use_tx)
            claimed = await self._claim(migration, lock)
        saved = int(claimed.get("next_step", 0)) if claimed.get("direction") == direction else 0
        start = min(saved, len(sequence))
        if start == len(sequence) and start:
            # Killed between its last step and its record: only the record is left to write.
            self.echo(f"{direction} {migration.id}: resuming (every step done; recording it)")
        elif start:
            self.echo(f"{direction} {migration.id}: resuming at step {sequence[start][0] + 1}")
        else:
            self.echo(f"{direction} {migration.id}")
        tx = _Transaction(self.database.client, lock)
        durable = list(range(start))  # positions whose effects are stored for good
        pending: list[int] = []  # positions done inside the open transaction
        begun = time.monotonic()
        position = start
        recorded = False
        try:
            for position in range(start, len(sequence)):
                index, action = sequence[position]
                if action is None:
                    self.echo(f"  step {index + 1}: no {direction} (skipped)")
                    target: Any = None
                else:
                    target = self._resolve(migration, action)
                joinable = not (isinstance(target, Operation) and not target.transactional)
                try:
                    if tx.open and not joinable:
                        await tx.commit()  # proves the lock inside it first
                        durable.extend(pending)
                        pending.clear()
                    if use_tx and joinable and target is not None and not tx.open:
                        await tx.begin()  # proves the lock just before it opens
                    else:
                        await lock.prove()  # inside the open transaction when there is one
                except BaseException:
                    _discard(target)
                    raise
                context = self._context(migration, direction, index, tx.open, lock)
                await self._perform(migration, target, context)
                # Done, whether or not its position gets saved: a failure from here on must
                # roll it back too (outside a transaction its effects are already stored).
                (pending if tx.open else durable).append(position)
                await self._save_position(migration, lock, direction, position + 1)
            position = len(sequence)  # every step done: what is left is recording it
            # Inside the transaction when there is one; its commit proves the lock once more.
            await lock.prove()
            elapsed = int((time.monotonic() - begun) * 1000)
            await self._record(migration, direction, elapsed, in_transaction=tx.open)
            # Outside a transaction the record is stored for good: from here on nothing may be
            # undone, or the file would be recorded as done with its steps rolled back.
            recorded = not tx.open
            await self.recorder.log(
                migration.id,
                direction,
                checksum=migration.checksum,
                duration_ms=elapsed,
                forced=forced,
            )
            await self.recorder.clear_state(migration.id)
            await tx.commit()
        except Exception as exc:
            await _quietly(tx.abort())
            index = sequence[min(position, len(sequence) - 1)][0] if sequence else 0
            if recorded or isinstance(exc, OutcomeUnknown):
                raise await self._stop_undoing_nothing(
                    migration, direction, exc, begun, recorded
                ) from exc
            lost = exc if isinstance(exc, LockLost) else await _lost_or_none(lock)
            if lost is not None:
                # Another deployer holds the lock now and may be resuming this very file from
                # the saved position: undoing steps or forgetting positions would corrupt its run.
                kept = len(durable)  # the aborted transaction kept none of its steps
                where = (
                    f"before step {sequence[kept][0] + 1}" if kept < len(sequence)
                    else "before recording it"
                )
                message = (
                    f"{direction} {migration.id}: {lost}; stopped {where} with nothing undone "
                    f"and nothing recorded: the next {direction} resumes there"
                )
                await _quietly(
                    self.recorder.log(
                        migration.id, direction, checksum=migration.checksum, ok=False,
                        error=message, duration_ms=int((time.monotonic() - begun) * 1000),
                    )
                )
                raise LockLost(message, lost.holder) from exc
            reason = str(exc) if isinstance(exc, MigrationError) else f"{type(exc).__name__}: {exc}"
            message = f"{direction} {migration.id} failed at step {index + 1}: {reason}"
            undone: list[int] = []
            compensated = True
            if direction == "apply" and durable:
                told, compensated = await self._compensate(
                    migration, sequence, len(durable), undone, lock, use_tx, start_over=True
                )
                message += told
            elif direction == "rollback" and durable:
                message += f"; re-run rollback to resume after step {sequence[durable[-1]][0] + 1}"
            await _quietly(
                self.recorder.log(
                    migration.id,
                    direction,
                    checksum=migration.checksum,
                    ok=False,
                    error=message,
                    duration_ms=int((time.monotonic() - begun) * 1000),
                )
            )
            if direction == "apply" and compensated:
                # The file starts over at its first step, but resumable operations keep their
                # positions unless their step was rolled back: a batched update that failed
                # half-way (or finished, in a step without rollback) does not repeat its
                # documents when the file is applied again.
                await _quietly(self.recorder.clear_state(migration.id, keep_steps_except=undone))
            raise MigrationError(message) from exc
        except BaseException as exc:
            # Interrupted (Ctrl-C, a cancelled task): stop as a killed run would, so that the
            # next run resumes after the last step durably done. Nothing is undone (rolling back
            # would be more writes after being told to stop) and the saved positions stay; the
            # open transaction is aborted before the lock is released, so nothing of this run
            # commits after it.
            await _quietly(tx.abort())
            await self._report_interrupted(
                migration, direction, sequence, position, len(durable), exc, begun
            )
            raise
        self.echo(f"  done in {elapsed} ms")

    async def _record(
        self, migration: Migration, direction: Direction, elapsed: int, in_transaction: bool
    ) -> None:
        """Record the file as applied (or forget it, rolled back).

        Outside a transaction a write whose answer was lost (a network or write concern error)
        may have been stored all the same: it is read back, and counts as done when it was.
        """
        try:
            if direction == "apply":
                await self.recorder.record_applied(
                    migration.id, migration.checksum, elapsed, depends=sorted(migration.depends)
                )
            else:
                await self.recorder.forget(migration.id)
        except PyMongoError as exc:
            if in_transaction:
                raise  # the commit tells
            try:
                stored = await self._recorded(migration, direction)
            except PyMongoError as unknown:
                raise OutcomeUnknown(
                    f"{type(exc).__name__} while recording it, and whether it was recorded "
                    f"cannot be read back ({type(unknown).__name__}: {unknown})"
                ) from exc
            if not stored:
                raise

    async def _recorded(self, migration: Migration, direction: Direction) -> bool:
        """Tell whether the record says ``direction`` is done (the lock keeps others out)."""
        record = (await self.recorder.applied()).get(migration.id)
        if direction == "rollback":
            return record is None
        return record is not None and record.checksum == migration.checksum

    async def _stop_undoing_nothing(
        self, migration: Migration, direction: Direction, exc: Exception, begun: float,
        recorded: bool,
    ) -> MigrationError:
        """Return the error of a run that must not undo anything: recorded, or unsure whether.

        Its saved positions stay too: after an unknown commit they say where the file stands
        (they were committed with the steps, or not at all).
        """
        reason = str(exc) if isinstance(exc, MigrationError) else f"{type(exc).__name__}: {exc}"
        if recorded:
            message = (
                f"{direction} {migration.id}: done and recorded, but what follows the record "
                f"failed: {reason}"
            )
            await _quietly(self.recorder.clear_state(migration.id))
        else:
            message = (
                f"{direction} {migration.id}: {reason}; nothing undone: the next {direction} "
                "resumes from what was committed (`odm migrate list` shows whether the file "
                "was recorded)"
            )
        await _quietly(
            self.recorder.log(
                migration.id, direction, checksum=migration.checksum, ok=False, error=message,
                duration_ms=int((time.monotonic() - begun) * 1000),
            )
        )
        return MigrationError(message)

    async def _report_interrupted(
        self,
        migration: Migration,
        direction: Direction,
        sequence: list[tuple[int, Any]],
        position: int,
        kept: int,
        exc: BaseException,
        begun: float,
    ) -> None:
        """Say (and log) where an interrupted run stopped and where the next one resumes."""
        where = f"in step {sequence[position][0] + 1}" if position < len(sequence) else (
            "while recording it"
        )
        resumes = (
            f"resumes at step {sequence[kept][0] + 1}" if kept < len(sequence)
            else "only records it"
        )
        # Ctrl-C under asyncio.run() reaches the run as a cancellation of its task.
        how = "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__
        message = (
            f"{direction} {migration.id}: interrupted ({how}) {where}; nothing "
            f"undone and nothing recorded: the next {direction} {resumes}"
        )
        self.echo(message)
        await _quietly(
            self.recorder.log(
                migration.id, direction, checksum=migration.checksum, ok=False, error=message,
                duration_ms=int((time.monotonic() - begun) * 1000),
            )
        )

    async def _claim(self, migration: Migration, lock: MigrationLock) -> dict[str, Any]:
        """Prove the lock, then take (and read) the file's saved position for this run."""
        await lock.prove()
        return await self.recorder.claim(migration.id, migration.checksum, lock.token)

    async def _save_position(
        self, migration: Migration, lock: MigrationLock, direction: str, next_step: int,
        **extra: Any,
    ) -> None:
        """Save the file's position, only while this run still owns it (else ``LockLost``)."""
        saved = await self.recorder.save_step_position(
            migration.id, direction, next_step, migration.checksum, lock.token, **extra
        )
        if not saved:
            raise await _lost_or_none(lock) or LockLost(
                f"the saved position of {migration.id} was taken by another run (or forgotten) "
                "while this one ran it"
            )

    async def _finish_compensation(
        self,
        migration: Migration,
        sequence: list[tuple[int, Any]],
        claimed: dict[str, Any],
        lock: MigrationLock,
        use_tx: bool,
    ) -> None:
        """Finish rolling back what an earlier run left half rolled back, before starting over.

        That run failed at a step and stopped (killed, interrupted, or its lock lost) while it
        rolled back the steps done before it: the steps its position still counts are applied,
        and resuming after them would record the file with their effects undone.
        """
        done = int(claimed.get("next_step", 0))
        undone = [int(index) for index in claimed.get("undone", [])]
        begun = time.monotonic()
        self.echo(
            f"apply {migration.id}: an earlier run stopped while rolling back the steps done "
            f"before a failed step; finishing that rollback first ({done} step(s) to go)"
        )
        told, finished = await self._compensate(
            migration, sequence, done, undone, lock, use_tx, start_over=False
        )
        if not finished:
            message = f"apply {migration.id}: finishing the rollback an earlier run left{told}"
            await _quietly(
                self.recorder.log(
                    migration.id, "apply", checksum=migration.checksum, ok=False, error=message,
                    duration_ms=int((time.monotonic() - begun) * 1000),
                )
            )
            raise MigrationError(message)
        await self.recorder.clear_state(migration.id, keep_steps_except=undone)
        await self.recorder.log(
            migration.id, "compensate", checksum=migration.checksum,
            duration_ms=int((time.monotonic() - begun) * 1000),
        )
        self.echo(f"apply {migration.id}: rollback finished{told}; starting the file over")

    async def _compensate(
        self,
        migration: Migration,
        sequence: list[tuple[int, Any]],
        done: int,
        rolled_back: list[int],
        lock: MigrationLock,
        use_tx: bool,
        start_over: bool,
    ) -> tuple[str, bool]:
        """Roll back the first ``done`` steps, newest first; return what it says and whether
        it finished.

        Where it stands is saved (direction ``compensate``) before the first rollback and with
        each one, in the rollback's transaction when it runs in one: a run that dies or is
        stopped part-way leaves a position the next ``apply`` finishes the rollback from,
        instead of one counting steps that were rolled back as done. ``start_over`` saves the
        first of those positions (a failure just happened); ``rolled_back`` gathers the indexes
        undone, across runs.
        """
        undone: list[str] = []
        step_number = sequence[done - 1][0] + 1 if done else 0  # the one being rolled back
        try:
            if start_over:
                await self._save_position(
                    migration, lock, "compensate", done, undone=list(rolled_back)
                )
            for position in reversed(range(done)):
                index = sequence[position][0]
                rollback: StepAction | None = migration.steps[index].rollback
                if rollback is None:
                    continue
                step_number = index + 1
                await self._undo_step(
                    migration, index, rollback, position, rolled_back, lock, use_tx
                )
                undone.append(str(step_number))
        except LockLost as lost:
            return (
                f"; {lost}: stopped rolling back with step(s) {', '.join(undone) or 'none'} "
                "rolled back; the next apply finishes rolling back first",
                False,
            )
        except Exception as exc:
            return (
                f"; rolling back step {step_number} also failed ({type(exc).__name__}: {exc}): "
                "the database is partly migrated; the next apply tries rolling back from step "
                f"{step_number} again before starting the file over (`--restart "
                f"{migration.id}` starts it over without)",
                False,
            )
        except BaseException as exc:
            await self._report_stopped_compensating(migration, step_number, exc)
            raise
        if not undone:
            return "; earlier steps have no rollback and were left applied", True
        return f"; rolled back step(s) {', '.join(undone)}", True

    async def _undo_step(
        self,
        migration: Migration,
        index: int,
        rollback: StepAction,
        position: int,
        rolled_back: list[int],
        lock: MigrationLock,
        use_tx: bool,
    ) -> None:
        """Run one compensating rollback and save that it is done, fenced by the lock.

        A rollback that can join a transaction runs in one with its position: it is done and
        counted together, or neither. Outside a transaction, a run that dies between the two
        runs it again next time (such rollbacks, like such steps, must be safe to repeat).
        """
        target = self._resolve(migration, rollback)
        joinable = not (isinstance(target, Operation) and not target.transactional)
        tx = _Transaction(self.database.client, lock)
        try:
            if use_tx and joinable:
                await tx.begin()
            else:
                await lock.prove()
            context = self._context(migration, "compensate", index, tx.open, lock)
            await self._perform(migration, target, context)
            await self._save_position(
                migration, lock, "compensate", position, undone=[*rolled_back, index]
            )
            await tx.commit()
        except BaseException:
            _discard(target)
            await _quietly(tx.abort())
            raise
        rolled_back.append(index)

    async def _report_stopped_compensating(
        self, migration: Migration, step_number: int, exc: BaseException
    ) -> None:
        """Say (and log) that the rollback after a failure was interrupted, and what is next."""
        how = "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__
        message = (
            f"apply {migration.id}: interrupted ({how}) while rolling back step {step_number} "
            "after a failure; the file is not recorded, and the next apply finishes rolling "
            "back first"
        )
        self.echo(message)
        await _quietly(
            self.recorder.log(
                migration.id, "apply", checksum=migration.checksum, ok=False, error=message
            )
        )


def _applied_after(record: AppliedRecord, other: AppliedRecord) -> bool:
    # Without times to compare, assume the worst: it may depend on the other.
    if record.applied_at is None or other.applied_at is None:
        return True
    return record.applied_at >= other.applied_at


@contextlib.contextmanager
def _exit_is_failure(migration: Migration) -> Iterator[None]:
    """Make a step's ``sys.exit()`` (a ``SystemExit``) a failure of that step.

    Left to propagate, it would end ``odm migrate`` (or the application that runs the
    migrations) with the step's status, which may read as odm's own (3: the lock is held),
    without the failure being logged or the steps before it rolled back. A ``KeyboardInterrupt``
    is not caught: it stops the run (see :meth:`Runner._run`).
    """
    try:
        yield
    except SystemExit as exc:
        raise MigrationError(
            f"the step called {loader.exit_call(exc)} ({loader.where(exc, migration.path)}); a "
            "step fails by raising an exception, it must not exit"
        ) from exc


def _discard(target: Any) -> None:
    # A step's coroutine that will not run now: close it rather than leave it never awaited.
    if inspect.iscoroutine(target):
        target.close()


async def _lost_or_none(lock: MigrationLock) -> LockLost | None:
    # Why a step failed matters less than whether the lock is still ours: a lost lock means
    # another run may be resuming this file, so this one must leave its state alone.
    try:
        return await lock.lost_error()
    except Exception:
        return None


async def _quietly(awaitable: Any) -> None:
    # A cleanup must not hide the error that caused it.
    with contextlib.suppress(Exception):
        await awaitable


def describe(action: StepAction | None) -> str:
    """Describe a step action (re-exported for the CLI)."""
    return describe_action(action)
