"""Collation (issue #21, item 9): ``qs.collation("en", strength=2)`` compares strings without
case in filters, ordering, counts, values, updates and deletes; ``Index(collation=...)``
declares an index that such queries use; bad collations are refused naming the culprit."""

from __future__ import annotations

from typing import Any

import pytest

import odm
from odm import Document, Index, QueryError
from odm.collation import COMMON_VARIANTS, LOCALES, VARIANTS
from odm.contrib.pytest import MonitoredDatabase
from odm.models.indexes import index_differences


class ColPerson(Document):
    name: str
    city: str = ""

    class Meta:
        collection = "col_people"
        indexes = [Index("name", collation={"locale": "en", "strength": 2}, name="name_ci")]


NAMES = ["bob", "Alice", "anna", "Émile", "Bob", "emile"]


async def _seed() -> None:
    await odm.ensure_indexes(models=[ColPerson])
    for name in NAMES:
        await ColPerson(name=name).insert()


async def test_case_insensitive_matching_and_ordering(monitored: MonitoredDatabase) -> None:
    await _seed()
    people = ColPerson.objects.all()
    assert await people.filter(name="bob").count() == 1  # binary comparison by default
    ci = people.collation("en", strength=2)
    assert await ci.filter(name="bob").count() == 2
    assert sorted(await ci.filter(name="BOB").values_list("name", flat=True)) == ["Bob", "bob"]
    assert await ci.filter(name__in=["ALICE", "ANNA"]).count() == 2
    ordered = await ci.order_by("name").values_list("name", flat=True)
    assert [n.lower() for n in ordered] == ["alice", "anna", "bob", "bob", "emile", "émile"]
    assert await people.order_by("name").values_list("name", flat=True) == sorted(NAMES)
    # strength=1 ignores accents too.
    assert await people.collation("en", strength=1).filter(name="EMILE").count() == 2
    assert await people.collation("en", strength=2).filter(name="EMILE").count() == 1
    # The collation reaches the server with each command, and the index is used.
    monitored.log.clear()
    await ci.filter(name="bob")
    assert monitored.log.named("find")[-1]["collation"] == {"locale": "en", "strength": 2}
    plan = await ci.filter(name="bob").explain()
    assert "name_ci" in str(plan)
    assert "name_ci" not in str(await people.filter(name="bob").explain())
    assert await ci.filter(name="bob").collation(None).count() == 1


async def test_collation_in_writes_and_pipelines(odm_database: Any) -> None:
    await _seed()
    ci = ColPerson.objects.collation("en", strength=2)
    assert await ci.filter(name="BOB").update(city="Oslo") == 2
    assert await ColPerson.objects.filter(city="Oslo").count() == 2
    rows = await ci.filter(name__in=["ANNA", "alice"]).order_by("-name").values("name")
    assert rows == [{"name": "anna"}, {"name": "Alice"}]
    assert await ci.filter(name="EMILE").delete() == 1
    assert await ColPerson.objects.count() == 5
    assert (await ci.get(name="ALICE")).name == "Alice"


def test_bad_collations_are_refused() -> None:
    with pytest.raises(QueryError, match="strength must be an int from 1 to 5"):
        ColPerson.objects.collation("en", strength=9)
    with pytest.raises(QueryError, match="caseFirst must be one of"):
        ColPerson.objects.collation("en", case_first="sideways")
    with pytest.raises(QueryError, match="needs a locale"):
        ColPerson.objects.collation("$where")
    with pytest.raises(ValueError, match="unknown collation field 'Strength'"):
        Index("name", collation={"locale": "en", "Strength": 2})
    with pytest.raises(ValueError, match="needs a locale"):
        Index("name", collation={"strength": 2})


def test_index_comparison_sees_the_collation() -> None:
    declared = Index("name", collation={"locale": "en", "strength": 2}, name="n").spec()
    server = {
        "name": "n",
        "key": {"name": 1},
        "collation": {
            "locale": "en", "caseLevel": False, "caseFirst": "off", "strength": 2,
            "numericOrdering": False, "alternate": "non-ignorable", "maxVariable": "punct",
            "normalization": False, "backwards": False, "version": "57.1",
        },
    }
    assert index_differences(declared, server) == []
    assert index_differences({**declared, "collation": {"locale": "fr"}}, server)
    assert index_differences({k: v for k, v in declared.items() if k != "collation"}, server)
    assert index_differences(declared, {"name": "n", "key": {"name": 1}})


@pytest.mark.parametrize(
    ("locale", "message"),
    [
        ("xx_bogus", r"unknown collation locale 'xx_bogus'"),
        ("en_GB", r"unknown collation locale 'en_GB'.*did you mean 'en'\?"),
        ("EN", r"did you mean 'en'\?"),
        ("en-US", r"did you mean 'en_US'\?"),
        ("en@collation=phonebook", r"locale 'en' has no collation variant 'phonebook'"),
        ("zh@collation=pinyin", r"locale 'zh' has no collation variant 'pinyin'"),
    ],
)
async def test_an_unknown_locale_is_refused_before_sending(
    monitored: MonitoredDatabase, locale: str, message: str
) -> None:
    """collation("xx_bogus") reached the server: a bare OperationFailure, a 500 over HTTP."""
    await _seed()
    monitored.log.clear()
    with pytest.raises(QueryError, match=message):
        await ColPerson.objects.collation(locale).count()
    with pytest.raises(ValueError, match=message):
        Index("name", collation={"locale": locale})
    assert monitored.log.names() == []


async def test_every_locale_odm_takes_the_server_takes(odm_database: Any) -> None:
    """The locale list is MongoDB's: none of its locales or variants is refused by the server
    the tests run on (a bogus one would be its OperationFailure here)."""
    await _seed()
    for locale in sorted(LOCALES):
        variants = sorted(COMMON_VARIANTS | VARIANTS.get(locale, frozenset()))
        for name in [locale, *(f"{locale}@collation={v}" for v in variants)]:
            assert await ColPerson.objects.collation(name).filter(name="bob").count() >= 1
    assert await ColPerson.objects.collation("simple").filter(name="bob").count() == 1
