"""What ``update()`` checks before an ``update_many`` (and before any update it would leave
unloadable), so that nothing is half-written or broken.

- An update writing inside an embedded field (``address__n=F("address__n") + 1``,
  ``address__n=5``) where a matching document's ``address`` was null, or a free-form value was
  not a document, stopped part-way: MongoDB refused it at that document ("Cannot create
  field 'n' in element {address: null}") and kept what it wrote before. The parents the model
  lets hold something else are checked first now; those it does not cost nothing more.
- The check of ``F()`` arithmetic on a free-form field passed a list of numbers (``$type``
  matches a list by its elements), and the server stopped the update part-way at it.
- ``each()`` / ``matched()`` wrote a ``push`` past the element list's ``max_length``, and a
  ``pull`` (on a list or in elements) shrank a list below its ``min_length``: the documents
  no longer loaded.
- ``values(...).annotate(...)`` rows put some annotations before the fields (Django: the
  ``values()`` fields in their order, then the annotations in theirs).
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field

import odm
from odm import Document, Embedded, F, Q, QueryError
from odm.aggregates import Count, Max, Sum
from odm.contrib.pytest import MonitoredDatabase

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class PcAddress(Embedded):
    n: int = 0
    city: str = ""


class PcLine(Embedded):
    sku: str
    qty: int | None = 0
    tags: Annotated[list[str], Field(min_length=1, max_length=2)] = ["t"]


class PcDoc(Document):
    k: int = 0
    address: PcAddress | None = None
    home: PcAddress = PcAddress()
    data: Any = None
    meta: dict[str, Any] = {}
    loose: list[Any] = []
    lines: list[PcLine] = []
    maybe_lines: list[PcLine] | None = None
    holes: list[PcLine | None] = []
    tags: Annotated[list[str], Field(min_length=1)] = ["a"]
    pairs: Annotated[list[PcLine], Field(min_length=2)] = [PcLine(sku="x"), PcLine(sku="y")]
    a: int = 0
    b: int | None = 0

    class Meta:
        collection = "pc_docs"


async def _stored(odm_database: Any) -> list[dict[str, Any]]:
    """The raw stored documents, in ``k`` order, without ``_id``."""
    coll = odm_database[PcDoc._meta.collection]
    return [doc async for doc in coll.find({}, {"_id": 0}).sort("k", 1)]


async def _three(**middle: Any) -> list[PcDoc]:
    """Three documents; the middle one (``k=1``) holds ``middle``, the others defaults."""
    docs = [PcDoc(k=0, address=PcAddress()), PcDoc(k=1, **middle), PcDoc(k=2, address=PcAddress())]
    await PcDoc.objects.bulk_create(docs)
    return docs


# -- 1. a parent that may be null, or not a document ----------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("address__n", F("address__n") + 1), ("address__n", 5), ("address__city", "x")],
    ids=["inc", "set", "set-str"],
)
async def test_a_null_parent_is_refused_before_anything_is_written(
    monitored: MonitoredDatabase, key: str, value: Any
) -> None:
    """The first document was written, then MongoDB refused the null ``address``."""
    docs = await _three()
    before = await _stored(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"cannot write 'address__.*holds null at 'address', not "
                       r"a document.*nothing was written.*address__isnull=False") as caught:
        await PcDoc.objects.all().update(**{key: value})
    assert caught.value.field == key
    assert repr(docs[1].id) in str(caught.value)
    assert monitored.log.names() == ["find"]  # the check; no update sent
    assert await _stored(monitored.database) == before
    assert await PcDoc.objects.filter(address__isnull=False).update(**{key: value}) == 2


async def test_a_parent_the_model_keeps_a_document_costs_no_check(
    monitored: MonitoredDatabase,
) -> None:
    """``home`` is never null: its update sends the update alone, as before. A filter on one
    id sends ``update_one``, which the server refuses whole: nothing to ask first either."""
    docs = await _three()
    monitored.log.clear()
    assert await PcDoc.objects.all().update(home__n=F("home__n") + 1) == 3
    assert monitored.log.names() == ["update"]
    monitored.log.clear()
    with pytest.raises(QueryError, match="cannot write 'address__n': a matching document holds "
                       "null at 'address', not a document") as refused:
        await PcDoc.objects.filter(id=docs[1].id).update(address__n=1)
    assert refused.value.field == "address__n"
    assert monitored.log.names() == ["update"]


@pytest.mark.parametrize(
    ("stored", "update", "label"),
    [
        ({"data": "text"}, {"data__k": 1}, "data"),
        ({"data": [{"k": 1}]}, {"data__k": F("data__k") + 1}, "data"),
        ({"meta": {"k": 3}}, {"meta__k__j": 1}, "meta__k"),
        ({"loose": [None]}, {"loose__0__j": 1}, "loose__0"),
    ],
    ids=["str", "list-of-documents", "dict-value", "list-position"],
)
async def test_a_free_form_parent_holding_no_document_is_refused(
    odm_database: Any, stored: dict[str, Any], update: dict[str, Any], label: str
) -> None:
    await _three(**stored)
    before = await _stored(odm_database)
    with pytest.raises(QueryError, match=f"at {label!r}, not a document.*nothing was written"):
        await PcDoc.objects.all().update(**update)
    assert await _stored(odm_database) == before


async def test_element_updates_check_the_list_the_elements_and_their_fields(
    odm_database: Any,
) -> None:
    """``$[]`` on a null list, a null element written inside, and ``F("qty") + 1`` on a null
    ``qty`` each stopped an update_many part-way."""
    good = [PcLine(sku="p", qty=1)]
    await PcDoc.objects.bulk_create([
        PcDoc(k=0, lines=good, maybe_lines=good, holes=list(good)),
        PcDoc(k=1, lines=[PcLine(sku="p"), PcLine(sku="q", qty=None)], holes=[None]),
        PcDoc(k=2, lines=good, maybe_lines=good, holes=list(good)),
    ])
    before = await _stored(odm_database)
    refused = [
        ({"maybe_lines": F("maybe_lines").each(qty=5)}, r"holds null there, not a list"),
        ({"holes": F("holes").each(sku="z")}, r"holds null in an element of 'holes', not a doc"),
        ({"lines": F("lines").each(qty=F("qty") + 1)},
         r"'lines__qty'.*holds null in an element of 'lines' at 'qty', not a number"),
        ({"lines": F("lines").each(Q(sku="q"), qty=F("qty") * 2)}, r"'lines__qty'.*null"),
    ]
    for update, message in refused:
        with pytest.raises(QueryError, match=message + ".*nothing was written"):
            await PcDoc.objects.all().update(**update)
    assert await _stored(odm_database) == before
    # The elements the update does not write are not asked about.
    assert await PcDoc.objects.update(lines=F("lines").each(Q(sku="p"), qty=F("qty") + 1)) == 3
    assert await PcDoc.objects.filter(lines__sku="p").update(
        lines=F("lines").matched(qty=F("qty") + 1)
    ) == 3
    assert [[line.qty for line in d.lines] for d in await PcDoc.objects.order_by("k")] == [
        [3], [2, None], [3]
    ]


async def test_inside_a_transaction_nothing_is_asked_first(monitored: MonitoredDatabase) -> None:
    """The abort takes back what the refused update_many wrote."""
    await _three()
    before = await _stored(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match="address"):
        async with odm.transaction():
            await PcDoc.objects.all().update(address__n=1)
    assert "find" not in monitored.log.names()
    assert await _stored(monitored.database) == before


# -- 2. F() arithmetic on a free-form field holding a list -----------------------------------


@pytest.mark.parametrize(
    ("stored", "update", "message"),
    [
        ({"data": [1, 2]}, {"data": F("data") + 1}, r"'data'.*holds a list there, not a number"),
        ({"meta": {"k": [3]}}, {"meta__k": F("meta__k") * 2}, r"'meta__k'.*a list there"),
        ({"loose": [[1], 2]}, {"loose__0": F("loose__0") + 1}, r"'loose__0'.*a list there"),
        ({"meta": {"l": {"x": 1}}}, {"meta__l": F("meta__l").push(1)}, r"a dict there, not a list"),
    ],
    ids=["list-of-numbers", "dict-value", "list-position", "push-on-dict"],
)
async def test_a_free_form_value_of_another_type_is_refused_before_writing(
    monitored: MonitoredDatabase, stored: dict[str, Any], update: dict[str, Any], message: str
) -> None:
    """MongoDB incremented the first document, then refused the list of the second."""
    await PcDoc.objects.bulk_create([
        PcDoc(k=0, data=1, meta={"k": 1, "l": []}, loose=[1]),
        PcDoc(k=1, **stored),
        PcDoc(k=2, data=3, meta={"k": 1, "l": []}, loose=[1]),
    ])
    before = await _stored(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match=message + ".*nothing was written"):
        await PcDoc.objects.all().update(**update)
    assert monitored.log.names() == ["find"]  # the check; no update sent
    assert await _stored(monitored.database) == before


# -- 3. list lengths in element updates, and pull() against min_length -----------------------


async def test_element_push_is_kept_within_max_length(odm_database: Any) -> None:
    """Every element's ``tags`` holds at most two: a third was written, the document then
    failed to load."""
    docs = [
        PcDoc(k=0, lines=[PcLine(sku="p", tags=["a"]), PcLine(sku="q", tags=["a", "b"])]),
        PcDoc(k=1, lines=[PcLine(sku="p", tags=["a"])]),
    ]
    await PcDoc.objects.bulk_create(docs)
    before = await _stored(odm_database)
    for queryset, update in [
        (PcDoc.objects.all(), F("lines").each(tags=F("tags").push("c"))),
        (PcDoc.objects.all(), F("lines").each(Q(sku="q"), tags=F("tags").push("c"))),
        (PcDoc.objects.all(), F("lines").each(tags=F("tags").add_to_set("b", "c"))),
        (PcDoc.objects.filter(lines__sku="q"), F("lines").matched(tags=F("tags").push("c"))),
        (PcDoc.objects.filter(id=docs[0].id), F("lines").each(tags=F("tags").push("c"))),
    ]:
        with pytest.raises(QueryError, match=r"element of 'lines' whose list 'tags' (push|add_t"
                           r"o_set)\(\) would grow past its max_length of 2") as caught:
            await queryset.update(lines=update)
        assert caught.value.field == "lines__tags"
        assert repr(docs[0].id) in str(caught.value)
    # A position is read as one (in an expression "$lines.0.tags" is no element's list).
    with pytest.raises(QueryError, match=r"list 'lines__1__tags' that push\(\) would grow"):
        await PcDoc.objects.update(lines__1__tags=F("lines__1__tags").push("c"))
    assert await _stored(odm_database) == before
    # What fits is written: the full element is not the one written, or gains nothing.
    assert await PcDoc.objects.filter(lines__sku="q").update(
        lines=F("lines").each(Q(sku="q"), tags=F("tags").add_to_set("a"))
    ) == 1
    assert await PcDoc.objects.filter(lines__sku="p").update(
        lines=F("lines").matched(tags=F("tags").push("d"))
    ) == 2
    assert [[line.tags for line in d.lines] for d in await PcDoc.objects.order_by("k")] == [
        [["a", "d"], ["a", "b"]], [["a", "d"]]
    ]


async def test_pull_is_kept_within_min_length(odm_database: Any) -> None:
    """``pull()`` emptied a list declared ``Field(min_length=1)`` (and one of models below
    its two): the document no longer loaded."""
    docs = [
        PcDoc(k=0, tags=["a", "b"], lines=[PcLine(sku="p", tags=["a", "b"])]),
        PcDoc(k=1, tags=["a"], lines=[PcLine(sku="p", tags=["a"]), PcLine(sku="q")]),
        PcDoc(k=2, pairs=[PcLine(sku="x"), PcLine(sku="y", qty=1), PcLine(sku="z", qty=9)]),
    ]
    await PcDoc.objects.bulk_create(docs)
    before = await _stored(odm_database)
    for update, field, message in [
        ({"tags": F("tags").pull("a")}, "tags", r"list 'tags' that pull\(\) would shrink below "
         "its min_length of 1"),
        ({"tags": F("tags").pull("a", "b")}, "tags", "min_length of 1"),
        ({"pairs": F("pairs").pull(Q(qty=0))}, "pairs", "list 'pairs'.*min_length of 2"),
        ({"lines": F("lines").each(tags=F("tags").pull("a"))}, "lines__tags",
         r"element of 'lines' whose list 'tags' pull\(\) would shrink below its min_length"),
        ({"lines": F("lines").each(Q(sku="p"), tags=F("tags").pull("a"))}, "lines__tags",
         "min_length of 1"),
        ({"lines__0__tags": F("lines__0__tags").pull("a")}, "lines__0__tags", "min_length"),
    ]:
        with pytest.raises(QueryError, match=message) as caught:
            await PcDoc.objects.all().update(**update)
        assert caught.value.field == field
    assert await _stored(odm_database) == before
    # Where enough is left, or nothing is pulled, the pull is written.
    assert await PcDoc.objects.update(tags=F("tags").pull("b")) == 3
    assert await PcDoc.objects.filter(k=2).update(pairs=F("pairs").pull(Q(qty=0))) == 1
    assert await PcDoc.objects.update(
        lines=F("lines").each(Q(sku="p"), tags=F("tags").pull("b"))
    ) == 3
    stored = await PcDoc.objects.order_by("k")  # every document still loads
    assert [d.tags for d in stored] == [["a"], ["a"], ["a"]]
    assert [line.tags for line in stored[0].lines] == [["a"]]
    assert [p.sku for p in stored[2].pairs] == ["y", "z"]


# -- 5. values().annotate() key order --------------------------------------------------------


async def test_values_annotate_rows_keep_djangos_key_order(odm_database: Any) -> None:
    await PcDoc.objects.bulk_create([PcDoc(k=0, a=5, b=1), PcDoc(k=1, a=5, b=None)])
    rows = await PcDoc.objects.values("b", "a").annotate(
        z=Count("k"), c=Sum("k"), m=Max("b")
    ).order_by("b")
    assert [list(row) for row in rows] == [["b", "a", "z", "c", "m"]] * 2
    totals = await PcDoc.objects.aggregate(z=Count("k"), c=Sum("k"), m=Max("b"))
    assert list(totals) == ["z", "c", "m"]


# -- 4. exclude() of an F() comparison is filter()'s complement ------------------------------


async def test_exclude_of_arithmetic_over_a_null_keeps_the_row(odm_database: Any) -> None:
    """Not a change, the rule docs/querysets.md states: Django's SQL leaves a row whose ``b``
    is null out of both ``filter(a__gt=F("b") + 1)`` and its ``exclude()``; here every
    document is in exactly one of them (Django's intent since ticket #23797)."""
    await PcDoc.objects.bulk_create([PcDoc(k=0, a=5, b=1), PcDoc(k=1, a=5, b=None),
                                     PcDoc(k=2, a=1, b=1)])
    for condition in ({"a__gt": F("b") + 1}, {"a__lt": F("b") * 2}, {"a": 1 - F("b")}):
        kept = [d.k for d in await PcDoc.objects.filter(**condition).order_by("k")]
        left = [d.k for d in await PcDoc.objects.exclude(**condition).order_by("k")]
        assert sorted(kept + left) == [0, 1, 2] and 1 in left, condition


class PcTagged(Document):
    """Lists a position is written into, where an older document stores none."""

    k: int = 0
    labels: list[str] | None = None
    scores: list[int | None] = []

    class Meta:
        collection = "pc_tagged"


@pytest.mark.parametrize(("key", "value"), [("labels__0", "x"), ("scores__3", 7)])
async def test_a_position_where_no_list_is_stored_is_refused(
    odm_database: Any, key: str, value: Any
) -> None:
    """MongoDB writes ``{"labels": {"0": "x"}}`` where no list is stored, a document its model
    cannot load (also at a position past the end of a list whose elements may be null)."""
    coll = odm_database[PcTagged._meta.collection]
    await coll.insert_many([{"k": 0, "labels": ["a"], "scores": [1, 2, 3, 4]}, {"k": 1}])
    before = [doc async for doc in coll.find({}, {"_id": 0}).sort("k", 1)]
    with pytest.raises(QueryError, match=r"holds no list .*nothing was written") as caught:
        await PcTagged.objects.all().update(**{key: value})
    assert caught.value.field == key
    assert [doc async for doc in coll.find({}, {"_id": 0}).sort("k", 1)] == before
    assert await PcTagged.objects.filter(k=0).update(**{key: value}) == 1
    assert len(await PcTagged.objects.all()) == 2  # every document still loads
