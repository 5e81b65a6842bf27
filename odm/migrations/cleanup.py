"""Cleaning up after a step or a write that failed, without hiding why it failed."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any


async def quietly(awaitable: Any) -> None:
    """Await a cleanup (an abort, a log entry), ignoring its own failure.

    A cleanup must not hide the error that caused it.
    """
    with contextlib.suppress(Exception):
        await awaitable


def discard(target: Any) -> None:
    """Close a step's coroutine that will not run now, rather than leave it never awaited."""
    if inspect.iscoroutine(target):
        target.close()


async def end_on_server(client: Any, session: Any) -> None:
    """End ``session`` on the server, and with it a transaction left open there.

    The driver's abort ignores its own failure (a connection dropped on the way): the
    transaction would then stay open until the server reaps it (a minute by default), holding
    what it wrote (the lock's document, a position), and the run's clean-up, its release of the
    lock and the next deployer would all wait for it. Used on error paths only, quietly.
    """
    await quietly(client.admin.command({"killSessions": [session.session_id]}))
