"""Properties of what request data makes of a queryset beyond its filter values: names given
to ``order_by`` / ``values`` / ``only`` / ``defer`` / ``select_related``, slices, nested
``__elemmatch`` bodies and ``F()`` chains folded from a request's list.

Each generated input either raises a typed error (``odm.QueryError``) when the queryset is
built or compiled, or compiles to what the server takes: a command BSON can encode, a sort on
at most 32 fields, a projection naming no path inside another, skips and limits within
int64, a filter no deeper than MongoDB's 100 levels (a dotted key counts a level per part).
The compiled command is inspected without sending it (``compile_query`` /
``compile_count``); the last property runs the same inputs against the server, the client's
command log showing that a refused input sent nothing and that the server refused none of
the others.

Before session 19 each property failed (on the shapes that
tests/integration/querysets/test_qs_attack_shapes.py pins one by one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odm import Document, Embedded, F, QueryError, Reference
from odm.contrib.pytest import MonitoredDatabase
from odm.query.compiler import CompiledFind, compile_count, compile_query
from tests.properties import server_property

INT64_MAX = 2**63 - 1
EXAMPLES = server_property(max_examples=30, database=None)


class HaAddress(Embedded):
    city: str = ""
    zip: str | None = None


class HaOwner(Document):
    name: str = ""

    class Meta:
        collection = "hostile_attack_owners"


class HaDoc(Document):
    name: str = ""
    score: float = 0.0
    tags: list[str] = []
    address: HaAddress | None = None
    meta: dict[str, Any] = {}
    owner: Reference[HaOwner] | None = None

    class Meta:
        collection = "hostile_attack_docs"


# -- what request data holds -----------------------------------------------------------------

#: Names as a request sends them: the model's paths, free-form keys and list positions (each
#: a path of the model whatever it is), prefixes, and what must never become structure.
NAMES = st.one_of(
    st.sampled_from([
        "name", "-name", "+score", "tags", "tags__0", "address", "address__city", "meta",
        "meta__a", "meta__a__b", "owner", "owner__name", "id", "-id", "--name", "-", "",
        "$where", "meta__$gt", "meta__a.b", "meta__\x00", "meta__\ud800", "meta__k\udfff",
        "address____city", "?", "owner__$ne", "__raw__",
    ]),
    st.integers(0, 40).map(lambda n: f"meta__k{n}"),
    st.integers(0, 2**70).map(lambda n: f"tags__{n}"),
    st.text(max_size=6),
)
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats()
    | st.text(max_size=4)
)
NOT_NAMES = JSON_SCALARS | st.lists(JSON_SCALARS, max_size=2) | st.dictionaries(
    st.text(max_size=3), JSON_SCALARS, max_size=2
)
BOUNDS = st.none() | st.integers(0, 2**66) | st.sampled_from([INT64_MAX, 2**63, 10**30]) | (
    JSON_SCALARS
)


def runs(elements: st.SearchStrategy[Any], longest: int) -> st.SearchStrategy[list[Any]]:
    """Lists of ``elements`` of any length up to ``longest``, each length as likely (lists
    drawn by hypothesis are mostly short; a request's are as long as it likes)."""
    return st.integers(0, longest).flatmap(
        lambda n: st.lists(elements, min_size=n, max_size=n)
    )


#: The keys of a nested elemmatch body: runs of plain names (any depth), or a few of anything.
KEYS = runs(st.sampled_from(["x", "n", "x__n"]), 300) | st.lists(
    st.sampled_from(["x", "$gt", "$where", "a.b", "", "\ud800", "x\x00"]) | st.text(max_size=3),
    max_size=4,
)
#: Names a request gives to order_by() and the like: runs of paths of the model (free-form
#: keys and positions included), or a few of anything.
NAME_LISTS = runs(
    st.sampled_from(["address", "address__city", "meta__a", "meta__a__b", "meta__\ud800"])
    | st.integers(0, 10**6).map(lambda n: f"meta__k{n}"),
    40,
) | st.lists(NAMES, max_size=4)


# -- what the server takes ---------------------------------------------------------------------


def depth(value: Any) -> int:
    """How many levels ``value`` nests: a document or list is one, a dotted key one more per
    dot (``{"a.b": 1}`` is ``{"a": {"b": 1}}`` stored), a scalar none."""
    if isinstance(value, dict):
        return 1 + max(
            (k.count(".") * (not k.startswith("$")) + depth(v) for k, v in value.items()),
            default=0,
        )
    if isinstance(value, list | tuple):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def check_projection(projection: dict[str, Any] | None) -> None:
    """No path of a projection inside another (MongoDB's "Path collision")."""
    paths = list(projection or {})
    for path in paths:
        assert not any(path.startswith(other + ".") for other in paths), projection


def check_stage(stage: dict[str, Any]) -> None:
    (name, body), = stage.items()
    if name == "$sort":
        assert len(body) <= 32, body
    elif name in ("$skip", "$limit"):
        assert type(body) is int and 0 <= body <= INT64_MAX, stage
    elif name == "$project":
        check_projection({k: v for k, v in body.items() if v in (0, 1)})
    elif name == "$match":
        assert depth(body) <= 100, body


def check_compiled(qs: Any) -> None:
    """The queryset's find (or pipeline) and count: what the server takes."""
    query = qs.query
    compiled = compile_query(query)
    if isinstance(compiled, CompiledFind):
        assert len(compiled.sort or ()) <= 32, compiled.sort
        check_projection(compiled.projection)
        assert 0 <= compiled.skip <= INT64_MAX and 0 <= compiled.limit <= INT64_MAX
        assert depth(compiled.filter) <= 100
        bson.encode(compiled.kwargs())
    else:
        for stage in compiled.pipeline:
            check_stage(stage)
        bson.encode({"pipeline": compiled.pipeline})
    count = compile_count(query)
    if count.pipeline is not None:
        for stage in count.pipeline:
            check_stage(stage)
        bson.encode({"pipeline": count.pipeline})
    else:
        assert 0 <= count.skip <= INT64_MAX and 0 <= count.limit <= INT64_MAX
        bson.encode(count.kwargs())


# -- the inputs, as one call each --------------------------------------------------------------

METHODS: dict[str, Callable[[Any, list[Any]], Any]] = {
    "order_by": lambda qs, names: qs.order_by(*names),
    "values_order_by": lambda qs, names: qs.values("name").order_by(*names),
    "values": lambda qs, names: qs.values(*names),
    "values_list": lambda qs, names: qs.values_list(*names),
    "only": lambda qs, names: qs.only(*names),
    "defer": lambda qs, names: qs.defer(*names),
    "defer_twice": lambda qs, names: qs.defer(*names[:1]).defer(*names[1:]),
    "select_related": lambda qs, names: qs.select_related(*names),
}


def nested_elemmatch(keys: list[str], leaf: Any) -> dict[str, Any]:
    """A JSON body nesting one ``<key>__elemmatch`` per key around ``leaf``."""
    value: dict[str, Any] = {"n": leaf}
    for key in keys:
        value = {f"{key}__elemmatch": value}
    return value


def f_chain(terms: list[tuple[str, int]], steps: int) -> Any:
    """``F("score") <op> n <op> n ...``, ``steps`` long: an expression folded from a
    request's terms (``terms`` repeated)."""
    expression: Any = F("score")
    for op, number in (terms * steps)[:steps]:
        expression = expression + number if op == "+" else expression * number
    return expression


# -- the properties ----------------------------------------------------------------------------


@EXAMPLES
@given(method=st.sampled_from(sorted(METHODS)),
       names=NAME_LISTS | st.lists(NOT_NAMES, min_size=1, max_size=2))
def test_names_compile_to_what_the_server_takes(method: str, names: list[Any]) -> None:
    try:
        qs = METHODS[method](HaDoc.objects.all(), names)
        # A values() ordering is checked against the rows' names when compiled.
        compile_query(qs.query)
    except QueryError:
        return
    check_compiled(qs)


@EXAMPLES
@given(bounds=st.lists(st.tuples(BOUNDS, BOUNDS), min_size=1, max_size=2),
       values=st.booleans())
def test_slices_compile_to_what_the_server_takes(
    bounds: list[tuple[Any, Any]], values: bool
) -> None:
    qs = HaDoc.objects.values("name") if values else HaDoc.objects.order_by("name")
    try:
        for start, stop in bounds:
            qs = qs[start:stop]
    except QueryError:
        return
    check_compiled(qs)


@EXAMPLES
@given(keys=KEYS, leaf=JSON_SCALARS | st.lists(JSON_SCALARS),
       path=st.sampled_from(["meta__list", "meta__a__b__list", "tags"]))
def test_nested_elemmatch_compiles_within_mongodb_depth(
    keys: list[str], leaf: Any, path: str
) -> None:
    try:
        qs = HaDoc.objects.filter(**{f"{path}__elemmatch": nested_elemmatch(keys, leaf)})
    except QueryError as exc:
        assert exc.field is not None
        return
    check_compiled(qs)


@EXAMPLES
@given(terms=st.lists(st.tuples(st.sampled_from("+*"), st.integers(-9, 9)), min_size=1,
                     max_size=5),
       steps=st.integers(0, 3000), lookup=st.sampled_from(["gt", "lte", "exact", "ne"]))
def test_f_chains_compile_within_mongodb_depth(
    terms: list[tuple[str, int]], steps: int, lookup: str
) -> None:
    try:
        qs = HaDoc.objects.filter(**{f"score__{lookup}": f_chain(terms, steps)})
    except QueryError as exc:
        assert exc.field == "score"
        return
    check_compiled(qs)


# -- the same inputs, sent ---------------------------------------------------------------------


@pytest.mark.odm_drivers("pymongo")
@settings(EXAMPLES, max_examples=12)
@given(method=st.sampled_from(sorted(METHODS)), names=NAME_LISTS,
       bounds=st.tuples(BOUNDS, BOUNDS), keys=KEYS)
async def test_refused_inputs_send_nothing_and_the_rest_runs(
    odm_monitored: MonitoredDatabase, method: str, names: list[Any],
    bounds: tuple[Any, Any], keys: list[str]
) -> None:
    log = odm_monitored.log
    builds: list[Callable[[], Any]] = [
        lambda: METHODS[method](HaDoc.objects.all(), names),
        lambda: HaDoc.objects.order_by("name")[bounds[0]:bounds[1]],
        lambda: HaDoc.objects.filter(meta__list__elemmatch=nested_elemmatch(keys, 1)),
    ]
    for build in builds:
        log.clear()
        try:
            # Refused when built, or when compiled (a values() ordering is checked against
            # the rows' names then): before anything is sent either way.
            qs = build()
            await qs.to_list()
        except QueryError:
            assert log.names() == []
            continue
        # The server's refusal would be an untyped OperationFailure: none came, nor may one.
        await qs.count()
        assert log.names() or qs.query.is_empty, "an accepted queryset is sent"
