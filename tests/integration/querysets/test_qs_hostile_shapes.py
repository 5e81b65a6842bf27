"""Shapes of input and of stored data that made a queryset answer wrong or fail untyped.

- ``get_or_create(**body)`` / ``update_or_create(...)`` with no lookup keyword on an unfiltered
  queryset ran ``get()`` with no condition: it returned whichever document existed (another
  user's) or raised ``MultipleObjectsReturned``. Refused now, naming what to write instead.
- ``last()`` over an ordering that reaches a list through a reference (``author__tags``)
  reversed a sort MongoDB does not reverse on lists: it is refused as on the model's own lists.
- ``F("n") + 1`` (and ``-``, ``*``, ``push`` / ``add_to_set`` / ``pull``) on a document whose
  field holds null or another type let the driver's ``WriteError`` through, and an
  ``update_many`` stopped part-way, keeping what it wrote before. A ``QueryError`` names the
  field; an ``update_many`` is checked before anything is written.
- ``push`` / ``add_to_set`` / ``pull`` on a fixed-length tuple, ``each()`` or a position of
  another type on ``tuple[int, str]``, and an element that breaks the element's own
  constraints (``list[Annotated[int, Field(ge=0)]]``) were written: the document no longer
  loaded.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field
from pymongo.errors import WriteError

import odm
from odm import Document, F, QueryError, Reference
from odm.contrib.pytest import MonitoredDatabase

# -- get_or_create / update_or_create without a lookup -------------------------------------


class HsNote(Document):
    owner: str
    name: str = ""

    class Meta:
        collection = "hs_notes"


async def test_get_or_create_without_a_lookup_is_refused(monitored: MonitoredDatabase) -> None:
    """A body holding only ``defaults`` returned another user's note (one stored) or raised
    MultipleObjectsReturned (several); a filtered queryset still gets or creates its own."""
    theirs = HsNote(owner="bob", name="secret")
    await theirs.insert()
    body: dict[str, Any] = {"defaults": {"owner": "mallory", "name": "x"}}
    for unfiltered in (HsNote.objects, HsNote.objects.all(), HsNote.objects.filter(**{})):
        monitored.log.clear()
        with pytest.raises(QueryError, match=r"get_or_create\(\) needs a lookup.*filter"):
            await unfiltered.get_or_create(**body)
        with pytest.raises(QueryError, match=r"update_or_create\(\) needs a lookup"):
            await unfiltered.update_or_create({"name": "x"})
        assert monitored.log.names() == []
    await HsNote(owner="carol").insert()
    with pytest.raises(QueryError, match="needs a lookup"):
        await HsNote.objects.get_or_create(**body)  # not MultipleObjectsReturned
    mine = HsNote.objects.filter(owner="ann")
    made, created = await mine.get_or_create(defaults={"owner": "ann", "name": "n1"})
    assert created and (made.owner, made.name) == ("ann", "n1")
    found, created = await mine.get_or_create(defaults={"owner": "ann", "name": "n2"})
    assert not created and found.id == made.id
    updated, created = await mine.update_or_create({"name": "n3"})
    assert not created and updated.id == made.id and updated.name == "n3"
    assert (await HsNote.objects.get(id=theirs.id)).name == "secret"


# -- last() over a list reached through a reference ----------------------------------------


class HsAuthor(Document):
    name: str
    tags: list[str] = []

    class Meta:
        collection = "hs_authors"


class HsBook(Document):
    title: str
    author: Reference[HsAuthor]

    class Meta:
        collection = "hs_books"


async def test_last_refuses_a_list_reached_through_a_reference(odm_database: Any) -> None:
    """Ascending, MongoDB sorts by a list's smallest element (w < x < y), descending by its
    largest (x > w > y): last() answered x's book, the first in the sort, not y's."""
    authors = {
        "x": HsAuthor(name="x", tags=["b", "z"]),
        "y": HsAuthor(name="y", tags=["c", "d"]),
        "w": HsAuthor(name="w", tags=["a", "y"]),
    }
    for author in authors.values():
        await author.insert()
        await HsBook(title=author.name, author=author).insert()
    ascending = [b.title for b in await HsBook.objects.order_by("author__tags")]
    assert ascending == ["w", "x", "y"]
    for qs in (
        HsBook.objects.order_by("author__tags"),
        HsBook.objects.select_related("author").order_by("-author__tags"),
        HsBook.objects.order_by("title", "author__tags"),
    ):
        with pytest.raises(QueryError, match=r"^last\(\).*list field 'author__tags'") as info:
            await qs.last()
        assert info.value.field == "author__tags"
    last = await HsBook.objects.select_related("author").order_by("author__name").last()
    assert last is not None and last.title == "y"
    first = await HsBook.objects.order_by("author__tags").first()
    assert first is not None and first.title == "w"


# -- F() updates on a field holding null or another type -----------------------------------


class HsCounter(Document):
    n: int | None = 0
    m: int = 0
    tags: list[str] | None = []
    meta: dict[str, Any] = {}
    name: str = ""

    class Meta:
        collection = "hs_counters"


async def _counters(*values: int | None) -> list[HsCounter]:
    docs = [HsCounter(n=v, m=i, tags=None if v is None else []) for i, v in enumerate(values)]
    await HsCounter.objects.bulk_create(docs)
    return docs


async def _stored_n() -> list[int | None]:
    return [c.n for c in await HsCounter.objects.order_by("m")]


@pytest.mark.parametrize(
    "update",
    [F("n") + 1, F("n") - 2, F("n") * 2, 1 + F("n")],
    ids=["add", "sub", "mul", "radd"],
)
async def test_arithmetic_on_null_names_the_field(odm_database: Any, update: Any) -> None:
    """One document (update_one): the server's refusal, typed; nothing was written."""
    (doc,) = await _counters(None)
    with pytest.raises(QueryError, match=r"cannot write 'n'.*holds null.*not a number") as info:
        await HsCounter.objects.filter(id=doc.id).update(n=update)
    assert info.value.field == "n"
    assert isinstance(info.value.__cause__, WriteError)
    assert "nothing was written" in str(info.value)
    assert await _stored_n() == [None]


