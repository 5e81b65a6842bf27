"""Element updates that MongoDB stopped part-way through an ``update_many``.

- ``F("tags").matched(...)`` (``$``) with a filter that tests the list only negatively
  (``tags__ne``, ``tags__nin``, ``~Q(tags=...)``, ``exclude(...)``) or in one branch of an
  ``|``: the check that the filter mentions the list let it through, and the server refused
  ``$`` at the first matching document where no element matched ("The positional operator
  did not find the match needed from the query"), keeping what it wrote before.
- ``F("tags").each(...)`` (``$[]``) where a stored document has no ``tags`` at all (one
  stored before the field, which has a default, was declared): the server refused it there
  ("The path 'tags' must exist in the document in order to apply array updates").
"""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo.errors import OperationFailure

from odm import Document, Embedded, F, Q, QueryError
from odm.contrib.pytest import MonitoredDatabase
from odm.query.update_checks import binds_element, mentions
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class HwLine(Embedded):
    sku: str
    qty: int = 0


class HwHome(Embedded):
    rooms: list[str]


class HwDoc(Document):
    k: int = 0
    tags: list[str] = []
    lines: list[HwLine] = []
    home: HwHome = HwHome(rooms=["hall"])
    needed: list[str]

    class Meta:
        collection = "hw_docs"


async def _stored(database: Any) -> list[dict[str, Any]]:
    """The raw stored documents, in ``k`` order."""
    return [doc async for doc in database[HwDoc._meta.collection].find({}).sort("k", 1)]


async def _insert_raw(database: Any, *docs: dict[str, Any]) -> None:
    """Store ``docs`` as they are (older documents, without the fields declared since)."""
    await database[HwDoc._meta.collection].insert_many([dict(d) for d in docs])


# -- 1. matched() with a filter that binds no element ----------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        lambda: HwDoc.objects.filter(tags__ne="z"),
        lambda: HwDoc.objects.filter(tags__nin=["z"]),
        lambda: HwDoc.objects.exclude(tags="z"),
        lambda: HwDoc.objects.filter(~Q(tags="z")),
        lambda: HwDoc.objects.filter(Q(tags="a") | Q(k=1)),
        lambda: HwDoc.objects.filter(Q(tags="a") | ~Q(tags="z")),
        lambda: HwDoc.objects.filter(Q(tags="a") | Q(tags__gte="b")),
        lambda: HwDoc.objects.filter(tags__ne="z", lines__sku="p"),
    ],
    ids=["ne", "nin", "exclude", "not", "one-branch-of-or", "negative-branch-of-or",
         "or-of-element-tests", "another-list-binds"],
)
async def test_matched_with_a_filter_binding_no_element_is_refused_before_sending(
    monitored: MonitoredDatabase, query: Any
) -> None:
    """The first document was written (its ``a`` matched), then the second stopped the
    update: ``k=1`` or ``tags__ne="z"`` matched it with no element of ``tags``. Given the
    position of the element of ``lines`` matched, MongoDB wrote that position of ``tags``
    instead, padding the list with a null its model refuses."""
    p, q = {"sku": "p", "qty": 0}, {"sku": "q", "qty": 0}
    await _insert_raw(
        monitored.database,
        {"k": 0, "tags": ["a", "b"], "lines": [p], "needed": []},
        {"k": 1, "tags": ["b"], "lines": [q, q, p], "needed": []},
    )
    before = await _stored(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"matched\(\) writes the element of 'tags'.*"
                       r"filter\(tags=\.\.\.\).*each\(") as caught:
        await query().update(tags=F("tags").matched("X"))
    assert caught.value.field == "tags"
    assert monitored.log.names() == []  # refused before anything was sent
    assert await _stored(monitored.database) == before


@pytest.mark.parametrize(
    "query",
    [
        lambda: HwDoc.objects.filter(tags="a"),
        lambda: HwDoc.objects.filter(tags__in=["a", "c"]),
        lambda: HwDoc.objects.filter(tags="a").exclude(tags="z"),
        lambda: HwDoc.objects.filter(Q(Q(tags="a") | Q(k=1)) & Q(tags__in=["a", "b"])),
        lambda: HwDoc.objects.filter(tags__gte="b", k__lt=2),
    ],
    ids=["eq", "in", "eq-and-exclude", "and-of-or", "range"],
)
async def test_matched_with_a_filter_binding_an_element_writes(
    odm_database: Any, query: Any
) -> None:
    await _insert_raw(
        odm_database,
        {"k": 0, "tags": ["b", "a"], "needed": []},
        {"k": 1, "tags": ["b"], "needed": []},
        {"k": 2, "tags": ["c"], "needed": []},
    )
    matched = {doc.k for doc in await query()}
    assert matched
    assert await query().update(tags=F("tags").matched("X")) == len(matched)
    for doc in await HwDoc.objects.order_by("k"):
        assert ("X" in doc.tags) == (doc.k in matched)


