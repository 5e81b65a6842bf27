"""Request data that reached the server as a command it refused, or broke the compiler, until
session 19: each is now a ``QueryError`` naming the culprit, raised before anything is sent,
or (a projection) a command the server takes.

- A slice or ``to_list()`` past BSON's int64 (``?offset=99999999999999999999``) failed while
  the command was encoded, as a ``ValidationError`` "for" the model about "a value that cannot
  be stored", naming neither the slice nor the queryset; ``batch_size("5")`` was a bare
  ``TypeError``, ``batch_size(2.5)`` the driver's, ``batch_size(True)`` the server's.
- ``items__elemmatch`` values nesting ``__elemmatch`` in a JSON body were not held to
  MongoDB's depth: 50 levels were sent and refused untyped, 200 hit Python's recursion limit.
- ``order_by()`` of more than 32 fields (a ``?sort=`` list) was sent: "too many compound keys".
- ``defer("address", "address__city")`` was sent as a projection MongoDB refuses ("Path
  collision").
- A name or a text holding a lone surrogate (a JSON ``"\\ud800"`` escape decodes to one) in
  a filter key, ``order_by``, ``only``, ``values``, a text lookup or ``search()`` failed while
  encoding, naming nothing.
- An ``F()`` expression folded from a request's list (``F("a") + 1 + 1 + ...``) was sent past
  the server's depth (refused untyped) or, longer, broke the compiler with ``RecursionError``.
- A path crossing a reference at a list position (``watchers__0__name``) was joined on
  ``watchers.0``, which ``$lookup`` reads as a field of each element: the filter matched no
  document, the ordering and ``values()`` saw nothing, ``select_related("watchers__0")``
  attached nothing, all silently.
- Every filter key, ordering and ``select_related`` path valid on a model was cached for good,
  so a stream of requests naming new keys of a free-form dict (``meta__<anything>``) or new
  list positions (``tags__12345``) grew the process without bound.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from odm import Document, Embedded, F, Index, QueryError, Reference
from odm.aggregates import Sum
from odm.contrib.pytest import MonitoredDatabase
from odm.models.derived import derived
from odm.query.compiler import compile_query
from odm.query.results import field_reader
from odm.query.updates import compile_update_spec

pytestmark = pytest.mark.odm_drivers("pymongo")

INT64_MAX = 2**63 - 1


class AtAddress(Embedded):
    city: str = ""


class AtDoc(Document):
    name: str = ""
    score: float = 0.0
    tags: list[str] = []
    address: AtAddress | None = None
    meta: dict[str, Any] = {}

    class Meta:
        collection = "attack_docs"


class AtPost(Document):
    title: str

    class Meta:
        collection = "attack_posts"
        indexes = [Index(text=["title"])]


# -- slices, batch sizes and lengths ---------------------------------------------------------


@pytest.mark.parametrize(
    "take",
    [
        lambda qs: qs[2**63:],
        lambda qs: qs[: 2**64],
        lambda qs: qs[INT64_MAX],
        lambda qs: qs[10:][INT64_MAX - 5 :],
        lambda qs: qs[10**5000],
    ],
    ids=["skip", "limit", "index", "composed", "huge"],
)
async def test_a_slice_past_int64_is_refused_when_taken(
    monitored: MonitoredDatabase, take: Any
) -> None:
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"queryset slice \[.*beyond MongoDB's skip and limit"):
        take(AtDoc.objects.all())
    with pytest.raises(QueryError, match="to_list length must be an int from 0 to"):
        await AtDoc.objects.to_list(2**64)
    assert monitored.log.names() == []
    # The last rows MongoDB can count are still a query.
    assert await AtDoc.objects.all()[INT64_MAX:] == []
    assert await AtDoc.objects.order_by("name")[: INT64_MAX].count() == 0


@pytest.mark.parametrize("value", ["5", 2.5, float("nan"), True, None, 2**63, [1]])
def test_batch_size_takes_an_int(value: Any) -> None:
    with pytest.raises(QueryError, match="batch_size must be an int"):
        AtDoc.objects.batch_size(value)


@pytest.mark.parametrize("value", ["3", [3], {"n": 1}])
async def test_to_list_takes_an_int(monitored: MonitoredDatabase, value: Any) -> None:
    monitored.log.clear()
    with pytest.raises(QueryError, match="to_list length must be an int"):
        await AtDoc.objects.to_list(value)
    assert monitored.log.names() == []


# -- nested elemmatch ------------------------------------------------------------------------


def nested_elemmatch(levels: int) -> dict[str, Any]:
    """``{"x__elemmatch": {"x__elemmatch": ... {"n": 1}}}``, as a JSON body nests it."""
    value: dict[str, Any] = {"n": 1}
    for _ in range(levels):
        value = {"x__elemmatch": value}
    return value


async def test_nested_elemmatch_is_held_to_mongodb_depth(monitored: MonitoredDatabase) -> None:
    # 48 levels: 99 levels of filter under "meta.list" (two parts), the deepest allowed.
    assert await AtDoc.objects.filter(meta__list__elemmatch=nested_elemmatch(48)).count() == 0
    monitored.log.clear()
    for levels in (49, 200, 5000):
        with pytest.raises(QueryError, match="nest deeper than MongoDB's 100 levels") as caught:
            AtDoc.objects.filter(meta__list__elemmatch=nested_elemmatch(levels))
        assert caught.value.field == "meta__list"
        assert "meta__list__elemmatch" in str(caught.value)
    deep: Any = 1
    for _ in range(97):
        deep = {"k": deep}
    with pytest.raises(QueryError, match="meta__list__elemmatch"):
        AtDoc.objects.filter(meta__list__elemmatch={"v": deep})
    assert monitored.log.names() == []


# -- ordering and projections ----------------------------------------------------------------


async def test_order_by_more_fields_than_mongodb_sorts_on(monitored: MonitoredDatabase) -> None:
    names = [f"meta__k{i}" for i in range(33)]
    await AtDoc(name="a").insert()
    assert len(await AtDoc.objects.order_by(*names[:32])) == 1
    monitored.log.clear()
    for build in (
        lambda: AtDoc.objects.order_by(*names),
        lambda: AtDoc.objects.values("name").order_by(*names),
    ):
        with pytest.raises(QueryError, match="sorts on at most 32") as caught:
            build()
        assert caught.value.field == "meta__k32"
    # A field named twice is sorted on once: 32 fields, however written.
    AtDoc.objects.order_by(*names[:32], *(f"-{name}" for name in names[:32]))
    with pytest.raises(QueryError, match="names no field"):
        AtDoc.objects.values("name").order_by("--name")
    assert monitored.log.names() == []


async def test_defer_of_a_field_and_a_path_inside_it(monitored: MonitoredDatabase) -> None:
    await AtDoc(name="a", address=AtAddress(city="x"), meta={"a": {"b": 1}, "c": 2}).insert()
    monitored.log.clear()
    for names in (("address", "address__city"), ("meta__a__b", "meta__a"), ("meta__a",)):
        qs = AtDoc.objects.defer(*names)
        if names == ("meta__a",):
            qs = qs.defer("meta__a__b")  # defer() adds up
        [doc] = await qs
        assert doc.name == "a"
    projections = [c["projection"] for c in monitored.log.named("find")]
    assert projections == [{"address": 0}, {"meta.a": 0}, {"meta.a": 0}]


# -- lone surrogates -------------------------------------------------------------------------


LONE = "\ud800"


@pytest.mark.parametrize(
    ("build", "culprit"),
    [
        (lambda: AtDoc.objects.filter(**{f"meta__{LONE}": 1}), "field name"),
        (lambda: AtDoc.objects.exclude(**{f"meta__a{LONE}__gt": 1}), "field name"),
        (lambda: AtDoc.objects.order_by(f"-meta__{LONE}"), "field name"),
        (lambda: AtDoc.objects.only(f"meta__{LONE}"), "field name"),
        (lambda: AtDoc.objects.values(f"meta__{LONE}"), "field name"),
        (lambda: AtDoc.objects.filter(name__icontains=f"a{LONE}"), "name__icontains"),
        (lambda: AtDoc.objects.filter(tags__iexact=LONE), "tags__iexact"),
        (lambda: AtDoc.objects.filter(name__regex=f"^{LONE}"), "name__regex"),
        (lambda: AtPost.objects.search(f"coffee {LONE}"), "search terms"),
    ],
    ids=["filter", "exclude", "order_by", "only", "values", "icontains", "iexact", "regex",
         "search"],
)
async def test_a_lone_surrogate_is_refused_naming_where(
    monitored: MonitoredDatabase, build: Any, culprit: str
) -> None:
    monitored.log.clear()
    with pytest.raises(QueryError, match="lone surrogate") as caught:
        build()
    assert culprit in str(caught.value)
    assert monitored.log.names() == []


# -- F() expressions -------------------------------------------------------------------------


def chain(steps: int) -> Any:
    """``F("score") + 1 + 1 ...``: an expression folded from a request's list of terms."""
    expression: Any = F("score")
    for _ in range(steps):
        expression = expression + 1
    return expression


