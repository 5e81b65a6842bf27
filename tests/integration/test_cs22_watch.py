"""watch() under hostile starting points and options, inside a transaction, after a resumable
error on the server, and on a document that no longer fits its model."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Timestamp
from pydantic import ValidationError

import odm
from odm import Document, QueryError, TransactionError
from tests.integration.stream_support import AWAIT_MS, names


class CsWatched(Document):
    name: str

    class Meta:
        collection = "cs22_watched"


@pytest.mark.parametrize("start", ["resume_after", "start_after"])
@pytest.mark.parametrize(
    ("token", "culprit"),
    [
        ({"$gt": ""}, "no key '\\$gt'"),
        ({"_data": {"$ne": None}}, "hex digits, not dict"),
        ({"_data": "826B", "$where": "sleep(1000)"}, "no key '\\$where'"),
        ({"_data": "826B", "_typeBits": {"$gt": 1}}, "_typeBits must be binary"),
        ({"_data": "zz"}, "hex digits, not a string with other characters"),
        ({"_data": "abc"}, "hex digits"),
        ({}, "expected a resume token"),
        ("826B15F2", "expected a resume token .* not str"),
        (5, "not int"),
    ],
)
def test_a_token_that_is_not_a_resume_token_is_refused_naming_the_option(
    start: str, token: Any, culprit: str
) -> None:
    with pytest.raises(QueryError, match=rf"watch\({start}=\.\.\.\): .*{culprit}") as caught:
        CsWatched.objects.watch(**{start: token})
    assert caught.value.field == start


@pytest.mark.parametrize(
    ("options", "culprit"),
    [
        ({"start_at_operation_time": 5}, r"start_at_operation_time=\.\.\.\): .* not int"),
        ({"start_at_operation_time": "1"}, r"start_at_operation_time=\.\.\.\): .* not str"),
        ({"start_at_operation_time": dt.datetime(2024, 1, 1)}, "bson.Timestamp"),
        ({"batch_size": True}, r"batch_size=\.\.\.\): expected a whole number, not bool"),
        ({"batch_size": "5"}, r"batch_size=\.\.\.\): expected a whole number, not str"),
        ({"batch_size": -1}, r"batch_size=-1\): expected at least 0"),
        ({"max_await_time_ms": -5}, r"max_await_time_ms=-5\): expected at least 0"),
        ({"max_await_time_ms": 1.5}, r"max_await_time_ms=\.\.\.\): .* not float"),
    ],
)
def test_a_start_time_or_cursor_option_of_the_wrong_kind_is_refused_by_name(
    options: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(QueryError, match=culprit):
        CsWatched.objects.watch(**options)


async def test_a_token_the_server_cannot_decode_is_a_query_error_naming_it(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs22_watched")
    with pytest.raises(QueryError, match=r"watch\(resume_after=\.\.\.\): the server cannot"):
        await CsWatched.objects.watch(resume_after={"_data": "00"})


async def test_a_real_token_and_operation_time_still_start_the_stream(odm_database: Any) -> None:
    start = (await odm_database.command({"ping": 1}))["operationTime"]
    assert isinstance(start, Timestamp)
    await CsWatched(name="a").insert()
    await CsWatched(name="b").insert()
    async with CsWatched.objects.watch(start_at_operation_time=start) as stream:
        first = await anext(stream)
    async with CsWatched.objects.watch(resume_after=first.resume_token) as stream:
        assert await names(stream, 1) == ["b"]


async def test_watch_inside_a_transaction_is_refused_and_the_transaction_goes_on(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs22_watched")
    async with odm.transaction():
        await CsWatched(name="before").insert()
        with pytest.raises(TransactionError, match=r"watch\(\) .* inside odm.transaction"):
            await CsWatched.objects.watch()
        await CsWatched(name="after").insert()
    stored = await CsWatched.objects.order_by("name").values_list("name", flat=True)
    assert stored == ["after", "before"]


async def test_a_stream_opened_before_a_transaction_reads_inside_it(odm_database: Any) -> None:
    await odm_database.create_collection("cs22_watched")
    async with CsWatched.objects.watch(max_await_time_ms=AWAIT_MS) as stream:
        async with odm.transaction():
            await CsWatched(name="in").insert()
        async with odm.transaction():
            assert await names(stream, 1) == ["in"]


async def test_a_resumable_error_on_getmore_loses_and_repeats_no_event(odm_database: Any) -> None:
    admin = odm_database.client.admin
    await odm_database.create_collection("cs22_watched")
    async with CsWatched.objects.watch(max_await_time_ms=AWAIT_MS, batch_size=1) as stream:
        await CsWatched(name="a1").insert()
        assert await names(stream, 1) == ["a1"]
        await admin.command({
            "configureFailPoint": "failCommand", "mode": {"times": 1},
            "data": {"failCommands": ["getMore"], "errorCode": 6,
                     "errorLabels": ["ResumableChangeStreamError"]},
        })
        try:
            for name in ("a2", "a3"):
                await CsWatched(name=name).insert()
            assert await names(stream, 2) == ["a2", "a3"]
        finally:
            await admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        assert stream.is_open


async def test_a_document_that_no_longer_fits_names_itself_and_the_stream_goes_on(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs22_watched")
    async with CsWatched.objects.watch(max_await_time_ms=AWAIT_MS) as stream:
        bad = await odm_database.cs22_watched.insert_one({"name": 5})  # another client's write
        await CsWatched(name="fits").insert()
        with pytest.raises(ValidationError, match=rf"CsWatched.*{bad.inserted_id}"):
            await anext(stream)
        assert await names(stream, 1) == ["fits"]
