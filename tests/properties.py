"""What the property tests that talk to the server share: their hypothesis settings, and an
event loop of their own for those that hypothesis calls synchronously.

Each example of such a property makes round trips to the server, so its time is the server's
and the machine's, not the test's: no deadline, and no ``too_slow`` health check. The examples
share the test's function-scoped fixtures (its database, seeded once), which is what those
fixtures are for, so the ``function_scoped_fixture`` check is off too. When ``CI`` is set, as
in ``.ci/run``, hypothesis's own ``ci`` profile derandomizes them; run them with
``--hypothesis-seed=...`` (``CI`` unset) to explore other examples.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings

import odm

__all__ = ["SERVER_PROPERTY", "connected_runner", "server_property"]

#: The settings every property against the server starts from.
SERVER_PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def server_property(max_examples: int, **options: Any) -> settings:
    """Return the settings of a property against the server run on ``max_examples`` examples
    (``options``: any other setting, e.g. ``database=None``, ``stateful_step_count``)."""
    return settings(SERVER_PROPERTY, max_examples=max_examples, **options)


@contextmanager
def connected_runner(
    uri: str, prefix: str, *, driver: str | None = None
) -> Iterator[asyncio.Runner]:
    """An event loop of its own, with the ODM connected in it (``driver``: the default one, or
    the one named) to a database of its own named from ``prefix``, dropped at the end: for a
    property or a ``hypothesis.stateful`` machine, whose rules hypothesis calls synchronously
    and which run their coroutines with ``runner.run()``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    options: dict[str, Any] = {} if driver is None else {"driver": driver}
    runner = asyncio.Runner()
    runner.run(odm.connect(uri, db=name, timeout=30.0, **options))
    try:
        yield runner
    finally:

        async def down() -> None:
            await odm.get_client().drop_database(name)
            await odm.disconnect()

        runner.run(down())
        runner.close()
