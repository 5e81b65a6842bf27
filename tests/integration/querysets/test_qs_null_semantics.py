"""Empty ``Q`` objects, ``F()`` comparisons with nulls, ``Sum`` of nulls, list positions.

As in Django: an empty ``Q`` (``Q()``, ``~Q()``, ``Q(**{})``) is neutral in any combination
(an empty request body must never widen ``Q(owner=me) | ~Q(**body)`` to every document); a
comparison with ``F()`` where either side is null or missing is unknown, so never matched (and
``exclude()`` keeps those rows); ``Sum`` of nulls only is ``None``, not 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document, F, Q, QueryError
from odm.aggregates import Count, Sum


class NsRow(Document):
    name: str = ""
    grp: str = ""
    a: int | None = None
    b: int | None = None
    tags: list[str] = []

    class Meta:
        collection = "qs_null_rows"


#: name -> the stored document (a missing key is missing, None is a stored null).
ROWS: dict[str, dict[str, Any]] = {
    "both": {"grp": "x", "a": 5, "b": 3},
    "a_only": {"grp": "x", "a": 5},
    "b_only": {"grp": "n", "b": 3},
    "a_null": {"grp": "n", "a": None, "b": 3},
    "neither": {"grp": "n"},
    "both_null": {"grp": "n", "a": None, "b": None},
}
ALL = sorted(ROWS)


@pytest.fixture
async def rows(odm_database: Any) -> None:
    """The six documents, written raw so that missing and null fields stay as they are."""
    await odm_database[NsRow._meta.collection].insert_many(
        [{"name": name, **doc} for name, doc in ROWS.items()]
    )


async def names(qs: Any) -> list[str]:
    return sorted(await qs.values_list("name", flat=True))


def mql(qs: Any) -> dict[str, Any]:
    return dict(qs.explain_query()["find"]["filter"])


# -- empty Q -------------------------------------------------------------------------------


def test_empty_q_compiles_to_nothing_in_any_combination() -> None:
    """An empty node is left out; never ``{}`` (match everything) inside ``$or``."""
    a1 = {"a": 1}
    assert ~Q() == Q()
    assert not ~Q() and not ~~Q() and not ~Q(**{})
    for q in (
        Q(a=1) | ~Q(),
        ~Q() | Q(a=1),
        Q(a=1) | ~Q(**{}),
        Q() | Q(a=1),
        Q(a=1) | Q(),
        Q() & Q(a=1),
        Q(a=1) & ~Q(),
        Q(a=1) | ~~Q(),
        Q(a=1) | Q(Q()),
        Q(a=1) | Q(Q(), ~Q()),
        Q(a=1) | ~Q(Q()),
        Q(a=1) | ~Q(Q(Q())),
        Q(Q(a=1), Q()),
        Q(Q(a=1) | Q(Q())),
    ):
        assert mql(NsRow.objects.filter(q)) == a1, q
    assert mql(NsRow.objects.filter(Q(a=1) | (Q(b=2) & ~Q()))) == {"$or": [a1, {"b": 2}]}
    assert mql(NsRow.objects.exclude(Q(a=1) | ~Q())) == {"$nor": [a1]}
    for q in (Q(), ~Q(), ~~Q(), Q(Q()), ~Q(Q()), Q(Q(), ~Q(Q())) | Q()):
        assert mql(NsRow.objects.filter(q)) == {}, q
        assert mql(NsRow.objects.exclude(q)) == {}, q


async def test_empty_q_is_neutral(rows: None) -> None:
    body: dict[str, Any] = {}
    assert await names(NsRow.objects.filter(Q(b=3) | ~Q(**body))) == ["a_null", "b_only", "both"]
    assert await names(NsRow.objects.filter(~Q(**body) | Q(a=5))) == ["a_only", "both"]
    assert await names(NsRow.objects.filter(Q(a=5) | Q(Q(), ~Q(Q())))) == ["a_only", "both"]
    assert await names(NsRow.objects.filter(Q(a=5) & ~Q())) == ["a_only", "both"]
    assert await names(NsRow.objects.filter(~Q())) == ALL
    assert await names(NsRow.objects.filter(~Q(Q()))) == ALL
    assert await names(NsRow.objects.exclude(Q())) == ALL
    assert await names(NsRow.objects.exclude(~Q())) == ALL
    assert await names(NsRow.objects.exclude(Q(a=5) | ~Q())) == [
        "a_null", "b_only", "both_null", "neither"
    ]


# -- F() comparisons with nulls ------------------------------------------------------------


async def test_f_comparison_with_a_null_side_never_matches(rows: None) -> None:
    """SQL's three-valued logic: ``a > b`` with a null or missing side is unknown."""
    f = NsRow.objects.filter
    assert await names(f(a__gt=F("b"))) == ["both"]
    assert await names(f(a__gte=F("b"))) == ["both"]
    assert await names(f(a__lt=F("b"))) == []
    assert await names(f(a__lte=F("b"))) == []
    assert await names(f(a=F("b"))) == []
    assert await names(f(a__exact=F("a"))) == ["a_only", "both"]
    assert await names(f(a__gt=F("b") + 1)) == ["both"]
    assert await names(f(a__lt=F("b") * 2)) == ["both"]
    assert await names(f(b__gt=F("a") - F("b") + 3)) == []
    assert await names(f(b__lt=F("a") + F("b"))) == ["both"]
    assert await names(f(Q(a__gt=F("b")) | Q(name="neither"))) == ["both", "neither"]
    # exclude() is the complement of filter(): the rows with a null side are kept.
    others = [n for n in ALL if n != "both"]
    assert await names(NsRow.objects.exclude(a__gt=F("b"))) == others
    assert await names(NsRow.objects.exclude(a__lt=F("b"))) == ALL
    assert await names(NsRow.objects.exclude(a=F("b"))) == ALL
    assert await names(NsRow.objects.exclude(a__lt=F("b") * 2)) == others
    assert await names(f(~Q(a__gt=F("b")))) == others
    # The plain comparison agrees: a null never compares.
    assert await names(f(a__lt=6)) == ["a_only", "both"]
    assert await NsRow.objects.filter(a__gte=F("b")).count() == 1


