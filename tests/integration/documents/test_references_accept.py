"""References take only what they can store and load back; partial loads of a polymorphic
base keep each document's class; an update path deeper than MongoDB's 100 levels is refused
before it is sent. Against the real server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
import pytest
from pydantic import ValidationError

from odm import QueryError
from odm.document import Document
from odm.models.fields import Reference


class S17Author(Document):
    name: str

    class Meta:
        collection = "s17_authors"


class S17Animal(Document):
    name: str
    legs: int | None = None

    class Meta:
        collection = "s17_animals"
        polymorphic = True


class S17Cat(S17Animal):
    lives: int = 9


class S17Dog(S17Animal):
    good: bool = True


class S17Kitten(S17Cat):
    toy: str = "ball"


class S17Tag(Document):
    id: str  # type: ignore[assignment]  # a reference to it holds a string
    label: str = ""

    class Meta:
        collection = "s17_tags"


class S17Book(Document):
    title: str
    author: Reference[S17Author] | None = None
    readers: list[Reference[S17Author]] = []
    pet: Reference[S17Cat] | None = None
    tag: Reference[S17Tag] | None = None
    meta: dict[str, Any] = {}

    class Meta:
        collection = "s17_books"


NOT_AN_ID = [
    "not-an-objectid",
    12,
    12.5,
    True,
    b"abcdefghijkl",
    dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    {"x", "y"},
    ("a",),
    {"$oid": "5eb7cf5a86d9755df3a6c593"},
    Reference(12),
]


def test_a_reference_refuses_what_is_not_an_id_of_its_target() -> None:
    for value in NOT_AN_ID:
        with pytest.raises(ValidationError) as caught:
            S17Book.model_validate({"title": "t", "author": value})
        assert caught.value.errors()[0]["loc"] == ("author",), value
        with pytest.raises(ValidationError) as caught:
            S17Book.model_validate({"title": "t", "readers": [value]})
        assert caught.value.errors()[0]["loc"] == ("readers", 0), value


async def test_a_document_of_another_class_is_refused_and_never_stored(
    odm_database: Any,
) -> None:
    dog = await S17Dog(name="rex").insert()
    animal = await S17Animal(name="any").insert()
    for value in (dog, animal, Reference(dog.id, None, S17Dog), Reference(dog.id, dog)):
        with pytest.raises(ValidationError, match="S17Cat") as caught:
            S17Book(title="t", pet=value)
        assert caught.value.errors()[0]["loc"] == ("pet",)
    book = await S17Book(title="t").insert()
    with pytest.raises(ValidationError):
        book.pet = dog  # assignment is validated too
    assert await odm_database.s17_books.find_one({}, {"_id": 0, "pet": 1}) == {"pet": None}


async def test_what_a_reference_accepts_is_stored_as_an_id_and_loads_back(
    odm_database: Any,
) -> None:
    ann = await S17Author(name="ann").insert()
    kitten = await S17Kitten(name="k").insert()
    tag = await S17Tag(id="red").insert()
    book = await S17Book(
        title="t", author=str(ann.id), readers=[ann, Reference(ann.id)], pet=kitten, tag="red"
    ).insert()
    assert book.author.id == ann.id and isinstance(book.author.id, bson.ObjectId)
    raw = await odm_database.s17_books.find_one({"_id": book.id})
    assert (raw["author"], raw["readers"], raw["pet"], raw["tag"]) == (
        ann.id, [ann.id, ann.id], kitten.id, tag.id,
    )
    again = await S17Book.objects.get(id=book.id)
    assert (again.author.id, again.pet.id, again.tag.id) == (ann.id, kitten.id, "red")
    with pytest.raises(ValidationError, match="S17Tag"):
        S17Book(title="t", tag=7)  # a str id: an int is not one


async def test_update_and_get_or_create_refuse_a_bad_reference(odm_database: Any) -> None:
    ann = await S17Author(name="ann").insert()
    dog = await S17Dog(name="rex").insert()
    book = await S17Book(title="t", readers=[ann]).insert()
    for readers in ([12], ["nothex"], [dog]):
        with pytest.raises(QueryError) as caught:
            await S17Book.objects.filter(id=book.id).update(readers=readers)
        assert caught.value.field == "readers"
    raw = await odm_database.s17_books.find_one({"_id": book.id})
    assert raw["readers"] == [ann.id]
    assert await S17Book.objects.filter(id=book.id).update(readers=[ann, str(ann.id)]) == 1
    with pytest.raises(ValidationError):
        await S17Book.objects.get_or_create(title="new", defaults={"author": "nothex"})
    with pytest.raises(ValidationError):
        await S17Book.objects.get_or_create(title="new", defaults={"readers": [12]})
    assert await odm_database.s17_books.count_documents({"title": "new"}) == 0


async def seed_animals() -> None:
    await S17Cat(name="c", lives=3).insert()
    await S17Dog(name="d", good=False).insert()
    await S17Kitten(name="k", lives=5, toy="yarn").insert()


def classes(documents: list[Any]) -> list[str]:
    return [type(d).__name__ for d in documents]


async def test_only_and_defer_on_a_polymorphic_base_give_each_document_its_class(
    odm_database: Any,
) -> None:
    await seed_animals()
    animals = S17Animal.objects.order_by("name")
    assert classes(await animals.only("name")) == ["S17Cat", "S17Dog", "S17Kitten"]
    deferred = await animals.defer("legs")
    assert classes(deferred) == ["S17Cat", "S17Dog", "S17Kitten"]
    assert [d.name for d in deferred] == ["c", "d", "k"]
    assert (deferred[0].lives, deferred[1].good, deferred[2].toy) == (3, False, "yarn")
    cats = await S17Cat.objects.order_by("name").only("name")
    assert classes(cats) == ["S17Cat", "S17Kitten"]


async def test_only_a_subclass_field_on_the_base_loads_it_where_it_exists(
    odm_database: Any,
) -> None:
    await seed_animals()
    cat, dog, kitten = await S17Animal.objects.order_by("name").only("lives")
    assert classes([cat, dog, kitten]) == ["S17Cat", "S17Dog", "S17Kitten"]
    assert (cat.lives, kitten.lives) == (3, 5)
    assert cat.model_fields_set == {"id", "lives"} and dog.model_fields_set == {"id"}
    lenient = await S17Animal.objects.order_by("name").lenient().defer("lives")
    assert classes(lenient) == ["S17Cat", "S17Dog", "S17Kitten"]
    with pytest.raises(QueryError, match="'nothing'"):
        await S17Animal.objects.only("nothing")


def key_of(parts: int) -> str:
    return "meta__" + "__".join(["a"] * (parts - 1))


def depth_of(meta: Any) -> int:
    depth = 0
    while isinstance(meta, dict) and "a" in meta:
        meta, depth = meta["a"], depth + 1
    return depth


async def test_an_update_path_deeper_than_100_levels_is_refused_unsent(
    odm_database: Any,
) -> None:
    book = await S17Book(title="t", meta={"k": 1}).insert()
    # 101 parts was stored 102 levels deep, 185 a WriteError, 300 written 44 levels deep.
    for parts in (101, 185, 300):
        key = key_of(parts)
        with pytest.raises(QueryError, match=f"has {parts} parts") as caught:
            await S17Book.objects.filter(id=book.id).update(**{key: 1})
        assert caught.value.field == key
    raw = await odm_database.s17_books.find_one({"_id": book.id})
    assert raw["meta"] == {"k": 1}


async def test_an_update_path_of_100_levels_is_written(odm_database: Any) -> None:
    book = await S17Book(title="t").insert()
    # The document, meta and 98 "a" containers: 100 levels, the value in the last.
    assert await S17Book.objects.filter(id=book.id).update(**{key_of(100): 1}) == 1
    raw = await odm_database.s17_books.find_one({"_id": book.id})
    assert depth_of(raw["meta"]) == 99
