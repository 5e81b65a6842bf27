"""A change stream opened inside ``odm.session()`` and read after the block ended goes on
outside it (as every operation of the block's tasks does then), from its own resume token:
no change is lost or delivered twice. It used to raise PyMongo's ``InvalidOperation: Cannot
use ended session`` on its next read, while ``is_open`` said True."""

from __future__ import annotations

from typing import Any

import odm
from odm import ChangeStream, Document
from tests.integration.stream_support import AWAIT_MS, names


class HbSessionWatched(Document):
    name: str

    class Meta:
        collection = "hb22_session_watched"


async def _opened_in_a_session_block() -> ChangeStream[HbSessionWatched]:
    """A stream opened inside an ``odm.session()`` block that has ended, with one change made
    inside the block and one after it."""
    async with odm.session():
        stream = await HbSessionWatched.objects.watch(max_await_time_ms=AWAIT_MS)
        await HbSessionWatched(name="inside").insert()
    await HbSessionWatched(name="after").insert()
    return stream


async def test_a_stream_read_after_its_session_block_goes_on_without_a_gap(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("hb22_session_watched")
    stream = await _opened_in_a_session_block()
    try:
        assert stream.is_open
        assert await names(stream, 2) == ["inside", "after"]
        assert stream.is_open
        await HbSessionWatched(name="later").insert()
        assert await names(stream, 1) == ["later"]
        token = stream.resume_token
    finally:
        await stream.close()
    assert not stream.is_open
    await HbSessionWatched(name="resumed").insert()
    async with HbSessionWatched.objects.watch(resume_after=token) as resumed:
        assert await names(resumed, 1) == ["resumed"]


async def test_try_next_after_the_block_and_inside_a_transaction_goes_on(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("hb22_session_watched")
    stream = await _opened_in_a_session_block()
    try:
        async with odm.transaction():  # the stream's cursor must not join the transaction
            first = await stream.try_next()
            await HbSessionWatched(name="in transaction").insert()
        assert first is not None and first.document is not None
        assert first.document.name == "inside"
        assert await names(stream, 2) == ["after", "in transaction"]
    finally:
        await stream.close()
    assert await HbSessionWatched.objects.count() == 3


async def test_a_stream_closed_after_its_session_block_closes_quietly(odm_database: Any) -> None:
    await odm_database.create_collection("hb22_session_watched")
    stream = await _opened_in_a_session_block()
    await stream.close()
    assert not stream.is_open
    assert [name async for name in _drain(stream)] == []


async def _drain(stream: ChangeStream[HbSessionWatched]) -> Any:
    """The names a closed stream still delivers (none)."""
    async for event in stream:
        yield event.operation
