"""Reads of a class with a datetime fix-up decode naive datetimes and make them aware: what the
queryset hands out (instances, snapshots, errors) is what loading the aware decoding gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from odm import Document, Embedded, executor
from odm.models.loading import load_documents
from odm.models.model_plan import datetime_fixer
from odm.models.tracking import get_snapshot

AT = dt.datetime(2024, 5, 6, 7, 8, 9, 123000)


class QsStamp(Embedded):
    at: dt.datetime
    note: str = ""


class QsStamped(Document):
    name: str
    at: dt.datetime
    stamp: QsStamp | None = None
    times: list[dt.datetime] = []

    class Meta:
        collection = "qs_stamped"


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, dt.datetime):
        return ("dt", value.isoformat(), id(value.tzinfo) if value.tzinfo else None)
    if isinstance(value, Embedded | Document):
        return (type(value).__name__, _typed(dict(value.__dict__)))
    return (type(value).__name__, value)


def _view(documents: list[Any]) -> list[Any]:
    return [(_typed(doc), _typed(get_snapshot(doc))) for doc in documents]


async def _aware_load(**filter: Any) -> list[Any]:
    raws = await executor.collection(QsStamped).find(filter).sort("_id").to_list(None)
    return load_documents(QsStamped, raws)


async def test_finds_and_streams_load_what_the_aware_decoding_loads(odm_database: Any) -> None:
    assert datetime_fixer(QsStamped) is not None
    await odm_database.qs_stamped.insert_many([
        {"name": "plain", "at": AT},
        {"name": "nested", "at": AT, "stamp": {"at": AT, "note": "n"}, "times": [AT, AT]},
        # Keys the class does not read, with datetimes: the batch is decoded aware again.
        {"name": "stray", "at": AT, "legacy": {"when": AT}, "stamp": {"at": AT, "x": AT}},
    ])
    aware = await _aware_load()
    assert aware[0].at.tzinfo is not None
    expected = _view(aware)
    assert _view(await QsStamped.objects.order_by("id")) == expected
    assert _view([d async for d in QsStamped.objects.order_by("id").batch_size(2)]) == expected
    assert _view(await QsStamped.objects.filter(name="plain")) == expected[:1]
    one = await QsStamped.objects.get(name="nested")
    assert _view([one]) == expected[1:2]


async def test_a_document_that_does_not_validate_raises_the_aware_decodings_error(
    odm_database: Any,
) -> None:
    await odm_database.qs_stamped.insert_many([
        {"name": "good", "at": AT},
        {"name": AT, "at": AT},  # a datetime where a str goes
    ])
    with pytest.raises(ValidationError) as aware:
        await _aware_load()
    with pytest.raises(ValidationError) as naive:
        await QsStamped.objects.order_by("id")
    assert str(naive.value) == str(aware.value)
    assert naive.value.errors() == aware.value.errors()
    lenient = await QsStamped.objects.order_by("id").lenient()
    assert lenient[1].raw["name"].tzinfo is not None  # the raw document as the aware decoding
