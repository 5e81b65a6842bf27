"""Querysets that answered wrong, or let a send-time error through, until session 17.

- ``select_related("author__boss")`` joined the boss but never attached it.
- A ``Reference[Cat]`` holding a dog's id (one collection per polymorphic family) was joined
  as a Cat by ``select_related``, and filters and ``values()`` through it saw the dog.
- ``values(...).annotate(Count("author__name"))`` read the joined author without joining it:
  every group gave 0 / None.
- ``search(...).values("section", "score").annotate(...)`` dropped the score from the rows
  (and from the groups); ``values_list("score", flat=True).distinct()`` gave ``[None]``.
- Paths of more than 100 parts reached the server ("FieldPath is too long"), keys with an
  empty part were refused without naming the key, and a filter or update over the 16 MB
  command limit raised the driver's ``DocumentTooLarge`` (a 500 behind a web layer).
- A value BSON cannot hold in a free-form filter (a Decimal, a complex) and an ``F()``
  literal out of range (``2**70``, ``Decimal("1E+7000")``) failed only when sent, untyped.
- ``update(scores__5=1)`` padded a ``list[int]`` with nulls and ``push`` grew a list past its
  ``max_length``: written, after which the document no longer loaded.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Annotated, Any

import bson
import pytest
from pydantic import Field, ValidationError
from pymongo.errors import DocumentTooLarge

import odm
from odm import Document, Embedded, F, Index, QueryError, Reference
from odm.aggregates import Count, Max, Sum
from odm.contrib.aiohttp.errors import response_for
from odm.contrib.pytest import MonitoredDatabase

# -- nested select_related -----------------------------------------------------------------


class FuAuthor(Document):
    name: str
    age: int | None = None
    boss: Reference[FuAuthor] | None = None

    class Meta:
        collection = "fu_authors"


class FuBook(Document):
    title: str
    author: Reference[FuAuthor] | None = None

    class Meta:
        collection = "fu_books"


async def test_nested_select_related_attaches_every_level(odm_database: Any) -> None:
    """``book.author.document.boss.document`` was None although the boss was joined."""
    boss = FuAuthor(name="Ann", age=50)
    await boss.insert()
    author = FuAuthor(name="Bob", age=20, boss=boss)
    await author.insert()
    await FuBook(title="x", author=author).insert()
    await FuBook(title="orphan").insert()
    books = await FuBook.objects.select_related("author__boss").order_by("title")
    assert [b.title for b in books] == ["orphan", "x"]
    assert books[0].author is None
    joined_author = books[1].author.document
    assert joined_author is not None and joined_author.name == "Bob"
    joined_boss = joined_author.boss.document
    assert joined_boss is not None and (joined_boss.name, joined_boss.age) == ("Ann", 50)


async def test_values_annotate_across_a_reference_joins(odm_database: Any) -> None:
    """Every group gave n=0, s=None, m=None: the annotations read a join never made."""
    ann = FuAuthor(name="Ann", age=50)
    bob = FuAuthor(name="Bob", age=20)
    for author in (ann, bob):
        await author.insert()
    for title, author in (("x", ann), ("x", bob), ("y", bob), ("y", None)):
        await FuBook(title=title, author=author).insert()
    rows = await (
        FuBook.objects.values("title")
        .annotate(n=Count("author__name"), s=Sum("author__age"), m=Max("author__name"))
        .order_by("title")
    )
    assert rows == [
        {"title": "x", "n": 2, "s": 70, "m": "Bob"},
        {"title": "y", "n": 1, "s": 20, "m": "Bob"},
    ]
    totals = await FuBook.objects.filter(title="x").aggregate(s=Sum("author__age"))
    assert totals == {"s": 70}


# -- a reference to a polymorphic subclass -------------------------------------------------


class FuAnimal(Document):
    name: str

    class Meta:
        collection = "fu_animals"
        polymorphic = True


class FuCat(FuAnimal):
    lives: int = 9


class FuDog(FuAnimal):
    good: bool = True


class FuKitten(FuCat):
    toy: str = "ball"


class FuOwner(Document):
    name: str
    pet: Reference[FuCat] | None = None
    pets: list[Reference[FuCat]] = []

    class Meta:
        collection = "fu_owners"


async def test_a_reference_to_a_subclass_joins_only_that_class(odm_database: Any) -> None:
    """A dog's id in a Reference[FuCat] was joined as a FuCat (lives=9 from the default), and
    ``pet__name="rex"`` matched it; prefetch_related() and fetch() never loaded it."""
    dog = FuDog(name="rex")
    kitten = FuKitten(name="tom", lives=3)
    for animal in (dog, kitten):
        await animal.insert()
    await FuOwner(name="a", pet=dog.id).insert()
    owner_b = FuOwner(name="b", pet=kitten, pets=[kitten])
    await owner_b.insert()
    await FuOwner.objects.filter(name="a").update(pets=[kitten.id, dog.id])

    owners = await FuOwner.objects.select_related("pet").order_by("name")
    assert owners[0].pet is not None and owners[0].pet.document is None
    loaded = owners[1].pet.document
    assert type(loaded) is FuKitten and (loaded.name, loaded.lives) == ("tom", 3)
    assert await FuOwner.objects.filter(pet__name="rex").count() == 0
    assert await FuOwner.objects.filter(pet__name="tom").values_list("name", flat=True) == ["b"]
    names = await FuOwner.objects.order_by("name").values_list("pet__name", flat=True)
    assert names == [None, "tom"]
    # A list of references: the dog is not one of the cats.
    assert await FuOwner.objects.filter(pets__name="rex").count() == 0
    assert await FuOwner.objects.filter(pets__name="tom").count() == 2


# -- search() score in grouped rows ---------------------------------------------------------


class FuPost(Document):
    title: str
    section: str = "a"

    class Meta:
        collection = "fu_posts"
        indexes = [Index(text=["title"])]


@pytest.fixture
async def posts(odm_database: Any) -> None:
    """Two posts matching "coffee" with different scores, one of another section."""
    await odm.ensure_indexes(models=[FuPost])
    await FuPost(title="coffee").insert()
    await FuPost(title="coffee coffee tea tea tea").insert()
    await FuPost(title="coffee", section="b").insert()


async def test_search_score_is_grouped_and_returned(posts: None) -> None:
    """The rows had no ``score`` and the groups were not split by it."""
    plain = await FuPost.objects.search("coffee").values("section", "score")
    scores = sorted({row["score"] for row in plain})
    assert len(scores) == 2
    rows = await (
        FuPost.objects.search("coffee")
        .values("section", "score")
        .annotate(c=Count())
        .order_by("section", "score")
    )
    by_section_a = [r for r in rows if r["section"] == "a"]
    assert sorted(r["score"] for r in by_section_a) == scores
    assert all(set(r) == {"section", "score", "c"} for r in rows)
    assert sum(r["c"] for r in rows) == 3
    distinct = await FuPost.objects.search("coffee").values_list("score", flat=True).distinct()
    assert sorted(distinct) == scores


# -- hostile keys and values ----------------------------------------------------------------


class FuDoc(Document):
    title: str = ""
    pages: int = 0
    meta: dict[str, Any] = {}
    anything: Any = None
    author: Reference[FuAuthor] | None = None
    scores: list[int] = []
    capped: Annotated[list[int], Field(max_length=3)] = []

    class Meta:
        collection = "fu_docs"


def deep_key(parts: int) -> str:
    return "meta__" + "__".join(["a"] * (parts - 1))


async def test_paths_over_100_parts_are_refused_unsent(monitored: MonitoredDatabase) -> None:
    """200+ parts reached the server ("FieldPath is too long"); 101 to 199 were sent."""
    await FuDoc().insert()
    monitored.log.clear()
    for parts in (101, 200, 300):
        key = deep_key(parts)
        for build in (
            lambda k: FuDoc.objects.filter(**{k: 1}),
            lambda k: FuDoc.objects.exclude(**{k + "__gt": 1}),
            lambda k: FuDoc.objects.order_by("-" + k),
            lambda k: FuDoc.objects.values(k),
        ):
            with pytest.raises(QueryError, match=f"has {parts} parts") as caught:
                await build(key)
            assert caught.value.field == key
    assert monitored.log.names() == []
    # 100 parts: the deepest a value may sit, still a query.
    assert await FuDoc.objects.filter(**{deep_key(100): 1}).count() == 0


@pytest.mark.parametrize(
    ("call", "key"),
    [
        (lambda: FuDoc.objects.filter(**{"__raw__": {"$where": "1"}}), "__raw__"),
        (lambda: FuDoc.objects.exclude(title__=1), "title__"),
        (lambda: FuDoc.objects.filter(meta____a=1), "meta____a"),
        (lambda: FuDoc.objects.values("__raw__"), "__raw__"),
        (lambda: FuDoc.objects.order_by("-"), "-"),
    ],
)
def test_an_empty_part_names_the_key(call: Any, key: str) -> None:
    """The error said "empty field name in a query path" with field=''."""
    with pytest.raises(QueryError) as caught:
        call()
    assert caught.value.field == key
    assert repr(key) in str(caught.value)


async def test_an_empty_part_in_an_update_names_the_key(odm_database: Any) -> None:
    with pytest.raises(QueryError, match="'__raw__' has an empty field name") as caught:
        await FuDoc.objects.update(**{"__raw__": 1})
    assert caught.value.field == "__raw__"


async def test_a_command_over_16_mb_is_a_query_error(odm_database: Any) -> None:
    """The driver's DocumentTooLarge came through (a 500 behind aiohttp); nothing is sent."""
    doc = FuDoc(title="a")
    await doc.insert()
    big = "x" * 17_000_000
    calls = {
        "count": lambda: FuDoc.objects.filter(title=big).count(),
        "find": lambda: FuDoc.objects.filter(title=big).exists(),
        "delete_many": lambda: FuDoc.objects.filter(title=big).delete(),
        "update": lambda: FuDoc.objects.filter(id=doc.id).update(title=big),
        "update_many": lambda: FuDoc.objects.filter(title="a").update(title=big),
    }
    for what, call in calls.items():
        with pytest.raises(QueryError, match=f"FuDoc {what}: .*16 MB limit") as caught:
            await call()
        assert isinstance(caught.value, DocumentTooLarge)  # what code catching it still sees
        response = response_for(caught.value)
        assert response is not None and response.status == 400  # was a 500 ("internal")
    assert await FuDoc.objects.values_list("title", flat=True) == ["a"]


