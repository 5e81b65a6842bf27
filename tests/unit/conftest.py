"""tests/unit/ holds the tests that need no server: a test here that asks for one fails.

The fixtures of the project's pytest plugin that start or reach the replica set are refused,
so that `pytest tests/unit` stays quick and runs anywhere; such tests live in
tests/integration/ or tests/reliability/.
"""

from __future__ import annotations

import pytest

#: The plugin's fixtures that start the server, or need it.
SERVER_FIXTURES = frozenset({"odm_server", "odm_uri", "odm_database"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fail the collection of a unit test that asks for the server."""
    for item in items:
        if "tests/unit/" not in item.nodeid.replace("\\", "/"):
            continue
        wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(
                f"{item.nodeid} asks for {sorted(wanted)}: a test that needs the server "
                "belongs in tests/integration/ (tests/unit/ runs without one)"
            )
