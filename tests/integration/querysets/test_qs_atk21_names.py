"""Names a request chooses, given to every queryset method that takes one: each is refused
before anything is sent (a ``QueryError`` naming it) or read as the literal path it spells.

Before session 21:

- a list position read by an aggregation (``values("tags__0")``, ``values_list``,
  ``distinct()`` and ``annotate()`` group keys, ``Max("nums__0")``, ``F("nums__0")`` in a
  filter) was written ``"$tags.0"``, which reads a field ``0`` of each element: the rows held
  ``[]``, the totals ``[]`` or ``None``, an ``F()`` comparison matched by BSON type order and
  ``F("nums__0") + 1`` failed on the server, untyped;
- ``only("tags__0")`` loaded ``tags=[]`` (and ``only("items__0__city")`` every item with its
  city unset): the document showed what is not stored;
- a position with a leading zero (``tags__01``) matched nothing in a filter (MongoDB's filters
  read ``tags.01`` as a field of each element) while an update wrote position 1;
- a position of over 4,300 digits raised Python's bare ``ValueError`` from every method;
- ``annotate()`` took the name of a model field (``values("owner").annotate(owner=...)``,
  ``annotate(id=Count())``) or of ``search()``'s score: the rows, ``filter()`` and
  ``order_by()`` then read the annotation for the field, so a view's own
  ``.filter(owner=me)`` after a request-named annotation filtered the groups instead;
- ``search(score=...)`` / ``geo_near(distance=...)`` took the name of a polymorphic
  subclass's field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from odm import Document, Embedded, F, Index, Point, Q, QueryError, Reference
from odm.aggregates import Count, Max, Min, Sum
from odm.contrib.pytest import MonitoredDatabase
from odm.query.paths import resolve
from odm.query.where import split_lookup
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")

EXAMPLES = server_property(max_examples=30, database=None)


class Atk21Item(Embedded):
    city: str = ""
    tags: list[str] = []


class Atk21Owner(Document):
    name: str = ""
    tags: list[str] = []

    class Meta:
        collection = "atk21_owners"


class Atk21Doc(Document):
    name: str
    n: int = 0
    tags: list[str] = []
    nums: list[int] = []
    items: list[Atk21Item] = []
    pair: tuple[int, str] = (0, "")
    meta: dict[str, Any] = {}
    owner: Reference[Atk21Owner] | None = None

    class Meta:
        collection = "atk21_docs"
        ordering = ["name"]
        indexes = [Index(text=["name"])]


class Atk21Pet(Document):
    name: str = ""
    home: Point | None = None

    class Meta:
        collection = "atk21_pets"
        polymorphic = True
        indexes = [Index(text=["name"]), Index(("home", "2dsphere"))]


class Atk21Cat(Atk21Pet):
    rank: int = 0


# -- the stored rows and what each position of them holds ----------------------------------

OWNER_TAGS = {"a": ["oa0", "oa1"], "b": ["ob0"], "c": []}
ROWS: list[dict[str, Any]] = [
    {"name": "a", "n": 4, "tags": ["t0", "t1", "t2"], "nums": [5, 1, 9],
     "items": [{"city": "c0", "tags": ["x0", "x1"]}, {"city": "c1", "tags": ["y0"]}],
     "pair": (7, "x"), "meta": {"l": [10, 20], "d": {"0": "zero", "1": "one"}}},
    {"name": "b", "n": 1, "tags": ["s0"], "nums": [3],
     "items": [{"city": "b0", "tags": []}], "pair": (1, "y"), "meta": {"l": {"0": "key"}}},
    {"name": "c", "n": 0, "tags": [], "nums": [], "items": [], "pair": (0, ""), "meta": {}},
]


class Seeded:
    """The seeded database and its command log, shown short in hypothesis's reports."""

    def __init__(self, monitored: MonitoredDatabase) -> None:
        self.database = monitored.database
        self.log = monitored.log

    def __repr__(self) -> str:
        return "<seeded>"


