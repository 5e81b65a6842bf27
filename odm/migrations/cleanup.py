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
