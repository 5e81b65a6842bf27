"""Saying (and logging) how a file's run ended when it did not finish: what it left, what next.

A step number is 1-based, as ``odm migrate plan`` prints it; ``None`` stands for the last thing
a run does once every step is done: recording the file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

from ..exceptions import MigrationError
from .cleanup import error_text, quietly
from .loader import Migration
from .lock import LockLost, MigrationLock
from .recorder import Recorder


def elapsed_ms(begun: float) -> int:
    """Return the milliseconds since ``begun`` (a :func:`time.monotonic` reading)."""
    return int((time.monotonic() - begun) * 1000)


def failure_reason(exc: BaseException) -> str:
    """Describe why something failed: an odm error's own words, else the error's type and
    what it says, a server's error cut to the server's message and code (:func:`error_text`)."""
    return str(exc) if isinstance(exc, MigrationError) else error_text(exc)


def _how_stopped(exc: BaseException) -> str:
    # Ctrl-C under asyncio.run() reaches the run as a cancellation of its task.
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__


class RunLog:
    """Tells the user (``echo``) and the migrations log (``recorder``) where a run stopped."""

    def __init__(
        self, recorder: Recorder, echo: Callable[[str], None], lock: MigrationLock | None = None
    ) -> None:
        self.recorder = recorder
        self.lock = lock
        self.echo = echo

    async def failed(
        self, migration: Migration, action: str, message: str, begun: float | None = None
    ) -> None:
        """Log a failed ``action`` of ``migration`` (a failure to log does not hide it).

        With a lock, the entry is written within its lease (:meth:`MigrationLock.bounded`):
        a run that lost the lock logs nothing more, rather than an entry landing among the new
        holder's; what it would have said is in the error it raises.
        """
        write = partial(
            self.recorder.log,
            migration.id, action, checksum=migration.checksum, ok=False, error=message,
            duration_ms=0 if begun is None else elapsed_ms(begun),
        )
        await quietly(write() if self.lock is None else self.lock.bounded(write))

    async def interrupted(
        self,
        migration: Migration,
        direction: str,
        at_step: int | None,
        resumes_at: int | None,
        exc: BaseException,
        begun: float,
        recorded: bool | None = False,
    ) -> None:
        """Say (and log) where an interrupted run stopped and where the next one resumes.

        ``recorded``: whether the file was recorded as done before the interruption (``None``:
        it was being recorded, and whether it was cannot be read back).
        """
        how = _how_stopped(exc)
        if recorded:
            # Done: the log already says so, and this is no failure.
            self.echo(f"{direction} {migration.id}: interrupted ({how}) once recorded as done")
            return
        where = f"in step {at_step}" if at_step is not None else "while recording it"
        resumes = f"resumes at step {resumes_at}" if resumes_at is not None else "only records it"
        if recorded is None:
            message = (
                f"{direction} {migration.id}: interrupted ({how}) {where}, and whether it was "
                f"recorded cannot be read back; nothing undone: `odm migrate list` shows "
                f"whether it was; if not, the next {direction} {resumes}"
            )
        else:
            message = (
                f"{direction} {migration.id}: interrupted ({how}) {where}; nothing undone and "
                f"nothing recorded: the next {direction} {resumes}"
            )
        self.echo(message)
        await self.failed(migration, direction, message, begun)

    async def lock_lost(
        self,
        migration: Migration,
        direction: str,
        lost: LockLost,
        resumes_at: int | None,
        begun: float,
    ) -> LockLost:
        """Log, and return the error of, a run that lost the lock: it stops undoing nothing."""
        where = f"before step {resumes_at}" if resumes_at is not None else "before recording it"
        message = (
            f"{direction} {migration.id}: {lost}; stopped {where} with nothing undone "
            f"and nothing recorded: the next {direction} resumes there"
        )
        await self.failed(migration, direction, message, begun)
        return LockLost(message, lost.holder)

    async def undoing_nothing(
        self,
        migration: Migration,
        direction: str,
        exc: Exception,
        begun: float,
        recorded: bool,
    ) -> MigrationError:
        """Log, and return the error of, a run that must not undo anything: recorded, or
        unsure whether."""
        reason = failure_reason(exc)
        if recorded:
            message = (
                f"{direction} {migration.id}: done and recorded, but what follows the record "
                f"failed: {reason}"
            )
        else:
            message = (
                f"{direction} {migration.id}: {reason}; nothing undone: the next {direction} "
                "resumes from what was committed (`odm migrate list` shows whether the file "
                "was recorded)"
            )
        await self.failed(migration, direction, message, begun)
        return MigrationError(message)

    async def stopped_compensating(
        self, migration: Migration, step_number: int, exc: BaseException
    ) -> None:
        """Say (and log) that the rollback after a failure was interrupted, and what is next."""
        message = (
            f"apply {migration.id}: interrupted ({_how_stopped(exc)}) while rolling back step "
            f"{step_number} after a failure; the file is not recorded, and the next apply "
            "finishes rolling back first"
        )
        self.echo(message)
        await self.failed(migration, "apply", message)