@pytest.fixture
async def seeded(monitored: MonitoredDatabase) -> Seeded:
    """The three rows (each with its owner), stored once per test."""
    for row in ROWS:
        owner = Atk21Owner(name=row["name"], tags=OWNER_TAGS[row["name"]])
        await owner.insert()
        await Atk21Doc(**row, owner=owner).insert()
    monitored.log.clear()
    return Seeded(monitored)


def at(values: Any, text: str) -> Any:
    """What position ``text`` (ASCII digits, leading zeros allowed) of ``values`` holds, as
    MongoDB reads it: the element, ``None`` past the end (or where no list is)."""
    if not isinstance(values, list | tuple):
        return None
    digits = text.lstrip("0") or "0"
    index = int(digits) if len(digits) <= 10 else len(values)
    return values[index] if index < len(values) else None


def free_at(value: Any, text: str) -> Any:
    """A free-form value's part ``text`` (canonical digits): a list's element, a dict's key."""
    return at(value, text) if isinstance(value, list) else (value or {}).get(text)


#: Positions as a request writes them: small, with leading zeros, past any list, and longer
#: than Python's int() takes (4,300 digits).
POSITIONS = (
    st.integers(0, 3).map(str)
    | st.tuples(st.integers(1, 3), st.integers(0, 3)).map(lambda z: "0" * z[0] + str(z[1]))
    | st.sampled_from(["2147483648", "9" * 25, "9" * 5000, "0" * 5000 + "1"])
)
CANONICAL = st.integers(0, 3).map(str)


# -- list positions are read as the element they name ---------------------------------------


@EXAMPLES
@given(position=POSITIONS)
async def test_values_read_the_element_at_a_position(
    seeded: Seeded, position: str
) -> None:
    names = [f"tags__{position}", f"items__{position}__city", f"owner__tags__{position}"]
    rows = await Atk21Doc.objects.values("name", *names)
    assert rows == [
        {
            "name": row["name"],
            names[0]: at(row["tags"], position),
            names[1]: (at(row["items"], position) or {}).get("city"),
            names[2]: at(OWNER_TAGS[row["name"]], position),
        }
        for row in ROWS
    ]
    flat = await Atk21Doc.objects.values_list(f"nums__{position}", flat=True)
    assert flat == [at(row["nums"], position) for row in ROWS]


@EXAMPLES
@given(position=CANONICAL)
async def test_values_read_a_free_form_position_or_key(
    seeded: Seeded, position: str
) -> None:
    rows = await Atk21Doc.objects.values_list(
        f"meta__l__{position}", f"meta__d__{position}", f"pair__{min(int(position), 1)}"
    )
    assert rows == [
        (
            free_at(row["meta"].get("l"), position),
            free_at(row["meta"].get("d"), position),
            row["pair"][min(int(position), 1)],
        )
        for row in ROWS
    ]


@EXAMPLES
@given(position=POSITIONS)
async def test_groups_and_totals_over_a_position(
    seeded: Seeded, position: str
) -> None:
    key = f"tags__{position}"
    groups = await Atk21Doc.objects.values(key).annotate(count=Count())
    expected = Counter(at(row["tags"], position) for row in ROWS)
    assert Counter({g[key]: g["count"] for g in groups}) == expected
    distinct = await Atk21Doc.objects.values_list(key, flat=True).distinct()
    assert sorted(distinct, key=str) == sorted(expected, key=str)
    held = [v for row in ROWS if (v := at(row["nums"], position)) is not None]
    totals = await Atk21Doc.objects.aggregate(
        top=Max(f"nums__{position}"), low=Min(f"nums__{position}"), s=Sum(f"nums__{position}"),
        n=Count(f"nums__{position}"),
    )
    assert totals == {
        "top": max(held, default=None), "low": min(held, default=None),
        "s": sum(held) if held else None, "n": len(held),
    }


