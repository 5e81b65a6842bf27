"""``fence_session_id``: fencing a server session known only by its id (a dead process's, whose
id a resumed ``batched_update`` stored), under each driver odm supports.

The dead process is stood for by another client whose session is no longer used but for the
test's "late" command: the next transaction of that session, as a command of it that was on its
way would carry. After the ``killSessions`` alone the server still runs it (the hole the fence
closes); after the fence it refuses it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from odm import drivers
from odm.server_transactions import fence_session_id

#: The server's code for a command whose transaction number is older than its session's newest.
TRANSACTION_TOO_OLD = 225


@pytest.fixture
async def dead(odm_uri: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """The client of the "dead" process (PyMongo: it only sends what the test makes it send)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(odm_uri)
    try:
        yield client
    finally:
        await client.close()


async def late_transaction(
    database: Any, session: AsyncClientSession
) -> tuple[dict[str, Any] | None, Any]:
    """Start the next transaction of ``session`` (as a late command of it would) with a read
    in ``database``; return what it read, and the server's transactions open in that session
    (then aborted, for the test to go on)."""
    if session.in_transaction:
        await session.abort_transaction()  # what the driver knows: the server's may be killed
    await session.start_transaction()
    found = await database.fenced_items.find_one({}, session=session)
    cursor = await database.client.admin.aggregate([
        {"$currentOp": {"allUsers": True, "idleSessions": True}},
        {"$match": {"lsid.id": session.session_id["id"], "transaction": {"$exists": True}}},
    ])
    open_now = [op async for op in cursor]
    await session.abort_transaction()
    return found, open_now


async def test_a_session_fenced_by_its_id_refuses_its_late_transaction(
    odm_database: Any, dead: AsyncMongoClient[dict[str, Any]]
) -> None:
    client = odm_database.client
    await drivers.resolve(odm_database.fenced_items.insert_one({"_id": 1}))
    database = dead[odm_database.name]
    async with dead.start_session() as session:
        await session.start_transaction()
        await database.fenced_items.find_one({}, session=session)
        lsid = session.session_id

        # The kill alone: the late transaction opens (the hole).
        await drivers.resolve(client.admin.command({"killSessions": [lsid]}))
        found, open_now = await late_transaction(database, session)
        assert found == {"_id": 1} and len(open_now) == 1, open_now

        # Killed and fenced by its id: refused, however late it comes.
        await drivers.resolve(client.admin.command({"killSessions": [lsid]}))
        await fence_session_id(client, lsid, odm_database.name)
        with pytest.raises(OperationFailure) as refused:
            await late_transaction(database, session)
        assert refused.value.code == TRANSACTION_TOO_OLD, refused.value

    # The driver session that stood for the dead one is not pooled again: this client's next
    # operations go in sessions of its own.
    mine = await drivers.start_session(client)
    try:
        await drivers.resolve(odm_database.fenced_items.find_one({}, session=mine))
        assert mine.session_id != lsid
    finally:
        await drivers.end_session(mine)
