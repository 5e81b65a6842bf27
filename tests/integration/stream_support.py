"""What the change-stream tests share: how long a stream waits per round trip, and reading the
names of the documents the next events carry."""

from __future__ import annotations

import asyncio
from typing import Any

from odm import ChangeStream

#: Each stream waits this long per round trip: the events the tests read are already written.
AWAIT_MS = 100


async def names(stream: ChangeStream[Any], count: int) -> list[str]:
    """The ``name`` of each document the next ``count`` events of ``stream`` carry (5 s at
    most)."""

    async def read() -> list[str]:
        found = []
        async for event in stream:
            assert event.document is not None
            found.append(event.document.name)
            if len(found) == count:
                break
        return found

    return await asyncio.wait_for(read(), 5)
