"""watch(): what a change stream cannot follow is refused naming watch(); a filtered stream
delivers drop/invalidate and ends; a subclass's stream delivers deletes; lenient() holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import odm
from odm import ChangeEvent, ChangeStream, Document, Index, Near, Point, QueryError
from odm.aggregates import Count

#: Each stream waits this long per round trip: the events below are already written.
AWAIT_MS = 100


class WsPost(Document):
    title: str
    loc: Point | None = None

    class Meta:
        collection = "ws17_posts"
        indexes = [Index(text=["title"]), Index(("loc", "2dsphere"))]


class WsAnimal(Document):
    name: str

    class Meta:
        collection = "ws17_animals"
        polymorphic = True


class WsCat(WsAnimal):
    lives: int = 9


class WsDog(WsAnimal):
    good: bool = True


async def _until(
    stream: ChangeStream[Any], last: Callable[[ChangeEvent[Any]], bool]
) -> list[ChangeEvent[Any]]:
    """The events of ``stream`` up to the first that ``last`` accepts, or up to its end."""
    seen: list[ChangeEvent[Any]] = []

    async def read() -> None:
        async for event in stream:
            seen.append(event)
            if last(event):
                return

    await asyncio.wait_for(read(), 5)
    return seen


@pytest.mark.parametrize(
    ("build", "culprit"),
    [
        (lambda: WsPost.objects.search("x"), r"search\(\)"),
        (lambda: WsPost.objects.filter(loc__near=Near(Point(2, 48))), r"__near \(on 'loc'\)"),
        (lambda: WsPost.objects.geo_near("loc", Point(2, 48)), r"geo_near\(\)"),
        (lambda: WsPost.objects.all()[:3], "sliced"),
        (lambda: WsPost.objects.values("title"), r"values\(\)"),
        (lambda: WsPost.objects.values_list("title"), r"values\(\)"),
        (lambda: WsPost.objects.values("title").annotate(n=Count("id")), r"annotate\(\)"),
        (
            lambda: WsPost.objects.collation("en", strength=2).filter(title="HELLO"),
            r"collation\(\).*binary",
        ),
    ],
)
def test_what_a_stream_cannot_follow_is_refused_naming_watch(
    build: Callable[[], Any], culprit: str
) -> None:
    # Refused when watch() is called, before anything is sent (no server needed).
    with pytest.raises(QueryError, match=rf"^watch\(\) .*{culprit}"):
        build().watch()


def test_a_collation_without_a_filter_has_nothing_to_miss() -> None:
    assert isinstance(WsPost.objects.collation("en", strength=2).watch(), ChangeStream)
    assert isinstance(WsPost.objects.collation("simple").filter(title="a").watch(), ChangeStream)


async def test_a_filtered_stream_delivers_drop_and_invalidate_then_ends(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("ws17_posts")
    post = WsPost(title="a")  # its id is known before it is stored
    streams = [
        await WsPost.objects.watch(max_await_time_ms=AWAIT_MS),
        await WsPost.objects.filter(title="a").watch(max_await_time_ms=AWAIT_MS),
        await WsPost.objects.filter(id=post.id).watch(max_await_time_ms=AWAIT_MS),
    ]
    await post.insert()  # every filter matches it
    await odm_database.drop_collection("ws17_posts")
    for stream in streams:
        events = await _until(stream, lambda e: e.operation == "invalidate")
        assert [e.operation for e in events] == ["insert", "drop", "invalidate"]
        assert not stream.is_open  # the server ended it
        assert await stream.try_next() is None
    # The invalidate event's token carries on past it (start_after=), filter and all.
    token = events[-1].resume_token
    async with WsPost.objects.filter(id=post.id).watch(
        start_after=token, max_await_time_ms=AWAIT_MS
    ) as again:
        await WsPost(id=post.id, title="b").insert()
        [event] = await _until(again, lambda e: True)
    assert (event.operation, event.document) == ("insert", WsPost(id=post.id, title="b"))
    for stream in streams:
        await stream.close()


async def test_a_subclass_stream_filtered_on_its_ids_delivers_their_deletes(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("ws17_animals")
    cat = await WsCat(name="tom").insert()
    dog = await WsDog(name="rex").insert()
    async with WsCat.objects.filter(id__in=[cat.id, dog.id]).watch(
        max_await_time_ms=AWAIT_MS
    ) as stream:
        await WsAnimal.objects.filter(id=dog.id).update(name="max")  # a dog: not a WsCat
        await cat.delete()
        events = await _until(stream, lambda e: e.operation == "delete")
    assert [(e.operation, e.document_key["_id"]) for e in events] == [("delete", cat.id)]


async def test_a_subclass_stream_proves_its_class_on_the_pre_image_of_a_delete(
    odm_database: Any,
) -> None:
    await odm_database.create_collection(
        "ws17_animals", changeStreamPreAndPostImages={"enabled": True}
    )
    cat = await WsCat(name="tom").insert()
    dog = await WsDog(name="tom").insert()
    cats, toms = WsCat.objects.all(), WsCat.objects.filter(name="tom")
    streams = {
        "all cats": await cats.watch(
            full_document_before_change="whenAvailable", max_await_time_ms=AWAIT_MS
        ),
        "cats named tom": await toms.watch(
            full_document_before_change="whenAvailable", max_await_time_ms=AWAIT_MS
        ),
        "no pre-image": await cats.watch(max_await_time_ms=AWAIT_MS),
    }
    await dog.delete()
    await cat.delete()
    last = await WsCat(name="tom").insert()  # every stream matches it: where each stops
    seen: dict[str, list[tuple[str, Any]]] = {}
    for name, stream in streams.items():
        events = await _until(stream, lambda e: e.document_key["_id"] == last.id)
        seen[name] = [(e.operation, e.document_key["_id"]) for e in events]
        await stream.close()
    assert seen == {
        "all cats": [("delete", cat.id), ("insert", last.id)],
        "cats named tom": [("delete", cat.id), ("insert", last.id)],
        "no pre-image": [("insert", last.id)],  # the class of a bare delete is unknown
    }


async def test_lenient_watch_delivers_a_document_that_no_longer_fits_as_invalid(
    odm_database: Any,
) -> None:
    await odm_database.create_collection("ws17_posts")
    async with WsPost.objects.lenient().watch(max_await_time_ms=AWAIT_MS) as stream:
        await odm_database.ws17_posts.insert_one({"title": 5})  # another client's write
        fits = await WsPost(title="ok").insert()
        events = await _until(stream, lambda e: e.document_key["_id"] == fits.id)
    assert [type(e.document) for e in events] == [odm.Invalid, WsPost]
    invalid = events[0].document
    assert isinstance(invalid, odm.Invalid)
    assert invalid.raw == {"_id": events[0].document_key["_id"], "title": 5}
