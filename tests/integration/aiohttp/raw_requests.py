"""What the aiohttp tests share to write inside a request and to read a response as a client
sees it, framing included."""

from __future__ import annotations

import asyncio
from typing import Any

import odm
from odm.session import current_session

READ_LIMIT = 3.0
"""Seconds a response may take to be read before the test gives up on it."""


async def write(n: int, collection: str = "items") -> None:
    """Insert one document in the request's transaction (explicit session: Motor cannot bind)."""
    await odm.get_database()[collection].insert_one({"n": n}, session=current_session())


async def post_raw(client: Any, path: str) -> bytes:
    """POST ``path`` over a socket of its own and return every byte the server sent until it
    closed the connection: what a client reads, framing included."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n"
        writer.write(f"{head}Connection: close\r\n\r\n".encode())
        async with asyncio.timeout(READ_LIMIT):
            return await reader.read()
    finally:
        writer.close()
