"""Fixtures of the documents integration tests."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from odm.contrib.pytest import MonitoredDatabase


@pytest.fixture
def monitored(odm_monitored: MonitoredDatabase) -> MonitoredDatabase:
    """The plugin's command-logging database, under the name these tests use."""
    return odm_monitored


@pytest.fixture
async def hold(odm_database: Any) -> AsyncIterator["_Hold"]:
    """``await hold(command, ran, block_ms)``: the server holds the next ``command`` for
    ``block_ms``, then runs it (``ran``) or refuses it with an error (to cut a write off
    past its caller's deadline, with an outcome the test chooses). ``await hold.over()``
    returns once the server is done with that command (see :class:`_Hold`)."""
    arm = _Hold(odm_database)
    yield arm
    await odm_database.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


class _Hold:
    """The ``hold`` fixture: arms the fail point, and waits for the held command to end.

    Waiting a fixed time after the caller gave up is not enough on a loaded machine: the
    command may reach the server later than that (Motor sends it from a thread of its own).
    So :meth:`over` waits for the server to say the fail point held it, then for the time it
    holds it, then for the command to leave ``$currentOp``. (A held command is listed there
    while held; yet without the wait for the hold, polling alone returned before a Motor
    insert landed in runs here, 1 to 3 times in 3 runs, for a cause not pinned down.)"""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.command = ""
        self.entered = 0
        self.block_ms = 0

    async def __call__(self, command: str, ran: bool, block_ms: int) -> None:
        data: dict[str, Any] = {
            "failCommands": [command], "blockConnection": True, "blockTimeMS": block_ms,
        }
        if not ran:
            data["errorCode"] = 2
        reply = await self.database.client.admin.command(
            {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data}
        )
        self.command, self.entered, self.block_ms = command, int(reply["count"]), block_ms

    async def over(self) -> None:
        """Return once the held command has run or been refused (within 10 s)."""
        admin = self.database.client.admin
        await admin.command({
            "waitForFailPoint": "failCommand", "timesEntered": self.entered + 1,
            "maxTimeMS": 10_000,
        })
        await asyncio.sleep(self.block_ms / 1000)
        match = {"command.$db": self.database.name, f"command.{self.command}": {"$exists": True}}
        give_up = asyncio.get_running_loop().time() + 10
        while True:
            cursor = admin.aggregate([{"$currentOp": {}}, {"$match": match}])
            if asyncio.iscoroutine(cursor):
                cursor = await cursor  # PyMongo's async aggregate is a coroutine, Motor's a cursor
            if not await cursor.to_list(None):
                return
            assert asyncio.get_running_loop().time() < give_up, "the held command did not end"
            await asyncio.sleep(0.003)
