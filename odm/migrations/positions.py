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

from typing import Any

from .loader import Migration
from .lock import LockLost, MigrationLock
from .recorder import Recorder


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

    async def claim(self, migration: Migration) -> dict[str, Any]:
        """Prove the lock, then take (and read) the file's saved position for this run."""
        await self.lock.prove()
        return await self.recorder.claim(migration.id, migration.checksum, self.lock.token)

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
