"""Compensation: rolling back, newest first, the steps an apply did before the step that failed.

Where it stands is saved too (direction ``compensate``): a run that dies or is stopped while it
rolls back leaves a position the next ``apply`` finishes the rollback from, before it starts
the file over, instead of one counting steps that were rolled back as done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from ..exceptions import MigrationError
from .cleanup import discard, error_text, quietly
from .loader import Migration
from .lock import LockLost
from .operations import StepAction
from .positions import SavedPosition, saved_position
from .recorder import Recorder
from .records_change import fenced
from .reporting import elapsed_ms
from .scope import RunScope, StepSequence
from .step_actions import joins_transaction, perform, resolve


async def rollbacks_left(recorder: Recorder, migration: Migration) -> str | None:
    """Say which rollbacks an earlier run left to do before the file starts over (``None``:
    it left none)."""
    state = saved_position(await recorder.file_state(migration.id), migration)
    if state.direction != "compensate":
        return None
    left = [
        str(index + 1)
        for index in reversed(range(state.next_step))
        if migration.steps[index].rollback is not None
    ]
    return (
        f"  first finishes rolling back step(s) {', '.join(left) or '(none left)'}: an "
        "earlier run stopped while rolling back after a failure"
    )


@dataclass(frozen=True)
class Compensation:
    """Rolls back the steps of ``migration`` (run in ``sequence``) that an apply did, each in a
    transaction where ``use_tx`` says the file's steps run in one and the rollback can join it."""

    scope: RunScope
    migration: Migration
    sequence: StepSequence
    use_tx: bool

    async def finish_left(self, claimed: SavedPosition) -> None:
        """Finish rolling back what an earlier run left half rolled back, before starting over.

        That run failed at a step and stopped (killed, interrupted, or its lock lost) while it
        rolled back the steps done before it: the steps its position (``claimed``) still counts
        are applied, and resuming after them would record the file with their effects undone.
        """
        migration, scope = self.migration, self.scope
        done = claimed.next_step
        undone = list(claimed.undone)
        begun = time.monotonic()
        scope.echo(
            f"apply {migration.id}: an earlier run stopped while rolling back the steps done "
            f"before a failed step; finishing that rollback first ({done} step(s) to go)"
        )
        told, finished = await self.roll_back(done, undone, start_over=False)
        if not finished:
            message = f"apply {migration.id}: finishing the rollback an earlier run left{told}"
            await scope.log.failed(migration, "apply", message, begun)
            raise MigrationError(message)
        # Fenced, as every write made without a transaction: a run that lost the lock since
        # its last rollback must not forget the positions (nor log) under the new holder.
        lock = scope.lock
        await fenced(lock, partial(
            scope.recorder.clear_state, migration.id, keep_steps_except=undone, token=lock.token
        ))
        await fenced(lock, partial(
            scope.recorder.log, migration.id, "compensate", checksum=migration.checksum,
            duration_ms=elapsed_ms(begun),
        ))
        if not done:
            told = ""  # nothing was left: "no rollback, left applied" would speak of nothing
        scope.echo(f"apply {migration.id}: rollback finished{told}; starting the file over")

    async def roll_back(
        self, done: int, rolled_back: list[int], start_over: bool
    ) -> tuple[str, bool]:
        """Roll back the first ``done`` steps, newest first; return what it says and whether
        it finished.

        Where it stands is saved (direction ``compensate``) before the first rollback and with
        each one, in the rollback's transaction when it runs in one. ``start_over`` saves the
        first of those positions (a failure just happened); ``rolled_back`` gathers the indexes
        undone, across runs.
        """
        migration, sequence = self.migration, self.sequence
        undone: list[str] = []
        step_number = sequence[done - 1][0] + 1 if done else 0  # the one being rolled back
        try:
            if start_over:
                await self.scope.positions.save(
                    migration, "compensate", done, undone=list(rolled_back)
                )
            for position in reversed(range(done)):
                index = sequence[position][0]
                rollback: StepAction | None = migration.steps[index].rollback
                if rollback is None:
                    continue
                step_number = index + 1
                await self._undo_step(index, rollback, position, rolled_back)
                undone.append(str(step_number))
        except LockLost as lost:
            return (
                f"; {lost}: stopped rolling back with step(s) {', '.join(undone) or 'none'} "
                "rolled back; the next apply finishes rolling back first",
                False,
            )
        except Exception as exc:
            return (
                f"; rolling back step {step_number} also failed ({error_text(exc)}): "
                "the database is partly migrated; the next apply tries rolling back from step "
                f"{step_number} again before starting the file over (`--restart "
                f"{migration.id}` starts it over without)",
                False,
            )
        except BaseException as exc:
            await self.scope.log.stopped_compensating(migration, step_number, exc)
            raise
        if not undone:
            return "; earlier steps have no rollback and were left applied", True
        return f"; rolled back step(s) {', '.join(undone)}", True

    async def _undo_step(
        self, index: int, rollback: StepAction, position: int, rolled_back: list[int]
    ) -> None:
        """Run one compensating rollback and save that it is done, fenced by the lock.

        A rollback that can join a transaction runs in one with its position: it is done and
        counted together, or neither. Outside a transaction, a run that dies between the two
        runs it again next time (such rollbacks, like such steps, must be safe to repeat).
        """
        migration, scope = self.migration, self.scope
        target = resolve(migration, rollback, scope.database)
        tx = scope.transaction()
        try:
            if self.use_tx and joins_transaction(target):
                await tx.begin()
            else:
                await scope.lock.prove()
            context = scope.context(migration, "compensate", index, tx.open)
            await perform(migration, target, context)
            await scope.positions.save(
                migration, "compensate", position, undone=[*rolled_back, index]
            )
            await tx.commit()
        except BaseException:
            discard(target)
            await quietly(tx.abort())
            raise
        rolled_back.append(index)
