"""Review: the identity map and change tracking against partial loads, deletes and errors."""

from typing import Annotated, Any

import pytest

import odm
from odm import transaction


class RvAccount(odm.Document):
    owner: Annotated[str, odm.Indexed(unique=True)]
    balance: int = 0
    tags: list[str] = []

    class Meta:
        collection = "rv_accounts"


async def test_partial_load_in_a_transaction_writes_nothing(odm_database: Any) -> None:
    ann = await RvAccount(owner="ann", balance=100, tags=["vip"]).insert()
    async with transaction():
        partial = await RvAccount.objects.only("owner").get(id=ann.id)
        assert partial.owner == "ann"
        full = await RvAccount.objects.get(id=ann.id)
        assert full.balance == 100 and full.tags == ["vip"]
        full.balance = 90
    stored = await odm_database.rv_accounts.find_one({"_id": ann.id})
    assert stored["balance"] == 90 and stored["tags"] == ["vip"]


async def test_partial_load_alone_is_not_flushed(odm_database: Any) -> None:
    ann = await RvAccount(owner="ann", balance=100, tags=["vip"]).insert()
    async with transaction():
        await RvAccount.objects.only("owner").get(owner="ann")
    stored = await odm_database.rv_accounts.find_one({"_id": ann.id})
    assert stored["balance"] == 100 and stored["tags"] == ["vip"]


async def test_refresh_makes_a_partial_document_whole(odm_database: Any) -> None:
    ann = await RvAccount(owner="ann", balance=100).insert()
    partial = await RvAccount.objects.only("owner").get(owner="ann")
    await partial.refresh()
    partial.balance = 5
    await partial.save()
    assert (await RvAccount.objects.get(id=ann.id)).balance == 5


async def test_deleted_document_leaves_the_identity_map(odm_database: Any) -> None:
    ann = await RvAccount(owner="ann", balance=100).insert()
    async with transaction():
        loaded = await RvAccount.objects.get(id=ann.id)
        await loaded.delete()
        await RvAccount(id=ann.id, owner="ann2", balance=7).insert()
        again = await RvAccount.objects.get(id=ann.id)
        assert again.owner == "ann2" and again.balance == 7
        assert again.is_stored


async def test_get_or_create_duplicate_in_a_transaction(odm_database: Any) -> None:
    await odm.ensure_indexes(models=[RvAccount])
    await RvAccount(owner="ann").insert()
    with pytest.raises(odm.DuplicateKey):
        async with transaction():
            # the lookup misses (another field) but the insert hits the unique owner
            await RvAccount.objects.get_or_create(owner="ann", balance=3)
