"""The per-call short cuts of the query path give exactly what the general path gives.

- ``filter(key=value)`` renders ``{db_path: value}`` without a lookup object when the value is
  of exactly the type ``Exact`` validates to itself on that path (``exact_literal_type``):
  Hypothesis compares it with the ``Exact`` lookup on plain, list, embedded, through-list and
  reference paths, including values that must still take pydantic's path or be refused.
- ``select_related`` compiles from a join plan cached per (model, paths): the pipeline is the
  general compiler's, values still go through the lookups on every call, bad paths raise
  every time.
- ``executor.find_list`` / ``aggregate_list`` without a timeout map driver errors (``_run``)
  and pass the bound session on every call.
- ``filter()`` on a manager's queryset never shares a Query with it; ``Model.objects`` is one
  queryset per class, which no method changes.
- ``update()`` keeps each key's checked target per model: the same update document every
  time, and a refused key refused every time.
- ``_single`` tells the usual id types without the Mapping ABC, and answers as it does.
- ``drivers.resolve`` remembers the types that are not awaitable (never a generator's).
- ``transaction()`` remembers per client object whether its server runs transactions, and
  never answers for a later client that took the same ``id()``.
"""

from __future__ import annotations

import enum
import gc
import types
import weakref
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo.errors import DuplicateKeyError, ExecutionTimeout, OperationFailure
from test_query_models import QCustomer, QOrder, QShipment

import odm
from odm import F, Q, executor, server_transactions
from odm.drivers import _NOT_AWAITABLE, resolve
from odm.exceptions import DuplicateKey, OperationTimeout, QueryError
from odm.filtered_writes import _single
from odm.models.derived import expire_all, table
from odm.query import Query, compiler, paths
from odm.query.compiler import CompiledPipeline, compile_query
from odm.query.lookups import Exact
from odm.query.updates import _UPDATE_TARGETS, compile_update_spec
from odm.query.where import compile_kwargs, key_plan


class Tone(enum.StrEnum):
    """A str subclass: never the literal type, so it takes the lookup."""

    LOW = "low"


class FastTarget(odm.Document):
    """The target of the references below (an ObjectId id)."""

    label: str = ""

    class Meta:
        collection = "percall_targets"


class FastPart(odm.Embedded):
    """An embedded document with an id of its own."""

    unique_id: odm.ObjectId
    name: str = ""


class FastDoc(odm.Document):
    """One path of each shape the short cut covers (or must not)."""

    name: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    tags: list[str] = []
    ids: list[odm.ObjectId] = []
    part: FastPart | None = None
    parts: list[FastPart] = []
    target: odm.Reference[FastTarget] | None = None
    targets: list[odm.Reference[FastTarget]] = []
    anything: Any = None
    extra: dict[str, Any] = {}

    class Meta:
        collection = "percall_docs"


KEYS = [
    "name",
    "count",
    "ratio",
    "flag",
    "tags",
    "ids",
    "part__unique_id",
    "part__name",
    "parts__unique_id",
    "target",
    "targets",
    "anything",
    "extra__x",
    "id",
    "name__exact",
    "count__gte",
]

VALUES = (
    st.text(max_size=4)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.builds(bson.ObjectId)
    | st.just(Tone.LOW)
    | st.just("5eb7cf5a86d9755df3a6c593")
    | st.lists(st.text(max_size=2), max_size=2)
    | st.just({"$gt": 1})
)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except QueryError:
        return "refused", None


def general(key: str, value: Any) -> list[dict[str, Any]]:
    """What filter(key=value) renders through the lookup object."""
    target, lookup_cls = key_plan(FastDoc, key)[:2]
    lookup = lookup_cls(target, value)
    mql = lookup.as_mql()
    return [mql] if mql else []


@given(key=st.sampled_from(KEYS), value=VALUES)
def test_keyword_short_cut_matches_the_lookup(key: str, value: Any) -> None:
    fast = outcome(lambda: [w.mql for w in compile_kwargs(FastDoc, {key: value})])
    slow = outcome(lambda: general(key, value))
    assert fast[0] == slow[0], (key, value, fast, slow)
    if fast[0] == "ok":
        assert repr(fast[1]) == repr(slow[1]), (key, value)  # same value AND same type


