"""Change streams: what ``QuerySet.watch()`` returns.

A :class:`ChangeStream` is opened explicitly and awaited (``async with qs.watch() as stream:``
or ``stream = await qs.watch()``): once that line has run the server cursor exists, so every
change made after it is delivered, and none is lost between the call and the first read. It
can start from a resume token or an operation time, and it tells its own resume token at any
moment, so a consumer that stops can carry on where it left off.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

from pymongo.errors import OperationFailure

from . import executor
from .exceptions import ConfigurationError, QueryError

M = TypeVar("M")

#: What an event carries as the document after the change (MongoDB's ``fullDocument``).
FullDocument = Literal["default", "updateLookup", "whenAvailable", "required"]
#: What an event carries as the document before the change (``fullDocumentBeforeChange``).
BeforeChange = Literal["off", "whenAvailable", "required"]

FULL_DOCUMENT: tuple[str, ...] = ("default", "updateLookup", "whenAvailable", "required")
BEFORE_CHANGE: tuple[str, ...] = ("off", "whenAvailable", "required")

#: Change-stream errors that mean the server is not a replica set or sharded cluster.
_NO_CHANGE_STREAMS = {40573, 40324}


@dataclass(frozen=True, slots=True)
class ChangeEvent(Generic[M]):
    """One change-stream event: ``operation`` (insert, update, replace, delete, ...),
    ``document`` (the document after the change, validated; ``None`` for deletes and when the
    stream does not look it up), ``document_key``, ``before`` (the document before the change
    when the stream asked for it and the collection keeps pre-images) and the ``raw`` event."""

    operation: str
    document: M | None
    document_key: dict[str, Any]
    raw: dict[str, Any]
    before: M | None = None

    @property
    def resume_token(self) -> dict[str, Any]:
        """The token that resumes a stream just after this event (``resume_after=``)."""
        token: dict[str, Any] = self.raw["_id"]
        return token


def check_options(
    full_document: str,
    full_document_before_change: str | None,
    starts: Mapping[str, Any],
) -> None:
    """Refuse watch() options that cannot work together, naming them, before anything is
    sent (the server's own message would not name the ODM's parameters)."""
    if full_document not in FULL_DOCUMENT:
        raise QueryError(
            f"watch(full_document={full_document!r}): expected one of {', '.join(FULL_DOCUMENT)}"
        )
    if full_document_before_change is not None and (
        full_document_before_change not in BEFORE_CHANGE
    ):
        raise QueryError(
            f"watch(full_document_before_change={full_document_before_change!r}): expected "
            f"one of {', '.join(BEFORE_CHANGE)}"
        )
    given = [name for name, value in starts.items() if value is not None]
    if len(given) > 1:
        raise QueryError(f"watch() takes one starting point, not {' and '.join(given)}")


def raise_if_no_change_streams(exc: OperationFailure) -> None:
    """Raise a ConfigurationError when ``exc`` says the server cannot stream changes."""
    if exc.code in _NO_CHANGE_STREAMS:
        raise ConfigurationError(
            "watch() needs a replica set or a sharded cluster: this server is a "
            "standalone mongod (run `odm server`, or mongod --replSet)"
        ) from exc


class ChangeStream(Generic[M]):
    """The changes to the documents a queryset matches, as :class:`ChangeEvent` s.

    Open it with ``async with qs.watch() as stream:`` (closed when the block ends) or
    ``stream = await qs.watch()`` (then ``await stream.close()``); it is live from that
    line on. ``async for event in qs.watch()`` still works and opens the stream when the loop
    starts, so changes made before that are not seen.
    """

    __slots__ = ("_closed", "_load", "_model", "_options", "_pipeline", "_stream")

    def __init__(
        self,
        model: type[Any],
        pipeline: list[dict[str, Any]],
        options: dict[str, Any],
        load: Callable[[type[Any], dict[str, Any]], Any],
    ) -> None:
        self._model = model
        self._pipeline = pipeline
        self._options = options
        self._load = load
        self._stream: Any = None
        self._closed = False

    @property
    def model(self) -> type[Any]:
        """The Document class whose collection is watched."""
        return self._model

    @property
    def is_open(self) -> bool:
        """Tell whether the server cursor exists (opened and not closed)."""
        return self._stream is not None and not self._closed

    @property
    def resume_token(self) -> dict[str, Any] | None:
        """The token that resumes after the last change this stream has seen, or after the
        point the server has reached when none was seen yet; ``None`` before it is opened.
        Keep it and pass it as ``watch(resume_after=...)`` to carry on without a gap."""
        if self._stream is None:
            return None
        token: dict[str, Any] | None = self._stream.resume_token
        return dict(token) if token is not None else None

    async def open(self) -> Self:
        """Open the server cursor now (once; again does nothing) and return the stream."""
        if self._closed:
            raise QueryError("this change stream is closed: call watch() again")
        if self._stream is None:
            try:
                self._stream = await executor.watch(self._model, self._pipeline, **self._options)
            except OperationFailure as exc:
                raise_if_no_change_streams(exc)
                raise
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self.open().__await__()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChangeEvent[M]:
        if self._closed:
            raise StopAsyncIteration
        await self.open()
        try:
            raw = await self._stream.next()
        except OperationFailure as exc:
            raise_if_no_change_streams(exc)
            raise
        return self._event(raw)

    async def try_next(self) -> ChangeEvent[M] | None:
        """Return the next event, or ``None`` when the server has none now (one round trip,
        waiting at most ``max_await_time_ms``); opens the stream if needed."""
        await self.open()
        raw = await self._stream.try_next()
        return None if raw is None else self._event(raw)

    async def close(self) -> None:
        """Close the server cursor; iterating afterwards ends at once."""
        self._closed = True
        if self._stream is not None:
            await self._stream.close()

    async def aclose(self) -> None:
        """Close the stream (the name ``contextlib.aclosing`` calls)."""
        await self.close()

    def _event(self, raw: dict[str, Any]) -> ChangeEvent[M]:
        after = raw.get("fullDocument")
        before = raw.get("fullDocumentBeforeChange")
        return ChangeEvent(
            operation=raw.get("operationType", ""),
            document=self._load(self._model, after) if after else None,
            document_key=dict(raw.get("documentKey") or {}),
            raw=raw,
            before=self._load(self._model, before) if before else None,
        )
