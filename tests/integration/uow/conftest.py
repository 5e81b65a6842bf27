"""Fixtures of the unit-of-work tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from uow_support import fail_points_off as _off


@pytest.fixture
async def fail_points_off(odm_database: Any) -> AsyncIterator[None]:
    """Switch the ``failCommand`` fail point off after the test, whatever it armed."""
    yield
    await _off(odm_database)
