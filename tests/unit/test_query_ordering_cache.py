"""``order_by()`` on a model's own fields checks an ordering once per model: the names that
passed (each field exists, at most one list among them) are taken as they are the next time.

What is refused must be refused every time, a subclass's field (resolved through the family,
never cached by ``paths.resolve`` either) is checked every time, and declaring a model forgets
every ordering checked so far, as it forgets the rest of the derived state.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odm import Reference
from odm.document import Document, Embedded
from odm.exceptions import QueryError
from odm.models.derived import table
from odm.query import compiler
from odm.query import query as query_module


class OrderOwner(Document):
    name: str = ""

    class Meta:
        collection = "ordering_cache_owners"


class OrderLine(Embedded):
    sku: str = ""


class Ordered(Document):
    name: str = ""
    rank: int = 0
    tags: list[str] = []
    lines: list[OrderLine] = []
    owner: Reference[OrderOwner] | None = None

    class Meta:
        collection = "ordering_cache_ordered"
        polymorphic = True


class OrderedChild(Ordered):
    extra: int = 0


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The field names ``set_ordering`` resolves (each resolution is a full check)."""
    seen: list[str] = []
    real = query_module.resolve

    def counting(model: type[Any], name: str, **kwargs: Any) -> Any:
        seen.append(name)
        return real(model, name, **kwargs)

    monkeypatch.setattr(query_module, "resolve", counting)
    return seen


def test_an_ordering_is_checked_once_then_taken_as_it_is(resolutions: list[str]) -> None:
    first = Ordered.objects.order_by("-rank", "name").query.ordering
    checked = len(resolutions)
    assert checked >= 2
    again = Ordered.objects.order_by("-rank", "name").query.ordering
    assert again == first == ("-rank", "name")
    assert len(resolutions) == checked  # taken from the cache
    Ordered.objects.order_by("name", "-rank")  # another ordering: checked
    assert len(resolutions) > checked


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [
        (("nope",), "nope"),
        (("rank", "nope"), "nope"),
        (("tags", "lines__sku"), "parallel arrays"),
        (("?",), "random"),
        (("",), "field names"),
        ((["rank"],), "field names"),  # unhashable: no cache lookup may hide the error
    ],
)
def test_a_refused_ordering_is_refused_every_time(fields: tuple[Any, ...], culprit: str) -> None:
    for _ in range(3):
        with pytest.raises(QueryError, match=culprit):
            Ordered.objects.order_by(*fields)


def test_a_subclass_field_is_checked_every_time(resolutions: list[str]) -> None:
    Ordered.objects.order_by("extra")
    once = resolutions.count("extra")
    assert once
    Ordered.objects.order_by("extra")
    assert resolutions.count("extra") == 2 * once


def test_declaring_a_model_forgets_the_checked_orderings(resolutions: list[str]) -> None:
    Ordered.objects.order_by("rank")
    Ordered.objects.order_by("rank")
    before = resolutions.count("rank")

    class OrderedLater(Ordered):  # any declaration expires every model's derived state
        later: int = 0

    Ordered.objects.order_by("rank")
    assert resolutions.count("rank") > before


NAMES = st.sampled_from(
    [
        "name", "-name", "+rank", "rank", "tags", "lines", "lines__sku", "extra", "nope", "?",
        "", "owner", "owner__name", "-owner__name", "id", "-id",
    ]
)


def _outcome(fields: tuple[str, ...]) -> Any:
    """The ordering kept, and what it compiles to (find arguments or a pipeline)."""
    try:
        query = Ordered.objects.order_by(*fields)[:5].query
        return query.ordering, compiler.explain_query(query)
    except QueryError as exc:
        return ("refused", str(exc))


def _forget() -> None:
    table(Ordered, query_module._ORDERINGS_CHECKED).clear()
    table(Ordered, compiler._SORTS).clear()


def test_each_find_gets_a_sort_list_of_its_own() -> None:
    first = compiler.compile_query(Ordered.objects.order_by("-rank").query)
    second = compiler.compile_query(Ordered.objects.order_by("-rank").query)
    assert first.sort == second.sort == [("rank", -1)]
    assert first.sort is not second.sort


def test_a_join_crossing_ordering_compiles_to_a_pipeline_every_time() -> None:
    for _ in range(2):
        compiled = compiler.compile_query(Ordered.objects.order_by("owner__name").query)
        assert isinstance(compiled, compiler.CompiledPipeline)


@given(orderings=st.lists(st.lists(NAMES, max_size=3).map(tuple), min_size=1, max_size=6))
def test_the_cache_never_answers_otherwise_than_the_checks(
    orderings: list[tuple[str, ...]],
) -> None:
    """Each ordering, asked in any order and again, gives what the checks and the compiler
    give with empty caches (the same ordering and the same find or pipeline, or the same
    error)."""
    fresh = {}
    for fields in orderings:
        _forget()
        fresh[fields] = _outcome(fields)
    for fields in orderings + orderings[::-1]:
        assert _outcome(fields) == fresh[fields]