#: Filters on the stored lists, and whether MongoDB notes, for every document one matches,
#: the element of the list (``tags``, or ``lines`` for a key inside it) that it matched.
_SHAPES: list[tuple[dict[str, Any], bool]] = [
    ({"tags": "a"}, True),
    ({"tags": {"$in": ["a", "c"]}}, True),
    ({"tags": {"$gt": "a"}}, True),
    ({"tags": {"$regex": "^b"}}, True),
    ({"tags": {"$all": ["a", "b"]}}, True),
    ({"tags": {"$elemMatch": {"$eq": "c"}}}, True),
    ({"tags": {"$type": "string"}}, True),
    ({"tags": {"$ne": "z", "$gt": "a"}}, True),
    ({"$and": [{"tags": {"$ne": "z"}}, {"tags": "b"}]}, True),
    ({"$and": [{"$or": [{"tags": "a"}, {"k": 3}]}, {"tags": {"$in": ["a", "c"]}}]}, True),
    ({"tags": {"$ne": "z"}}, False),
    ({"tags": {"$nin": ["z"]}}, False),
    ({"tags": {"$not": {"$eq": "z"}}}, False),
    ({"$nor": [{"tags": "z"}]}, False),
    ({"tags": {"$size": 2}}, False),
    ({"tags": {"$exists": True}}, False),
    ({"tags": {"$type": "array"}}, False),
    ({"tags": ["a", "b"]}, False),
    ({"tags": None}, False),
    ({"tags": {"$in": [None, "a"]}}, False),
    ({"tags.0": "a"}, False),
    ({"$or": [{"tags": "a"}, {"tags": {"$gt": "b"}}]}, False),
    ({"$or": [{"tags": "a"}, {"k": 3}]}, False),
    ({"$expr": {"$in": ["a", {"$ifNull": ["$tags", []]}]}}, False),
    ({"lines.sku": "p"}, True),
    ({"lines.sku": {"$exists": True}}, True),
    ({"lines.tags": {"$size": 1}}, True),
    ({"lines.tags": {"$type": "array"}}, True),
    ({"lines.tags": ["w"]}, True),
    ({"lines": {"sku": "q", "tags": ["w"]}}, True),
    ({"lines": {"$elemMatch": {"sku": {"$ne": "z"}}}}, True),
    ({"lines": {"$all": [{"$elemMatch": {"sku": "p"}}]}}, True),
    ({"lines.sku": {"$ne": "z"}}, False),
    ({"lines.sku": {"$exists": False}}, False),
    ({"lines.sku": None}, False),
    ({"lines.0.sku": "p"}, False),
    ({"lines": {"$size": 0}}, False),
]


async def test_the_filters_odm_lets_matched_write_with_are_those_mongodb_runs(
    odm_database: Any,
) -> None:
    """Each shape against documents holding two elements, none, no list at all: MongoDB runs
    ``$`` on every document the filter matches exactly when odm lets ``matched()`` send it.
    (An ``$or`` of values of one list, ``$or: [{tags: "a"}, {tags: "b"}]``, runs on MongoDB
    6.0, rewritten into an ``$in``: odm refuses it all the same, and says to write
    ``tags__in``, which every version runs.)"""
    collection = odm_database["hw_shapes"]
    lines = [{"sku": "p", "tags": ["x", "y"]}, {"sku": "q", "tags": ["w"]}]
    docs = [{"k": 0, "tags": ["a", "b"], "lines": lines}, {"k": 1, "tags": [], "lines": []},
            {"k": 2}, {"k": 3, "tags": ["c"], "lines": [{"qty": 1}]}]
    runs = []
    for filter, _ in _SHAPES:
        path = "lines" if mentions(filter, "lines") else "tags"
        await collection.delete_many({})
        await collection.insert_many([dict(doc) for doc in docs])
        assert await collection.count_documents(filter), filter  # it matches something
        try:
            await collection.update_many(filter, {"$set": {f"{path}.$": "X"}})
            runs.append((filter, binds_element(filter, path), True))
        except OperationFailure:
            runs.append((filter, binds_element(filter, path), False))
    assert [(f, bound) for f, bound, _ in runs] == [(f, ran) for f, _, ran in runs]
    assert [bound for _, bound, _ in runs] == [binds for _, binds in _SHAPES]


# -- 2. each() on a list a stored document does not hold ------------------------------------


@pytest.mark.parametrize(
    ("update", "label"),
    [
        ({"tags": F("tags").each("X")}, "tags"),
        ({"lines": F("lines").each(qty=5)}, "lines"),
        ({"lines": F("lines").each(Q(sku="p"), qty=5)}, "lines"),
        ({"home__rooms": F("home__rooms").each("X")}, "home__rooms"),
    ],
    ids=["scalars", "models", "models-chosen", "inside-a-default-document"],
)
async def test_each_on_a_list_a_document_lacks_is_refused_before_writing(
    monitored: MonitoredDatabase, update: dict[str, Any], label: str
) -> None:
    """The first document was written, then MongoDB refused the second ("The path 'tags'
    must exist in the document in order to apply array updates")."""
    full = {"tags": ["a"], "lines": [{"sku": "p", "qty": 1}], "home": {"rooms": ["a"]},
            "needed": []}
    await _insert_raw(monitored.database, {"k": 0, **full}, {"k": 1, "needed": []},
                      {"k": 2, **full})
    before = await _stored(monitored.database)
    monitored.log.clear()
    with pytest.raises(QueryError, match=rf"cannot write {label!r}: the matching document "
                       rf"_id=.* holds nothing there, not a list.*nothing was written; leave "
                       rf"such documents out \(filter\({label}__isnull=False\)\)") as caught:
        await HwDoc.objects.all().update(**update)
    assert caught.value.field == label
    assert monitored.log.names() == ["find"]  # the check; no update sent
    assert await _stored(monitored.database) == before
    # What the message says to write works: the documents holding the list are written.
    assert await HwDoc.objects.filter(**{f"{label}__isnull": False}).update(**update) == 2