async def test_a_command_over_16_mb_in_a_transaction_leaves_it_usable(
    odm_database: Any,
) -> None:
    """Nothing was sent: the transaction goes on and commits what it wrote."""
    async with odm.transaction():
        with pytest.raises(QueryError, match="16 MB"):
            await FuDoc.objects.filter(title="x" * 17_000_000).count()
        await FuDoc(title="kept").insert()
    assert await FuDoc.objects.values_list("title", flat=True) == ["kept"]


def test_a_value_bson_cannot_hold_is_refused_at_filter_time() -> None:
    """filter() took it; count() raised a ValidationError naming no field, explain_query()
    a bare TypeError."""
    cases = {
        "meta__price": decimal.Decimal("1.5"),
        "anything": complex(1),
        "meta": {"x": object()},
        "meta__when": dt.time(1),
        "anything__in": [1, dt.timedelta(1)],
    }
    for key, value in cases.items():
        with pytest.raises(QueryError, match="cannot be stored in BSON") as caught:
            FuDoc.objects.filter(**{key: value})
        assert caught.value.field == key.removesuffix("__in")
    with pytest.raises(QueryError, match="Decimal128"):
        FuDoc.objects.filter(meta__price=decimal.Decimal("1.5"))


async def test_values_bson_holds_still_filter(odm_database: Any) -> None:
    """What the codec stores (enums, dates, sets, UUIDs, bson types) is not refused."""

    class Colour(enum.Enum):
        RED = "red"

    await FuDoc(meta={"c": "red", "u": uuid.UUID(int=1)}).insert()
    assert await FuDoc.objects.filter(meta__c=Colour.RED).count() == 1
    assert await FuDoc.objects.filter(meta__u=uuid.UUID(int=1)).count() == 1
    assert await FuDoc.objects.filter(anything__in=[dt.date(2020, 1, 1), {1, 2}]).count() == 0
    assert await FuDoc.objects.filter(meta__d=bson.Decimal128("1.5")).count() == 0
    explained = FuDoc.objects.filter(meta__u=uuid.UUID(int=1)).explain_query()
    assert "find" in explained  # UUIDs once made explain_query() raise


