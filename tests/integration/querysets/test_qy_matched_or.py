"""``matched()`` beside an ``|`` whose other branch tests no list, on the server.

``filter(tags="a").filter(Q(tags="m") | ~Q(k=0))`` was refused ("tests 'tags' 2 times")
where ``Q(tags="m") | ~Q(owner__name="x")`` was written: a branch noting no element
(a negation) made the ``|`` count as a test of ``tags`` alone, which MongoDB may run as an
``$in`` that notes its element. An ``|`` with a branch testing no list is not one of a single
path: no branch passes on its element, and ``$`` writes the element ``tags="a"`` matched.
"""

from __future__ import annotations

import pytest
from test_upd21_matched_beside import Upd21Holder, _reset, _stored, _written

from odm import F, Q
from odm.contrib.pytest import MonitoredDatabase

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


@pytest.mark.parametrize(
    "other",
    [~Q(k=0), Q(k__ne=0), Q(tags__ne="z"), ~Q(owner__name="x") & Q(k__gte=1)],
    ids=["not", "ne", "ne-of-the-list", "not-a-reference-beside"],
)
async def test_an_or_with_a_branch_noting_nothing_writes_the_element_matched(
    monitored: MonitoredDatabase, other: Q
) -> None:
    before = await _reset(monitored.database)
    qs = Upd21Holder.objects.filter(tags="a").filter(Q(tags="m") | other)
    assert await qs.update(tags=F("tags").matched("W")) == 2
    written = _written(before, await _stored(monitored.database))
    assert written == {1: ["W", "m"], 2: ["c", "m", "W"]}
