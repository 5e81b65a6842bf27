"""A text a request decodes to a lone surrogate (JSON ``"\\ud800"``) never reaches the encoder.

UTF-8 cannot encode a lone surrogate, so the driver fails on the whole command with an error
naming neither the key nor the value. Every place a request's text lands in a filter or an
update (a str field's value, a free-form dict's key or value, a str id) refuses it first
with a ``QueryError`` naming the field (:mod:`odm.utf8`).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odm import Document, QueryError
from odm.query.compiler import compile_query
from odm.query.updates import compile_update_spec


class Sur(Document):
    name: str = ""
    meta: dict[str, Any] = {}
    tags: list[str] = []

    class Meta:
        collection = "lone_surrogates"


class SurById(Document):
    id: str = ""

    class Meta:
        collection = "lone_surrogates_by_id"


LONE = "\ud800"


@pytest.mark.parametrize(
    ("model", "kwargs", "field"),
    [
        (Sur, {"name": LONE}, "name"),
        (Sur, {"name": "ok" + LONE}, "name"),
        (Sur, {"name__gt": LONE}, "name"),
        (Sur, {"name__in": ["a", "\udc00"]}, "name"),
        (Sur, {"tags": LONE}, "tags"),
        (Sur, {"meta": {LONE: 1}}, "meta"),
        (Sur, {"meta__k": {"x": [LONE]}}, "meta__k"),
        (Sur, {"meta__k": LONE}, "meta__k"),
        (SurById, {"id": LONE}, "id"),
    ],
)
def test_a_lone_surrogate_in_a_filter_value_is_refused_naming_the_field(
    model: type[Document], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(QueryError, match="lone surrogate") as raised:
        model.objects.filter(**kwargs)
    assert raised.value.field == field


def test_a_lone_surrogate_in_an_update_value_is_refused_naming_the_field() -> None:
    for values in ({"name": LONE}, {"meta": {"k": LONE}}, {"meta__k": {LONE: 1}}):
        with pytest.raises(QueryError, match="lone surrogate") as raised:
            compile_update_spec(Sur, values)
        assert raised.value.field == next(iter(values))


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(codec=None, categories=["L", "N", "P", "Zs", "Cs"]), max_size=6))
def test_a_text_is_sent_exactly_when_utf8_can_encode_it(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        encodes = False
    else:
        encodes = True
    for kwargs in ({"name": text}, {"meta__k": text}, {"tags__contains": text}):
        try:
            query = Sur.objects.filter(**kwargs).query
        except QueryError as error:
            assert not encodes, (kwargs, error)
            assert "surrogate" in str(error)
        else:
            assert encodes, kwargs
            compile_query(query)
