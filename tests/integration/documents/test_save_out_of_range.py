"""save() of a value BSON cannot hold is refused naming the field, as insert() refuses it, and
the document still tells the truth afterwards. Against the real server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from odm.document import Document
from odm.models.tracking import get_snapshot

#: Past year 9999 once moved to UTC: no BSON datetime holds it.
BEYOND_9999 = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-14)))


class RangeEvent(Document):
    at: dt.datetime | None = None
    n: int = 0

    class Meta:
        collection = "range_events"


async def test_an_aware_datetime_past_9999_in_utc_is_refused_by_save_naming_it(
    odm_database: Any,
) -> None:
    event = RangeEvent()
    await event.insert()
    event.at = BEYOND_9999
    event.n = 1
    with pytest.raises(ValidationError) as caught:
        await event.save()
    assert caught.value.errors()[0]["loc"] == ("at",)
    # Nothing was sent: the stored document and the snapshot are as before the save.
    stored = await odm_database["range_events"].find_one({"_id": event.id})
    assert stored is not None and stored.get("at") is None and stored["n"] == 0
    assert (get_snapshot(event) or {}).get("n") == 0
    event.at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    await event.save()
    stored = await odm_database["range_events"].find_one({"_id": event.id})
    assert stored is not None and stored["n"] == 1 and stored["at"].year == 2024
