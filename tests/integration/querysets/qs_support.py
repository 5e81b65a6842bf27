"""Models and a command-recording database for the queryset integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import pytest_asyncio
from pydantic import Field
from pymongo import monitoring

import odm
from odm import Document, Embedded, Indexed, QuerySet, Reference
from odm.drivers import DriverName, close_client, create_client

# Commands that are not the test's own (handshakes, topology, session cleanup).
NOISE = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "saslStart",
     "saslContinue", "killCursors", "dropDatabase", "getMore"}
)


class QsAddress(Embedded):
    street: str = ""
    city: str
    zip: str | None = None


class QsItem(Embedded):
    sku: str
    price: float
    qty: int = 1


class QsCustomerQuerySet(QuerySet["QsCustomer"]):
    def adults(self) -> QsCustomerQuerySet:
        return self.filter(age__gte=18)

    def named(self, prefix: str) -> QsCustomerQuerySet:
        return self.filter(name__startswith=prefix)


class QsCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str
    age: int = 0
    score: float = 0.0
    tags: list[str] = []
    scores: list[int] = []
    address: QsAddress | None = None
    items: list[QsItem] = []
    meta: dict[str, Any] = {}
    nick: str | None = None
    created: datetime = Field(default_factory=odm.utcnow)

    objects = QsCustomerQuerySet.as_manager()

    class Meta:
        collection = "qs_customers"
        ordering = ["name"]


class QsOrder(Document):
    customer: Reference[QsCustomer]
    total: float
    paid: float = 0.0
    status: str = "new"
    watchers: list[Reference[QsCustomer]] = []

    class Meta:
        collection = "qs_orders"


class QsAnimal(Document):
    name: str

    class Meta:
        collection = "qs_animals"
        polymorphic = True


class QsCat(QsAnimal):
    lives: int = 9


class QsDog(QsAnimal):
    good: bool = True


@dataclass
class Recorder(monitoring.CommandListener):
    """Keeps the commands that reach the server, in order."""

    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in NOISE:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()

    def names(self) -> list[str]:
        return [name for name, _ in self.commands]

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


PEOPLE: list[dict[str, Any]] = [
    {"email": "ann@x.io", "name": "Ann", "age": 34, "score": 7.5, "tags": ["vip", "paris"],
     "scores": [80, 95], "address": {"street": "1 rue A", "city": "Paris", "zip": "75001"},
     "items": [{"sku": "A1", "price": 10.0, "qty": 2}, {"sku": "B2", "price": 99.0}],
     "meta": {"source": "web"}, "nick": "annie"},
    {"email": "bob@x.io", "name": "Bob", "age": 17, "score": 3.0, "tags": ["young"],
     "scores": [50], "address": {"city": "Lyon"},
     "items": [{"sku": "A1", "price": 12.0}], "meta": {"source": "shop"}},
    {"email": "cid@x.io", "name": "Cid.Jr", "age": 52, "score": 9.0, "tags": [],
     "scores": [], "address": {"city": "paris"}, "items": []},
    {"email": "dee@x.io", "name": "dee", "age": 25, "tags": ["vip", "spam", "a.b"],
     "scores": [85, 88, 91], "address": None,
     "items": [{"sku": "C3", "price": 5.5, "qty": 10}], "nick": "D(ee)*"},
]


async def seed_people() -> dict[str, QsCustomer]:
    docs = [QsCustomer(**p) for p in PEOPLE]
    await QsCustomer.objects.bulk_create(docs)
    return {d.name: d for d in docs}


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Yield every (key, value) of every dict inside ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                yield key, sub
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
