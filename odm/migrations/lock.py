"""The deploy lock: one document, taken atomically, held through a lease and a heartbeat.

Acquiring is ONE ``find_one_and_update`` with ``upsert`` on the lock's unique ``_id``: a pipeline
update that sets the caller as holder only when the current lease has expired (or there is no
lock document); otherwise it leaves the document as it is. Comparing the returned token with
ours says who won. Nobody checks then inserts, so two deployers can never both win. Times are
the server's (``$$NOW``), so clocks that disagree between deploy machines do not matter.

While held, a heartbeat task extends the lease every third of it. A holder that dies stops
extending it, and after the lease expires another deployer may take over (Mongock's model).

The heartbeat only keeps a live holder's lease from expiring; it proves nothing. Before each
step (and each batch of a batched update) the runner calls :meth:`MigrationLock.prove`: one
``find_one_and_update`` filtered by the holder's token that extends the lease. Run inside the
step's transaction, it commits with the step, and any change to the lock document by someone
else since the transaction began makes it fail (a write conflict), so a step of a run that lost
the lock never commits. Nothing but a takeover or ``break-lock`` writes the lock document while
a transaction is open: the heartbeat pauses, and waiting deployers only read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import pymongo
from bson.codec_options import DatetimeConversion
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from ..exceptions import MigrationError
from .cleanup import cancellable, error_text, quietly
from .recorder import LOCK, whoami

LOCK_ID = "migrations"

T = TypeVar("T")

#: MongoDB's code for a write that conflicts with another write since the transaction began.
_WRITE_CONFLICT = 112

#: The shortest lease (one millisecond: the lease is stored in whole milliseconds) and the
#: longest (ten years), in seconds.
MIN_LEASE = 0.001
MAX_LEASE = 10 * 365 * 24 * 3600.0

#: How much shorter than stored a run counts its lease: the server's clock may run faster than
#: this machine's (each slewed by NTP by up to 500 ppm), and the time left as this run counts
#: it must never outlast the lease as the server counts it.
CLOCK_RATE_MARGIN = 0.001

#: The longest time limit the server takes (``maxTimeMS`` is a 32-bit number of milliseconds,
#: about 24.8 days), in seconds: a write bounded by a longer lease is bounded by this instead.
MAX_TIME_LIMIT = (2**31 - 1) / 1000

#: How long before the end of the lease a timeout still counts as the lease running out (the
#: driver takes a round trip off the time it sends as ``maxTimeMS``), in seconds.
LEASE_END_SLACK = 0.5

class LockHeld(MigrationError):
    """Another process holds the migrations lock; names the holder and its lease.

    ``expires_in`` is how many seconds its lease has left (``None``: unknown, or, with
    ``never_expires``, a lease no takeover can ever find expired). ``advice`` says what to do;
    by default what is true of that lease: one that expires frees itself once its holder is
    gone, one that never expires does not.
    """

    def __init__(
        self,
        holder: str,
        acquired_at: Any,
        expires_in: float | None,
        advice: str | None = None,
        *,
        never_expires: bool = False,
    ) -> None:
        self.holder = holder
        self.acquired_at = acquired_at
        self.expires_in = expires_in
        self.never_expires = never_expires and expires_in is None
        since = f" since {_iso(acquired_at)}" if acquired_at else ""
        if self.never_expires:
            lease = " (its lease never expires)"
        elif expires_in is not None:
            lease = f" (lease expires in {_duration(expires_in)})"
        else:
            lease = ""
        if advice is None:
            advice = NEVER_EXPIRES_ADVICE if self.never_expires else EXPIRES_ADVICE
        super().__init__(
            f"migrations lock held by {shown_holder(holder)}{since}{lease}; {advice}"
        )

    @classmethod
    def of(cls, doc: dict[str, Any], advice: str | None = None) -> LockHeld:
        """Return the error naming the holder of the lock document ``doc`` (as
        :func:`read_lock` returns it)."""
        expires_in = seconds_between(doc.get("expires_at"), doc.get("server_now"))
        return cls(
            str(doc.get("holder", "?")),
            doc.get("acquired_at"),
            expires_in,
            advice,
            never_expires=never_expires(doc),
        )


#: What to do about a held lock whose lease expires.
EXPIRES_ADVICE = (
    "try again later: if that process is gone, the lock frees itself when its lease expires, "
    "or `odm migrate break-lock --force` removes it now"
)
#: What to do about a held lock whose lease never expires (written by hand, or by a hostile
#: process: odm's longest lease is ten years).
NEVER_EXPIRES_ADVICE = (
    "it will not free itself: only its holder releasing it, or `odm migrate break-lock "
    "--force` once that process is gone, frees it"
)


def never_expires(doc: dict[str, Any]) -> bool:
    """Tell whether the lock document ``doc`` (as :func:`read_lock` returns it) holds a lease
    no takeover can ever find expired: an ``expires_at`` that sorts after every date (a
    timestamp, ``MaxKey``) or a date past what Python reads (year 10000 on)."""
    return bool(doc.get("live")) and not isinstance(doc.get("expires_at"), datetime)


def _duration(seconds: float) -> str:
    """Show a lease's time left in the unit a reader takes in: ``51 s``, ``12 min``, ``3 h``,
    ``3650 days`` (odm's longest lease is ten years)."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


class LockLost(MigrationError):
    """This run no longer holds the lock: it was broken, or its lease expired and was taken.

    ``holder`` names who holds it now (``None``: nobody, the lock was removed).
    """

    def __init__(self, message: str, holder: str | None = None) -> None:
        self.holder = holder
        super().__init__(message)


class LeaseRanOut(LockLost):
    """A write bounded by the lock's lease (:meth:`MigrationLock.within_lease`) was not done
    within it: past the lease another run may hold the lock, so the driver did not send it, or
    the server was told to refuse it from then on.

    ``sent`` tells whether the write may have reached the server (``False``: the lease had run
    out before it could be sent, so nothing of it was written).
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        self.sent = sent
        super().__init__(message)


#: The most of a holder's name a message shows (a lock document edited by hand may hold any).
_HOLDER_SHOWN = 200


def shown_holder(holder: Any) -> str:
    """Return the lock's ``holder`` as a message shows it: as stored when it is a short
    printable text; else quoted, its control characters escaped, and cut short.

    A lock document written by hand (or by a hostile process) must not print lines of its own
    (a newline, a terminal's escape sequence) or megabytes into a deployer's output.
    """
    text = holder if isinstance(holder, str) else repr(holder)
    if text.isprintable() and len(text) <= _HOLDER_SHOWN:
        return text
    cut = f"... ({len(text)} characters)" if len(text) > _HOLDER_SHOWN else ""
    return repr(text[:_HOLDER_SHOWN]) + cut


def lock_collection(database: Any) -> Any:
    """Return the lock's collection, decoding any stored date.

    A date past what Python's ``datetime`` holds (year 10000 on) comes back as a
    ``DatetimeMS``, where the default options would fail the whole read (``InvalidBSON``): a
    lock document edited by hand must not crash ``plan``, ``apply`` or ``break-lock``.
    """
    collection = database[LOCK]
    options = collection.codec_options.with_options(
        datetime_conversion=DatetimeConversion.DATETIME_AUTO
    )
    return collection.with_options(codec_options=options)


def _lost_message(doc: dict[str, Any] | None) -> tuple[str, str | None]:
    if not doc:
        return (
            "the migrations lock was lost: nobody holds it now (`odm migrate break-lock` "
            "removed it, or another run took it over once its lease expired, and is done)",
            None,
        )
    holder = str(doc.get("holder", "?"))
    since = f" since {_iso(doc['acquired_at'])}" if doc.get("acquired_at") else ""
    return (
        f"the migrations lock was lost: it is now held by {shown_holder(holder)}{since}",
        holder,
    )


async def outside_transaction(work: Callable[[], Any]) -> Any:
    """Await ``work()`` in a task of its own, out of any session bound to the current task.

    PyMongo's ``session.bind()`` binds through a context variable, so a fresh context is enough
    to read what is committed rather than the open transaction's snapshot.
    """
    async def run() -> Any:
        return await work()

    return await asyncio.get_running_loop().create_task(run(), context=contextvars.Context())


def _about_over(lease_ends: float, left: float) -> bool:
    """Tell whether a timeout raised now came at the end of a lease that had ``left`` seconds
    left and ends at ``lease_ends`` (this machine's monotonic clock).

    The driver sends a write with the time left less a round trip as its ``maxTimeMS``, so the
    server may refuse it a little before the deadline: within :data:`LEASE_END_SLACK` (or half
    the time left, for a short one) of the end, the timeout counts as the lease's.
    """
    return time.monotonic() >= lease_ends - min(LEASE_END_SLACK, left / 2)


def _seconds(lease: float) -> str:
    """Show a lease as given (``0.25 s``, ``30 s``), which a too short one must make plain."""
    return f"{lease:g} s"


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def seconds_between(later: Any, earlier: Any) -> float | None:
    """Return the seconds from ``earlier`` to ``later`` (two stored dates; 0 if in the past),
    or ``None`` when either is not a date."""
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
        if not (isinstance(lease, int | float) and MIN_LEASE <= lease <= MAX_LEASE):
            # NaN, infinity or a lease past what a date holds would only fail at the first
            # write of the lock, as an error naming nothing.
            raise MigrationError(
                f"the lock lease must be a number of seconds from {MIN_LEASE:g} to "
                f"{MAX_LEASE:.0f} (ten years), not {lease!r}"
            )
        self.collection = lock_collection(database)
        self.lease = lease
        self.timeout = max(0.0, timeout)
        self.poll = poll
        self.holder = holder or whoami()
        self.token = uuid.uuid4().hex
        self.echo = echo or (lambda line: None)
        self.lost = False
        self._heartbeat: asyncio.Task[None] | None = None
        # Held by the heartbeat while it writes; pause() takes it so no beat is in flight.
        self._writing = asyncio.Lock()
        self._paused = False
        # When the request of the last extension of the lease known to be stored was sent (the
        # server extended it no earlier), and of the last proof (stored or not), by this clock.
        self._extended_at = 0.0
        self._proof_sent = 0.0

    @property
    def lease_ms(self) -> int:
        """Return the lease as stored: whole milliseconds added to the server's ``$$NOW``."""
        return int(self.lease * 1000)

    def lease_left(self) -> float:
        """Return the seconds until the lease runs out, as far as this run knows: counted from
        the last extension known to be stored (0: it may have run out already).

        Never more than the server's view: counted from before the request that extended it
        was sent (the server's ``$$NOW`` was taken later), for the lease as stored (whole
        milliseconds), made shorter by :data:`CLOCK_RATE_MARGIN`. A retry of a failed write
        stops there: past it, another deployer may hold the lock.
        """
        counted = self.lease_ms / 1000 * (1 - CLOCK_RATE_MARGIN)
        return max(0.0, self._extended_at + counted - time.monotonic())

    @contextlib.contextmanager
    def within_lease(self) -> Iterator[None]:
        """Bound the driver calls of the block by what is left of the lease (:meth:`lease_left`),
        raising :class:`LeaseRanOut` for one that does not finish within it.

        A write made without a transaction after a proof of the lock is fenced by nothing else:
        stalled past the lease (on its way, or on the server), it would land after another run
        took the lock over. With PyMongo's timeout the driver sends none once the time left is
        gone, and sends each with that time left as ``maxTimeMS``, which the server counts from
        when it receives the write and past which it refuses to run it.

        A shorter bound of the caller's wins: the client's own ``timeoutMS`` (the lease does
        not extend it), or an enclosing ``pymongo.timeout()`` (an inner one never extends an
        outer one, as PyMongo documents). A timeout that ends the block while the lease still
        had time left is then the caller's, raised as the driver raised it.
        """
        left = self.lease_left()
        lease = f"the lock's lease ({_seconds(self.lease)})"
        if left <= 0:
            raise LeaseRanOut(
                f"{lease} ran out before a write could be sent: another run may hold the lock "
                "now, so it was not sent",
                sent=False,
            )
        lease_ends = time.monotonic() + left
        try:
            with pymongo.timeout(min(left, MAX_TIME_LIMIT, self._client_timeout())):
                yield
        except PyMongoError as exc:
            if not exc.timeout or not _about_over(lease_ends, left):
                raise
            raise LeaseRanOut(
                f"a write did not finish within what was left of {lease} (its time limit, so "
                "that it cannot land once another run may hold the lock): "
                f"{error_text(exc)}",
                sent=True,
            ) from exc

    async def bounded(self, write: Callable[[], Awaitable[T]]) -> T:
        """Return what ``write()`` returns, its driver calls bounded by what is left of the
        lease (:meth:`within_lease`); a write made without a transaction is made through this.

        A lease already over (the heartbeat stalled) is proven again first, renewed if the lock
        is still ours (else :class:`LockLost`, and nothing is sent): no other run can have
        taken it meanwhile. The write runs in a task of its own (:func:`cancellable`), so that
        a cancellation that comes as it is sent stops it rather than being lost.
        """
        if self.lease_left() <= 0:
            await self.prove()

        async def run() -> T:
            with self.within_lease():
                return await write()

        return await cancellable(run())

    def _client_timeout(self) -> float:
        """Return the lock's client's own ``timeoutMS``, in seconds (infinity: none)."""
        options = getattr(self.collection.database.client, "options", None)
        timeout = getattr(options, "timeout", None)
        return float(timeout) if isinstance(timeout, int | float) and timeout > 0 else math.inf

    def proof_committed(self) -> None:
        """Note that the transaction holding the last proof committed: its extension is stored."""
        self._extended_at = max(self._extended_at, self._proof_sent)

    async def try_acquire(self) -> dict[str, Any]:
        """Try once; return the lock document as it is now (ours if the token matches).

        The update matches only a free lock (expired, absent or already ours), so a deployer
        waiting for a held lock never writes it: a write would make the holder's open
        transaction fail its lease proof.
        """
        lease_ms = self.lease_ms
        update = [
            {
                "$set": {
                    "holder": self.holder,
                    "token": self.token,
                    "acquired_at": "$$NOW",
                    "expires_at": {"$add": ["$$NOW", lease_ms]},
                }
            }
        ]
        collection = self.collection
        for _ in range(3):
            try:
                # No lock yet (or ours already): the upsert inserts it. Held by another token:
                # nothing matches, the insert hits the unique _id, and nothing was written.
                doc = await collection.find_one_and_update(
                    {"_id": LOCK_ID, "token": self.token},
                    update,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                return dict(doc or {})
            except DuplicateKeyError:
                pass
            # Held by someone else: take it over only if its lease has expired.
            doc = await collection.find_one_and_update(
                {"_id": LOCK_ID, "$expr": {"$lt": ["$expires_at", "$$NOW"]}},
                update,
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return dict(doc)
            current = await read_lock(collection.database)
            if current is not None:
                return current
            # Released between the two calls: try again.
        return await read_lock(collection.database) or {}

    async def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout``; :class:`LockHeld` names the holder."""
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            sent = time.monotonic()
            doc = await self._try_or_give_back()
            if doc.get("token") == self.token:
                self._extended_at = sent
                break
            if time.monotonic() >= deadline:
                raise LockHeld.of(doc)
            if not told:
                told = True
                never = " (its lease never expires: only its holder frees it)"
                self.echo(
                    f"waiting up to {self.timeout:g} s for the migrations lock held by "
                    f"{shown_holder(doc.get('holder', '?'))}{never if never_expires(doc) else ''}"
                )
            await asyncio.sleep(self.poll)
        self.lost = False
        self._heartbeat = asyncio.create_task(self._beat(), name="odm-migrations-lock-heartbeat")

    async def _try_or_give_back(self) -> dict[str, Any]:
        """Try once; interrupted (Ctrl-C, a cancelled task) or failing, give back a lock the
        attempt may have taken, so that the next deployer need not wait for its lease."""
        try:
            return await self.try_acquire()
        except BaseException:
            await quietly(self.collection.delete_one({"_id": LOCK_ID, "token": self.token}))
            raise

    async def _beat(self) -> None:
        lease_ms = self.lease_ms
        while True:
            await asyncio.sleep(self.lease / 3)
            async with self._writing:
                if self._paused:
                    continue
                sent = time.monotonic()
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
            self._extended_at = sent

    async def pause(self) -> None:
        """Stop the heartbeat's writes (before a transaction whose proofs must not conflict)."""
        async with self._writing:
            self._paused = True

    def resume(self) -> None:
        """Let the heartbeat write again (the transaction ended)."""
        self._paused = False

    async def prove(self, session: Any = None, stamp: str | None = None) -> None:
        """Prove the lock is still ours and extend its lease, in one atomic server-side update.

        The update is filtered by this holder's token; with ``session`` (or a session bound to
        the task) it runs in that transaction and commits with it. Raises :class:`LockLost`
        naming the current holder when the lock is no longer ours. ``stamp`` is stored with the
        proof, so that :meth:`stamped` can tell afterwards whether its transaction committed.
        """
        lease_ms = self.lease_ms
        options: dict[str, Any] = {} if session is None else {"session": session}
        fields: dict[str, Any] = {"expires_at": {"$add": ["$$NOW", lease_ms]}}
        if stamp is not None:
            fields["stamp"] = {"$literal": stamp}
        sent = time.monotonic()
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": LOCK_ID, "token": self.token},
                [{"$set": fields}],
                projection={"_id": 1},
                **options,
            )
        except OperationFailure as exc:
            if exc.code != _WRITE_CONFLICT:
                raise
            # Someone wrote the lock document since this transaction began: unless it is still
            # ours (then the conflict was a passing one and the caller may retry), it was lost.
            lost = await self.lost_error()
            if lost is None:
                raise
            raise lost from exc
        if doc is None:
            self.lost = True
            raise await self.lost_error() or LockLost(_lost_message(None)[0])
        self._proof_sent = sent
        if session is None and not self._paused:
            # Outside any transaction (the heartbeat pauses for the file's, the batches pass
            # theirs): stored now. A proof in a transaction is stored when it commits.
            self._extended_at = sent

    async def stamped(self, stamp: str) -> bool:
        """Tell whether the proof made with ``stamp`` is stored: whether its transaction committed.

        Asked after a commit whose answer was lost (a network error, a write concern error):
        the stamp is unique to that transaction, and only its commit can have stored it.
        """
        doc = await outside_transaction(
            lambda: self.collection.find_one({"_id": LOCK_ID, "stamp": stamp}, {"_id": 1})
        )
        return doc is not None

    async def lost_error(self) -> LockLost | None:
        """Return the :class:`LockLost` naming who holds the lock now (``None``: still ours)."""
        doc = await outside_transaction(lambda: read_lock(self.collection.database))
        if doc is not None and doc.get("token") == self.token:
            return None
        self.lost = True
        message, holder = _lost_message(doc)
        return LockLost(message, holder)

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
            doc = await outside_transaction(
                lambda: self.collection.find_one({"_id": LOCK_ID, "token": self.token})
            )
        except PyMongoError:
            return not self.lost
        if doc is None:
            self.lost = True
        return doc is not None

    async def release(self) -> None:
        """Stop the heartbeat and delete the lock if it is still ours.

        A delete that fails (the server unreachable) is said, not raised: it must not turn a
        run that is done into an error, nor hide the error a failed run raises. Without its
        heartbeat the lock expires with its lease.
        """
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        try:
            await self.collection.delete_one({"_id": LOCK_ID, "token": self.token})
        except PyMongoError as exc:
            self.echo(
                f"warning: the migrations lock could not be released ({error_text(exc)}); "
                f"it expires with its lease ({self.lease:g} s)"
            )

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


async def read_lock(database: Any) -> dict[str, Any] | None:
    """Return the lock document with the server's time as ``server_now`` (``None``: no lock).

    ``live`` says whether its lease has not run out, asked of the server as a takeover asks
    it: an ``expires_at`` that is no date (edited by hand) is live when it sorts after every
    date (a timestamp, ``MaxKey``), as no takeover can ever take such a lock.
    """
    doc = await lock_collection(database).find_one(
        {"_id": LOCK_ID},
        {
            "holder": 1,
            "token": 1,
            "acquired_at": 1,
            "expires_at": 1,
            "server_now": "$$NOW",
            "live": {"$not": [{"$lt": ["$expires_at", "$$NOW"]}]},
        },
    )
    return dict(doc) if doc else None


async def break_lock(database: Any, *, force: bool = False) -> dict[str, Any] | None:
    """Delete the lock and return the document removed (``None``: there was no lock).

    An unexpired lease may belong to a run that is still going: without ``force`` that raises
    :class:`LockHeld` naming the holder. A holder inside a transaction keeps the lock document
    until the transaction ends, so a forced break waits for that.
    """
    for _ in range(3):
        doc = await read_lock(database)
        if doc is None:
            return None
        if not force and doc.get("live"):
            raise LockHeld.of(
                doc,
                "it never expires by itself, and its holder may still be running: pass --force "
                "if that process is gone"
                if never_expires(doc)
                else "its lease has not expired, so it may still be running; wait for it, or "
                "pass --force if that process is gone",
            )
        guard: dict[str, Any] = {"_id": LOCK_ID}
        if not force:
            # Only the expired lease just read: not one renewed or taken over meanwhile.
            guard["token"] = doc.get("token")
            guard["$expr"] = {"$lt": ["$expires_at", "$$NOW"]}
        removed = await lock_collection(database).find_one_and_delete(guard)
        if removed is not None:
            return dict(removed)
    return None
