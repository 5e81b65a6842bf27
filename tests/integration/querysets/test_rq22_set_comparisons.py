"""A whole list compared with a set field is refused, naming the field.

``codes__gt=[2]`` on a ``set[int]`` was sent as a comparison of whole arrays: a set is stored
in the order Python iterated it (for text, an order that changes with each process's hash
seed), so the result depended on that order, and a Python reader of ``>`` on sets means a
superset. A comparison of its elements (``codes__gt=1``) stays.
"""

from __future__ import annotations

import pytest

from odm import Document, QueryError


class Rq22Coded(Document):
    codes: set[int] = set()
    labels: frozenset[str] | None = None
    nums: list[int] = []

    class Meta:
        collection = "rq22_coded"


@pytest.mark.parametrize(
    ("key", "value"),
    [("codes__gt", [2]), ("codes__lte", (1, 2)), ("labels__gte", ["a"]), ("labels__lt", [])],
)
def test_a_list_compared_with_a_set_is_refused(key: str, value: object) -> None:
    field = key.split("__")[0]
    with pytest.raises(QueryError, match=rf"'{field}' \(.*\) is a set") as refused:
        Rq22Coded.objects.filter(**{key: value})
    assert refused.value.field == field


def test_the_elements_of_a_set_and_a_whole_list_still_compare() -> None:
    assert Rq22Coded.objects.filter(codes__gt=1).query.where[0].mql == {"codes": {"$gt": 1}}
    assert Rq22Coded.objects.filter(nums__gt=[1]).query.where[0].mql == {"nums": {"$gt": [1]}}
