"""``odm.DuplicateKey`` carries what clashed as data (issue #21, item 8): ``model``,
``collection``, ``index``, ``key`` (filter() spelling) and ``fields``, from every write path."""

from __future__ import annotations

import pickle
from typing import Annotated, Any

import pytest
from pydantic import Field

import odm
from odm import Document, Embedded, Index, Indexed
from odm.schema import ensure_indexes


class DkPlace(Embedded):
    city: str


class DkUser(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str = ""

    class Meta:
        collection = "dk_users"


class DkSite(Document):
    tenant: str = Field(alias="t")
    place: DkPlace
    label: str = ""

    class Meta:
        collection = "dk_sites"
        indexes = [Index("tenant", "place.city", unique=True, name="tenant_city")]


async def test_insert_names_model_collection_index_and_key(odm_database: Any) -> None:
    await ensure_indexes(models=[DkUser])
    first = await DkUser(email="a@x.io", name="Ann").insert()
    with pytest.raises(odm.DuplicateKey) as info:
        await DkUser(email="a@x.io", name="Bo").insert()
    exc = info.value
    assert exc.model is DkUser
    assert exc.collection == "dk_users"
    assert exc.index == "email_1"
    assert exc.key == {"email": "a@x.io"}
    assert exc.fields == ("email",)
    assert "email_1" in str(exc)  # the message still says it
    # The key is filter() spelling: it reads back the document that holds it.
    assert (await DkUser.objects.get(**exc.key)).id == first.id


async def test_alias_and_embedded_paths_are_field_spelling(odm_database: Any) -> None:
    await ensure_indexes(models=[DkSite])
    await DkSite(t="acme", place=DkPlace(city="Paris")).insert()
    await DkSite(t="acme", place=DkPlace(city="Lyon")).insert()
    with pytest.raises(odm.DuplicateKey) as info:
        await DkSite(t="acme", place=DkPlace(city="Paris"), label="again").insert()
    exc = info.value
    assert exc.index == "tenant_city"
    assert exc.key == {"tenant": "acme", "place__city": "Paris"}
    assert exc.fields == ("tenant", "place__city")
    assert (await DkSite.objects.get(**exc.key)).label == ""


async def test_update_save_bulk_and_id_clashes(odm_database: Any) -> None:
    await ensure_indexes(models=[DkUser])
    ann = await DkUser(email="a@x.io").insert()
    bob = await DkUser(email="b@x.io").insert()
    # a queryset update
    with pytest.raises(odm.DuplicateKey) as info:
        await DkUser.objects.filter(id=bob.id).update(email="a@x.io")
    assert (info.value.index, info.value.key) == ("email_1", {"email": "a@x.io"})
    # save() of a changed document
    bob.email = "a@x.io"
    with pytest.raises(odm.DuplicateKey) as info:
        await bob.save()
    assert info.value.key == {"email": "a@x.io"} and info.value.model is DkUser
    # bulk_create: the first duplicate of the batch
    with pytest.raises(odm.DuplicateKey) as info:
        await DkUser.objects.bulk_create([DkUser(email="c@x.io"), DkUser(email="b@x.io")])
    assert (info.value.index, info.value.key) == ("email_1", {"email": "b@x.io"})
    # the _id index: "id", as filter() spells it
    clone = DkUser(id=ann.id, email="z@x.io")
    with pytest.raises(odm.DuplicateKey) as info:
        await clone.insert()
    assert info.value.index == "_id_"
    assert info.value.key == {"id": ann.id} and info.value.fields == ("id",)


def test_raised_by_hand_and_pickled() -> None:
    bare = odm.DuplicateKey("a customer with this email exists")
    assert (bare.model, bare.collection, bare.index, bare.key, bare.fields) == (
        None, None, None, {}, ()
    )
    full = odm.DuplicateKey(
        "dup", model=DkUser, collection="dk_users", index="email_1",
        key={"email": "a@x.io"}, fields=("email",),
    )
    copy = pickle.loads(pickle.dumps(full))
    assert type(copy) is odm.DuplicateKey and str(copy) == "dup"
    assert (copy.model, copy.collection, copy.index, copy.key, copy.fields) == (
        DkUser, "dk_users", "email_1", {"email": "a@x.io"}, ("email",)
    )
