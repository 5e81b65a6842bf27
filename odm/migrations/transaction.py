"""The transaction a migration file's steps run in, fenced by the run's lock.

Where the server runs transactions (a replica set or mongos, with PyMongo's async driver) and
the file does not say ``__transactional__ = False``, the steps run in a transaction bound with
``session.bind()``, so that the steps' own driver calls and the applied record join it without
passing ``session=``.

The transaction opens only after a proof of the lock made outside it
(:meth:`MigrationLock.prove`), since a proof inside would hold the lock document until the
commit (and ``break-lock`` with it); it commits only after one more proof made inside it, which
carries a stamp only that commit stores. A commit whose answer is lost is read back from that
stamp: committed, it is no error; unreadable, it is :class:`OutcomeUnknown`.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from pymongo.errors import PyMongoError

from .. import drivers
from ..exceptions import MigrationError
from ..server_transactions import abort_server_transaction
from .cleanup import error_text
from .lock import MigrationLock

#: Set to ``1`` to run as on a server without transactions (tests of the standalone path).
NO_TRANSACTIONS_ENV = "ODM_MIGRATIONS_NO_TRANSACTIONS"


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


class FencedTransaction:
    """A transaction bound to the running task, opened lazily and closed between segments.

    It opens only after a proof of the lock made outside it, with the heartbeat paused: from
    then on only a takeover or ``break-lock`` writes the lock document, and the proofs made
    inside the transaction fail on exactly that. It commits only after one more proof in it.
    """

    def __init__(self, database: Any, lock: MigrationLock) -> None:
        self.client = database.client
        #: Where a cut-off session is fenced (:func:`~odm.server_transactions.fence_session`):
        #: the migrations' database, which the run reads.
        self.fence_in: str = database.name
        self.lock = lock
        self.session: Any = None
        self.binding: Any = None
        #: The session of a commit cut off by an interruption: it may still land.
        self.unsettled: Any = None

    @property
    def open(self) -> bool:
        """Tell whether a transaction is open (steps performed now join it)."""
        return self.session is not None

    async def begin(self) -> None:
        """Prove the lock, then open the transaction and bind it to the task (if not open)."""
        if self.session is not None:
            return
        await self.lock.pause()
        try:
            await self.lock.prove()
            self.lock.proof_committed()  # made outside the transaction: stored now
            self.session = await drivers.start_session(self.client)
            await drivers.start_transaction(self.session)
            self.binding = self.session.bind(end_session=False)
            await self.binding.__aenter__()
        except BaseException:
            await self._close(commit=False)
            raise

    async def commit(self) -> None:
        """Commit with a last proof of the lock; an answer lost after the commit is no error."""
        await self._close(commit=True)

    async def abort(self) -> None:
        """Abort the open transaction, if any: nothing of it is kept."""
        await self._close(commit=False)

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
                    # Killed should the abort have failed; fenced: a command of the transaction
                    # still on its way (its connection dropped) must not open it again later.
                    await abort_server_transaction(session, kill=True, fence_in=self.fence_in)
                await drivers.resolve(session.end_session())
        finally:
            self.lock.resume()

    async def settle(self) -> None:
        """End the transaction of a commit cut off by an interruption on the server, so that a
        commit still on its way cannot land after what it stored is read back.

        The kill is enough, with no fence (:func:`~odm.server_transactions.fence_session`):
        every other command of the transaction was answered before the commit was sent, so the
        transaction is open on the server, the kill aborts it, and a commit arriving later finds
        it aborted (``NoSuchTransaction``)."""
        session_id, self.unsettled = self.unsettled, None
        if session_id is not None:
            await self.client.admin.command({"killSessions": [session_id]})

    async def _commit(self, session: Any, stamp: str) -> None:
        # Until its outcome is known: a commit interrupted on its way may still land (settle()).
        self.unsettled = session.session_id
        try:
            await session.commit_transaction()
        except PyMongoError as exc:
            committed = await self._committed_despite(session, stamp, exc)
            self.unsettled = None
            if not committed:
                raise
        self.unsettled = None
        self.lock.proof_committed()

    async def _committed_despite(self, session: Any, stamp: str, exc: PyMongoError) -> bool:
        """Tell whether a commit that raised ``exc`` happened all the same.

        The answer may be lost after the commit happened (a network error, a write concern
        error): undoing steps or starting the file over would then repeat committed work. The
        lock proof made last in the transaction carries a stamp only its commit stores.
        Killing the session first settles it: a commit still on its way cannot land after the
        stamp is read (it finds its transaction aborted, as in :meth:`settle`), and one that
        failed leaves no open transaction behind holding locks (the driver does not abort after
        a failed commit; a rollback's DDL would wait for the server to reap it).
        """
        try:
            await self.client.admin.command({"killSessions": [session.session_id]})
            return await self.lock.stamped(stamp)
        except PyMongoError as unknown:
            raise OutcomeUnknown(
                f"{type(exc).__name__} while committing, and whether it committed cannot be "
                f"read back ({error_text(unknown)})"
            ) from exc
