"""What a test leaves armed or open on the server, and its clean-up before the next test.

A fail point the test armed (``configureFailPoint``) and never turned off would fail a later
test's commands; a transaction it started and never ended holds its locks until the server
gives up on it (two minutes on the plugin's server), and the database fixture's
``dropDatabase`` waits for them all that time. :class:`Leftovers` follows the commands of a
test (through the plugin's listener, whichever client sent them), and
:meth:`Leftovers.clean_up` turns those fail points off and ends those transactions.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring
from pymongo.errors import PyMongoError

from odm.drivers import aggregate, resolve

#: The commands that end a transaction.
_ENDINGS = frozenset({"commitTransaction", "abortTransaction"})


@dataclass(eq=False)
class Leftovers(monitoring.CommandListener):
    """The fail points a test armed and the transactions it started, less those it ended."""

    fail_points: set[str] = field(default_factory=set)
    #: The sessions (``lsid``) whose transaction was started and not seen to end, by id.
    transactions: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    #: The ``commitTransaction`` and ``abortTransaction`` commands awaiting their reply.
    _ending: dict[tuple[Any, int], bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Note a fail point armed or turned off, a transaction started, one being ended."""
        command = event.command
        if event.command_name == "configureFailPoint":
            self._note_fail_point(command)
            return
        starts = bool(command.get("startTransaction"))
        if not starts and event.command_name not in _ENDINGS:
            return  # most commands: nothing to note
        lsid = command.get("lsid")
        if not isinstance(lsid, dict) or "id" not in lsid:
            return
        key = _id_bytes(lsid["id"])
        with self._lock:
            if starts:
                self.transactions[key] = dict(lsid)
            else:
                self._ending[(event.connection_id, event.request_id)] = key

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Forget a transaction once its commit or abort succeeded."""
        if event.command_name not in _ENDINGS:
            return
        with self._lock:
            key = self._ending.pop((event.connection_id, event.request_id), None)
            if key is not None:
                self.transactions.pop(key, None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Keep a transaction whose commit or abort failed: it may still be open."""
        if event.command_name not in _ENDINGS:
            return
        with self._lock:
            self._ending.pop((event.connection_id, event.request_id), None)

    def _note_fail_point(self, command: Any) -> None:
        name = command.get("configureFailPoint")
        if not isinstance(name, str):
            return
        with self._lock:
            if command.get("mode") == "off":
                self.fail_points.discard(name)
            else:
                self.fail_points.add(name)

    async def clean_up(self, client: Any) -> list[str]:
        """Turn off the fail points the test left armed and end the transactions it left
        open, through ``client`` (either driver); return a sentence for each transaction, to
        warn about (a fail point left armed is routine: ``times: 1`` that did not fire)."""
        for name in sorted(self.fail_points):
            # A server without test commands refused to arm it, and refuses this too.
            with contextlib.suppress(PyMongoError):
                await resolve(client.admin.command({"configureFailPoint": name, "mode": "off"}))
        self.fail_points.clear()
        if not self.transactions:
            return []
        open_ones = await _open_transactions(client, list(self.transactions.values()))
        self.transactions.clear()
        if open_ones:
            await resolve(client.admin.command({"killSessions": open_ones}))
        return [
            f"the test left a transaction open (session {_session_id(lsid)}); the plugin "
            "ended it, so that dropping the test's database does not wait for the server to "
            "give up on it: end every transaction the test starts (`async with` its session, "
            "or abort_transaction())"
            for lsid in open_ones
        ]


def _id_bytes(value: Any) -> bytes:
    """The 16 bytes of a session id, as a client decodes it (a ``UUID`` or a ``Binary``)."""
    return value.bytes if isinstance(value, uuid.UUID) else bytes(value)


def _session_id(lsid: dict[str, Any]) -> str:
    """A session's id as it is written (a UUID)."""
    return str(uuid.UUID(bytes=_id_bytes(lsid["id"])))


async def _open_transactions(client: Any, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return those of ``sessions`` (``lsid`` documents) that have a transaction open on the
    server now."""
    pipeline: list[dict[str, Any]] = [
        {"$currentOp": {"idleSessions": True, "allUsers": True}},
        {"$match": {
            "lsid.id": {"$in": [lsid["id"] for lsid in sessions]},
            "transaction": {"$exists": True},
        }},
        {"$project": {"_id": 0, "id": "$lsid.id"}},
    ]
    found: set[bytes] = set()
    async for op in await aggregate(client.admin, pipeline):
        found.add(_id_bytes(op["id"]))
    return [lsid for lsid in sessions if _id_bytes(lsid["id"]) in found]
