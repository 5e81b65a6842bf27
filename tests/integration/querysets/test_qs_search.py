"""Text search (issue #21, item 9): ``Model.objects.search("terms", language=None)`` runs
``$text`` on the model's text index, with the score as an annotation, composing with filter,
order_by, slicing, values, count, update and delete."""

from __future__ import annotations

from typing import Any

import pytest

import odm
from odm import Document, Index, QueryError
from odm.aggregates import Count
from odm.contrib.pytest import MonitoredDatabase
from odm.query.extras import TEXT_LANGUAGES


class SearchArticle(Document):
    title: str
    body: str = ""
    section: str = "news"
    views: int = 0

    class Meta:
        collection = "search_articles"
        indexes = [Index(text=["title", "body"])]


class SearchPlain(Document):
    title: str

    class Meta:
        collection = "search_plain"


ARTICLES = [
    ("Coffee prices rise", "coffee coffee coffee beans", "economy", 10),
    ("Tea or coffee", "a cup of tea", "food", 30),
    ("Running shoes", "the runner runs", "sport", 20),
    ("Café culture", "espresso in Paris", "food", 5),
]


async def _seed() -> None:
    await odm.ensure_indexes(models=[SearchArticle])
    for title, body, section, views in ARTICLES:
        await SearchArticle(title=title, body=body, section=section, views=views).insert()


async def test_search_orders_by_score_and_composes(monitored: MonitoredDatabase) -> None:
    await _seed()
    found = await SearchArticle.objects.search("coffee")
    assert [a.title for a in found] == ["Coffee prices rise", "Tea or coffee"]
    scores = [odm.annotations_of(a)["score"] for a in found]
    assert scores[0] > scores[1] > 0
    rows = await SearchArticle.objects.search("coffee").values("title", "score")
    assert [r["title"] for r in rows] == ["Coffee prices rise", "Tea or coffee"]
    assert rows[0]["score"] == pytest.approx(scores[0])
    # Stemming: "runs" finds "runner runs"; filter, order_by, slicing compose.
    assert await SearchArticle.objects.search("running").values_list("title", flat=True) == [
        "Running shoes"
    ]
    food = SearchArticle.objects.search("coffee tea").filter(section="food")
    assert await food.values_list("title", flat=True) == ["Tea or coffee"]
    by_views = SearchArticle.objects.search("coffee").order_by("-views")
    assert await by_views.values_list("title", flat=True) == ["Tea or coffee", "Coffee prices rise"]
    assert [a.title for a in await SearchArticle.objects.search("coffee")[1:]] == ["Tea or coffee"]
    assert await SearchArticle.objects.search("coffee").order_by("score").values_list(
        "title", flat=True
    ) == ["Tea or coffee", "Coffee prices rise"]
    assert (await SearchArticle.objects.search("coffee").first()).title == (  # type: ignore[union-attr]
        "Coffee prices rise"
    )
    assert await SearchArticle.objects.search("coffee").count() == 2
    assert await SearchArticle.objects.search("coffee").exists()
    assert not await SearchArticle.objects.search("zebra").exists()
    grouped = await SearchArticle.objects.search("coffee tea").values("section").annotate(
        n=Count()
    ).order_by("section")
    assert grouped == [{"section": "economy", "n": 1}, {"section": "food", "n": 1}]
    # The command: $text in the first $match, the score added right after it.
    monitored.log.clear()
    await SearchArticle.objects.search("coffee", language="english").filter(views__gte=1)
    pipeline = monitored.log.named("aggregate")[-1]["pipeline"]
    assert pipeline[0]["$match"] == {
        "$text": {"$search": "coffee", "$language": "english"}, "views": {"$gte": 1}
    } or pipeline[0]["$match"] == {
        "$and": [{"$text": {"$search": "coffee", "$language": "english"}}, {"views": {"$gte": 1}}]
    } or pipeline[0]["$match"] == {
        "views": {"$gte": 1}, "$text": {"$search": "coffee", "$language": "english"}
    }
    assert pipeline[1] == {"$addFields": {"score": {"$meta": "textScore"}}}


async def test_search_writes_reach_the_matches(odm_database: Any) -> None:
    await _seed()
    assert await SearchArticle.objects.search("coffee").update(section="hot") == 2
    assert await SearchArticle.objects.filter(section="hot").count() == 2
    assert await SearchArticle.objects.search("tea").delete() == 1
    assert await SearchArticle.objects.count() == 3


async def test_search_terms_are_only_a_string(odm_database: Any) -> None:
    await _seed()
    # Operators in the terms are words to the server: they find nothing and change nothing.
    assert await SearchArticle.objects.search('{"$where": "1"} $gt').count() == 0
    for hostile in ({"$search": "x"}, ["coffee"], 1, None):
        with pytest.raises(QueryError, match="takes the search terms as a string"):
            SearchArticle.objects.search(hostile)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="language"):
        SearchArticle.objects.search("coffee", language="en; drop")
    with pytest.raises(QueryError, match="already called"):
        SearchArticle.objects.search("coffee").search("tea")
    with pytest.raises(QueryError, match="annotation name 'title'"):
        SearchArticle.objects.search("coffee", score="title")


async def test_a_model_without_text_index_says_so(odm_database: Any) -> None:
    with pytest.raises(QueryError, match=r"SearchPlain has no text index: declare one"):
        SearchPlain.objects.search("coffee")


async def test_an_unknown_language_is_refused_before_sending(
    monitored: MonitoredDatabase,
) -> None:
    """search(..., language="klingon") reached the server: a bare OperationFailure."""
    await _seed()
    monitored.log.clear()
    for language in ("klingon", "pt_BR", "no", "TUR\u212aISH", "english "):
        with pytest.raises(QueryError, match=r"unknown language .*english.*'none'"):
            await SearchArticle.objects.search("coffee", language=language).count()
    assert monitored.log.names() == []
    # Every name and code odm takes, in any case, is one the server takes.
    for language in sorted(TEXT_LANGUAGES):
        for spelling in (language, language.upper()):
            assert await SearchArticle.objects.search("coffee", language=spelling).count() >= 0
