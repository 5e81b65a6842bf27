"""A comparison with a whole list on a list field, on the server.

``nums__gte=[1, 3]`` was refused ("Input should be a valid integer"): a list value was
validated as one element. MongoDB compares a list operand with the whole stored list (an
element, never a list, is of another type and meets nothing), element by element, the first
that differs deciding and a list that is the start of the other coming first: Python's order
of lists, which the tests use as their oracle. At a position of a list of lists (``grid__0``)
the list there is compared whole, as equality does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import pytest

from odm import Document, QueryError
from odm.contrib.pytest import MonitoredDatabase

pytestmark = pytest.mark.odm_drivers("pymongo")  # the filters are odm's, not the driver's


class QyRanked(Document):
    name: str
    nums: list[int] | None = None
    grid: list[list[int]] = []
    words: list[str] = []

    class Meta:
        collection = "qy_ranked"


STORED: list[list[int] | None] = [[1, 2], [1, 3], [1, 3, 0], [3], [], [0, 9], [1], None]
WORDS = [["b"], ["a", "z"], ["a"], [], ["ab"], ["B"], ["é"], ["b"], ["a"]]
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


@pytest.fixture
async def ranked(monitored: MonitoredDatabase) -> None:
    docs = [
        {"name": f"n{i}", "nums": nums, "grid": [nums or []], "words": WORDS[i]}
        for i, nums in enumerate(STORED)
    ]
    await monitored.database[QyRanked._meta.collection].insert_many([*docs, {"name": "z"}])


@pytest.mark.parametrize("lookup", sorted(COMPARE))
async def test_a_list_value_compares_with_the_whole_list(ranked: None, lookup: str) -> None:
    compare, qs = COMPARE[lookup], QyRanked.objects.order_by("name")
    for value in ([1, 3], [], [1], (2,)):
        found = qs.filter(**{f"nums__{lookup}": value})
        assert await found.values_list("name", flat=True) == [
            f"n{i}" for i, nums in enumerate(STORED)
            if nums is not None and compare(nums, [*value])
        ], value
        at_position = qs.filter(**{f"grid__0__{lookup}": value})
        assert await at_position.values_list("name", flat=True) == [
            f"n{i}" for i, nums in enumerate(STORED) if compare(nums or [], [*value])
        ], value


async def test_lists_of_text_compare_by_their_characters(ranked: None) -> None:
    """Without a collation, text compares by its UTF-8 bytes: code points, as in Python."""
    qs = QyRanked.objects.order_by("name").filter(words__gte=["a", "z"])
    assert await qs.values_list("name", flat=True) == [
        f"n{i}" for i, words in enumerate(WORDS) if words >= ["a", "z"]
    ]


def test_a_whole_list_comparison_keeps_its_checks() -> None:
    with pytest.raises(QueryError, match="valid integer") as refused:
        QyRanked.objects.filter(nums__gte=[1, "x"])
    assert refused.value.field == "nums"
    with pytest.raises(QueryError, match="lookup 'gte' does not apply to 'grid'"):
        QyRanked.objects.filter(grid__gte=[1])