async def test_deep_f_expressions_are_refused_when_built(monitored: MonitoredDatabase) -> None:
    await AtDoc(name="a", score=1.0).insert()
    assert await AtDoc.objects.filter(score__lt=chain(44)).count() == 1
    assert (await AtDoc.objects.aggregate(s=Sum(chain(44))))["s"] == 45.0
    monitored.log.clear()
    for steps in (46, 60, 3000):
        with pytest.raises(QueryError, match=r"score__lt: the F\(\) expression nests deeper"):
            AtDoc.objects.filter(score__lt=chain(steps))
        with pytest.raises(QueryError, match=r"Sum\(\): the F\(\) expression nests deeper"):
            Sum(chain(steps))
    assert monitored.log.names() == []


# -- a reference at a list position ---------------------------------------------------------


class AtOrder(Document):
    watchers: list[Reference[AtDoc]] = []

    class Meta:
        collection = "attack_orders"


async def test_a_reference_at_a_list_position_is_refused_not_empty(
    monitored: MonitoredDatabase,
) -> None:
    ann = AtDoc(name="Ann")
    await ann.insert()
    await AtOrder(watchers=[ann]).insert()
    # The stored id at a position is a plain condition, and still works.
    assert await AtOrder.objects.filter(watchers__0__id=ann.id).count() == 1
    monitored.log.clear()
    for build in (
        lambda: AtOrder.objects.filter(watchers__0__name="Ann"),
        lambda: AtOrder.objects.exclude(watchers__0__name__startswith="A"),
        lambda: AtOrder.objects.order_by("watchers__0__name"),
        lambda: AtOrder.objects.values("watchers__0__name"),
    ):
        with pytest.raises(QueryError, match="crosses the reference at the list position") as e:
            build()
        assert e.value.field is not None and e.value.field.startswith("watchers__0__name")
    with pytest.raises(QueryError, match="goes through a list; use prefetch_related"):
        AtOrder.objects.select_related("watchers__0")
    assert monitored.log.names() == []


