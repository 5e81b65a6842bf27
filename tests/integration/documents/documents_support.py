"""Fixtures for the documents tests: a database whose client records every command sent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from pymongo import monitoring

import odm
from odm.drivers import DriverName, close_client, create_client

# Commands that are not the test's own (handshakes, topology, session cleanup).
_NOISE = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "saslStart",
     "saslContinue", "killCursors", "dropDatabase"}
)


@dataclass
class Recorder(monitoring.CommandListener):
    """Keeps the commands that reach the server, in order."""

    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _NOISE:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [command for command_name, command in self.commands if command_name == name]


@dataclass
class Monitored:
    database: Any
    recorder: Recorder


@pytest_asyncio.fixture(name="monitored")
async def monitored_fixture(odm_uri: str, odm_driver: DriverName) -> AsyncIterator[Monitored]:
    """A fresh database on the default alias, through a client that records its commands."""
    recorder = Recorder()
    client = create_client(
        odm_uri, odm_driver, event_listeners=[recorder], tz_aware=True,
        uuidRepresentation="standard",
    )
    name = f"odm_test_{uuid.uuid4().hex[:12]}"
    conn = await odm.connect(client=client, db=name)
    recorder.clear()
    try:
        yield Monitored(conn.database, recorder)
    finally:
        try:
            await client.drop_database(name)
        finally:
            await odm.disconnect(None)
            await close_client(client)