async def test_update_many_is_refused_before_it_writes_part(
    monitored: MonitoredDatabase,
) -> None:
    """MongoDB stopped the update_many at the null and kept the documents before it
    incremented; now nothing is written, and the error says which document and why."""
    docs = await _counters(1, 2, None, 4)
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"cannot write 'n'.*holds null.*nothing was written"):
        await HsCounter.objects.all().update(n=F("n") + 1)
    assert monitored.log.names() == ["find"]  # the check, and no update
    with pytest.raises(QueryError, match=r"cannot write 'tags'.*null.*not a list") as info:
        await HsCounter.objects.all().update(tags=F("tags").push("t"))
    assert info.value.field == "tags"
    await HsCounter.objects.filter(id=docs[0].id).update(meta={"k": "text"})
    with pytest.raises(QueryError, match=r"'meta__k'.*holds a str.*not a number") as info:
        await HsCounter.objects.all().update(meta__k=F("meta__k") + 1)
    assert info.value.field == "meta__k"
    assert await _stored_n() == [1, 2, None, 4]
    assert await HsCounter.objects.filter(n__isnull=False).update(n=F("n") + 1) == 3
    assert await _stored_n() == [2, 3, None, 5]


@pytest.mark.parametrize("how", ["push", "add_to_set", "pull"])
async def test_list_operators_on_null_name_the_field(odm_database: Any, how: str) -> None:
    (doc,) = await _counters(None)
    with pytest.raises(QueryError, match=r"cannot write 'tags'.*a list") as info:
        await HsCounter.objects.filter(id=doc.id).update(tags=getattr(F("tags"), how)("t"))
    assert info.value.field == "tags"
    assert isinstance(info.value.__cause__, WriteError)


async def test_a_stored_value_the_model_refuses_still_gets_a_typed_error(
    odm_database: Any,
) -> None:
    """``m`` is an int: no check runs before the update_many, so the server's refusal is what
    tells, typed, and says that the documents before it keep the change."""
    await _counters(1, 2)
    coll = odm_database[HsCounter._meta.collection]
    await coll.update_one({"m": 1}, {"$set": {"m": None}})
    with pytest.raises(QueryError, match=r"update_many: cannot write 'm'.*keep the change"):
        await HsCounter.objects.all().update(m=F("m") + 1)


