"""Helpers shared by the unit-of-work tests: fail points, the truth of a document, the
server's open transactions and the outcome of concurrent runs."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, NamedTuple

from pymongo.errors import PyMongoError

import odm
from odm import drivers, executor
from odm.models.tracking import get_snapshot


async def fail_point(db: Any, data: dict[str, Any], times: int = 1) -> None:
    """Arm the server's ``failCommand`` fail point for the next ``times`` matching commands."""
    await db.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data}
    )


async def armed(db: Any, data: dict[str, Any]) -> None:
    """Arm ``failCommand`` once, from an empty context (inside a block the driver would send
    the command in the block's transaction)."""
    await asyncio.create_task(fail_point(db, data), context=contextvars.Context())


async def close_connection_at_next(db: Any, command: str) -> None:
    """Arm ``failCommand`` to close the connection at the next ``command``: from a session of
    its own, since PyMongo sends a call inside a block in the block's transaction."""
    session = await drivers.start_session(db.client)
    try:
        await drivers.resolve(db.client.admin.command(
            {"configureFailPoint": "failCommand", "mode": {"times": 1},
             "data": {"failCommands": [command], "closeConnection": True}},
            session=session,
        ))
    finally:
        await drivers.end_session(session)


async def fail_points_off(db: Any) -> None:
    """Disarm the ``failCommand`` fail point."""
    await db.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


class Contention(NamedTuple):
    """How many transfers the concurrency tests run at once, over how many accounts."""

    transfers: int
    accounts: int


def concurrent_transfers(long: bool) -> Contention:
    """The load of the concurrency tests: 100 transfers at once over 8 accounts (a dozen
    contending for each account, write conflicts and retries on every one) by default, and
    with ``--odm-long`` four times the transfers over four times the accounts: as much
    contention for each account, four times the volume.

    Not 400 over 8 accounts: with 50 transfers contending for each, the retries of
    ``atomic(timeout=60)`` collapse on Python 3.11 for the driver as much as for odm (each
    command under a deadline costs PyMongo an extra task there, in ``asyncio.wait_for``, so a
    transaction holds its writes for more turns of a loop of 400 tasks): raw PyMongo's
    ``with_transaction`` under ``pymongo.timeout(60)`` gave up on 279 of 400 after a minute,
    as odm did, where 3.12 finished all in ~25 s (docs/unit-of-work.md, "Contention")."""
    return Contention(400, 32) if long else Contention(100, 8)


def gave_up(results: list[Any]) -> list[BaseException]:
    """Return the runs of ``asyncio.gather(..., return_exceptions=True)`` that raised, after
    checking each gave up on a transient error (on a loaded machine a transaction may exhaust
    its retries; it is then aborted whole) and that at most a quarter did."""
    failed = [r for r in results if isinstance(r, BaseException)]
    assert all(
        isinstance(r, PyMongoError) and r.has_error_label("TransientTransactionError")
        for r in failed
    ), failed
    assert len(failed) <= len(results) // 4, failed
    return failed


async def stored(document: odm.Document) -> dict[str, Any] | None:
    """The document the server holds under ``document``'s id, or ``None``."""
    raw: dict[str, Any] | None = await executor.collection(type(document)).find_one(
        {"_id": document.id}
    )
    return raw


async def truthful(document: odm.Document, *, fields: bool = False) -> None:
    """Fail unless ``document``'s tracking state is what the database holds (``fields``: its
    field values too, for a document with no change of its own)."""
    raw = await stored(document)
    assert get_snapshot(document) == raw, (get_snapshot(document), raw)
    assert document.is_stored is (raw is not None)
    meta = type(document)._meta
    if meta.optimistic_lock and raw is not None:
        assert getattr(document, meta.version_field) == raw.get(meta.db_key(meta.version_field))
    if fields:
        assert raw is not None and document.to_bson() == raw, (document.to_bson(), raw)


async def open_transactions(db: Any) -> list[dict[str, Any]]:
    """The server's transactions still open (idle or running), from ``$currentOp``."""
    cursor = await drivers.aggregate(
        db.client.admin,
        [
            {"$currentOp": {"allUsers": True, "idleSessions": True}},
            {"$match": {"transaction": {"$exists": True}}},
        ],
    )
    return [op async for op in cursor]
