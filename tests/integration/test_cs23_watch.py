"""watch() used carelessly: a loop left early, a reader cancelled while its stream opens or
reopens, two tasks or two event loops on one stream, a stream closed under a waiting read, a
collection that does not exist yet, an update whose document is gone, and a request body
passed to watch(). Each leaves no server cursor open (checked on the server, ``$currentOp``
with ``idleCursors``) and each refusal names its culprit."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import odm
from odm import ChangeStream, Document, QueryError
from tests.integration.stream_support import AWAIT_MS, names


class CsCarelessWatched(Document):
    name: str
    extra: dict[str, Any] = {}

    class Meta:
        collection = "cs23_watched"


async def open_cursors(database: Any, *, left_out: Any = None) -> int:
    """The server cursors open on the watched collection, but those of the session whose id is
    ``left_out`` (an ended session, whose cursors the driver kills from a background task)."""
    pipeline = [
        {"$currentOp": {"idleCursors": True, "allUsers": True}},
        {"$match": {"ns": f"{database.name}.cs23_watched", "cursor": {"$exists": True}}},
        {"$match": {"lsid.id": {"$ne": left_out}}},
    ]
    reply = await database.client.admin.command(
        {"aggregate": 1, "pipeline": pipeline, "cursor": {}}
    )
    return len(reply["cursor"]["firstBatch"])


async def until_no_cursor_is_open(database: Any) -> int:
    """The cursors still open once none is, or after 5 s (the driver kills those of an ended
    session from a background task, about once a second; a getMore cut off by a cancellation
    runs on the server until its await time is over)."""
    deadline = time.monotonic() + 5
    while (count := await open_cursors(database)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count


@contextmanager
def collector_off() -> Iterator[None]:
    """No reference cycle is freed meanwhile: what closes, closes by reference counting."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def settle() -> None:
    """Let the event loop run what the dropped iterators scheduled (their close is a round
    trip)."""
    for _ in range(5):
        await asyncio.sleep(0.01)


# -- a loop left early -------------------------------------------------------------------------


# Each way out of the loop returns the names it read.


async def _break(stream: ChangeStream[CsCarelessWatched]) -> list[str]:
    async for event in stream:
        return [_name(event)]
    return []


async def _raise(stream: ChangeStream[CsCarelessWatched]) -> list[str]:
    seen = []
    with pytest.raises(LookupError):
        async for event in stream:
            seen.append(_name(event))
            raise LookupError
    return seen


async def _cancel(stream: ChangeStream[CsCarelessWatched]) -> list[str]:
    seen: list[str] = []

    async def read_on() -> None:
        async for event in stream:  # every event there is, then it waits on the server
            seen.append(_name(event))

    reader = asyncio.create_task(read_on())
    await asyncio.sleep(0.15)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    return seen


def _name(event: odm.ChangeEvent[CsCarelessWatched]) -> str:
    assert event.document is not None
    return event.document.name


LEAVINGS: dict[str, Callable[[ChangeStream[CsCarelessWatched]], Awaitable[list[str]]]] = {
    "break": _break,
    "raise": _raise,
    "cancel": _cancel,
}


async def test_leaving_async_for_over_watch_closes_its_cursor_and_keeps_its_token(
    odm_database: Any,
) -> None:
    start = (await odm_database.command({"ping": 1}))["operationTime"]
    written = ["first", "second"]
    for name in written:
        await CsCarelessWatched(name=name).insert()
    with collector_off():
        for how, leave in LEAVINGS.items():
            stream = CsCarelessWatched.objects.watch(
                start_at_operation_time=start, max_await_time_ms=AWAIT_MS, batch_size=1
            )
            seen = await leave(stream)
            if how == "cancel":  # the server ends the getMore cut off within its await time
                assert await until_no_cursor_is_open(odm_database) == 0, how
            else:
                await settle()
                assert await open_cursors(odm_database) == 0, how
            assert not stream.is_open, how
            assert seen == written[: len(seen)], how
            written.append(f"after {how}")
            await CsCarelessWatched(name=written[-1]).insert()
            # The stream says where to carry on: just after the last event the loop read.
            async with CsCarelessWatched.objects.watch(
                resume_after=stream.resume_token, max_await_time_ms=AWAIT_MS
            ) as resumed:
                assert await names(resumed, 1) == [written[len(seen)]], how


