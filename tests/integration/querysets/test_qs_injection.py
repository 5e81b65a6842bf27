"""Injection at the server: hostile values on every lookup and every queryset path either raise
odm.QueryError or reach MongoDB as plain literals.

Every command the client sends is recorded (a PyMongo CommandListener) and walked: field-path
keys are only the model's own paths, every ``$`` key is an operator this package writes, in an
operator position, and every operand holding user data is a literal (no ``$``/dotted/NUL keys at
any depth, no regex or code objects). ``$where``, ``$function``, ``$accumulator`` never appear.
The text lookups are also checked for meaning: hostile text matches literally, as Python's
``str`` methods say it should.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymongo.errors import OperationFailure
from qs_support import QsCustomer, QsOrder, seed_people

from odm import QueryError
from odm.aggregates import Count, Max, Sum
from odm.contrib.pytest import MonitoredDatabase
from odm.query.lookups import LOOKUPS
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")

EXAMPLES = 150
LONG_EXAMPLES = 2000

FILTER_OPERATORS = {
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$all", "$size", "$exists",
    "$regex", "$options", "$elemMatch", "$not", "$type",
}
LOGICAL = {"$and", "$or", "$nor"}
UPDATE_OPERATORS = {"$set", "$inc", "$mul", "$push", "$pull", "$pullAll", "$addToSet"}
STAGES = {"$match", "$lookup", "$unwind", "$unset", "$project", "$group", "$sort", "$skip",
          "$limit", "$count"}
FORBIDDEN = {"$where", "$function", "$accumulator", "$expr"}
#: The type tests odm's checks before an ``update_many`` make (odm.query.updates.Need): fixed
#: BSON type names, never a value from the input.
ODM_TYPE_TESTS = (
    {"$type": "number"}, {"$type": "array"}, {"$type": "object"}, {"$type": ["object", "array"]},
)

CUSTOMER_PATHS = {
    "_id", "email", "name", "age", "score", "tags", "scores", "address", "address.city",
    "address.street", "address.zip", "items", "items.sku", "items.price", "items.qty", "meta",
    "meta.source", "nick", "created",
}
ITEM_PATHS = {"sku", "price", "qty"}
ORDER_PATHS = {"_id", "customer", "total", "paid", "status", "watchers"} | {
    "__odm_rel_customer." + p for p in CUSTOMER_PATHS
}
ALL_PATHS = CUSTOMER_PATHS | ORDER_PATHS

FIELDS = ["name", "age", "score", "tags", "scores", "address", "address__city", "items",
          "items__sku", "items__price", "meta", "meta__source", "nick", "id", "created"]

HOSTILE_KEYS = st.sampled_from(
    ["$gt", "$ne", "$where", "$function", "$accumulator", "$regex", "$expr", "a.b", "$", ".",
     "\x00", "a\x00b", "sku", "city", "price", "$elemMatch", "__proto__", "$$ROOT"]
) | st.text(max_size=6)
HOSTILE_TEXT = st.sampled_from(
    ["$where", "$gt", "$ne", ".*", "^a$", "a|b", "(?i)x", "\\", "\x00", "a.b", "$$ROOT", "[",
     "{1}", "sleep(100)", "this.age > 0", "'; return true; //", "$age", "address.city", "A",
     "a" * 500]
) | st.text(max_size=10)
SCALARS = (
    HOSTILE_TEXT | st.integers(-(2**62), 2**62) | st.floats(allow_nan=False) | st.none()
    | st.booleans()
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(HOSTILE_KEYS, inner, max_size=3)
    | st.tuples(inner, inner),
    max_leaves=8,
)
CLASSIC = st.sampled_from([
    {"$ne": None}, {"$gt": ""}, {"$where": "sleep(100)"}, {"$regex": ".*"}, {"$exists": True},
    {"$function": {"body": "x", "args": [], "lang": "js"}}, ["$ne", None], {"a.b": 1},
    {"$in": [1, 2]}, [{"$gt": 0}], {"sku": {"$ne": None}}, {"price__gt": {"$gt": 0}},
])
HOSTILE = CLASSIC | SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(
    HOSTILE_KEYS, SCALARS, max_size=3) | NESTED


# -- walking what was sent -------------------------------------------------------------------


def assert_literal(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                assert isinstance(key, str), key
                assert not key.startswith("$") and "." not in key and "\x00" not in key, key
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            assert not isinstance(item, re.Pattern | bson.Regex | bson.Code), item


def check_condition(value: Any) -> None:
    if isinstance(value, dict) and value and all(k.startswith("$") for k in value):
        for op, operand in value.items():
            assert op in FILTER_OPERATORS, op
            if op == "$elemMatch":
                if operand and all(k.startswith("$") for k in operand):
                    check_condition(operand)
                else:
                    check_filter(operand, None)
            elif op == "$regex":
                assert isinstance(operand, str)
            elif op == "$options":
                assert operand == "i"
            elif op in ("$size",):
                assert isinstance(operand, int) and not isinstance(operand, bool)
            elif op == "$exists":
                assert isinstance(operand, bool)
            elif op == "$not":  # odm's check before an update_many: {"$not": {"$type": ...}}
                assert operand in ODM_TYPE_TESTS, operand
            elif op == "$type":  # ... and its test for a list where a value belongs
                assert operand == "array", operand
            else:
                assert_literal(operand)
    else:
        # A bare operand is a scalar: documents and lists are wrapped in $eq by the ODM.
        assert not isinstance(value, dict | list), value
        assert_literal(value)


def check_filter(filter: dict[str, Any], paths: set[str] | None) -> None:
    """``paths`` None: inside $elemMatch, where keys are element field names (for free-form
    elements, names from the caller, which must be plain names: no $, dot or NUL)."""
    for key, value in filter.items():
        if key in LOGICAL:
            assert isinstance(value, list)
            for part in value:
                check_filter(part, paths)
        elif paths is None:
            assert not key.startswith("$") and "." not in key and "\x00" not in key, key
            check_condition(value)
        else:
            assert key in paths, f"field path {key!r} was not written by the ODM"
            check_condition(value)


def check_global(command: Any) -> None:
    stack = [command]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                assert key not in FORBIDDEN, key
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)


def check_pipeline(pipeline: list[dict[str, Any]], reference: list[dict[str, Any]]) -> None:
    for stage in pipeline:
        (name, body), = stage.items()
        assert name in STAGES, name
        if name == "$match":
            check_filter(body, ALL_PATHS)
    # Apart from $match, the stages depend on names only: the same as with a benign value.
    assert [s for s in pipeline if "$match" not in s] == [
        s for s in reference if "$match" not in s
    ]


def check_sent(
    commands: list[tuple[str, dict[str, Any]]],
    reference: list[tuple[str, dict[str, Any]]] | None,
) -> None:
    for index, (name, command) in enumerate(commands):
        check_global(command)
        if name == "find":
            check_filter(command.get("filter", {}), ALL_PATHS)
        elif name == "aggregate":
            other = reference[index][1]["pipeline"] if reference else command["pipeline"]
            check_pipeline(command["pipeline"], other)
        elif name == "update":
            for statement in command["updates"]:
                check_filter(statement["q"], ALL_PATHS)
                for op, body in statement["u"].items():
                    assert op in UPDATE_OPERATORS, op
                    for path, operand in body.items():
                        assert path in ALL_PATHS, path
                        if op in ("$push", "$addToSet") and isinstance(operand, dict) and any(
                            k.startswith("$") for k in operand
                        ):
                            assert set(operand) == {"$each"}, operand
                            operand = operand["$each"]
                        assert_literal(operand)
        elif name == "delete":
            for statement in command["deletes"]:
                check_filter(statement["q"], ALL_PATHS)
        else:
            raise AssertionError(f"unexpected command {name}")


# -- the operations ------------------------------------------------------------------------

NEVER = "__never_matches__@x.io"


def operations(key: str, value: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    kw = {key: value}
    order_kw = {f"customer__{key}": value}
    objects = QsCustomer.objects
    return {
        "list": lambda: objects.filter(**kw).to_list(),
        "exclude": lambda: objects.exclude(**kw).to_list(),
        "get": lambda: objects.filter(email=NEVER).get(**kw),
        "count": lambda: objects.filter(**kw).count(),
        "exists": lambda: objects.filter(**kw).exists(),
        "values": lambda: objects.filter(**kw).values("name", "address__city").to_list(),
        "aggregate": lambda: objects.filter(**kw).aggregate(n=Count(), top=Max("age")),
        "annotate": lambda: objects.filter(**kw).values("address__city").annotate(
            s=Sum("age")).to_list(),
        "update": lambda: objects.filter(**kw).filter(email=NEVER).update(age=1),
        "delete": lambda: objects.filter(**kw).filter(email=NEVER).delete(),
        "select_related": lambda: QsOrder.objects.select_related("customer").filter(
            **order_kw).to_list(),
        "order_count": lambda: QsOrder.objects.filter(**order_kw).count(),
        "order_delete": lambda: QsOrder.objects.filter(**order_kw).filter(total=-1).delete(),
    }


def benign(key: str) -> str:
    return key.rsplit("__", 1)[0] + "__exists" if "__" in key else key + "__exists"


_references: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}


async def reference_commands(
    monitored: MonitoredDatabase, key: str, op: str
) -> list[tuple[str, dict[str, Any]]]:
    """The commands sent for ``op`` with a benign condition on the same path."""
    path = key.rsplit("__", 1)[0] if key.rsplit("__", 1)[-1] in LOOKUPS else key
    cache_key = (path, op)
    if cache_key not in _references:
        monitored.log.clear()
        with contextlib.suppress(QsCustomer.DoesNotExist, QueryError):
            await operations(f"{path}__exists", True)[op]()
        _references[cache_key] = list(monitored.log.commands)
    return _references[cache_key]


async def attempt(monitored: MonitoredDatabase, key: str, value: Any, op: str) -> None:
    reference = await reference_commands(monitored, key, op)
    monitored.log.clear()
    try:
        await operations(key, value)[op]()
    except QueryError as error:
        refused_by_server = isinstance(error.__cause__, OperationFailure)
        if not refused_by_server:
            assert monitored.log.commands == [], "nothing is sent once a value is refused"
            return
        # regex/iregex take the developer's pattern as is: an invalid one is the server's to
        # refuse (code 51091, raised as QueryError); what was sent is still checked below.
        assert key.endswith(("__regex", "__iregex")), error
        assert error.__cause__.code == 51091, error  # type: ignore[union-attr]
    except QsCustomer.DoesNotExist:
        pass
    commands = list(monitored.log.commands)
    assert commands, (key, value, op)
    same_shape = [n for n, _ in commands] == [n for n, _ in reference]
    check_sent(commands, reference if same_shape else None)


@pytest.fixture
async def seeded(monitored: MonitoredDatabase) -> MonitoredDatabase:
    people = await seed_people()
    await QsOrder(customer=people["Ann"], total=5).insert()
    monitored.log.clear()
    return monitored


async def _lookups_run(
    seeded: MonitoredDatabase, field: str, lookup: str, value: Any, op: str
) -> None:
    await attempt(seeded, f"{field}__{lookup}", value, op)


OPS = st.sampled_from(sorted(operations("name", "x")))


@server_property(max_examples=EXAMPLES)
@given(field=st.sampled_from(FIELDS), lookup=st.sampled_from(sorted(LOOKUPS)), value=HOSTILE,
       op=OPS)
async def test_hostile_values_on_every_lookup_and_path(
    seeded: MonitoredDatabase, field: str, lookup: str, value: Any, op: str
) -> None:
    await _lookups_run(seeded, field, lookup, value, op)


@pytest.mark.slow
@server_property(max_examples=LONG_EXAMPLES)
@given(field=st.sampled_from(FIELDS), lookup=st.sampled_from(sorted(LOOKUPS)), value=HOSTILE,
       op=OPS)
async def test_hostile_values_long(
    seeded: MonitoredDatabase, field: str, lookup: str, value: Any, op: str
) -> None:
    await _lookups_run(seeded, field, lookup, value, op)


@server_property(max_examples=EXAMPLES)
@given(
    field=st.sampled_from(["name", "age", "score", "tags", "scores", "address", "address__city",
                           "items", "meta", "meta__source", "nick", "created"]),
    value=HOSTILE,
    how=st.sampled_from(["set", "push", "pull", "add_to_set", "inc"]),
)
async def test_hostile_values_in_updates(
    seeded: MonitoredDatabase, field: str, value: Any, how: str
) -> None:
    from odm import F

    update: Any
    if how == "set":
        update = value
    elif how == "inc":
        try:
            update = F(field) + value
        except QueryError:
            return
    else:
        update = getattr(F(field), how)(value)
    qs = QsCustomer.objects.filter(email="ann@x.io")
    seeded.log.clear()
    try:
        matched = await qs.update(**{field: update})
    except QueryError as error:
        cause = error.__cause__
        if isinstance(cause, OperationFailure):
            # A sub-field cannot be set in a null parent (code 28), or a free-form value is of
            # the wrong kind for the operator ($push on a string: 2, $inc: 14): the server
            # refuses it, raised as QueryError, and what was sent is still literal.
            assert (cause.code == 28 and "__" in field) or (
                cause.code in (2, 14) and field.startswith("meta")
            ), error
            check_sent(seeded.log.commands, None)
            return
        assert error.field == field or error.field is None
        if (field.startswith("meta") or "__" in field) and seeded.log.commands:
            # An update_many first looks for a document whose free-form value the operator
            # refuses ($push on a string), or whose parent of the written sub-field holds no
            # document (an earlier example set address=None): one find of odm's making, and
            # no update.
            assert seeded.log.names() == ["find"], seeded.log.names()
            check_sent(seeded.log.commands, None)
        else:
            assert seeded.log.commands == []
        return
    assert matched == 1
    check_sent(seeded.log.commands, None)
    # the stored document still validates, whatever was written
    await QsCustomer.objects.get(email="ann@x.io")


@server_property(max_examples=EXAMPLES)
@given(name=HOSTILE_KEYS | st.sampled_from(
    ["name__$ne", "meta__$where", "meta__a.b", "address__$gt", "$where", "name.x", "a____b",
     "customer__$ne", "meta__x\x00y", "items__$elemMatch"]),
    value=SCALARS, op=OPS)
async def test_hostile_field_names(
    seeded: MonitoredDatabase, name: str, value: Any, op: str
) -> None:
    await attempt(seeded, name, value, op)
    for build in (
        lambda: QsCustomer.objects.order_by(name),
        lambda: QsCustomer.objects.only(name),
        lambda: QsCustomer.objects.defer(name),
        lambda: QsCustomer.objects.values(name),
        lambda: QsCustomer.objects.values_list(name, flat=True),
        lambda: QsOrder.objects.select_related(name),
        lambda: QsOrder.objects.prefetch_related(name),
        lambda: QsCustomer.objects.values("name").annotate(**{name: Count()}),
        lambda: QsCustomer.objects.values("name").annotate(n=Sum(name)),
    ):
        try:
            qs: Any = build()
        except QueryError:
            continue
        seeded.log.clear()
        try:
            if hasattr(qs, "to_list"):
                await qs.to_list()
        except QueryError:
            assert seeded.log.commands == []
            continue
        check_sent(seeded.log.commands, None)
        for _, command in seeded.log.commands:
            if "filter" in command:
                check_filter(command["filter"], ALL_PATHS)


# -- literal meaning of text lookups ---------------------------------------------------------

TEXT = st.text(alphabet="aAbB.*+?^$()[]{}|\\/-\n\x00 é", max_size=8) | st.sampled_from(
    ["$where", "\\z", "\\A", "a\\Z", "(?i)A", ".*", "$ne"]
)
ORACLE: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda n, s: n == s,
    "iexact": lambda n, s: n.lower() == s.lower(),
    "contains": lambda n, s: s in n,
    "icontains": lambda n, s: s.lower() in n.lower(),
    "startswith": lambda n, s: n.startswith(s),
    "istartswith": lambda n, s: n.lower().startswith(s.lower()),
    "endswith": lambda n, s: n.endswith(s),
    "iendswith": lambda n, s: n.lower().endswith(s.lower()),
    "ne": lambda n, s: n != s,
    "gt": lambda n, s: n.encode() > s.encode(),
    "lte": lambda n, s: n.encode() <= s.encode(),
    "in": lambda n, s: n == s,
}


@server_property(max_examples=EXAMPLES)
@given(stored=TEXT, query=TEXT, lookup=st.sampled_from(sorted(ORACLE)))
async def test_text_lookups_match_literally(
    seeded: MonitoredDatabase, stored: str, query: str, lookup: str
) -> None:
    email = f"{uuid.uuid4().hex}@lit.io"
    await QsCustomer(email=email, name=stored).insert()
    try:
        value: Any = [query] if lookup == "in" else query
        rows = await QsCustomer.objects.filter(
            email__endswith="@lit.io", **{f"name__{lookup}": value}
        ).values_list("name", flat=True)
        assert rows == ([stored] if ORACLE[lookup](stored, query) else []), (stored, query)
        # and the same text inside a list field, element-wise
        count = await QsCustomer.objects.filter(email=email, tags__contains=query).count()
        assert count == 0
    finally:
        await QsCustomer.objects.filter(email=email).delete()


async def test_huge_and_nul_strings(seeded: MonitoredDatabase) -> None:
    huge = "(a+)+$" * 20_000
    assert await QsCustomer.objects.filter(name=huge).count() == 0
    assert await QsCustomer.objects.filter(name__in=[huge, "Ann"]).count() == 1
    for lookup in ("contains", "icontains", "startswith", "iendswith", "iexact", "regex"):
        with pytest.raises(QueryError, match="too long"):
            QsCustomer.objects.filter(**{f"name__{lookup}": huge})
    # the longest pattern the server takes is accepted, one more byte is refused up front
    assert await QsCustomer.objects.filter(name__contains="a" * 32761).count() == 0
    with pytest.raises(QueryError):
        QsCustomer.objects.filter(name__startswith="a" * 32761)
    nul = "a\x00b"
    await QsCustomer(email="nul@x.io", name=nul, tags=[nul]).insert()
    assert [c.email for c in await QsCustomer.objects.filter(name=nul)] == ["nul@x.io"]
    assert [c.email for c in await QsCustomer.objects.filter(name__contains="\x00")] == [
        "nul@x.io"
    ]
    assert [c.email for c in await QsCustomer.objects.filter(tags__contains=nul)] == [
        "nul@x.io"
    ]
    with pytest.raises(QueryError):
        QsCustomer.objects.filter(name__regex="a\x00")