def test_literal_types() -> None:
    literal = {key: key_plan(FastDoc, key)[2] for key in KEYS}
    assert literal == {
        "name": str,
        "count": int,
        "ratio": float,
        "flag": bool,
        "tags": str,
        "ids": bson.ObjectId,
        "part__unique_id": bson.ObjectId,
        "part__name": str,
        "parts__unique_id": bson.ObjectId,
        "target": bson.ObjectId,
        "targets": bson.ObjectId,
        "anything": None,
        "extra__x": None,
        "id": bson.ObjectId,
        "name__exact": str,
        "count__gte": int,  # the comparisons have one too (LITERAL_COMPARISONS)
    }
    assert key_plan(FastDoc, "target")[1] is Exact


def test_short_cut_still_checks_the_literal() -> None:
    with pytest.raises(QueryError, match="64-bit"):
        compile_kwargs(FastDoc, {"count": 2**63})
    with pytest.raises(QueryError):
        compile_kwargs(FastDoc, {"target": "not an id"})
    with pytest.raises(QueryError):
        compile_kwargs(FastDoc, {"nope": 1})
    with pytest.raises(QueryError):  # raised again: errors are never cached
        compile_kwargs(FastDoc, {"nope": 1})


# -- select_related --------------------------------------------------------------------------


def both_paths(query: Query) -> tuple[Any, Any]:
    """The short cut's compilation of ``query`` and the general path's."""
    return compile_query(query), compiler._general_pipeline(query)


def related_queries() -> list[Query]:
    plain = Query(QOrder)
    plain.add_related("customer")
    filtered = Query(QOrder)
    filtered.add_filter(status="paid", total__gte=3)
    filtered.add_related("customer")
    filtered.set_ordering("-total", "status", "-total")
    filtered.apply_slice(slice(5, 25))
    only = Query(QOrder)
    only.add_related("customer")
    only.add_only("total")
    deferred = Query(QOrder)
    deferred.add_related("customer")
    deferred.add_defer("items")
    two_hops = Query(QShipment)
    two_hops.add_related("order__customer", "order")
    two_hops.add_filter(carrier="x")
    return [plain, filtered, only, deferred, two_hops]


def test_select_related_short_cut_matches_the_general_path() -> None:
    for query in related_queries():
        fast, slow = both_paths(query)
        assert isinstance(fast, CompiledPipeline)
        assert fast.pipeline == slow.pipeline
        assert fast.related == slow.related
        assert fast.rows == slow.rows == "documents"


def test_join_across_a_reference_in_the_filter_takes_the_general_path() -> None:
    query = Query(QOrder)
    query.add_filter(customer__age__gte=18)
    query.add_related("customer")
    assert {"$match": {"__odm_rel_customer.age": {"$gte": 18}}} in query_pipeline(query)


def query_pipeline(query: Query) -> list[dict[str, Any]]:
    compiled = compile_query(query)
    assert isinstance(compiled, CompiledPipeline)
    return compiled.pipeline


def test_cached_join_plan_takes_new_values_every_call() -> None:
    first, second = bson.ObjectId(), bson.ObjectId()
    a = QOrder.objects.filter(customer=first).select_related("customer")
    b = QOrder.objects.filter(customer=second).select_related("customer")
    assert query_pipeline(a._query)[0] == {"$match": {"customer": first}}
    assert query_pipeline(b._query)[0] == {"$match": {"customer": second}}
    assert query_pipeline(a._query)[1:] == query_pipeline(b._query)[1:]
    with pytest.raises(QueryError):
        QOrder.objects.filter(customer="not an id").select_related("customer")
    for _ in range(2):  # a bad path raises every time (never cached)
        with pytest.raises(QueryError):
            QOrder.objects.select_related("total")
        with pytest.raises(QueryError, match="prefetch_related"):
            QOrder.objects.select_related("watchers")


def test_select_related_keeps_its_paths() -> None:
    assert QOrder.objects.select_related("customer", "customer").query.related == (
        "customer",
        "customer",
    )
    chained = QOrder.objects.select_related("customer").select_related("customer")
    assert chained.query.related == ("customer",)
    assert QOrder.objects.select_related("customer").select_related().query.related == ()