@EXAMPLES
@given(position=POSITIONS, shift=st.integers(-2, 2))
async def test_f_comparisons_on_a_position(
    seeded: Seeded, position: str, shift: int
) -> None:
    def names(keep: Callable[[int, int], bool]) -> list[str]:
        return [
            row["name"] for row in ROWS
            if (v := at(row["nums"], position)) is not None and keep(row["n"], v)
        ]

    element = F(f"nums__{position}")
    qs = Atk21Doc.objects
    assert [d.name for d in await qs.filter(n__lt=element)] == names(lambda n, v: n < v)
    assert [d.name for d in await qs.filter(**{f"nums__{position}__gt": F("n") + shift})] == (
        names(lambda n, v: v > n + shift)
    )
    assert [d.name for d in await qs.filter(n__gte=element + shift)] == (
        names(lambda n, v: n >= v + shift)
    )


@EXAMPLES
@given(position=POSITIONS, row=st.sampled_from(ROWS))
async def test_a_leading_zero_names_the_same_position_everywhere(
    seeded: Seeded, position: str, row: dict[str, Any]
) -> None:
    value = at(row["tags"], position)
    found = await Atk21Doc.objects.filter(**{f"tags__{position}": value}).values_list(
        "name", flat=True
    )
    assert found == [r["name"] for r in ROWS if at(r["tags"], position) == value]
    ordered = await Atk21Doc.objects.order_by(f"-nums__{position}", "name").values_list(
        "name", flat=True
    )
    canonical = await Atk21Doc.objects.order_by(
        f"-nums__{position.lstrip('0') or '0'}", "name"
    ).values_list("name", flat=True)
    assert ordered == canonical


NULL_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": lambda held, value: held is None,
    "isnull": lambda held, value: held is None,
    "not_isnull": lambda held, value: held is not None,
    "ne": lambda held, value: held is not None,
    "in": lambda held, value: held is None or held == value,
    "nin": lambda held, value: held is not None and held != value,
}


def null_filter(key: str, test: str, value: Any) -> dict[str, Any]:
    """The filter of ``test`` (a name of :data:`NULL_TESTS`) on ``key`` with None."""
    return {
        "exact": {key: None},
        "isnull": {f"{key}__isnull": True},
        "not_isnull": {f"{key}__isnull": False},
        "ne": {f"{key}__ne": None},
        "in": {f"{key}__in": [None, value]},
        "nin": {f"{key}__nin": [None, value]},
    }[test]


@EXAMPLES
@given(position=POSITIONS, test=st.sampled_from(sorted(NULL_TESTS)),
       value=st.sampled_from(["t1", "s0", "c0", "b0", "zz"]))
async def test_null_at_a_position_is_the_element_s(
    seeded: Seeded, position: str, test: str, value: str
) -> None:
    """``tags__0=None`` matches an empty list (``values()`` reads None there), and
    ``items__0__city=None`` only a first item without a city: MongoDB's filters also read
    the position as a field of each element, missing so null."""
    keep = NULL_TESTS[test]
    for key, held in (
        (f"tags__{position}", lambda row: at(row["tags"], position)),
        (f"items__{position}__city", lambda row: (at(row["items"], position) or {}).get("city")),
    ):
        found = await Atk21Doc.objects.filter(**null_filter(key, test, value)).values_list(
            "name", flat=True
        )
        assert found == [row["name"] for row in ROWS if keep(held(row), value)], key
        kept = await Atk21Doc.objects.exclude(**null_filter(key, test, value)).values_list(
            "name", flat=True
        )
        assert sorted([*found, *kept]) == ["a", "b", "c"], key


async def test_an_update_at_a_leading_zero_position_is_the_one_a_filter_reads(
    seeded: Seeded,
) -> None:
    assert await Atk21Doc.objects.filter(name="a").update(tags__01="new") == 1
    assert await Atk21Doc.objects.filter(tags__01="new").values_list("name", flat=True) == ["a"]
    stored = await seeded.database["atk21_docs"].find_one({"name": "a"})
    assert stored["tags"] == ["t0", "new", "t2"]


