"""Body-shaped input that the server or Python refused untyped is a typed odm error naming the
field(s) (issue #19, item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from qs_support import QsCustomer, seed_people

from odm import Document, QueryError
from odm.contrib.pytest import MonitoredDatabase


class TeAccount(Document):
    """String ids, which a string or a mapping given as ids would spell."""

    id: str
    name: str = ""

    class Meta:
        collection = "te_accounts"


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


@pytest.mark.parametrize(
    "ids", ["admin", b"admin", {"a": 1, "n": 2}, 5], ids=["str", "bytes", "dict", "int"]
)
async def test_in_bulk_refuses_what_filter_id_in_refuses(
    monitored: MonitoredDatabase, ids: Any
) -> None:
    """in_bulk("admin") looked up the ids "a", "d", "m", "i", "n", and in_bulk({"a": 1, "n": 2})
    the ids "a" and "n" (it ran list(ids) before filter(id__in=...), which refuses both)."""
    for key in ["a", "d", "m", "i", "n", "admin"]:
        await TeAccount(id=key).insert()
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"in_bulk\(\) takes a list of ids") as info:
        await TeAccount.objects.in_bulk(ids)
    assert info.value.field == "id"
    with pytest.raises(QueryError, match=r"in_bulk\(\): invalid value for 'id'"):
        await TeAccount.objects.in_bulk([{"$gt": ""}])
    with pytest.raises(QueryError, match=r"in_bulk\(\): invalid value for 'id'"):
        await QsCustomer.objects.in_bulk(["a"])
    assert monitored.log.names() == []
    # What in_bulk is for: any iterable of ids, and None for every document.
    assert sorted(await TeAccount.objects.in_bulk(("admin", "a"))) == ["a", "admin"]
    assert sorted(await TeAccount.objects.in_bulk(k for k in ["n", "zz"])) == ["n"]
    assert len(await TeAccount.objects.in_bulk(None)) == 6


#: What the request body ``{"name": "\ud800"}`` decodes to: JSON allows a lone surrogate,
#: pydantic's ``str`` takes it, and UTF-8 (BSON) cannot encode it.
LONE_SURROGATE = "\ud800"


async def test_a_lone_surrogate_is_a_validation_error_not_a_unicode_error(
    odm_database: Any,
) -> None:
    """Was a bare UnicodeEncodeError from the driver's encoder (a 500 over HTTP). A filter or
    an update refuses it before anything is sent, naming the field (odm.utf8); a document
    holding it is a ValidationError at its write."""
    from pydantic import ValidationError

    from odm import QueryError

    await QsCustomer(email="a@x.io", name="A").insert()
    with pytest.raises(QueryError, match="lone surrogate") as refused:
        await QsCustomer.objects.filter(name=LONE_SURROGATE).count()
    assert refused.value.field == "name"
    with pytest.raises(QueryError, match="lone surrogate") as refused:
        await QsCustomer.objects.filter(name="A").update(name=LONE_SURROGATE)
    assert refused.value.field == "name"
    with pytest.raises(ValidationError) as info:
        await QsCustomer(email="b@x.io", name=LONE_SURROGATE).insert()
    assert info.value.errors()[0]["loc"] == ("name",)
    stored = await QsCustomer.objects.get(name="A")
    stored.name = LONE_SURROGATE
    with pytest.raises(ValidationError):
        await stored.save()
    assert [c.name for c in await QsCustomer.objects.all()] == ["A"]
