"""The deploy lock: one document, taken atomically, held through a lease and a heartbeat.

Acquiring is ONE ``find_one_and_update`` with ``upsert`` on the lock's unique ``_id``: a pipeline
update that sets the caller as holder only when the current lease has expired (or there is no
lock document); otherwise it leaves the document as it is. Comparing the returned token with
ours says who won. Nobody checks then inserts, so two deployers can never both win. Times are
the server's (``$$NOW``), so clocks that disagree between deploy machines do not matter.

While held, a heartbeat task extends the lease every third of it. A holder that dies stops
extending it, and after the lease expires another deployer may take over (Mongock's model). A
holder whose lease was taken over notices at its next heartbeat and stops between steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from ..exceptions import MigrationError
from .recorder import LOCK, whoami

LOCK_ID = "migrations"


class LockHeld(MigrationError):
    """Another process holds the migrations lock; names the holder and its lease."""

    def __init__(self, holder: str, acquired_at: Any, expires_in: float | None) -> None:
        self.holder = holder
        self.acquired_at = acquired_at
        self.expires_in = expires_in
        since = f" since {_iso(acquired_at)}" if acquired_at else ""
        lease = f" (lease expires in {expires_in:.0f} s)" if expires_in is not None else ""
        super().__init__(
            f"migrations lock held by {holder}{since}{lease}; try again later, or run "
            "`odm migrate break-lock` if that process is gone"
        )


class LockLost(MigrationError):
    """The lease expired and another process took the lock over while this one ran."""


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def _seconds_between(later: Any, earlier: Any) -> float | None:
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        return max(0.0, (later - earlier).total_seconds())
    return None


class MigrationLock:
    """The lock around ``apply``, ``rollback``, ``mark`` and ``unmark``.

    ``lease`` is how long the lock stays valid without a heartbeat; ``timeout`` how long
    :meth:`acquire` waits for a held lock to be released or to expire (0: fail at once).
    """

    def __init__(
        self,
        database: Any,
        *,
        lease: float = 60.0,
        timeout: float = 30.0,
        poll: float = 0.25,
        holder: str | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if lease <= 0:
            raise MigrationError(f"the lock lease must be positive, not {lease!r}")
        self.collection = database[LOCK]
        self.lease = lease
        self.timeout = max(0.0, timeout)
        self.poll = poll
        self.holder = holder or whoami()
        self.token = uuid.uuid4().hex
        self.echo = echo or (lambda line: None)
        self.lost = False
        self._heartbeat: asyncio.Task[None] | None = None

    async def try_acquire(self) -> dict[str, Any]:
        """Try once; return the lock document as it is now (ours if the token matches)."""
        lease_ms = int(self.lease * 1000)
        free = {"$or": [{"$lt": ["$expires_at", "$$NOW"]}, {"$eq": ["$token", self.token]}]}

        def take(value: Any, current: str) -> dict[str, Any]:
            return {"$cond": [free, value, current]}

        update = [
            {
                "$set": {
                    "holder": take(self.holder, "$holder"),
                    "token": take(self.token, "$token"),
                    "acquired_at": take("$$NOW", "$acquired_at"),
                    "expires_at": take({"$add": ["$$NOW", lease_ms]}, "$expires_at"),
                    "server_now": "$$NOW",
                }
            }
        ]
        for _ in range(3):
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": LOCK_ID}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
                return dict(doc or {})
            except DuplicateKeyError:
                # Two first-ever upserts raced; the loser simply tries again.
                continue
        return dict(await self.collection.find_one({"_id": LOCK_ID}) or {})

    async def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout``; :class:`LockHeld` names the holder."""
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            doc = await self.try_acquire()
            if doc.get("token") == self.token:
                break
            if time.monotonic() >= deadline:
                raise LockHeld(
                    str(doc.get("holder", "?")),
                    doc.get("acquired_at"),
                    _seconds_between(doc.get("expires_at"), doc.get("server_now")),
                )
            if not told:
                told = True
                self.echo(
                    f"waiting up to {self.timeout:g} s for the migrations lock held by "
                    f"{doc.get('holder', '?')}"
                )
            await asyncio.sleep(self.poll)
        self.lost = False
        self._heartbeat = asyncio.create_task(self._beat(), name="odm-migrations-lock-heartbeat")

    async def _beat(self) -> None:
        lease_ms = int(self.lease * 1000)
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                result = await self.collection.update_one(
                    {"_id": LOCK_ID, "token": self.token},
                    [{"$set": {"expires_at": {"$add": ["$$NOW", lease_ms]}}}],
                )
            except PyMongoError:
                # A blip: the lease still has two thirds left; the next beat tries again.
                continue
            if result.matched_count == 0:
                self.lost = True
                return

    def check(self) -> None:
        """Raise :class:`LockLost` if the heartbeat found the lock no longer ours."""
        if self.lost:
            raise LockLost(
                "the migrations lock was lost (its lease expired and another process took it "
                "over, or `odm migrate break-lock` removed it); stopped between steps"
            )

    async def held(self) -> bool:
        """Ask the server whether the lock is still ours (``True`` when it cannot tell)."""
        try:
            doc = await self.collection.find_one({"_id": LOCK_ID, "token": self.token})
        except PyMongoError:
            return not self.lost
        if doc is None:
            self.lost = True
        return doc is not None

    async def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        await self.collection.delete_one({"_id": LOCK_ID, "token": self.token})

    async def __aenter__(self) -> MigrationLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


async def break_lock(database: Any) -> dict[str, Any] | None:
    """Delete the lock whoever holds it; return the document removed (``None``: no lock)."""
    doc = await database[LOCK].find_one_and_delete({"_id": LOCK_ID})
    return dict(doc) if doc else None