@pytest.mark.parametrize(
    "method", ["only", "defer", "values", "values_list", "select_related", "prefetch_related"]
)
@pytest.mark.parametrize(
    "name", [["name"], {"$where": "1"}, 5, ["a"] * 10_000], ids=["list", "dict", "int", "long"]
)
def test_a_name_that_is_not_a_string_is_refused_naming_the_method(
    method: str, name: Any
) -> None:
    """A list or a dict as a field name (from a request body) reached the per-model caches
    (dicts) before the check for a string: a bare TypeError "unhashable type", a 500."""
    good = "target" if method.endswith("related") else "name"
    call = getattr(FastDoc.objects, method)
    for _ in range(2):  # after the good name is cached too
        with pytest.raises(QueryError, match=rf"^{method}\(\) takes field names, not ") as info:
            call(good, name)
        assert len(str(info.value)) < 200, "the repr of a long list is shortened"
        call(good)
    with pytest.raises(QueryError, match="a field path must be a string, not list"):
        paths.resolve(FastDoc, ["name"])  # type: ignore[arg-type]


# -- querysets -------------------------------------------------------------------------------


def test_filter_never_shares_the_managers_query() -> None:
    base = QCustomer.objects
    one = base.filter(name="Ann")
    two = base.filter(age=3)
    assert base.query.where == ()
    assert [w.mql for w in one.query.where] == [{"name": "Ann"}]
    assert [w.mql for w in two.query.where] == [{"age": 3}]
    assert len({id(base.query), id(one.query), id(two.query)}) == 3
    three = one.filter(age=4)
    assert [w.mql for w in one.query.where] == [{"name": "Ann"}]
    assert [w.mql for w in three.query.where] == [{"name": "Ann"}, {"age": 4}]
    assert type(QCustomer.objects) is odm.QuerySet


def test_the_managers_queryset_is_one_per_class_and_no_method_changes_it() -> None:
    root = QCustomer.objects
    assert QCustomer.objects is root
    assert QOrder.objects is not root and QOrder.objects.model is QOrder
    before = root.query.clone()
    root.filter(name="Ann").exclude(age=3).order_by("-age").only("name")[2:5]
    root.none()
    root.all()
    for name in Query.__slots__:
        assert getattr(root.query, name) == getattr(before, name), name
    assert not root.query.nothing
    # Forgetting the derived state (a redeclaration) gives a new one, as fresh.
    expire_all()
    assert QCustomer.objects is not root
    assert QCustomer.objects.query.where == ()


@pytest.mark.parametrize(
    "values",
    [
        {"age": F("age") + 1, "name": "Bo"},
        {"score": F("score") * 2},
        {"address__city": "Oslo", "tags": F("tags").push("x")},
        {"addresses": F("addresses").each(Q(city="Oslo"), zip="0150")},
    ],
)
def test_update_targets_are_kept_per_model_and_give_the_same_update(values: Any) -> None:
    table(QCustomer, _UPDATE_TARGETS).clear()
    first = compile_update_spec(QCustomer, values)
    assert set(table(QCustomer, _UPDATE_TARGETS)) == set(values)
    again = compile_update_spec(QCustomer, values)
    assert (again.update, again.array_filters, again.matched_lists) == (
        first.update, first.array_filters, first.matched_lists
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("id", "cannot be updated"),
        ("customer__name", "through a reference"),
        ("addresses__city", "inside a list"),
        ("nope", "no field"),
    ],
)
def test_a_refused_update_key_is_refused_every_time(key: str, message: str) -> None:
    model = QOrder if key.startswith("customer") else QCustomer
    for _ in range(2):
        with pytest.raises(QueryError, match=message):
            compile_update_spec(model, {key: 1})
    assert key not in table(model, _UPDATE_TARGETS)


@pytest.mark.parametrize(
    ("value", "single"),
    [
        (bson.ObjectId(), True),
        ("a", True),
        (7, True),
        (True, True),
        (b"raw", True),
        ({"$in": [1, 2]}, False),
        (bson.SON([("$in", [1])]), False),
        ([1, 2], False),
    ],
)
def test_single_tells_one_id_apart_from_many(value: Any, single: bool) -> None:
    assert _single({"_id": value}) is single
    assert _single({"_id": value, "n": 1}) is single
    assert _single({"n": value}) is False


# -- drivers and transactions ----------------------------------------------------------------


