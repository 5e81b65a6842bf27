"""Fixtures of the documents integration tests."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from odm.contrib.pytest import MonitoredDatabase


@pytest.fixture
def monitored(odm_monitored: MonitoredDatabase) -> MonitoredDatabase:
    """The plugin's command-logging database, under the name these tests use."""
    return odm_monitored


@pytest.fixture
async def hold(odm_database: Any) -> AsyncIterator[Callable[[str, bool, int], Awaitable[None]]]:
    """``await hold(command, ran, block_ms)``: the server holds the next ``command`` for
    ``block_ms``, then runs it (``ran``) or refuses it with an error (to cut a write off
    past its caller's deadline, with an outcome the test chooses)."""

    async def arm(command: str, ran: bool, block_ms: int) -> None:
        data: dict[str, Any] = {
            "failCommands": [command], "blockConnection": True, "blockTimeMS": block_ms,
        }
        if not ran:
            data["errorCode"] = 2
        await odm_database.client.admin.command(
            {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data}
        )

    yield arm
    await odm_database.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
