"""An aware datetime that BSON cannot store (past year 9999 or before year 1 once moved to UTC,
as the encoder moves it) is refused by ``filter()`` with a ``QueryError`` naming the field,
wherever it stands: a datetime field, a comparison, an ``__in`` list, a free-form value at any
depth. Before, the queryset took it and the send failed with a ``ValidationError`` titled for
the model, naming no field (through the aiohttp integration: a 400 with an empty field).

The oracle is the encoder itself: a filter is refused exactly when ``bson.encode`` of its value
with the collections' codec fails, and a filter accepted runs on the server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import odm
from odm.codec import CODEC_OPTIONS
from odm.contrib.pytest import MonitoredDatabase
from tests.properties import server_property


class DtEvent(odm.Document):
    when: dt.datetime | None = None
    meta: dict[str, Any] = {}

    class Meta:
        collection = "dt_range_events"


#: Offsets of up to a day either way (whole minutes, as ISO 8601 texts give them).
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
#: Mostly the edge days, where an offset can carry a datetime out of range.
EDGE_DATETIMES = st.one_of(
    st.datetimes(min_value=dt.datetime(9999, 12, 31), timezones=OFFSETS),
    st.datetimes(max_value=dt.datetime(1, 1, 1, 23, 59, 59), timezones=OFFSETS),
    st.datetimes(timezones=OFFSETS),
    st.datetimes(),
)
#: Where the value stands in the filter: the keyword, the value that carries it, and the field
#: the error names (the path, without the lookup).
PLACES = {
    "when": (lambda v: v, "when"),
    "when__gt": (lambda v: v, "when"),
    "when__lte": (lambda v: v, "when"),
    "when__in": (lambda v: [dt.datetime(2020, 1, 1, tzinfo=dt.UTC), v], "when"),
    "meta__at": (lambda v: v, "meta__at"),
    "meta": (lambda v: {"deep": [{"at": v}]}, "meta"),
}


def storable(value: dt.datetime) -> bool:
    try:
        bson.encode({"v": value}, codec_options=CODEC_OPTIONS)
    except (OverflowError, ValueError, bson.errors.InvalidDocument):
        return False
    return True


@server_property(60)
@given(value=EDGE_DATETIMES, place=st.sampled_from(sorted(PLACES)))
async def test_a_filter_is_refused_exactly_when_bson_cannot_store_its_datetime(
    monitored: MonitoredDatabase, value: dt.datetime, place: str
) -> None:
    carry, field = PLACES[place]
    kwargs = {place: carry(value)}
    if storable(value):
        # Taken, and sent: the server answers (nothing here matches).
        assert await DtEvent.objects.filter(**kwargs).count() == 0
        assert await DtEvent.objects.exclude(**kwargs).filter(when__isnull=False).count() == 0
        return
    sent = len(monitored.log.commands)
    with pytest.raises(odm.QueryError, match="outside the datetimes BSON stores") as refused:
        DtEvent.objects.filter(**kwargs)
    assert refused.value.field == field
    with pytest.raises(odm.QueryError):
        DtEvent.objects.filter(odm.Q(**kwargs) | odm.Q(when=None))
    assert len(monitored.log.commands) == sent  # refused before anything was sent


async def test_the_text_of_a_request_is_refused_naming_the_field(
    monitored: MonitoredDatabase,
) -> None:
    """As a request's query string gives it: 10000-01-01 in UTC."""
    with pytest.raises(odm.QueryError) as refused:
        DtEvent.objects.filter(when__gte="9999-12-31T23:59:59-05:00")
    assert refused.value.field == "when"
    assert "9999-12-31T23:59:59-05:00" in str(refused.value)
    # The last instant that fits is taken, and runs.
    assert await DtEvent.objects.filter(when__gte="9999-12-31T23:59:59+00:00").count() == 0
