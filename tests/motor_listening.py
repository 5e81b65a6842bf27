"""A fresh database bound to the default alias through a Motor client that reports its commands
to a listener: for the tests that hold a command in Motor's thread (a listener's ``started``
event comes after the command is built, before it is sent)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import monitoring

from odm import connection, drivers


@asynccontextmanager
async def bound_through_motor(uri: str, listener: monitoring.CommandListener) -> AsyncIterator[Any]:
    """Bind a fresh database of the server at ``uri`` to the default alias, through a Motor
    client whose commands ``listener`` sees; yield that database, drop it and disconnect after."""
    client = drivers.create_client(
        uri, "motor", event_listeners=[listener], tz_aware=True, uuidRepresentation="standard"
    )
    name = f"odm_test_{uuid.uuid4().hex[:12]}"
    bound = await connection.open_connection(client=client, db=name, timeout=30.0)
    try:
        yield bound.database
    finally:
        try:
            await client.drop_database(name)
        finally:
            await connection.disconnect(None)
            await drivers.close_client(client)
