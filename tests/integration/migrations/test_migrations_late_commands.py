"""A write of a migration run that was cut off on the client may reach the server after the
run ended its session there: its bytes were still on their way (or unread in the socket the
driver closed), so it was no operation on the server yet that ``killSessions`` could end, nor
one ``$currentOp`` could show. It then ran late:

- a file's record write cut off at the lock's lease: the run read back `not recorded` and
  failed, and the record landed afterwards (the next ``apply`` found nothing to apply);
- a ``batched_update`` batch without a transaction cut off at the lease: it landed after the
  rerun had finished and removed the guards (``_odm_batch``), so its ``$inc`` counted twice;
- a ``mark``'s note of the change under way cut off at the lease: the mark said `nothing was
  changed`, and the note landed afterwards, for the next command to finish the mark;
- the first command of a file's transaction, its connection dropped: it opened the transaction
  on the server after the run had retried it and gone on, holding its locks until the server's
  lifetime limit.
- the first command of a ``batched_update`` batch's transaction, its process killed: it opened
  the transaction after the run that resumed the update had killed the dead run's session, and
  held its locks against that run (which hit write conflicts until it timed out).

A write cut off by a timeout or a network error leaves its session out of the driver's pool
(PyMongo drops a session that saw a network error), so no later write of the run reuses it
with a newer transaction number, which would have made the server refuse the late one by
chance; after a cancellation the session goes back to the pool and the run's next retryable
write does exactly that. Here a TCP proxy (:class:`tests.late_delivery.LateDelivery`) holds
back one command of a run, and delivers it once the run has ended: the server must refuse it
(the run fenced the session), and what the run said and stored stays true.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from odm.exceptions import MigrationError
from odm.migrations import Runner
from odm.migrations.recorder import APPLIED, LOG, STATE
from odm.migrations.records_change import CHANGE_KEY
from odm.migrations.runner import NO_TRANSACTIONS_ENV
from tests.integration.migrations.conftest import ROOT
from tests.late_delivery import LateDelivery

pytestmark = pytest.mark.odm_drivers("pymongo")

#: The lock's lease of a run whose write is to be cut off at the lease: short, since the test
#: waits for it once.
SHORT_LEASE = 0.3

#: A file whose one step does nothing, run without a transaction: its record is a write of its
#: own (retryable, so it carries a transaction number).
NOT_IN_TRANSACTION = '''
from odm.migrations import step

__transactional__ = False


async def up(db):
    pass


steps = [step(up)]
'''

#: A file whose step writes in the file's transaction.
IN_TRANSACTION = '''
from odm.migrations import step


async def up(db):
    await db.late_items.update_one({"_id": 0}, {"$inc": {"n": 1}})


steps = [step(up)]
'''

#: A file whose step is a batched update, two documents a batch.
BATCHED = '''
from odm.migrations import batched_update, step

steps = [step(lambda db: batched_update(db.late_items, {}, {"$inc": {"n": 1}}, batch_size=2))]
'''

ITEMS = [{"_id": i, "n": 0} for i in range(4)]


def opening(command: str, collection: str) -> bytes:
    """The bytes that begin the BSON body of ``command`` on ``collection``: its first element, a
    string, which no command of another name or on another collection starts with."""
    name = collection.encode() + b"\x00"
    return b"\x02" + command.encode() + b"\x00" + len(name).to_bytes(4, "little") + name


@dataclass
class Late:
    """The proxy; the test's database seen through it (as a run sees it) and directly; and a
    directory of migrations."""

    proxy: LateDelivery
    db: Any
    direct: Any
    dir: Path
    #: The test's database through the proxy, as a URI (for a run in another process).
    proxied_uri: str
    #: The sessions of the commands held, ended at the end of the test: a transaction one
    #: opened late (the test failing) would hold its locks until the server's lifetime limit,
    #: and the database's drop would wait for it.
    held_sessions: list[Any] = field(default_factory=list)

    def write(self, source: str) -> None:
        """Write the one migration file, ``0001_a.py``."""
        (self.dir / "0001_a.py").write_text(textwrap.dedent(source))

    def runner(self, **options: Any) -> Runner:
        """A runner through the proxy."""
        return Runner(self.db, self.dir, **options)

    async def held_while(
        self, run: Coroutine[Any, Any, Any], marker: bytes, *, drop: bool = False
    ) -> tuple[Any, dict[str, Any]]:
        """Hold back the first message of ``run`` containing ``marker`` (``drop``: and drop the
        client's connection), let ``run`` end, and return what it returned or raised, and the
        held command (still to be delivered)."""
        self.proxy.hold(marker, 0, drop=drop)
        task = asyncio.create_task(run)
        await asyncio.wait_for(self.proxy.held.wait(), 10)
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        held = self.proxy.held_command()
        self.held_sessions.append(held["lsid"])
        return outcome, held

    async def open_transactions(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        """The transactions still open on the server in the session of ``command``."""
        cursor = await self.direct.client.admin.aggregate([
            {"$currentOp": {"allUsers": True, "idleSessions": True}},
            {"$match": {"lsid.id": command["lsid"]["id"], "transaction": {"$exists": True}}},
        ])
        return [op async for op in cursor]


@pytest.fixture
async def late(odm_uri: str, tmp_path: Path) -> AsyncIterator[Late]:
    """A fresh database holding ``ITEMS``, run through a proxy in front of the primary."""
    name = f"odm_late_{uuid.uuid4().hex[:10]}"
    direct: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(odm_uri, tz_aware=True)
    host, port = (await direct.admin.command("hello"))["primary"].rsplit(":", 1)
    proxy = LateDelivery(host, int(port))
    proxy_port = await proxy.start()
    proxied: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{proxy_port}/?directConnection=true", tz_aware=True
    )
    proxied_uri = f"mongodb://127.0.0.1:{proxy_port}/{name}?directConnection=true"
    try:
        await direct[name].late_items.insert_many(ITEMS)
        yield (late := Late(proxy, proxied[name], direct[name], tmp_path, proxied_uri))
        if late.held_sessions:
            await direct.admin.command("killSessions", late.held_sessions)
    finally:
        await proxied.close()
        await proxy.close()
        await direct.drop_database(name)
        await direct.close()


async def test_a_record_write_cut_off_at_the_lease_and_delivered_late_records_nothing(
    late: Late,
) -> None:
    late.write(NOT_IN_TRANSACTION)
    run = late.runner(lock_lease=SHORT_LEASE).apply()
    failed, held = await late.held_while(run, opening("update", APPLIED))
    assert "txnNumber" in held, held  # a retryable write: the fence can refuse it
    assert isinstance(failed, MigrationError), failed
    assert str(failed).startswith("apply 0001_a failed at step 1: a write did not finish")
    assert await late.proxy.deliver(), "the server did not answer the late write"
    assert await late.direct[APPLIED].find_one({"_id": "0001_a"}) is None
    # What the run said stays true: the next run records the file, once.
    assert await late.runner().apply() == ["0001_a"]
    log = [(doc["action"], doc["ok"]) async for doc in late.direct[LOG].find()]
    assert log == [("apply", False), ("apply", True)]


async def test_a_batch_cut_off_at_the_lease_and_delivered_after_the_rerun_counts_once(
    late: Late, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    late.write(BATCHED)
    run = late.runner(lock_lease=SHORT_LEASE).apply()
    failed, held = await late.held_while(run, opening("update", "late_items"))
    assert "txnNumber" in held and "startTransaction" not in held, held
    assert isinstance(failed, MigrationError), failed
    assert "0 document(s) done and stored as done; the next batch (2 document(s)) was cut " \
        "off" in str(failed)
    # Run again at once: it writes the cut-off batch, finishes, and removes the guards.
    assert await late.runner().apply() == ["0001_a"]
    assert await late.proxy.deliver(), "the server did not answer the late batch"
    assert [doc async for doc in late.direct.late_items.find()] == [
        {"_id": i, "n": 1} for i in range(4)
    ]


async def test_a_mark_s_note_cut_off_at_the_lease_and_delivered_late_changes_nothing(
    late: Late, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_TRANSACTIONS_ENV, "1")
    late.write(NOT_IN_TRANSACTION)
    run = late.runner(lock_lease=SHORT_LEASE).mark("0001_a")
    failed, held = await late.held_while(run, opening("insert", STATE))
    assert "txnNumber" in held, held
    assert isinstance(failed, MigrationError), failed
    assert str(failed).startswith("mark 0001_a failed, nothing was changed: a write did not")
    assert await late.proxy.deliver(), "the server did not answer the late note"
    # Nothing was changed, and nothing is left for the next command to finish.
    assert await late.direct[STATE].find_one({"_id": CHANGE_KEY}) is None
    lines: list[str] = []
    assert await late.runner(echo=lines.append).apply() == ["0001_a"]
    assert not any(line.startswith("finishing") for line in lines), lines


async def test_a_transaction_s_first_command_cut_off_with_its_connection_opens_nothing_late(
    late: Late,
) -> None:
    late.write(IN_TRANSACTION)
    lines: list[str] = []
    run = late.runner(echo=lines.append).apply()
    applied, held = await late.held_while(run, b"startTransaction", drop=True)
    assert held.get("startTransaction") is True and held.get("update") == "late_items", held
    # The dropped connection failed the transaction transiently: run again, it committed.
    assert applied == ["0001_a"], applied
    assert "  TransientTransactionError: running the transaction again from step 1" in lines
    assert await late.proxy.deliver(), "the server did not answer the late command"
    # Refused: no transaction opened in the cut-off session, nothing of it written.
    assert await late.open_transactions(held) == []
    assert [doc async for doc in late.direct.late_items.find()] == [
        {"_id": 0, "n": 1}, *ITEMS[1:]
    ]


async def test_a_killed_run_s_batch_transaction_delivered_after_the_takeover_opens_nothing(
    late: Late,
) -> None:
    # The first run, in a process of its own through the proxy: its second batch's transaction
    # is opened by a first command that the proxy holds back; the process is then killed
    # (SIGKILL: nothing of it ends or fences its session), as a deployer's run killed with a
    # command on its way.
    late.write(BATCHED)
    late.proxy.hold(b"startTransaction", 1)
    dead = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odm", "migrate", "apply", "--uri", late.proxied_uri,
        "--dir", str(late.dir), "--lock-lease", "1",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(late.proxy.held.wait(), 30)
    finally:
        dead.send_signal(signal.SIGKILL)
        output = await dead.communicate()
    assert dead.returncode == -signal.SIGKILL, output
    held = late.proxy.held_command()
    late.held_sessions.append(held["lsid"])
    # The held command is the dead run's second batch transaction's first: in the session it
    # stored with its position (for the next run to kill), after one batch stored as done.
    (position,) = [doc async for doc in late.direct[STATE].find({"lsid": {"$exists": True}})]
    assert held.get("startTransaction") is True and held["lsid"] == position["lsid"], held
    assert position["done"] == 2, position
    assert [doc async for doc in late.direct.late_items.find()] == [
        {"_id": 0, "n": 1}, {"_id": 1, "n": 1}, {"_id": 2, "n": 0}, {"_id": 3, "n": 0}
    ]

    # The next run (its lock taken over once the dead run's lease ran out) kills the dead
    # run's session, resumes and finishes; then the held command reaches the server.
    lines: list[str] = []
    async with asyncio.timeout(30):
        assert await Runner(late.direct, late.dir, echo=lines.append).apply() == ["0001_a"]
    assert any("resuming late_items after 2 document(s)" in line for line in lines), lines
    assert await late.proxy.deliver(), "the server did not answer the late command"

    # Refused: no transaction open in the dead run's session (it would hold its locks until
    # the server's lifetime limit), and every document updated exactly once.
    assert await late.open_transactions(held) == []
    assert [doc async for doc in late.direct.late_items.find()] == [
        {"_id": i, "n": 1} for i in range(4)
    ]
