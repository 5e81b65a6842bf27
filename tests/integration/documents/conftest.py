"""Fixtures of the documents integration tests."""

import pytest

from odm.contrib.pytest import MonitoredDatabase


@pytest.fixture
def monitored(odm_monitored: MonitoredDatabase) -> MonitoredDatabase:
    """The plugin's command-logging database, under the name these tests use."""
    return odm_monitored
