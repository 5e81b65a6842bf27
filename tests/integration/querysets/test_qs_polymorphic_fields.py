"""A polymorphic base filtered, ordered and read on its subclasses' fields (issue #21, item 5):
``Animal.objects.filter(folded_ears=True)`` when the name means one type across the
subclasses, a QueryError naming them when it does not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from odm import Document, Embedded, F, Q, QueryError
from odm.contrib.pytest import MonitoredDatabase


class Collar(Embedded):
    colour: str


class PolyPet(Document):
    name: str

    class Meta:
        collection = "poly_pets"
        polymorphic = True


class PolyCat(PolyPet):
    folded_ears: bool = False
    lives: int = Field(default=9, ge=0)
    collar: Collar | None = None


class PolyLion(PolyCat):
    pride: str = ""


class PolyDog(PolyPet):
    lives: int = 1  # same name, same type as PolyCat's (constraints aside): not ambiguous
    tag: str = ""


class PolyFish(PolyPet):
    tag: int = 0  # PolyDog.tag is a str: "tag" is ambiguous on PolyPet


async def _seed() -> None:
    await PolyCat(name="Tom", folded_ears=True, lives=7, collar=Collar(colour="red")).insert()
    await PolyCat(name="Kit", folded_ears=False, lives=3).insert()
    await PolyLion(name="Leo", folded_ears=True, lives=9, pride="east").insert()
    await PolyDog(name="Rex", lives=1, tag="r-1").insert()
    await PolyFish(name="Nemo", tag=4).insert()


async def test_filter_on_a_subclass_field_from_the_base(odm_database: Any) -> None:
    await _seed()
    found = await PolyPet.objects.filter(folded_ears=True).order_by("name")
    assert [(type(p).__name__, p.name) for p in found] == [("PolyLion", "Leo"), ("PolyCat", "Tom")]
    # The value is validated as the subclass field's type.
    assert await PolyPet.objects.filter(folded_ears="yes").count() == 2
    with pytest.raises(QueryError, match="folded_ears"):
        PolyPet.objects.filter(folded_ears="not a bool")
    # Lookups, nested paths, Q, exclude (documents lacking the key: not equal, as in MongoDB).
    assert await PolyPet.objects.filter(lives__gte=5).order_by("name").values_list(
        "name", flat=True
    ) == ["Leo", "Tom"]
    assert await PolyPet.objects.filter(collar__colour="red").values_list(
        "name", flat=True
    ) == ["Tom"]
    assert await PolyPet.objects.filter(Q(pride="east") | Q(lives=1)).order_by(
        "name"
    ).values_list("name", flat=True) == ["Leo", "Rex"]
    assert await PolyPet.objects.exclude(folded_ears=True).order_by("name").values_list(
        "name", flat=True
    ) == ["Kit", "Nemo", "Rex"]
    assert await PolyPet.objects.filter(lives__gt=F("lives") - 1).count() == 4


async def test_values_and_order_by_on_subclass_fields(odm_database: Any) -> None:
    await _seed()
    rows = await PolyPet.objects.order_by("-lives", "name").values("name", "lives", "pride")
    assert rows == [
        {"name": "Leo", "lives": 9, "pride": "east"},
        {"name": "Tom", "lives": 7, "pride": None},
        {"name": "Kit", "lives": 3, "pride": None},
        {"name": "Rex", "lives": 1, "pride": None},
        {"name": "Nemo", "lives": None, "pride": None},
    ]
    # A subclass's own queryset still filters on its fields and on its _cls values only.
    assert await PolyCat.objects.filter(pride="east").values_list("name", flat=True) == ["Leo"]
    assert await PolyDog.objects.filter(tag="r-1").values_list("name", flat=True) == ["Rex"]


async def test_the_filter_sent_is_the_subclass_key(monitored: MonitoredDatabase) -> None:
    await _seed()
    monitored.log.clear()
    assert len(await PolyPet.objects.filter(folded_ears=True)) == 2
    assert monitored.log.named("find")[-1]["filter"] == {"folded_ears": True}
    cats = PolyCat.objects.filter(folded_ears=True).explain_query()
    assert cats["find"]["filter"] == {
        "$and": [{"_cls": {"$in": ["PolyCat", "PolyLion"]}}, {"folded_ears": True}]
    } or cats["find"]["filter"] == {"_cls": {"$in": ["PolyCat", "PolyLion"]}, "folded_ears": True}


async def test_ambiguous_and_unknown_names_are_refused(odm_database: Any) -> None:
    with pytest.raises(QueryError) as caught:
        PolyPet.objects.filter(tag="r-1")
    message = str(caught.value)
    assert "PolyDog" in message and "PolyFish" in message and "'tag'" in message
    assert caught.value.field == "tag"
    for build in (
        lambda: PolyPet.objects.order_by("tag"),
        lambda: PolyPet.objects.values("tag"),
    ):
        with pytest.raises(QueryError, match="PolyFish"):
            await build()
    with pytest.raises(QueryError, match="PolyPet has no field 'whiskers'"):
        PolyPet.objects.filter(whiskers=1)
    # A sibling's field is not a subclass's: PolyDog cannot filter on a cat's ears.
    with pytest.raises(QueryError, match="PolyDog has no field 'folded_ears'"):
        PolyDog.objects.filter(folded_ears=True)


async def test_update_through_the_base_is_refused(odm_database: Any) -> None:
    await _seed()
    with pytest.raises(QueryError, match="PolyPet cannot write 'folded_ears'"):
        await PolyPet.objects.filter(folded_ears=True).update(folded_ears=False)
    # Through the subclass that declares it, it works.
    assert await PolyCat.objects.filter(folded_ears=True).update(folded_ears=False) == 2
    assert await PolyPet.objects.filter(folded_ears=True).count() == 0
