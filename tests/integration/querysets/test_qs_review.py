"""Review: edge cases at the seams of querysets, slices and the identity map."""

from typing import Any

import odm


class RvItem(odm.Document):
    name: str
    n: int = 0

    class Meta:
        collection = "rv_items"
        ordering = ["n"]


async def seed(count: int) -> None:
    await RvItem.objects.bulk_create([RvItem(name=f"i{i}", n=i) for i in range(count)])


async def test_empty_slices_are_empty(odm_database: Any) -> None:
    await seed(4)
    assert await RvItem.objects.to_list(0) == []
    assert await RvItem.objects.all()[2:2] == []
    assert await RvItem.objects.all()[1:3][5:] == []
    assert await RvItem.objects.all()[2:2].count() == 0
    assert not await RvItem.objects.all()[2:2].exists()
    assert [r async for r in RvItem.objects.all()[3:3]] == []
    assert await RvItem.objects.values_list("n", flat=True)[1:1] == []


async def test_first_last_and_index_follow_meta_ordering(odm_database: Any) -> None:
    await seed(3)
    first = await RvItem.objects.first()
    last = await RvItem.objects.last()
    assert first is not None and first.n == 0
    assert last is not None and last.n == 2
    assert (await RvItem.objects.all()[1]).n == 1
    try:
        await RvItem.objects.all()[7]
    except IndexError:
        pass
    else:
        raise AssertionError("qs[7] past the end must raise IndexError")


async def test_aggregate_over_an_empty_slice(odm_database: Any) -> None:
    from odm.aggregates import Count, Sum

    await seed(3)
    assert await RvItem.objects.all()[1:1].aggregate(n=Count(), s=Sum("n")) == {"n": 0, "s": None}


class RvLocked(odm.Document):
    name: str

    class Meta:
        collection = "rv_locked"
        optimistic_lock = True


async def test_bulk_created_locked_documents_save_and_go_stale(odm_database: Any) -> None:
    [doc] = await RvLocked.objects.bulk_create([RvLocked(name="a")])
    copy = await RvLocked.objects.get(id=doc.id)
    doc.name = "b"
    await doc.save()
    assert doc.version == 1
    copy.name = "c"
    try:
        await copy.save()
    except odm.StaleDocument:
        pass
    else:
        raise AssertionError("a stale copy must not save")


async def test_in_bulk_with_string_ids(odm_database: Any) -> None:
    await seed(2)
    items = await RvItem.objects.all()
    found = await RvItem.objects.in_bulk([str(i.id) for i in items])
    assert found == {i.id: i for i in items}
