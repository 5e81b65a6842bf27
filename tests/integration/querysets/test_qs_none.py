"""``none()`` and sync misuse (issue #21, item 4): an empty queryset that sends nothing, and
``for``/``list``/``len``/``bool``/``in`` on a queryset raising ``TypeError`` at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from qs_support import QsCustomer, seed_people

from odm import F, QueryError, transaction
from odm.aggregates import Count
from odm.contrib.pytest import MonitoredDatabase


async def test_none_matches_nothing_and_sends_nothing(monitored: MonitoredDatabase) -> None:
    people = await seed_people()
    ann = people["Ann"]
    monitored.log.clear()
    empty = QsCustomer.objects.filter(age__gte=18).none()
    assert await empty == []
    assert await empty.filter(name="Ann").order_by("-age")[:3] == []
    assert await QsCustomer.objects.none().filter(id=ann.id) == []
    assert [c async for c in empty] == []
    assert await empty.count() == 0
    assert await empty.exists() is False
    assert await empty.first() is None
    assert await empty.last() is None
    assert await empty.to_list(5) == []
    assert await empty.values("name") == []
    assert await empty.values_list("name", flat=True) == []
    assert await empty.values("name").annotate(n=Count()) == []
    assert await empty.aggregate(n=Count()) == {"n": 0}
    assert await empty.in_bulk([ann.id]) == {}
    assert await empty.aggregate_pipeline([{"$count": "n"}]) == []
    assert await empty.update(age=F("age") + 1) == 0
    assert await empty.delete() == 0
    with pytest.raises(QsCustomer.DoesNotExist):
        await QsCustomer.objects.none().get(id=ann.id)
    with pytest.raises(QsCustomer.DoesNotExist):
        await empty.get(name="Ann")
    with pytest.raises(IndexError):
        await empty[0]
    assert empty.explain_query() == {}
    assert await empty.explain() == {}
    assert repr(empty).endswith("{}>")
    assert monitored.log.names() == []  # nothing reached the server
    # The writes above changed nothing; the full queryset still sees everyone.
    assert await QsCustomer.objects.filter(age__gte=18).count() == 3
    assert (await QsCustomer.objects.get(id=ann.id)).age == 34


async def test_none_still_checks_what_it_is_given(odm_database: Any) -> None:
    """none() sends nothing, but a bad filter or update is still the caller's error."""
    with pytest.raises(QueryError, match="nope"):
        QsCustomer.objects.none().filter(nope=1)
    with pytest.raises(QueryError):
        await QsCustomer.objects.none().update(nope=1)
    with pytest.raises(QueryError, match="never deliver"):
        async for _ in QsCustomer.objects.none().watch():
            pass


async def test_none_inside_a_transaction_sends_nothing(
    monitored: MonitoredDatabase,
) -> None:
    await seed_people()
    monitored.log.clear()
    async with transaction():
        assert await QsCustomer.objects.none().update(age=1) == 0
        assert await QsCustomer.objects.none().delete() == 0
    assert "update" not in monitored.log.names() and "delete" not in monitored.log.names()


SYNC_MISUSE: dict[str, tuple[Callable[[Any], object], str]] = {
    "for": (lambda qs: [x for x in qs], "async for"),
    "list": (list, "async for"),
    "tuple": (tuple, "async for"),
    "unpack": (lambda qs: [*qs], "async for"),
    "len": (len, r"await qs\.count\(\)"),
    "bool": (bool, r"await qs\.exists\(\)"),
    "if": (lambda qs: 1 if qs else 0, r"await qs\.exists\(\)"),
    "in": (lambda qs: object() in qs, r"exists\(\)"),
    "sorted": (sorted, "async for"),
}


@pytest.mark.parametrize("how", sorted(SYNC_MISUSE))
async def test_sync_use_raises_type_error_at_once(
    monitored: MonitoredDatabase, how: str
) -> None:
    """Each used to hang forever (Python fell back on __getitem__), list() growing memory."""
    await seed_people()
    monitored.log.clear()
    call, advice = SYNC_MISUSE[how]
    for qs in (QsCustomer.objects.all(), QsCustomer.objects.values("name"),
               QsCustomer.objects.none(), QsCustomer.objects.adults()[:2]):
        with pytest.raises(TypeError, match=advice) as info:
            call(qs)
        assert "QuerySet" in str(info.value) and "awaited" in str(info.value)
    assert monitored.log.names() == []
    # The async spellings the errors point to work.
    qs = QsCustomer.objects.all()
    assert len(await qs) == await qs.count() == 4
    assert await qs.exists()
    assert [c.name async for c in qs] == ["Ann", "Bob", "Cid.Jr", "dee"]
