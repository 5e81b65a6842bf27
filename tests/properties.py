"""What the property tests that talk to the server share: their hypothesis settings.

Each example of such a property makes round trips to the server, so its time is the server's
and the machine's, not the test's: no deadline, and no ``too_slow`` health check. The examples
share the test's function-scoped fixtures (its database, seeded once), which is what those
fixtures are for, so the ``function_scoped_fixture`` check is off too. When ``CI`` is set, as
in ``.ci/run``, hypothesis's own ``ci`` profile derandomizes them; run them with
``--hypothesis-seed=...`` (``CI`` unset) to explore other examples.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["SERVER_PROPERTY", "server_property"]

#: The settings every property against the server starts from.
SERVER_PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def server_property(max_examples: int, **options: Any) -> settings:
    """Return the settings of a property against the server run on ``max_examples`` examples
    (``options``: any other setting, e.g. ``database=None``, ``stateful_step_count``)."""
    return settings(SERVER_PROPERTY, max_examples=max_examples, **options)
