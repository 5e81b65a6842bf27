"""Values of any depth: within MongoDB's 100 levels they are stored and matched, beyond them a
typed error names the field before anything is sent, never a RecursionError or a server error
(issue #19, item 5)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from qs_support import QsCustomer

import odm
from odm import QueryError
from odm.contrib.pytest import MonitoredDatabase
from odm.nesting import MAX_DEPTH
from tests.properties import server_property

TYPED = (ValidationError, QueryError)
WRITES = {"insert", "update", "delete"}


def nested(depth: int, list_every: int) -> Any:
    """A value ``depth`` containers deep (a dict, a list every ``list_every`` levels)."""
    value: Any = "x"
    for level in range(depth):
        value = [value] if list_every and level % list_every == 0 else {"a": value}
    return value


def q_nest(depth: int) -> odm.Q:
    """Q objects ``depth`` deep, alternating AND and OR (no chain to flatten)."""
    q = odm.Q(name="x")
    for i in range(depth):
        q = (q | odm.Q(name=str(i))) if i % 2 else ~(q & odm.Q(name=str(i)))
    return q


@server_property(max_examples=60)
@given(depth=st.integers(1, 1500) | st.sampled_from([98, 99, 100, 101, 179, 190, 900, 1100]),
       list_every=st.sampled_from([0, 2, 3]),
       how=st.sampled_from(["insert", "save", "bulk", "update", "filter", "exclude", "q"]))
async def test_depth_is_stored_or_refused_typed(
    monitored: MonitoredDatabase, depth: int, list_every: int, how: str
) -> None:
    value = nested(depth, list_every)
    # {"meta": {"v": value}}: the document and the meta dict are two levels more.
    fits = depth + 2 <= MAX_DEPTH
    monitored.log.clear()
    try:
        if how == "insert":
            await QsCustomer(email=f"{depth}@x.io", name="n", meta={"v": value}).insert()
        elif how == "save":
            doc = await QsCustomer(email=f"s{depth}@x.io", name="n").insert()
            monitored.log.clear()
            doc.meta = {"v": value}
            await doc.save()
        elif how == "bulk":
            await QsCustomer.objects.bulk_create(
                [QsCustomer(email=f"b{depth}@x.io", name="n", meta={"v": value})]
            )
        elif how == "update":
            await QsCustomer.objects.filter(name="nobody").update(meta={"v": value})
        elif how == "filter":
            await QsCustomer.objects.filter(meta={"v": value})
        elif how == "exclude":
            await QsCustomer.objects.exclude(meta__v=value).exists()
        else:
            fits = depth < 40
            await QsCustomer.objects.filter(q_nest(depth)).count()
    except TYPED as exc:
        assert not fits, f"{how} at depth {depth} refused: {exc}"
        assert "meta" in str(exc) or how == "q" or "nest" in str(exc)
        assert not WRITES & set(monitored.log.names()), monitored.log.names()
    else:
        assert fits, f"{how} at depth {depth} was sent"
    finally:
        await QsCustomer.objects.delete()


@pytest.mark.parametrize("list_every", [0, 2])
async def test_the_limit_is_the_same_for_documents_filters_and_updates(
    odm_database: Any, list_every: int
) -> None:
    """{"meta": {"v": value}}: 98 levels in value fit (100 with the document and meta), 99 not."""
    fits, over = nested(MAX_DEPTH - 2, list_every), nested(MAX_DEPTH - 1, list_every)
    doc = await QsCustomer(email="e@x.io", name="n", meta={"v": fits}).insert()
    assert await QsCustomer.objects.filter(meta={"v": fits}).count() == 1
    assert await QsCustomer.objects.filter(meta__v=fits).count() == 1
    assert await QsCustomer.objects.update(meta={"v": fits}) == 1
    with pytest.raises(ValidationError):
        await QsCustomer(email="f@x.io", name="n", meta={"v": over}).insert()
    attempts: list[Callable[[], Awaitable[Any]]] = [
        lambda: QsCustomer.objects.filter(meta={"v": over}).count(),
        lambda: QsCustomer.objects.filter(meta__v=over).count(),
        lambda: QsCustomer.objects.update(meta={"v": over}),
    ]
    for attempt in attempts:
        with pytest.raises(QueryError, match="meta"):
            await attempt()
    doc.meta = {"v": over}
    with pytest.raises(ValidationError):
        await doc.save()
    assert (await QsCustomer.objects.get(id=doc.id)).meta == {"v": fits}


async def test_the_reported_depths(odm_database: Any) -> None:
    """190 and 900 deep reached the server (an untyped OperationFailure); 1,000+ raised a bare
    RecursionError. Each is now a typed error naming the field, and nothing is written."""
    for depth in (190, 900, 1000, 5000):
        value = nested(depth, 0)
        with pytest.raises(ValidationError) as info:
            await QsCustomer(email="d@x.io", name="n", meta=value).insert()
        assert info.value.errors()[0]["loc"][0] == "meta"
        with pytest.raises(QueryError) as caught:
            await QsCustomer.objects.filter(meta=value)
        assert caught.value.field == "meta"
    assert await QsCustomer.objects.count() == 0
    # A thousand ORs built in a loop (one $or, flattened) is a filter MongoDB takes.
    q = odm.Q(name="0")
    for i in range(1000):
        q |= odm.Q(name=str(i))
    assert await QsCustomer.objects.filter(q).count() == 0
    with pytest.raises(QueryError, match="nest deeper"):
        await QsCustomer.objects.filter(q_nest(1000)).count()
