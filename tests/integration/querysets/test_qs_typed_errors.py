"""Body-shaped input that the server or Python refused untyped is a typed odm error naming the
field(s) (issue #19, item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from qs_support import QsCustomer, seed_people

from odm import QueryError
from odm.contrib.pytest import MonitoredDatabase


async def test_order_by_two_declared_lists_is_refused_before_sending(
    monitored: MonitoredDatabase,
) -> None:
    await seed_people()
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"order_by\(tags, scores\).*parallel arrays") as info:
        await QsCustomer.objects.order_by("tags", "-scores")
    assert info.value.field == "tags"
    with pytest.raises(QueryError, match="items__price, tags"):
        QsCustomer.objects.order_by("items__price", "tags")
    assert monitored.log.names() == []
    # One list, or two fields of the same list's elements, is a sort MongoDB runs.
    assert len(await QsCustomer.objects.order_by("tags", "name")) == 4
    assert len(await QsCustomer.objects.order_by("items__price", "-items__qty")) == 4


async def test_order_by_two_arrays_in_free_form_fields_is_a_query_error(
    odm_database: Any,
) -> None:
    """A free-form field may hold arrays the model cannot announce: the server's refusal
    becomes a QueryError naming the sort."""
    await QsCustomer(email="a@x.io", name="A", meta={"x": [1, 2], "y": [3, 4]}).insert()
    with pytest.raises(QueryError, match="parallel arrays") as info:
        await QsCustomer.objects.order_by("meta__x", "meta__y")
    assert "meta.x" in str(info.value)
    with pytest.raises(QueryError, match="parallel arrays"):
        async for _ in QsCustomer.objects.order_by("meta__x", "meta__y"):
            pass


@pytest.mark.parametrize("how", ["get_or_create", "update_or_create"])
async def test_same_field_in_lookup_and_defaults(odm_database: Any, how: str) -> None:
    """Was a TypeError ("got multiple values for keyword argument 'name'")."""
    call = getattr(QsCustomer.objects, how)
    with pytest.raises(QueryError, match="'name' both in the lookup and in defaults") as info:
        await call({"name": "B", "age": 3}, email="b@x.io", name="A")
    assert info.value.field == "name"
    with pytest.raises(QueryError, match="'email'"):
        await call({"email": "c@x.io"}, email__exact="b@x.io", name="A")
    assert await QsCustomer.objects.count() == 0