# -- the caches of names ---------------------------------------------------------------------


def test_caches_of_request_chosen_names_stay_bounded() -> None:
    class AtCached(Document):
        tags: list[str] = []
        meta: dict[str, Any] = {}

        class Meta:
            collection = "attack_cached"

    for n in range(2500):
        key = uuid.uuid4().hex
        AtCached.objects.filter(**{f"meta__{key}": 1}, **{f"tags__{n}": "x"})
        compile_query(AtCached.objects.order_by(f"meta__{key}").query)
        compile_update_spec(AtCached, {f"meta__{key}": 1})  # update(meta__<key>=1)
        field_reader(AtCached, f"meta__{key}")  # values("meta__<key>")
    long_key = "meta__" + "k" * 100_000
    AtCached.objects.filter(**{long_key: 1}).order_by(long_key)
    compile_update_spec(AtCached, {long_key: 1})
    field_reader(AtCached, long_key)
    caches = {name: entries for name, entries in derived(AtCached).items()
              if isinstance(entries, dict)}
    assert max(len(entries) for entries in caches.values()) <= 2048, {
        name: len(entries) for name, entries in caches.items()
    }
    held = [
        key for entries in caches.values() for key in entries
        if long_key in (key if isinstance(key, tuple) else (key,))
    ]
    assert held == []