def test_f_literals_out_of_range_are_refused_at_build_time() -> None:
    with pytest.raises(QueryError, match="64-bit integer"):
        FuDoc.objects.filter(pages__gt=F("pages") + 2**70)
    with pytest.raises(QueryError, match="Decimal128"):
        FuDoc.objects.filter(pages__gt=F("pages") + decimal.Decimal("1E+7000"))
    with pytest.raises(QueryError, match=r"integer of .* bits"):
        FuDoc.objects.filter(pages__gt=F("pages") * 10**5000)


async def test_f_literals_out_of_range_in_aggregates_and_updates(odm_database: Any) -> None:
    doc = FuDoc(pages=1)
    await doc.insert()
    with pytest.raises(QueryError, match="Decimal128"):
        await FuDoc.objects.aggregate(s=Sum(F("pages") * decimal.Decimal("1E+7000")))
    # A huge Decimal made an int of 7,000 digits, whose message raised ValueError.
    with pytest.raises(QueryError, match=r"integer of .* bits") as caught:
        await FuDoc.objects.filter(id=doc.id).update(pages=F("pages") + decimal.Decimal("1E+7000"))
    assert caught.value.field == "pages"


async def test_a_reference_given_another_class_names_both(odm_database: Any) -> None:
    """The error was the id's ("Value is not a valid ObjectId")."""
    dog = FuDog(name="rex")
    await dog.insert()
    with pytest.raises(QueryError, match=r"takes a FuAuthor .*not a FuDog") as caught:
        await FuDoc.objects.update(author=dog)
    assert caught.value.field == "author"
    with pytest.raises(QueryError, match="not a FuDog"):
        FuDoc.objects.filter(author=dog)