async def test_in_a_transaction_the_block_is_rolled_back(odm_database: Any) -> None:
    """The server aborted the transaction at the refused update: the block ends with the
    QueryError, nothing of it is committed, and the next transaction runs."""
    good, bad = await _counters(1, None)
    with pytest.raises(QueryError, match=r"'n'.*server aborted the transaction") as info:
        async with odm.transaction():
            await HsCounter.objects.filter(id=good.id).update(n=F("n") + 1)
            loaded = await HsCounter.objects.get(id=good.id)
            loaded.name = "changed"
            await HsCounter.objects.filter(id=bad.id).update(n=F("n") + 1)
    assert info.value.field == "n"
    stored = await HsCounter.objects.get(id=good.id)
    assert (stored.n, stored.name) == (1, "")
    async with odm.transaction():
        await HsCounter.objects.filter(id=good.id).update(n=F("n") + 1)
    assert await _stored_n() == [2, None]



async def test_an_update_many_refused_in_a_transaction_is_rolled_back_whole(
    odm_database: Any,
) -> None:
    """Inside a transaction nothing is asked first: the server refuses the update_many at
    the null, the QueryError names the field, and the abort takes back what it wrote."""
    await _counters(1, None, 3)
    with pytest.raises(QueryError, match=r"'n'.*server aborted the transaction") as info:
        async with odm.transaction():
            await HsCounter.objects.all().update(n=F("n") + 1)
    assert info.value.field == "n"
    assert await _stored_n() == [1, None, 3]

# -- tuples and element constraints --------------------------------------------------------


class HsShapes(Document):
    fixed: tuple[int, str] = (1, "a")
    pair: tuple[int, int] = (1, 2)
    maybe: tuple[int, int] | None = None
    nums: tuple[int, ...] = ()
    bounded: list[Annotated[int, Field(ge=0)]] = []

    class Meta:
        collection = "hs_shapes"


@pytest.mark.parametrize(
    "update",
    [
        {"fixed": F("fixed").push(3)},
        {"pair": F("pair").push(3)},
        {"pair": F("pair").add_to_set(3)},
        {"pair": F("pair").pull(2)},
        {"maybe": F("maybe").push(3)},
        {"fixed": F("fixed").each(5)},
        {"fixed__1": 5},
        {"fixed__2": "b"},
        {"nums": F("nums").push("x")},
        {"bounded": F("bounded").push(-1)},
        {"bounded": F("bounded").each(-1)},
        {"bounded__0": -1},
    ],
    ids=lambda u: f"{next(iter(u))}={next(iter(u.values()))!r}",
)
async def test_writes_that_would_break_a_tuple_are_refused(
    monitored: MonitoredDatabase, update: dict[str, Any]
) -> None:
    """Each was written, and the document no longer loaded (a tuple of 3, a str position
    holding 5, a list element below its bound)."""
    doc = HsShapes(bounded=[1])
    await doc.insert()
    monitored.log.clear()
    with pytest.raises(QueryError) as info:
        await HsShapes.objects.filter(id=doc.id).update(**update)
    assert info.value.field == next(iter(update))
    assert monitored.log.names() == []
    await HsShapes.objects.get(id=doc.id)


async def test_what_a_tuple_takes_is_still_written(odm_database: Any) -> None:
    doc = HsShapes(bounded=[1])
    await doc.insert()
    await HsShapes.objects.filter(id=doc.id).update(
        fixed__1="b", pair=F("pair").each(7), nums=F("nums").push(3), bounded=F("bounded").push(0)
    )
    stored = await HsShapes.objects.get(id=doc.id)
    assert (stored.fixed, stored.pair) == ((1, "b"), (7, 7))
    assert (stored.nums, stored.bounded) == ((3,), [1, 0])
    assert await HsShapes.objects.filter(fixed__1="b").count() == 1
    with pytest.raises(QueryError, match=r"no position 2"):
        HsShapes.objects.filter(fixed__2="b")
    await HsShapes.objects.filter(id=doc.id).update(bounded=F("bounded").pull(-1))  # a removal
