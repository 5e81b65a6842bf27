"""List positions an ``update()`` writes: huge ones, and those inside the elements it writes.

A position is a number, as in a filter (``tags__01`` is ``tags__1``); one of thousands of
digits from a request body was Python's bare ``ValueError`` (``int()`` refuses over 4,300
digits), and one past 2**31 was refused with "holds no list 'tags' of 99...9 elements", as if
a longer list could hold it: it is a ``QueryError`` naming the key, before anything is sent.
MongoDB pads a list by at most 1,500,000 nulls and refuses more, stopping an ``update_many``
there (a raw ``WriteError``); such a document is named first. A position inside the elements
an element update writes (``each(tags__3=...)``) padded their lists with nulls their model
refuses, and the document no longer loaded: it is guarded as a position of the document is.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, Field

from odm import Document, F, Q, QueryError
from odm.contrib.pytest import MonitoredDatabase

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's

HUGE = "9" * 5000


class Rv1Line(BaseModel):
    sku: str = ""
    tags: list[str] = []
    nul: list[str | None] = []
    grid: list[list[str]] = []
    capped: list[int] = Field(default=[], max_length=2)


class Rv1Shelf(Document):
    tags: list[str] = []
    nul: list[str | None] = []
    anys: list[Any] = []
    meta: dict[str, Any] = {}
    lines: list[Rv1Line] = []

    class Meta:
        collection = "rv1_shelves"


async def _stored(monitored: MonitoredDatabase) -> list[dict[str, Any]]:
    found = monitored.database[Rv1Shelf._meta.collection].find({}).sort("_id", 1)
    return [doc async for doc in found]


async def _refused_before_sending(
    monitored: MonitoredDatabase, values: dict[str, Any], pattern: str, queryset: Any = None
) -> QueryError:
    """Run ``update(**values)``; it must raise a ``QueryError`` matching ``pattern`` with
    no write sent and every document as it was."""
    before = await _stored(monitored)
    monitored.log.clear()
    with pytest.raises(QueryError, match=pattern) as caught:
        await (Rv1Shelf.objects.all() if queryset is None else queryset).update(**values)
    assert "update" not in monitored.log.names()
    assert await _stored(monitored) == before
    return caught.value


@pytest.mark.parametrize(
    "key",
    [f"tags__{HUGE}", f"nul__{HUGE}", f"anys__{HUGE}", "tags__" + "9" * 30, "nul__2147483648"],
    ids=["5000-digits", "nullable-5000", "any-5000", "30-digits", "past-2**31"],
)
async def test_a_position_past_any_list_is_refused_naming_the_key(
    monitored: MonitoredDatabase, key: str
) -> None:
    await Rv1Shelf(tags=["a"], nul=["a"], anys=[1]).insert()
    list_name = key.split("__")[0]
    refused = await _refused_before_sending(
        monitored, {key: "x"}, rf"^update\(\) cannot write '{list_name}' .* at position "
        r"\d+.*: it is past the end of any list"
    )
    assert refused.field == key
    assert len(str(refused)) < 400  # the digits are cut


async def test_a_position_inside_elements_past_any_list_is_refused(
    monitored: MonitoredDatabase,
) -> None:
    await Rv1Shelf(lines=[Rv1Line(grid=[["a"]])]).insert()
    refused = await _refused_before_sending(
        monitored,
        {"lines": F("lines").each(**{f"grid__{HUGE}__0": "x"})},
        r"^update\(\) cannot write 'lines__grid' \(list\[list\[str\]\]\) at position 9+\.\.\. "
        r"\(5,000 digits\)",
    )
    assert refused.field == f"lines__grid__{HUGE}__0"


async def test_a_digit_key_of_a_free_form_dict_is_a_key(monitored: MonitoredDatabase) -> None:
    shelf = await Rv1Shelf().insert()
    key = "9" * 5000
    assert await Rv1Shelf.objects.filter(id=shelf.id).update(**{f"meta__{key}": 1}) == 1
    (stored,) = await _stored(monitored)
    assert stored["meta"] == {key: 1}


async def test_padding_further_than_mongodb_pads_names_the_document(
    monitored: MonitoredDatabase,
) -> None:
    """MongoDB refuses to pad ``nul`` (nulls allowed) by more than 1,500,000 nulls: the
    update was refused by the server with a raw ``WriteError``, after writing the documents
    before it in an ``update_many``."""
    await Rv1Shelf(nul=["a", "b"]).insert()  # which it could pad: not written either
    short = await Rv1Shelf(nul=["a"]).insert()
    refused = await _refused_before_sending(
        monitored,
        {"nul__1500002": "x"},
        r"^Rv1Shelf update: cannot write 'nul__1500002': the matching document "
        rf"_id={re.escape(repr(short.id))} holds no list 'nul' of 2 elements or more: MongoDB "
        r"refuses to pad a list with more than 1,500,000 nulls \(up to position 1,500,002\), "
        r"and the update would stop there, keeping what it wrote before; nothing was written$",
    )
    assert refused.field == "nul__1500002"


@pytest.mark.parametrize(
    ("values", "queryset_filter", "culprit"),
    [
        ({"lines": F("lines").each(tags__2="x")}, {}, "tags' of 2 elements or more: MongoDB "
         r"would pad it with nulls up to position 2, which list\[str\] cannot hold"),
        ({"lines": F("lines").each(grid__1=["x"])}, {}, "grid' of 1 element or more"),
        ({"lines": F("lines").each(Q(sku="b"), tags__2="x")}, {}, "tags' of 2 elements"),
        ({"lines": F("lines").matched(tags__2="x")}, {"lines__sku": "b"}, "tags' of 2 elements"),
        ({"lines": F("lines").each(nul__1500001="x")}, {}, "nul' of 1 element or more: "
         "MongoDB refuses to pad"),
    ],
    ids=["each", "list-of-lists", "each-q", "matched", "past-padding"],
)
async def test_a_position_inside_the_elements_written_is_guarded(
    monitored: MonitoredDatabase,
    values: dict[str, Any],
    queryset_filter: dict[str, Any],
    culprit: str,
) -> None:
    """Each element written whose list is too short is named; the others are not: the
    ``sku="a"`` line's tags reach position 2, the ``sku="b"`` one's do not."""
    full = Rv1Line(sku="a", tags=["a", "b"], grid=[["a"], ["b"]], nul=["a"])
    await Rv1Shelf(lines=[full]).insert()
    shelf = await Rv1Shelf(lines=[full, Rv1Line(sku="b", tags=["a"])]).insert()
    queryset = Rv1Shelf.objects.filter(**queryset_filter)
    refused = await _refused_before_sending(
        monitored,
        values,
        rf"^Rv1Shelf update: cannot write 'lines__\w+': the matching document "
        rf"_id={re.escape(repr(shelf.id))} holds an element of 'lines' with no list '{culprit}",
        queryset,
    )
    assert refused.field is not None and refused.field.startswith("lines__")
    async for loaded in Rv1Shelf.objects.all():  # every document still loads
        assert loaded.lines


async def test_a_position_inside_the_elements_that_every_one_reaches_is_written(
    monitored: MonitoredDatabase,
) -> None:
    shelf = await Rv1Shelf(lines=[Rv1Line(sku="a", tags=["a", "b"]), Rv1Line(sku="b")]).insert()
    updated = Rv1Shelf.objects.filter(id=shelf.id)
    assert await updated.update(lines=F("lines").each(Q(sku="a"), tags__01="x")) == 1
    assert await updated.update(lines=F("lines").each(nul__1="x")) == 1  # nulls allowed
    loaded = await Rv1Shelf.objects.get(id=shelf.id)
    assert [line.tags for line in loaded.lines] == [["a", "x"], []]
    assert [line.nul for line in loaded.lines] == [[None, "x"], [None, "x"]]


async def test_a_position_inside_elements_past_max_length_is_refused(
    monitored: MonitoredDatabase,
) -> None:
    await Rv1Shelf(lines=[Rv1Line()]).insert()
    await _refused_before_sending(
        monitored,
        {"lines": F("lines").each(capped__2=1)},
        r"'lines__capped' \(list\[int\]\) holds at most 2 elements: it has no position 2",
    )