async def test_breaking_out_of_an_opened_stream_leaves_it_to_its_block(odm_database: Any) -> None:
    await odm_database.create_collection("cs23_watched")
    async with CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS) as stream:
        await CsCarelessWatched(name="a").insert()
        await CsCarelessWatched(name="b").insert()
        assert await names(stream, 1) == ["a"]  # breaks out of its loop
        assert stream.is_open
        assert await names(stream, 1) == ["b"]
    assert await open_cursors(odm_database) == 0


# -- cancelled while opening or reopening ------------------------------------------------------


async def _opened_in_an_ended_block() -> tuple[ChangeStream[CsCarelessWatched], Any]:
    """A stream opened in an ``odm.session()`` block that has ended, one change made in it;
    and the id of the block's session."""
    async with odm.session() as session:
        stream = await CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS)
        await CsCarelessWatched(name="inside").insert()
        session_id = session.session_id["id"]
    return stream, session_id


async def _cut(work: Any, turns: int | None) -> Any:
    """Run ``work`` in a task cancelled after ``turns`` turns of the event loop (``None``:
    after :data:`LAST_WAIT` seconds); return what it gave, or ``None`` when the cancellation
    cut it off."""
    task = asyncio.ensure_future(work)
    if turns is None:
        await asyncio.wait({task}, timeout=LAST_WAIT)
    for _ in range(turns or 0):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


def cut_points() -> Iterator[int | None]:
    """The turns of the event loop after which to cancel: each one up to 40, more than
    PyMongo's opening or reopening takes, then ever more of them (Motor's run in a thread,
    which takes time rather than turns), up to far more than either takes; last, a cut after
    :data:`LAST_WAIT` seconds (``None``), for a loaded machine on which Motor's thread takes
    longer than the turns the loop can make meanwhile."""
    yield from range(1, 40)
    turns = 40
    while turns < MOST_TURNS:
        yield turns
        turns = turns * 3 // 2
    yield None


MOST_TURNS = 20_000
#: Seconds the last cut point waits for the work before it cancels it.
LAST_WAIT = 10.0


async def test_a_reader_cancelled_while_the_stream_reopens_leaves_no_cursor_open(
    odm_database: Any, odm_driver: str
) -> None:
    await odm_database.create_collection("cs23_watched")
    for turns in cut_points():  # cut off at 0 turns, the read would not even start
        stream, ended_session = await _opened_in_an_ended_block()
        event = await _cut(anext(stream), turns)
        # Cut off while it reopens, the stream is closed, and so is every cursor it opened. Cut
        # off in the read that follows, PyMongo's stream ends too, but Motor's goes on (its
        # read runs in a thread, on to its end).
        if event is None and odm_driver == "pymongo":
            assert not stream.is_open, turns
        if event is None and not stream.is_open:
            assert await open_cursors(odm_database, left_out=ended_session) == 0, turns
            # Nothing is lost: the stream's token is still before the change it did not read.
            async with CsCarelessWatched.objects.watch(
                resume_after=stream.resume_token, max_await_time_ms=AWAIT_MS
            ) as resumed:
                assert await names(resumed, 1) == ["inside"]
        await stream.close()
        await CsCarelessWatched.objects.delete()
        if event is not None:
            assert event.document is not None and event.document.name == "inside"
            break
    else:
        pytest.fail(
            f"the reopening takes more than {MOST_TURNS} turns of the event loop and {LAST_WAIT} s"
        )
    assert await until_no_cursor_is_open(odm_database) == 0


async def test_a_caller_cancelled_while_the_stream_opens_leaves_no_cursor_open(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs23_watched")
    for turns in cut_points():
        stream = CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS)
        opened = await _cut(stream.open(), turns)
        if opened is None:
            assert not stream.is_open, turns
            assert await open_cursors(odm_database) == 0, turns
        else:
            assert stream.is_open and await open_cursors(odm_database) == 1
        await stream.close()
        if opened is not None:
            break
    else:
        pytest.fail(
            f"the opening takes more than {MOST_TURNS} turns of the event loop and {LAST_WAIT} s"
        )
    assert await open_cursors(odm_database) == 0


# -- two tasks, two event loops ----------------------------------------------------------------


async def test_a_second_task_reading_a_stream_is_refused_and_the_first_reads_on(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs23_watched")
    async with CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS) as stream:
        first = asyncio.create_task(anext(stream), name="first reader")
        await asyncio.sleep(0.05)  # its getMore waits on the server
        with pytest.raises(QueryError, match=r"being read .* by task 'first reader'"):
            await anext(stream)
        with pytest.raises(QueryError, match=r"being read .* by task 'first reader'"):
            await stream.try_next()
        await CsCarelessWatched(name="one").insert()
        event = await asyncio.wait_for(first, 5)
        assert event.document is not None and event.document.name == "one"
        assert stream.is_open