# -- what no projection or aggregation can read is refused, nothing sent ----------------------


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: Atk21Doc.objects.only("tags__0"), "tags__0"),
        (lambda: Atk21Doc.objects.only("name", "items__1__city"), "items__1__city"),
        (lambda: Atk21Doc.objects.defer("tags__00"), "tags__00"),
        (lambda: Atk21Doc.objects.values("items__tags__0"), "items__tags__0"),
        (lambda: Atk21Doc.objects.values_list("name", "items__tags__1"), "items__tags__1"),
        (lambda: Atk21Doc.objects.aggregate(m=Max("items__tags__0")), "items__tags__0"),
        (lambda: Atk21Doc.objects.values("name").annotate(m=Max("items__tags__0")),
         "items__tags__0"),
    ],
    ids=["only", "only_embedded", "defer", "values_in_each", "values_list_in_each",
         "aggregate_in_each", "annotate_in_each"],
)
async def test_unreadable_positions_are_refused(seeded: Seeded, build: Any, name: str) -> None:
    with pytest.raises(QueryError) as refused:
        await build()
    assert refused.value.field == name
    assert seeded.log.names() == []
    # What may be written instead runs: the whole list, or a filter on the path.
    assert [len(d.tags) for d in await Atk21Doc.objects.only("tags")] == [3, 1, 0]
    assert await Atk21Doc.objects.filter(items__tags__0="y0").values_list(
        "name", flat=True
    ) == ["a"]


# -- annotation names ----------------------------------------------------------------------

FIELDS = list(Atk21Doc.model_fields)


@EXAMPLES
@given(alias=st.sampled_from(FIELDS) | st.text(min_size=1, max_size=8) | st.sampled_from(
    ["_id", "pk", "__proto__", "$where", "a.b", "x\x00", "\ud800", "n__gt", "score", "count",
     "\uff4e", "n\u0430me", "owner_id"]))
async def test_an_annotation_never_stands_for_a_field(
    seeded: Seeded, alias: str
) -> None:
    """An alias a request names is refused, naming it, when it is a field's (the rows, filter()
    and order_by() would read the annotation for it) or not a plain name; any other alias
    reads as the annotation only."""
    seeded.log.clear()
    try:
        qs = Atk21Doc.objects.values("name").annotate(**{alias: Max("n")})
    except QueryError as refused:
        assert refused.field == alias
        assert not_an_alias(alias), f"annotate({alias!r}=...) refused: {refused}"
        assert seeded.log.names() == []
        return
    assert not not_an_alias(alias), f"annotate({alias!r}=...) hides the field {alias!r}"
    assert await qs.filter(name="a") == [{"name": "a", alias: 4}]


def not_an_alias(alias: str) -> bool:
    """Whether ``alias`` cannot name an annotation: a field's name, or not a plain name."""
    try:
        alias.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return (
        alias in FIELDS or alias == "_id" or "__" in alias or alias.startswith("$")
        or "." in alias or "\x00" in alias
    )


async def test_a_view_filter_after_a_request_named_annotation_keeps_its_meaning(
    seeded: Seeded,
) -> None:
    """``qs.values(...).annotate(**{request_alias: ...}).filter(owner=me)``: the view's own
    filter stays on the field, however the request names its annotation."""
    for alias in ("owner", "name", "id", "n"):
        with pytest.raises(QueryError, match=f"annotation '{alias}' conflicts with a field"):
            Atk21Doc.objects.values("tags__0").annotate(**{alias: Max("name")})
    assert seeded.log.names() == []


def test_computed_names_and_annotations_do_not_shadow_each_other() -> None:
    searched = Atk21Doc.objects.search("a")  # its score: the annotation "score"
    with pytest.raises(QueryError, match="conflicts with the computed value") as refused:
        searched.values("name").annotate(score=Count())
    assert refused.value.field == "score"
    with pytest.raises(QueryError, match="'rank' is not allowed"):
        Atk21Pet.objects.search("a", score="rank")  # a field of the subclass Atk21Cat
    with pytest.raises(QueryError, match="'rank' is not allowed"):
        Atk21Pet.objects.geo_near("home", Point(0, 0), distance="rank")
    with pytest.raises(QueryError, match="'rank' conflicts with a field"):
        Atk21Pet.objects.values("name").annotate(rank=Count())
    assert Atk21Pet.objects.search("a", score="relevance").values("name", "relevance").query