async def test_each_asks_first_only_where_a_document_may_lack_the_list(
    monitored: MonitoredDatabase,
) -> None:
    """``needed`` has no default: a document without it does not load, so ``each()`` sends
    the update alone. ``tags`` has one: one ``find`` of at most one document asks first."""
    await _insert_raw(monitored.database, *({"k": k, "tags": ["a"], "needed": ["n"]}
                                            for k in range(3)))
    monitored.log.clear()
    assert await HwDoc.objects.all().update(needed=F("needed").each("X")) == 3
    assert monitored.log.names() == ["update"]
    monitored.log.clear()
    assert await HwDoc.objects.all().update(tags=F("tags").each("X")) == 3
    assert monitored.log.names() == ["find", "update"]
    assert monitored.log.named("find")[0]["limit"] == 1
    assert [(d.tags, d.needed) for d in await HwDoc.objects.all()] == [(["X"], ["X"])] * 3


# -- 3. any filter of element tests: refused first, or every matching document written -----

#: Tests of an element of the list (MongoDB notes which), of the list that no element need
#: meet, and of other fields.
_POSITIVE = st.sampled_from([Q(tags="a"), Q(tags="b"), Q(tags__in=["a", "c"]), Q(tags__gte="b")])
_OTHER = st.sampled_from([
    Q(tags__ne="a"), Q(tags__nin=["b", "c"]), Q(tags__size=1), Q(tags__isnull=False),
    Q(k=1), Q(k__gte=2), Q(lines__sku="p"),
])
_FILTERS = st.recursive(
    _POSITIVE | _OTHER,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda pair: operator.and_(*pair)),
        st.tuples(inner, inner).map(lambda pair: operator.or_(*pair)),
        inner.map(operator.invert),
    ),
    max_leaves=4,
)
#: Half of them under a positive test: the updates MongoDB runs are drawn as often.
_DRAWN = _FILTERS | st.tuples(_POSITIVE, _FILTERS).map(lambda pair: operator.and_(*pair))
#: The stored lists, one per document: some elements, none, or no list stored (``None``).
_STORED_TAGS: list[list[str] | None] = [["a", "b"], ["b"], [], None, ["c", "a"], ["b", "c", "b"]]


def _raw(k: int, tags: list[str] | None) -> dict[str, Any]:
    line = {"sku": "p" if k % 2 else "q", "qty": 0}
    doc: dict[str, Any] = {"k": k, "lines": [line], "needed": []}
    return doc if tags is None else {**doc, "tags": tags}


def _written(kind: str, before: list[str] | None, after: list[str] | None) -> bool:
    """Tell whether ``after`` is ``before`` with ``X`` written where ``kind`` writes it."""
    if before is None:
        return after is None
    if kind == "each":
        return after == ["X"] * len(before)
    changed = [i for i, (b, a) in enumerate(zip(before, after or [], strict=False)) if b != a]
    return after is not None and len(after) == len(before) and len(changed) == 1 and (
        after[changed[0]] == "X"
    )


@server_property(max_examples=25)
@given(q=_DRAWN, kind=st.sampled_from(["matched", "each"]))
async def test_an_element_update_is_refused_first_or_writes_every_matching_document(
    monitored: MonitoredDatabase, q: Q, kind: str
) -> None:
    """Never an update that the server stops part-way: either odm refuses it before the
    update is sent (nothing changed), or every document the filter matches is written."""
    collection = monitored.database[HwDoc._meta.collection]
    await collection.delete_many({})
    await _insert_raw(monitored.database, *(_raw(k, tags) for k, tags in enumerate(_STORED_TAGS)))
    before = await _stored(monitored.database)
    matching = {doc.k async for doc in HwDoc.objects.filter(q)}
    monitored.log.clear()
    element = getattr(F("tags"), kind)("X")
    try:
        count = await HwDoc.objects.filter(q).update(tags=element)
    except QueryError:
        assert "update" not in monitored.log.names()  # odm's refusal, not the server's
        assert await _stored(monitored.database) == before
        return
    assert count == len(matching)
    for old, new in zip(before, await _stored(monitored.database), strict=True):
        if old["k"] in matching:
            assert _written(kind, old.get("tags"), new.get("tags")), (old, new)
        else:
            assert new == old
