"""Retrying a transaction that failed transiently, but only while the lock's lease lasts.

MongoDB labels an error ``TransientTransactionError`` when the whole transaction may succeed if
run again: a write conflict with another transaction (one a killed run left open, until the
server ends it), a primary stepping down, a connection lost mid-transaction. The drivers'
``with_transaction`` retries such a transaction for up to 120 s; a migration run stops at the
end of its lock's lease as this run last knew it to be stored, since past that another deployer
may hold the lock (every attempt proves the lock again, so none commits under another holder).
"""

from __future__ import annotations

import asyncio
import random
import time

from pymongo.errors import PyMongoError

from ..exceptions import MigrationError
from .cleanup import error_text
from .lock import MigrationLock

#: The error label of a transaction that may succeed if run again from its start.
TRANSIENT = "TransientTransactionError"

#: The first and the longest wait between two attempts, in seconds (the drivers' backoff).
_BACKOFF_FIRST = 0.005
_BACKOFF_LONGEST = 0.5


def is_transient(exc: BaseException) -> bool:
    """Tell whether ``exc`` says its transaction may succeed if run again from its start."""
    return isinstance(exc, PyMongoError) and exc.has_error_label(TRANSIENT)


class LeaseBound:
    """How long the attempts at one transaction may go on: until the lease of the lock that
    this run knew to be stored when they began runs out (``lease_left``, in seconds)."""

    def __init__(self, lease_left: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + lease_left
        #: How many attempts were made (the first one included).
        self.attempts = 0

    def passed(self, wait: float = 0.0) -> bool:
        """Tell whether the bound is reached once ``wait`` more seconds have passed."""
        return time.monotonic() + wait >= self.deadline

    def gave_up(self, what: str, exc: BaseException | None) -> MigrationError:
        """Return the error for ``what`` still failing transiently (with ``exc``, when known)
        when the attempts stopped at the bound."""
        why = f": {error_text(exc)}" if exc is not None else f" ({TRANSIENT})"
        return MigrationError(
            f"{what} kept failing{why}; gave up after {self.attempts} attempts in "
            f"{time.monotonic() - self.started:.1f} s, before the lock's lease may run out. "
            "Another transaction may hold these documents, such as one a killed run left "
            "open, which the server ends within its transactionLifetimeLimitSeconds (60 s by "
            "default): run the command again"
        )


class TransientRetry:
    """The retries of one transaction (each of a file's transactions has its own), bounded by
    the lock's lease as this run knows it at the first failure."""

    def __init__(self, lock: MigrationLock) -> None:
        self.lock = lock
        self.bound: LeaseBound | None = None

    @property
    def retries(self) -> int:
        """How many times the transaction ran again."""
        return self.bound.attempts - 1 if self.bound is not None else 0

    async def again(self, exc: BaseException) -> bool:
        """Wait a little and return ``True`` when the transaction that failed with ``exc`` is
        to run again; ``False`` when ``exc`` is not transient or the lease would run out."""
        if not is_transient(exc):
            return False
        if self.bound is None:
            self.bound = LeaseBound(self.lock.lease_left())
            self.bound.attempts = 1  # the one that failed
        # Jittered, growing waits, as the drivers do: two runs conflicting do not retry in step.
        growing = min(_BACKOFF_FIRST * 1.5**self.bound.attempts, _BACKOFF_LONGEST)
        backoff = random.random() * growing
        if self.bound.passed(backoff):
            return False
        self.bound.attempts += 1
        await asyncio.sleep(backoff)
        return True

    def gave_up(self, what: str, exc: BaseException) -> MigrationError:
        """Return the error for ``what`` still failing with ``exc`` when the retries stopped."""
        assert self.bound is not None
        return self.bound.gave_up(what, exc)
