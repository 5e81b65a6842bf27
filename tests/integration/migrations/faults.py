"""A test's own database, migrations directory and ``failCommand`` fail points, for the
migration tests that inject faults on the server.

The fail points match only the clients named with the setup's ``appName`` (and, given a
collection, only that collection of the setup's database), so a test's faults reach its own
run and no other test's."""

from __future__ import annotations

import asyncio
import contextvars
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, MongoClient, monitoring

from odm.cli import main
from odm.migrations import Runner

#: A migration file whose one step does nothing.
NOOP = '''
from odm.migrations import step


async def up(db):
    pass


steps = [step(up)]
'''



@dataclass
class FaultSetup:
    """A database, a directory of migrations, and fail points scoped to this setup's clients."""

    uri: str
    app: str
    db: Any
    dir: Path
    #: The fault-free synchronous client that arms the fail point (and reads the database),
    #: kept for the whole setup: a new client per command would cost a connection and a
    #: handshake each time, which a test that arms from a command hook pays inside the time it
    #: measures.
    admin: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.admin = MongoClient(self.uri, tz_aware=True)

    def write(self, name: str, source: str) -> Path:
        """Write the migration file ``name`` (``source`` dedented); return its path."""
        path = self.dir / name
        path.write_text(textwrap.dedent(source))
        return path

    def arm(self, commands: list[str], collection: str, data: dict[str, Any], mode: Any) -> None:
        """Arm ``failCommand`` for ``commands`` on ``collection`` ("": any namespace)."""
        scope = {"failCommands": commands, "appName": self.app}
        if collection:
            scope["namespace"] = f"{self.db.name}.{collection}"
        self._admin({"configureFailPoint": "failCommand", "mode": mode,
                     "data": {**scope, **data}})

    def disarm(self) -> None:
        """Turn the fail point off."""
        self._admin({"configureFailPoint": "failCommand", "mode": "off"})

    def _admin(self, command: dict[str, Any]) -> None:
        self.admin.admin.command(command)

    def ready(self) -> None:
        """Connect the admin client now: a test that arms the fail point from a command hook
        (inside the time it measures) then pays one round trip, not a connection's set-up."""
        self.admin.admin.command("ping")

    def close(self) -> None:
        """Turn the fail point off, drop the database, and close the admin client."""
        try:
            self.disarm()
            self.admin.drop_database(self.db.name)
        finally:
            self.admin.close()

    def runner(self, **options: Any) -> Runner:
        """A runner of this setup's directory on its database (its client's ``appName``)."""
        return Runner(self.db, self.dir, **options)

    def cli(self, *args: str) -> int:
        """Run ``odm migrate`` in this process, its client named as the fail points match."""
        uri = self.uri.replace("/?", f"/{self.db.name}?", 1) + f"&appName={self.app}"
        assert self.db.name in uri
        return main(["migrate", *args, "--uri", uri, "--dir", str(self.dir)])

    async def ids(self, collection: str) -> list[Any]:
        """The ``_id`` of every document of ``collection``."""
        return [doc["_id"] async for doc in self.db[collection].find()]


def fresh_names(prefix: str) -> tuple[str, str]:
    """A new ``appName`` and database name, both starting with ``prefix``."""
    tag = uuid.uuid4().hex[:10]
    return f"{prefix}_{tag[:8]}", f"{prefix}_{tag}"


@asynccontextmanager
async def fault_setup(
    uri: str, directory: Path, prefix: str, *, tz_aware: bool = True, **client_options: Any
) -> AsyncIterator[FaultSetup]:
    """A setup on an async client of its own (``client_options``: the client's other
    options, such as ``retryWrites=False`` or ``event_listeners``); its fail point off and its
    database dropped at the end."""
    app, name = fresh_names(prefix)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, appname=app, tz_aware=tz_aware, **client_options
    )
    state = FaultSetup(uri, app, client[name], directory)
    try:
        state.ready()
        yield state
    finally:
        state.close()
        await client.close()


@asynccontextmanager
async def fault_setup_and_reader(
    uri: str, directory: Path, prefix: str, **client_options: Any
) -> AsyncIterator[tuple[FaultSetup, Any]]:
    """:func:`fault_setup`, and its database read through a fault-free synchronous client
    (which no fail point reaches: it is not named with the setup's ``appName``)."""
    async with fault_setup(uri, directory, prefix, **client_options) as state:
        yield state, state.admin[state.db.name]


@contextmanager
def sync_fault_setup(uri: str, directory: Path, prefix: str) -> Iterator[FaultSetup]:
    """A setup on a synchronous client, for the command line (which runs its own event
    loop); its fail point off and its database dropped at the end."""
    app, name = fresh_names(prefix)
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    state = FaultSetup(uri, app, client[name], directory)
    try:
        state.ready()
        yield state
    finally:
        state.close()
        client.close()


class CommandHook(monitoring.CommandListener):
    """Calls ``hook(event)`` as each command of its client is about to be sent (synchronously,
    so that what it does on the server happens before the command reaches it).

    The hook runs in a context of its own: the command's task may be inside a
    ``pymongo.timeout()`` (a lease's), whose deadline a synchronous client's call made from the
    hook would otherwise inherit and, on a loaded machine, miss. What the hook raises (which
    PyMongo would only log) is kept in :attr:`errors` for the test to fail on.
    """

    def __init__(self) -> None:
        self.hook: Any = None
        self.errors: list[BaseException] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.hook is not None:
            try:
                contextvars.Context().run(self.hook, event)
            except Exception as exc:
                self.errors.append(exc)
                raise

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Not watched."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Not watched."""


async def stalled_heartbeat(self: Any) -> None:
    """A heartbeat that never beats, as in a process frozen (SIGSTOP, a paused VM): patched in
    for ``MigrationLock._beat``."""
    await asyncio.Event().wait()


def held_ops(db: Any, app: str, name: str, collection: str) -> list[Any]:
    """The ``name`` commands on ``collection`` the clients named ``app`` have running (read
    through the fault-free client of ``db``)."""
    return list(db.client.admin.aggregate([
        {"$currentOp": {"allUsers": True}},
        {"$match": {"appName": app, f"command.{name}": collection}},
    ]))


async def until_held(
    db: Any, app: str, name: str, collection: str, task: asyncio.Task[Any] | None = None
) -> None:
    """Wait until the held command is running on the server, failing if ``task`` (the work
    that sends it) had ended before the server was asked. Asked from a thread, so that the
    work goes on meanwhile, as it would."""
    async with asyncio.timeout(5):
        while True:
            ended = task is not None and task.done()
            if await asyncio.to_thread(held_ops, db, app, name, collection):
                return
            assert not ended, task
            await asyncio.sleep(0.005)


async def until_none_left(db: Any, app: str, name: str, collection: str) -> None:
    """Wait until the held command has ended on the server (at once, when it was ended)."""
    async with asyncio.timeout(5):
        while held_ops(db, app, name, collection):
            await asyncio.sleep(0.01)