async def test_a_second_loop_over_a_stream_a_first_loop_opened_is_refused(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs23_watched")
    stream = CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS)
    first = asyncio.create_task(_break(stream), name="first loop")
    await asyncio.sleep(0.05)  # it has opened the stream and waits on the server
    with pytest.raises(QueryError, match="by task 'first loop'"):
        async for _ in stream:
            pass
    assert stream.is_open  # the refused loop did not close what the first one opened
    await CsCarelessWatched(name="one").insert()
    assert await asyncio.wait_for(first, 5) == ["one"]
    await settle()
    assert not stream.is_open and await open_cursors(odm_database) == 0


async def test_two_tasks_opening_one_stream_open_one_cursor(odm_database: Any) -> None:
    await odm_database.create_collection("cs23_watched")
    stream = CsCarelessWatched.objects.watch()
    opening = asyncio.create_task(stream.open(), name="opener")
    await asyncio.sleep(0)
    with pytest.raises(QueryError, match="by task 'opener'"):
        await stream.open()
    await opening
    assert await open_cursors(odm_database) == 1
    await stream.close()
    assert await open_cursors(odm_database) == 0


async def test_closing_a_stream_while_another_task_reads_ends_that_read(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs23_watched")
    stream = await CsCarelessWatched.objects.watch(max_await_time_ms=300)

    async def read_all() -> list[str]:
        return [event.operation async for event in stream]

    reader = asyncio.create_task(read_all())
    await asyncio.sleep(0.05)  # its getMore waits on the server
    await stream.close()
    assert await asyncio.wait_for(reader, 5) == []  # ended, not OperationFailure(CursorKilled)
    assert await open_cursors(odm_database) == 0


async def test_a_stream_used_from_another_event_loop_is_refused_before_anything_is_sent(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("cs23_watched")
    async with CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS) as stream:
        for use, action in ((stream.try_next, "read"), (stream.close, "close")):
            with pytest.raises(QueryError, match=f"cannot {action} this change stream in an"):
                await asyncio.to_thread(asyncio.run, use())
        await CsCarelessWatched(name="still here").insert()
        assert await names(stream, 1) == ["still here"]


# -- what the stream is given ------------------------------------------------------------------


async def test_a_stream_on_a_collection_not_created_yet_sees_its_first_insert(
    odm_database: Any,
) -> None:
    async with CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS) as stream:
        await CsCarelessWatched(name="creates it").insert()
        assert await names(stream, 1) == ["creates it"]


async def test_an_update_whose_document_is_gone_comes_without_a_document(
    odm_database: Any,
) -> None:
    doc = await CsCarelessWatched(name="short-lived").insert()
    unfiltered = await CsCarelessWatched.objects.watch(max_await_time_ms=AWAIT_MS)
    by_name = await CsCarelessWatched.objects.filter(name="renamed").watch(
        max_await_time_ms=AWAIT_MS
    )
    try:
        await CsCarelessWatched.objects.filter(id=doc.id).update(name="renamed")
        await doc.delete()
        update, delete = await anext(unfiltered), await anext(unfiltered)
        assert (update.operation, update.document, update.document_key) == (
            "update",
            None,
            {"_id": doc.id},
        )
        assert update.raw["updateDescription"]["updatedFields"] == {"name": "renamed"}
        assert (delete.operation, delete.document) == ("delete", None)
        # The filter cannot be proved on an update without its document: not delivered.
        assert await by_name.try_next() is None
    finally:
        await unfiltered.close()
        await by_name.close()


def test_a_request_body_cannot_add_a_stage_to_the_stream() -> None:
    body: Any = [{"$out": "stolen"}]
    with pytest.raises(TypeError, match="'pipeline'"):
        CsCarelessWatched.objects.watch(pipeline=body)
    smuggled = {"$function": {"body": "function() { return true }", "args": [], "lang": "js"}}
    with pytest.raises(QueryError, match="'extra' holds the key '\\$function'"):
        CsCarelessWatched.objects.filter(extra=smuggled).watch()
    with pytest.raises(QueryError, match="full_document=\\{'\\$merge'"):
        CsCarelessWatched.objects.watch(full_document={"$merge": "x"})  # type: ignore[arg-type]
