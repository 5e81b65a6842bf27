"""A TCP proxy in front of one ``mongod`` that holds back one command a client sends and
delivers it after the client gave its connection up: the network's way of making a command
that a cancellation cut off reach the server late, after the abort meant to end its
transaction. (A fail point cannot stand in for it: a command a fail point blocks is already
an operation on the server, which ``killSessions`` ends; a late one is not yet.)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import bson


class LateDelivery:
    """Forward every connection to ``host:port``; once :meth:`hold` is armed, keep back the
    ``nth`` message (0-based) whose bytes contain ``marker``, until :meth:`deliver`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.held = asyncio.Event()
        self._marker: bytes | None = None
        self._left = 0
        self._held: tuple[bytes, asyncio.StreamWriter, asyncio.Event] | None = None
        self._drop = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        """Listen on a free local port, and return it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def hold(self, marker: bytes, nth: int, *, drop: bool = False) -> None:
        """Keep back the ``nth`` next message containing ``marker`` (on any connection);
        ``drop``: then close the client's connection, as a network that failed after the
        command was sent (the driver sees a network error, not a command still running)."""
        self.held.clear()
        self._marker, self._left, self._held, self._drop = marker, nth, None, drop

    def held_command(self) -> dict[str, Any]:
        """The command the held message carries (its OP_MSG's body), for a test to check that
        what it held is the command it meant to hold."""
        assert self._held is not None, "no message was held"
        data = self._held[0]
        # An OP_MSG (opcode 2013): a 16-byte header and 4 bytes of flags, then its body, a
        # section of kind 0 holding one BSON document.
        assert int.from_bytes(data[12:16], "little") == 2013 and data[20] == 0, data[:21]
        size = int.from_bytes(data[21:25], "little")
        return dict(bson.decode(data[21 : 21 + size]))

    async def deliver(self, within: float = 5.0) -> bool:
        """Send the held message to the server on its own connection (the client closed its
        end since) and wait up to ``within`` seconds for the server's answer; tell whether
        one came, which shows the server read and ran it."""
        assert self._held is not None, "no message was held"
        data, upstream, answered = self._held
        upstream.write(data)
        await upstream.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered.wait(), within)
        upstream.close()
        return answered.is_set()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._writers += [writer, up_writer]
        answered = asyncio.Event()
        for pump in (
            self._client_to_server(reader, writer, up_writer, answered),
            self._server_to_client(up_reader, writer, answered),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
        answered: asyncio.Event,
    ) -> None:
        while data := await reader.read(1 << 16):
            if self._marker is not None and self._marker in data:
                if self._left == 0:
                    self._marker = None
                    answered.clear()  # from now on: the held message's answer
                    self._held = (data, upstream, answered)
                    if self._drop:
                        client.close()
                    self.held.set()
                    return  # the client's end closes; the server's stays open for deliver()
                self._left -= 1
            upstream.write(data)
            await upstream.drain()
        upstream.close()

    async def _server_to_client(
        self, upstream: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: asyncio.Event
    ) -> None:
        while data := await upstream.read(1 << 16):
            answered.set()
            with contextlib.suppress(ConnectionError):
                writer.write(data)
                await writer.drain()
        writer.close()