# -- Sum of nulls --------------------------------------------------------------------------


async def test_sum_of_nulls_only_is_none(rows: None) -> None:
    nulls = NsRow.objects.filter(grp="n")
    assert await nulls.aggregate(s=Sum("a"), t=Sum(F("a") * 2), n=Count("a")) == {
        "s": None, "t": None, "n": 0
    }
    assert await nulls.aggregate(s=Sum("b")) == {"s": 6}
    assert await NsRow.objects.filter(name="nobody").aggregate(s=Sum("a")) == {"s": None}
    total = await NsRow.objects.aggregate(s=Sum("a"), z=Sum(F("a") - 5))
    assert total == {"s": 10, "z": 0}
    assert type(total["s"]) is int and type(total["z"]) is int  # a sum of 0 is 0, not None
    groups = NsRow.objects.values("grp").annotate(s=Sum("a")).order_by("grp")
    assert await groups == [{"grp": "n", "s": None}, {"grp": "x", "s": 10}]
    assert await groups.filter(s__isnull=True).values_list("grp", flat=True) == ["n"]


# -- list positions ------------------------------------------------------------------------


def test_only_ascii_digits_are_list_positions() -> None:
    assert mql(NsRow.objects.filter(tags__0="r")) == {"tags.0": "r"}
    for part in ("\u0661", "\u00b2", "\uff10"):  # Arabic-Indic 1, superscript 2, fullwidth 0
        with pytest.raises(QueryError, match="sub-field"):
            NsRow.objects.filter(**{f"tags__{part}": "r"})
