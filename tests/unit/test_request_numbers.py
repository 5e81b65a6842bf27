"""Numbers a request supplies where odm wants seconds or metres: a clear error naming them.

A query string gives text (``"5"``); a JSON body gives ints of any size (``10**5000``). Neither
may reach a comparison that raises ``TypeError`` or a conversion that raises
``OverflowError``.
"""

from __future__ import annotations

from typing import Any

import pytest

import odm
from odm import Circle, Near, Point, QueryError
from odm.timeouts import check_timeout


@pytest.mark.parametrize("seconds", ["5", b"5", True, [1], float("nan"), 0, -1.5])
def test_a_timeout_that_is_not_a_positive_number_is_a_value_error(seconds: Any) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        check_timeout(seconds)


async def test_a_transaction_timeout_from_a_query_string_is_refused_at_once() -> None:
    # Before anything connects: no server is needed to be told.
    with pytest.raises(ValueError, match="'5'"):
        async with odm.transaction(timeout="5"):  # type: ignore[arg-type]
            pass
    check_timeout(0.25)
    check_timeout(3)


@pytest.mark.parametrize("huge", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_a_distance_past_a_double_is_a_query_error(huge: int) -> None:
    point = Point(coordinates=(2.35, 48.85))
    with pytest.raises(QueryError, match="finite number of metres"):
        Near(point, max_distance=huge)
    with pytest.raises(QueryError, match="finite number of metres"):
        Circle(point, huge)


def test_a_usual_distance_is_kept_in_metres() -> None:
    point = Point(coordinates=(2.35, 48.85))
    assert Near(point, max_distance=5000, min_distance=10).max_distance == 5000.0
    with pytest.raises(QueryError, match="must not be negative"):
        Near(point, max_distance=-1)
