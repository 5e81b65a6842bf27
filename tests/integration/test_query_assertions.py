"""Query assertions: ``assert_num_queries`` and the collection scan check, on a real server."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

import odm
from odm import Document, Index, Indexed
from odm.contrib.pytest import Queries, assert_num_queries, capture_queries
from odm.contrib.pytest.queries import (
    assert_no_collection_scans,
    collection_scans,
    shape,
    suggest_index,
)


class QaCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    status: str = "new"
    age: int = 0

    class Meta:
        collection = "qa_customers"
        indexes = [Index("status", "age")]


async def seed(count: int = 5) -> None:
    await QaCustomer.objects.bulk_create(
        [QaCustomer(email=f"c{i}@x.io", status="vip" if i % 2 else "new", age=20 + i)
         for i in range(count)]
    )
    await odm.ensure_indexes(models=[QaCustomer])


async def test_assert_num_queries_counts_the_commands_of_the_block(odm_database: Any) -> None:
    await seed()
    with assert_num_queries(2) as log:
        ann = await QaCustomer.objects.get(email="c1@x.io")
        ann.age += 1
        await ann.save()
    assert log.names() == ["find", "update"]
    with assert_num_queries(0):
        pass


async def test_assert_num_queries_fails_listing_what_was_sent(odm_database: Any) -> None:
    await seed()
    with pytest.raises(AssertionError) as failure, assert_num_queries(1):
        await QaCustomer.objects.filter(status="vip").count()
        await QaCustomer.objects.filter(age__gte=21).first()
    message = str(failure.value)
    assert message.startswith("expected 1 query, 2 were sent:")
    assert "1. aggregate 'qa_customers'" in message or "1. count 'qa_customers'" in message
    assert "2. find 'qa_customers'" in message and "'$gte': 21" in message


async def test_commands_of_an_applications_own_client_are_captured(
    odm_database_uri: str,
) -> None:
    # The client is created after the plugin registered its listener, as an app's would be.
    with capture_queries() as log:
        await odm.connect(odm_database_uri, models=[QaCustomer], timeout=30.0)
        try:
            await QaCustomer(email="a@x.io").insert()
        finally:
            await odm.disconnect()
    assert log.names() == ["insert"]


async def test_collection_scans_are_named_with_the_index_that_serves_them(
    odm_database: Any,
) -> None:
    await seed()
    with capture_queries() as log:
        await QaCustomer.objects.get(email="c1@x.io")                    # unique index
        await QaCustomer.objects.filter(status="vip", age__gte=21)       # Index("status", "age")
        await QaCustomer.objects.all()                                   # everything: by design
        await QaCustomer.objects.filter(age__gte=21).order_by("-age")    # scan
    scans = await collection_scans(log)
    assert len(scans) == 1
    [scan] = scans
    assert (scan.command, scan.collection, scan.documents) == ("find", "qa_customers", 5)
    assert scan.shape == {"age": {"$gte": "?"}}
    assert scan.index == 'Index("-age")'
    with pytest.raises(AssertionError) as failure:
        await assert_no_collection_scans(log)
    assert str(failure.value) == (
        "1 query scans a whole collection:\n"
        f"  - find on {odm_database.name}.qa_customers scans the collection (5 document(s)): "
        "filter {'age': {'$gte': '?'}}, sort {'age': -1}; "
        'an index that would serve it: Index("-age")'
    )


async def test_a_scan_of_an_empty_collection_is_not_reported(odm_database: Any) -> None:
    await odm.ensure_indexes(models=[QaCustomer])
    with capture_queries() as log:
        assert await QaCustomer.objects.filter(age__gte=21) == []
    await assert_no_collection_scans(log)


async def test_the_fixture_captures_the_whole_test(
    odm_database: Any, odm_queries: Queries
) -> None:
    await seed()
    with odm_queries.assert_num_queries(1):
        await QaCustomer.objects.filter(status="new").first()
    await odm_queries.assert_no_collection_scans()
    await QaCustomer.objects.filter(age=22).count()
    with pytest.raises(AssertionError, match=r'Index\("age"\)'):
        await odm_queries.assert_no_collection_scans()


def test_shape_and_suggested_index() -> None:
    flt = {"$and": [{"a": 1}, {"b": {"$in": [1, 2]}}], "c": {"$lt": 3}}
    assert shape(flt) == {"$and": [{"a": "?"}, {"b": {"$in": "?"}}], "c": {"$lt": "?"}}
    assert suggest_index(flt, {"d": -1}) == 'Index("a", "b", "-d", "c")'
    assert suggest_index({"$or": [{"a": 1}, {"b": 2}]}, {}) is None