# -- every name-taking method: refused before sending, or run as a literal path --------------

PARTS = st.sampled_from([
    "name", "n", "tags", "nums", "items", "pair", "meta", "owner", "id", "city", "0", "01",
    "9" * 5000, "", "$where", "$gt", "a.b", "\x00", "\ud800", "_id", "pk", "__proto__",
    "gt", "in", "exact", "elemmatch", "\uff4e", "n\u0430me", "k" * 300,  # look-alikes
]) | st.text(max_size=3)
NAMES = st.lists(PARTS, min_size=1, max_size=4).map("__".join)

METHODS: dict[str, Callable[[str], Any]] = {
    "filter": lambda name: Atk21Doc.objects.filter(**{name: "x"}).count(),
    "exclude": lambda name: Atk21Doc.objects.exclude(**{name: 1}).count(),
    "q_or": lambda name: Atk21Doc.objects.filter(Q(**{name: "x"}) | Q(n=1)).count(),
    "get": lambda name: Atk21Doc.objects.filter(n=-1).get(**{name: "x"}),
    "order_by": lambda name: Atk21Doc.objects.order_by(name, "-" + name).to_list(),
    "values": lambda name: Atk21Doc.objects.values(name).to_list(),
    "values_list": lambda name: Atk21Doc.objects.values_list(name, flat=True).distinct().to_list(),
    "only": lambda name: Atk21Doc.objects.only(name).to_list(),
    "defer": lambda name: Atk21Doc.objects.defer(name).to_list(),
    "select_related": lambda name: Atk21Doc.objects.select_related(name).to_list(),
    "prefetch_related": lambda name: Atk21Doc.objects.prefetch_related(name).to_list(),
    "annotate_alias": lambda name: Atk21Doc.objects.values("name").annotate(**{name: Count()})
    .to_list(),
    "annotate_field": lambda name: Atk21Doc.objects.values("name").annotate(m=Max(name))
    .to_list(),
    "aggregate_alias": lambda name: Atk21Doc.objects.aggregate(**{name: Count()}),
    "aggregate_field": lambda name: Atk21Doc.objects.aggregate(m=Min(name)),
    "f": lambda name: Atk21Doc.objects.filter(n__lte=F(name) * 2).count(),
    "elemmatch": lambda name: Atk21Doc.objects.filter(items__elemmatch={name: "c0"}).count(),
}


@settings(EXAMPLES, max_examples=40)
@given(method=st.sampled_from(sorted(METHODS)), name=NAMES)
@example(method="filter", name="tags__" + "9" * 5000)
@example(method="order_by", name="nums__0" + "1" * 5000)
@example(method="annotate_alias", name="owner")
@example(method="only", name="pair__name")  # a tuple of plain values: no sub-field
@example(method="filter", name="pair__name")
async def test_every_name_is_refused_unsent_or_read_as_a_path(
    seeded: Seeded, method: str, name: str
) -> None:
    log = seeded.log
    log.clear()
    try:
        await METHODS[method](name)
    except QueryError as refused:
        assert str(refused)
        assert log.names() == [], f"{method}({name!r}) was refused after sending"
        return
    except Atk21Doc.DoesNotExist:
        pass
    assert log.names(), f"{method}({name!r}) sent nothing"
    if method == "annotate_alias":
        assert not not_an_alias(name), name
    elif method in LOOKUP_METHODS:
        split_lookup(Atk21Doc, name)  # a path of the model and a lookup: no QueryError
    elif method not in ("aggregate_alias", "elemmatch"):
        resolve(Atk21Doc, name)  # the very path the name spells


LOOKUP_METHODS = ("filter", "exclude", "q_or", "get")
