"""A file's saved position (how many of its steps are done), fenced by the run's lock token.

After each step the position is saved (inside the transaction when there is one), so that a
run that was killed resumes after the last step that was durably done.

A run claims a file's position when it starts the file (storing its lock token in it, in the
same write that reads it); every save of the position is a compare-and-set on that token, so a
run that lost the lock cannot move the position under the new holder.

Every saved position carries the checksum of the file it was saved for. A file edited since is
refused rather than resumed (its steps may have moved, and positions are kept by step), until
the run is told to start it over (``restart``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import MigrationError
from .loader import Migration
from .lock import LockLost, MigrationLock
from .recorder import STATE, Recorder, file_key, not_written_by_odm, whole_number

#: What a file's saved position may say it was doing (nothing: claimed, no step done yet).
DIRECTIONS = ("apply", "rollback", "compensate")


@dataclass(frozen=True)
class SavedPosition:
    """Where an earlier run left a file: its ``direction``, how many steps of it were done
    (``next_step``), and, while compensating, the apply steps already rolled back (``undone``,
    0-based)."""

    direction: str | None = None
    next_step: int = 0
    undone: tuple[int, ...] = ()


def saved_position(doc: Mapping[str, Any] | None, migration: Migration) -> SavedPosition:
    """Read a file's saved position, refusing one odm cannot have written for this file.

    A position edited by hand (a negative or too large step count, a string) would make the
    run repeat steps, skip them, or record the file with none of them run.
    """
    if not doc:
        return SavedPosition()
    direction = doc.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise _bad_position(migration, "direction", direction, "apply, rollback or compensate")
    count = len(migration.steps)
    next_step = doc.get("next_step", 0)
    if not (whole_number(next_step) and 0 <= next_step <= count):
        raise _bad_position(
            migration, "next_step", next_step, f"a step count of this file (0 to {count})"
        )
    undone = doc.get("undone", [])
    if not (
        isinstance(undone, list)
        and all(whole_number(index) and 0 <= index < count for index in undone)
    ):
        raise _bad_position(
            migration, "undone", undone, f"a list of step indexes of this file (0 to {count - 1})"
        )
    return SavedPosition(direction, int(next_step), tuple(int(index) for index in undone))


def _bad_position(migration: Migration, field: str, value: Any, expected: str) -> MigrationError:
    return not_written_by_odm(
        f"{STATE}: the saved position {file_key(migration.id)!r} of {migration.id} holds",
        field, value, expected, f", or start the file over with `--restart {migration.id}`",
    )


async def lost_lock(lock: MigrationLock) -> LockLost | None:
    """Return the :class:`LockLost` naming the new holder, or ``None`` (still ours, or unknown).

    Why a step failed matters less than whether the lock is still ours: a lost lock means
    another run may be resuming this file, so this one must leave its state alone.
    """
    try:
        return await lock.lost_error()
    except Exception:
        return None


class FilePositions:
    """The saved positions of the files one run holding ``lock`` runs."""

    def __init__(self, recorder: Recorder, lock: MigrationLock) -> None:
        self.recorder = recorder
        self.lock = lock

    async def claim(self, migration: Migration) -> SavedPosition:
        """Prove the lock, then take (and read) the file's saved position for this run."""
        await self.lock.prove()
        doc = await self.recorder.claim(migration.id, migration.checksum, self.lock.token)
        return saved_position(doc, migration)

    async def save(
        self, migration: Migration, direction: str, next_step: int, **extra: Any
    ) -> None:
        """Save the file's position, only while this run still owns it (else ``LockLost``)."""
        saved = await self.recorder.save_step_position(
            migration.id, direction, next_step, migration.checksum, self.lock.token, **extra
        )
        if not saved:
            raise await lost_lock(self.lock) or LockLost(
                f"the saved position of {migration.id} was taken by another run (or forgotten) "
                "while this one ran it"
            )