# -- list positions and max_length ----------------------------------------------------------


async def test_a_position_past_the_end_is_not_padded_with_nulls(
    odm_database: Any,
) -> None:
    """``scores__5=1`` on a two-element list stored [1, 2, None, None, None, 1]."""
    short = FuDoc(title="short", scores=[1, 2])
    long = FuDoc(title="long", scores=[1, 2, 3, 4, 5])
    for doc in (short, long):
        await doc.insert()
    for queryset in (FuDoc.objects.filter(id=short.id), FuDoc.objects.all()):
        with pytest.raises(QueryError, match="pad it with nulls") as caught:
            await queryset.update(scores__5=0)
        assert caught.value.field == "scores__5"
        assert str(short.id) in str(caught.value)
    assert await FuDoc.objects.filter(id=long.id).update(scores__5=6) == 1
    assert await FuDoc.objects.filter(id=short.id).update(scores__2=3) == 1  # appends
    rows = await FuDoc.objects.order_by("title").values_list("scores", flat=True)
    assert rows == [[1, 2, 3, 4, 5, 6], [1, 2, 3]]


async def test_a_list_is_not_grown_past_its_max_length(odm_database: Any) -> None:
    """push() past ``Field(max_length=3)`` was written; the document then failed to load."""
    doc = FuDoc(capped=[1, 2])
    await doc.insert()
    with pytest.raises(QueryError, match="no position 3") as caught:
        await FuDoc.objects.filter(id=doc.id).update(capped__3=1)
    assert caught.value.field == "capped__3"
    assert await FuDoc.objects.filter(id=doc.id).update(capped=F("capped").push(3)) == 1
    for grow in (F("capped").push(4), F("capped").add_to_set(4)):
        with pytest.raises(QueryError, match="max_length of 3") as caught:
            await FuDoc.objects.update(capped=grow)
        assert caught.value.field == "capped"
    # A value already there adds nothing.
    assert await FuDoc.objects.update(capped=F("capped").add_to_set(3)) == 1
    assert (await FuDoc.objects.get(id=doc.id)).capped == [1, 2, 3]


# -- the executor names the real culprit of an encoding error -------------------------------


class FuColour(enum.Enum):
    RED = "red"


class FuLine(Embedded):
    qty: int


class FuOrder(Document):
    colour: FuColour = FuColour.RED
    day: dt.date = dt.date(2020, 1, 1)
    tags: set[str] = set()
    lines: list[FuLine] = []

    class Meta:
        collection = "fu_orders"


async def test_an_unencodable_insert_names_the_culprit_not_an_enum(odm_database: Any) -> None:
    """Each field was tried with plain bson.encode: the enum was blamed, not ``lines``."""
    with pytest.raises(ValidationError) as caught:
        await FuOrder(tags={"a"}, lines=[FuLine(qty=2**70)]).insert()
    assert [e["loc"] for e in caught.value.errors()] == [("lines",)]