class Awaitable:
    def __await__(self) -> Any:
        return iter(())


async def test_resolve_remembers_plain_types_and_still_awaits_the_rest() -> None:
    _NOT_AWAITABLE.discard(Awaitable)
    assert await resolve(5) == 5
    assert int in _NOT_AWAITABLE
    assert await resolve(Awaitable()) is None
    assert Awaitable not in _NOT_AWAITABLE

    async def answer() -> int:
        return 42

    assert await resolve(answer()) == 42

    @types.coroutine
    def legacy() -> Any:
        yield from ()
        return 7

    def plain_generator() -> Any:
        yield 1

    assert await resolve(legacy()) == 7
    generator = plain_generator()
    assert await resolve(generator) is generator
    assert types.GeneratorType not in _NOT_AWAITABLE
    assert await resolve(legacy()) == 7  # a generator's type is never taken for plain


class Client:
    """Stands for a driver client: weakly referable, hashable by identity."""


def test_transactions_support_is_remembered_per_client_object() -> None:
    first = Client()
    assert server_transactions.known_support(first) is None
    server_transactions.remember_support(first, False)
    assert server_transactions.known_support(first) is False
    second = Client()
    assert server_transactions.known_support(second) is None
    server_transactions.remember_support(second, True)
    assert server_transactions.known_support(second) is True
    # A later client that takes the first one's id() is not answered for by its entry.
    key = id(first)
    stale = server_transactions._supports_transactions[key]
    del first
    # The young generation only: a client holds no cycle, so `del` frees it; a full
    # collection walks the whole heap of a long one-process run (seconds).
    gc.collect(0)
    assert key not in server_transactions._supports_transactions
    impostor = Client()
    server_transactions._supports_transactions[id(impostor)] = stale
    assert server_transactions.known_support(impostor) is None
    del server_transactions._supports_transactions[id(impostor)]
    # Remembered twice (two blocks asked at once): the client's death removes its entry once.
    third = Client()
    key = id(third)
    server_transactions.remember_support(third, True)
    server_transactions.remember_support(third, True)
    del third
    gc.collect(0)
    assert key not in server_transactions._supports_transactions
    # A dead client's callback leaves alone an entry that is no longer its own.
    fourth, keeper = Client(), Client()
    key = id(fourth)
    server_transactions.remember_support(fourth, True)
    server_transactions._supports_transactions[key] = (weakref.ref(keeper), False)
    del fourth
    gc.collect(0)
    assert server_transactions._supports_transactions.pop(key)[0]() is keeper


# -- executor --------------------------------------------------------------------------------


class FakeCursor:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return [{"_id": 1}]


class FakeCollection:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.sessions: list[Any] = []

    def find(self, *args: Any, session: Any = None, **kwargs: Any) -> FakeCursor:
        self.sessions.append(session)
        return FakeCursor(self.error)

    async def aggregate(self, pipeline: Any, session: Any = None, **kwargs: Any) -> FakeCursor:
        self.sessions.append(session)
        return FakeCursor(self.error)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OperationFailure("bad regex", code=51091), QueryError),
        (ExecutionTimeout("too slow", code=50), OperationTimeout),
        (DuplicateKeyError("dup", code=11000), DuplicateKey),
        (OperationFailure("other", code=2), OperationFailure),
        (ValueError("not the driver's"), ValueError),
    ],
)
async def test_reads_without_timeout_map_errors(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, expected: type[BaseException]
) -> None:
    fake = FakeCollection(error)
    monkeypatch.setattr(executor, "collection", lambda model: fake)
    with pytest.raises(expected):
        await executor.find_list(QCustomer, {})
    with pytest.raises(expected):
        await executor.aggregate_list(QCustomer, [])


async def test_reads_bind_the_session_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCollection()
    bound = object()
    monkeypatch.setattr(executor, "collection", lambda model: fake)
    monkeypatch.setattr(executor, "operation_session", lambda model: bound)
    assert await executor.find_list(QCustomer, {}) == [{"_id": 1}]
    assert await executor.aggregate_list(QCustomer, []) == [{"_id": 1}]
    assert await executor.find_list(QCustomer, {}, timeout=5) == [{"_id": 1}]
    assert fake.sessions == [bound, bound, bound]
