"""Polymorphic families: one collection, a _cls discriminator, subclass instances back."""

from __future__ import annotations

from typing import Any

from odm import executor
from odm.document import Document
from odm.models.loading import load_documents


class Animal(Document):
    name: str

    class Meta:
        collection = "poly_animals"
        polymorphic = True


class Cat(Animal):
    lives: int = 9


class Lion(Cat):
    pride: str = "none"


class Dog(Animal):
    good: bool = True


async def load_all(model: type[Any]) -> list[Any]:
    raws = await executor.find_list(model, model._meta.class_filter(), sort=[("name", 1)])
    return load_documents(model, raws)


async def test_round_trip(odm_database: Any) -> None:
    for doc in (Animal(name="a"), Cat(name="c", lives=3), Lion(name="l"), Dog(name="d")):
        await doc.insert()
    stored = await odm_database.poly_animals.find({}, {"_id": 0, "_cls": 1, "name": 1}).to_list(
        None
    )
    assert {d["name"]: d["_cls"] for d in stored} == {
        "a": "Animal", "c": "Cat", "l": "Lion", "d": "Dog"
    }
    animals = await load_all(Animal)
    assert [type(a) for a in animals] == [Animal, Cat, Dog, Lion]
    assert animals[1].lives == 3
    cats = await load_all(Cat)
    assert [type(c) for c in cats] == [Cat, Lion]
    assert [type(d) for d in await load_all(Dog)] == [Dog]

    cat = cats[0]
    cat.lives = 2
    await cat.save()
    assert (await odm_database.poly_animals.find_one({"name": "c"}))["lives"] == 2


def test_options_of_the_family() -> None:
    assert Cat._meta.collection == Animal._meta.collection == "poly_animals"
    assert Animal._meta.class_filter() == {}
    assert Cat._meta.class_filter() == {"_cls": {"$in": ["Cat", "Lion"]}}
    assert Lion._meta.class_filter() == {"_cls": "Lion"}
    assert Cat._meta.root is Animal
    assert issubclass(Lion.DoesNotExist, Cat.DoesNotExist)
