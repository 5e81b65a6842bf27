"""What an addition to a set sends, before it reaches the server."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pydantic import Field

from odm import Document, F, QueryError
from odm.query.compiler import compile_update, compile_update_spec


class Sr23Numbers(Document):
    nums: set[float] = set()

    class Meta:
        collection = "sr23_numbers"


def test_of_two_zeros_sent_at_once_the_first_given_is_added_as_a_set_keeps_it() -> None:
    # Both were sent, ordered by encoding (0.0 first): the server kept 0.0 where a Python
    # set of the same values, and so the document's dump, holds -0.0.
    for given in ((-0.0, 0.0), (0.0, -0.0)):
        compiled = compile_update_spec(Sr23Numbers, {"nums": F("nums").add_to_set(*given)})
        (added,) = compiled.update["$addToSet"]["nums"]["$each"]
        (kept,) = set(given)
        assert math.copysign(1, added) == math.copysign(1, kept)


class Sr23Days(Document):
    days: set[dt.datetime] = set()

    class Meta:
        collection = "sr23_days"


@pytest.mark.parametrize("hours", [-5, 5])
def test_a_datetime_bson_cannot_store_is_refused_naming_the_set(hours: int) -> None:
    # Its UTC instant is past year 9999 (or before year 1): the encoder refused the pipeline
    # with a pydantic error naming no field. The value's check refuses it now, as any value
    # given for the field (the same check as a filter's: tests/integration/querysets/
    # test_qs_datetime_range.py).
    zone = dt.timezone(dt.timedelta(hours=hours))
    edge = dt.datetime.max if hours < 0 else dt.datetime.min
    refusal = r"value for 'days': .* is outside the datetimes BSON stores"
    with pytest.raises(QueryError, match=refusal) as refused:
        compile_update_spec(Sr23Days, {"days": F("days").push(edge.replace(tzinfo=zone))})
    assert refused.value.field == "days"


class Sr23Aliased(Document):
    tags: set[str] = Field(default_factory=set, alias="tg")
    n: int = 0

    class Meta:
        collection = "sr23_aliased"


def test_an_aliased_set_is_named_as_the_caller_wrote_it() -> None:
    compiled = compile_update_spec(Sr23Aliased, {"tags": F("tags").add_to_set("a")})
    with pytest.raises(QueryError, match=r"the set 'tags' keeps") as refused:
        compiled.document({"collation": {"locale": "en"}})
    assert refused.value.field == "tags"
    with pytest.raises(QueryError, match=r"'n' cannot be written .* the set 'tags'"):
        compile_update_spec(Sr23Aliased, {"tags": F("tags").push("a"), "n": F("n") + 1})


def test_compile_update_refuses_an_addition_to_a_set_it_would_append() -> None:
    # Its update document ($addToSet) appended to the set, out of its stored order.
    with pytest.raises(QueryError, match="compile_update_spec") as refused:
        compile_update(Sr23Aliased, {"tags": F("tags").add_to_set("a")})
    assert refused.value.field == "tags"
    assert compile_update(Sr23Aliased, {"tags": {"b", "a"}}) == {"$set": {"tg": ["a", "b"]}}
