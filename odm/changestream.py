"""Change streams: what ``QuerySet.watch()`` returns.

A :class:`ChangeStream` is opened explicitly and awaited (``async with qs.watch() as stream:``
or ``stream = await qs.watch()``): once that line has run the server cursor exists, so every
change made after it is delivered, and none is lost between the call and the first read. It
can start from a resume token or an operation time, and it tells its own resume token at any
moment, so a consumer that stops can carry on where it left off.

:func:`watch_query` turns a queryset's query into such a stream: it refuses what a change stream
cannot follow, and matches the filter on what each event carries (:func:`event_pipeline`).
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Self, TypeVar

from bson import Timestamp
from pymongo.errors import OperationFailure, PyMongoError

from . import executor
from .exceptions import ConfigurationError, QueryError, TransactionError
from .models.loading import load_documents
from .models.options import ID_KEY
from .query.where import and_mql
from .session import current_session, current_unit_of_work, outside_blocks
from .shielding import shielded

if TYPE_CHECKING:
    from .query.query import Query

M = TypeVar("M")

#: What an event carries as the document after the change (MongoDB's ``fullDocument``).
FullDocument = Literal["default", "updateLookup", "whenAvailable", "required"]
#: What an event carries as the document before the change (``fullDocumentBeforeChange``).
BeforeChange = Literal["off", "whenAvailable", "required"]

FULL_DOCUMENT: tuple[str, ...] = ("default", "updateLookup", "whenAvailable", "required")
BEFORE_CHANGE: tuple[str, ...] = ("off", "whenAvailable", "required")

#: Change-stream errors that mean the server is not a replica set or sharded cluster.
_NO_CHANGE_STREAMS = {40573, 40324}

#: The keys a resume token has (``_typeBits`` only when its document key needs it).
_TOKEN_KEYS: Final = frozenset({"_data", "_typeBits"})
#: The server's refusals of a resume token it cannot decode: a bad token (40647), a string
#: that is not hex (FailedToParse, 9), and hex that is not a key (KeyString format errors).
_BAD_TOKEN_CODES: Final = frozenset({9, 40647, 50615, 50811})

#: The options that say where a stream starts: a stream that goes on after its session block
#: ended starts again from its own resume token instead.
_STARTS: Final = frozenset({"resume_after", "start_after", "start_at_operation_time"})

#: Events about the collection itself, not a document: no filter can be proved on them, and a
#: consumer must see them whatever it filters (after ``invalidate`` the server has closed the
#: cursor, and its token is the one ``start_after=`` goes on from).
STREAM_EVENTS: Final = ("drop", "rename", "dropDatabase", "invalidate")

#: Where a change event carries the document after the change, and before it.
_AFTER: Final = "fullDocument"
_BEFORE: Final = "fullDocumentBeforeChange"
_IS_DOCUMENT: Final = {"$type": "object"}
_NO_DOCUMENT: Final = {"$not": {"$type": "object"}}


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
    for name in given:
        if name == "start_at_operation_time":
            check_operation_time(starts[name])
        else:
            check_resume_token(name, starts[name])


def check_resume_token(name: str, token: object) -> None:
    """Refuse, naming ``name`` (``resume_after``, ``start_after``), what is not a resume token
    as ``change.resume_token`` gives it: a token read back from a request must stay a token,
    whatever keys or values it was sent with."""
    if not isinstance(token, Mapping) or not token:
        raise QueryError(
            f"watch({name}=...): expected a resume token (a change's or the stream's "
            f"resume_token, {{'_data': '<hex>'}}), not {type(token).__name__}",
            field=name,
        )
    unknown = sorted(str(key) for key in token if key not in _TOKEN_KEYS)
    if unknown:
        raise QueryError(
            f"watch({name}=...): a resume token has no key {unknown[0]!r} "
            f"(expected {{'_data': '<hex>'}})",
            field=name,
        )
    data = token.get("_data")
    if not isinstance(data, str) or not _is_hex(data):
        got = "a string with other characters" if isinstance(data, str) else type(data).__name__
        raise QueryError(
            f"watch({name}=...): the token's _data must be a string of hex digits, not {got}",
            field=name,
        )
    if "_typeBits" in token and not isinstance(token["_typeBits"], bytes):
        raise QueryError(
            f"watch({name}=...): the token's _typeBits must be binary, "
            f"not {type(token['_typeBits']).__name__}",
            field=name,
        )


def _is_hex(text: str) -> bool:
    """Tell whether ``text`` is a non-empty string of hex digits, two per byte."""
    return bool(text) and len(text) % 2 == 0 and all(c in string.hexdigits for c in text)


def check_operation_time(value: object) -> None:
    """Refuse a ``start_at_operation_time`` that is not a ``bson.Timestamp``."""
    if not isinstance(value, Timestamp):
        raise QueryError(
            "watch(start_at_operation_time=...): expected a bson.Timestamp (the "
            f"operationTime of a server reply), not {type(value).__name__}",
            field="start_at_operation_time",
        )


def check_cursor_option(name: str, value: object) -> None:
    """Refuse a ``batch_size`` or ``max_await_time_ms`` that is not a whole number >= 0
    (the driver would send some as they are, and the server answer with its own names)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise QueryError(
            f"watch({name}=...): expected a whole number, not {type(value).__name__}",
            field=name,
        )
    if value < 0:
        raise QueryError(f"watch({name}={value}): expected at least 0", field=name)


def refuse_in_transaction() -> None:
    """Raise :class:`odm.TransactionError` inside ``odm.transaction()``, before anything is
    sent: the server refuses a change stream there, and that refusal would abort the
    transaction (its writes so far would be lost)."""
    if current_unit_of_work() is not None:
        raise TransactionError(
            "watch() cannot open a change stream inside odm.transaction(): a stream is not "
            "part of a transaction (it delivers changes once they are committed); open it "
            "before the block"
        )


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
    starts, so changes made before that are not seen; it closes the stream when the loop ends.

    A stream opened inside ``odm.session()`` and read after that block ended goes on outside
    it, as any operation of the block's tasks does then: it is opened again, outside any
    block, from its own resume token, so no change is lost or delivered twice.

    One task reads a stream at a time, in the event loop that opened it: a read from a second
    task while one waits, or from another loop, raises :class:`QueryError` before anything is
    sent. Another task may close it meanwhile: the waiting read then ends as a read of a
    closed stream does.
    """

    __slots__ = (
        "_closed",
        "_load",
        "_loop",
        "_model",
        "_options",
        "_pipeline",
        "_session",
        "_stream",
        "_user",
    )

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
        # The odm.session() block's session the server cursor belongs to, if any.
        self._session: Any = None
        # The event loop the server cursor was opened in (its client belongs to that loop).
        self._loop: asyncio.AbstractEventLoop | None = None
        # The task opening or reading the stream now, if any: a cursor takes one getMore at a
        # time.
        self._user: asyncio.Task[Any] | None = None

    @property
    def model(self) -> type[Any]:
        """The Document class whose collection is watched."""
        return self._model

    @property
    def is_open(self) -> bool:
        """Tell whether the server cursor exists: opened, not closed, and not ended by the
        server (it ends the stream after an ``invalidate`` event)."""
        return self._stream is not None and not self._closed and bool(self._stream.alive)

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
        """Open the server cursor now (once; again does nothing) and return the stream.

        The opening runs to its end even when the caller is cancelled meanwhile (a cursor the
        server opened but whose reply the cancellation dropped would stay open, known to no
        one): then the stream is closed and the cancellation goes on."""
        if self._closed:
            raise QueryError("this change stream is closed: call watch() again")
        if self._stream is None:
            refuse_in_transaction()
            with self._in_use():
                await self._to_its_end(self._open_cursor(), "opened")
        return self

    async def _open_cursor(self) -> None:
        """Open the server cursor, in the enclosing session block if any."""
        session = current_session()  # what the executor sends the stream in
        try:
            stream = await executor.watch(self._model, self._pipeline, **self._options)
        except OperationFailure as exc:
            raise_if_no_change_streams(exc)
            self._raise_if_bad_token(exc)
            raise
        self._stream, self._session = stream, session
        self._loop = asyncio.get_running_loop()
        if self._closed:  # another task closed the stream while it opened
            await stream.close()

    async def _to_its_end(self, opening: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``opening`` (which opens a server cursor) to its end even if the caller is
        cancelled meanwhile; then close the stream, so that no cursor it opened stays open,
        and let the cancellation go on (``what``: what the stream was doing, for its
        message)."""
        try:
            cancelled = await shielded(opening)
        except asyncio.CancelledError:  # the opening failed after the caller was cancelled
            await self._close_after_cancellation()
            raise
        if cancelled:
            await self._close_after_cancellation()
            raise asyncio.CancelledError(f"cancelled while the change stream {what}")

    async def _outlive_ended_session(self) -> None:
        """Open the stream again, outside any block, from its resume token when the session
        block it was opened in has ended: the server cursor belongs to that session, which
        the driver can no longer send a getMore in (``Cannot use ended session``).

        The reopening runs to its end even when the reader is cancelled meanwhile (a cursor
        the server opened but whose reply the cancellation dropped would stay open, known to
        no one): then the stream is closed, both cursors with it, and the cancellation goes
        on."""
        if self._session is None or not self._session.has_ended:
            return
        if not self._stream.alive or self.resume_token is None:
            self._session = None
            return  # the server ended the stream itself (invalidate): nothing to go on with
        await self._to_its_end(self._reopen(), "reopened")

    async def _reopen(self) -> None:
        """Open the stream again from its resume token, outside any block (the new cursor must
        not belong to a session block, or transaction, the stream is read in now), and drop
        the cursor of the ended session."""
        options = {name: value for name, value in self._options.items() if name not in _STARTS}
        options["resume_after"] = self.resume_token
        reopened = await outside_blocks(
            partial(executor.watch, self._model, self._pipeline, **options)
        )
        # Only now: a failed reopening keeps the ended stream, and is tried again at the next
        # read.
        ended, self._stream, self._session = self._stream, reopened, None
        await _close_quietly(ended)
        if self._closed:  # another task closed the stream while it reopened
            await _close_quietly(reopened)

    async def _close_after_cancellation(self) -> None:
        """Close the stream to its end for a caller cancelled while it opened a cursor (a
        second cancellation meanwhile changes nothing: the caller raises one anyway)."""
        await shielded(self.close())

    def _raise_if_bad_token(self, exc: OperationFailure) -> None:
        """Raise a QueryError naming the starting token when the server could not decode it."""
        if exc.code not in _BAD_TOKEN_CODES:
            return
        for name in ("resume_after", "start_after"):
            if name in self._options:
                message = (exc.details or {}).get("errmsg", str(exc))
                raise QueryError(
                    f"watch({name}=...): the server cannot resume from this token: {message}",
                    field=name,
                ) from exc

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

    def __aiter__(self) -> AsyncIterator[ChangeEvent[M]]:
        """Iterate the events. An open stream (``async with``, ``await``) is iterated as it
        is, and stays open after the loop: whoever opened it closes it. A stream not opened
        yet (``async for change in qs.watch():``) belongs to the loop: it opens when the loop
        starts and closes when the loop ends, however it ends (``break``, an exception, a
        cancellation), at the event loop's next turn at the latest, as a queryset's loop
        does; its ``resume_token`` still tells where to carry on."""
        if self._stream is not None or self._closed:
            return self
        return self._events_of_its_own()

    async def _events_of_its_own(self) -> AsyncIterator[ChangeEvent[M]]:
        """The events of a stream this iteration opens and closes (see :meth:`__aiter__`)."""
        # Opened by another task since __aiter__ (or being opened: open() refuses), it is that
        # task's to close. Nothing runs between this test and open()'s claim of the stream.
        opens_it = self._stream is None
        await self.open()
        try:
            while (raw := await self._next_raw(wait=True)) is not None:
                yield self._event(raw)
        finally:
            if opens_it:
                await self.close()

    async def __anext__(self) -> ChangeEvent[M]:
        if self._closed:
            raise StopAsyncIteration
        raw = await self._next_raw(wait=True)
        if raw is None:
            raise StopAsyncIteration
        return self._event(raw)

    async def try_next(self) -> ChangeEvent[M] | None:
        """Return the next event, or ``None`` when the server has none now (one round trip,
        waiting at most ``max_await_time_ms``); opens the stream if needed."""
        raw = await self._next_raw(wait=False)
        return None if raw is None else self._event(raw)

    async def _next_raw(self, *, wait: bool) -> dict[str, Any] | None:
        """Return the next raw event: waiting for one (``wait``; ``None`` once the stream has
        ended), or ``None`` when the server has none now. Opens the stream if needed, and
        opens it again when its session block has ended."""
        self._refuse_other_loop("read")
        with self._in_use():
            await self.open()
            await self._outlive_ended_session()
            try:
                raw: dict[str, Any] | None = await (
                    self._stream.next() if wait else self._stream.try_next()
                )
            except StopAsyncIteration:
                return None
            except PyMongoError as exc:
                if self._closed:  # another task closed it meanwhile: the server killed the read
                    return None
                if isinstance(exc, OperationFailure):
                    raise_if_no_change_streams(exc)
                raise
            return raw

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        """Mark this task as the one opening or reading the stream until the block ends (the
        same task may enter again); refuse, before anything is sent, another task meanwhile:
        the server would refuse a second getMore and the driver then kill the cursor under the
        first, and a second opening would open a second cursor."""
        task, user = asyncio.current_task(), self._user
        if user is task:
            yield
            return
        if user is not None:
            raise QueryError(
                f"this change stream is being read (or opened) by task {user.get_name()!r}: "
                "read a stream from one task at a time (give each task a watch() of its own, "
                "or pass the events on through an asyncio.Queue)"
            )
        self._user = task
        try:
            yield
        finally:
            self._user = None

    def _refuse_other_loop(self, action: str) -> None:
        """Raise :class:`QueryError` when the running event loop is not the one the stream was
        opened in: its cursor belongs to that loop's client, which cannot ``action`` it from
        here (or, with Motor, would and lose what it read)."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise QueryError(
                f"cannot {action} this change stream in another event loop than the one that "
                "opened it: its cursor belongs to that loop's client; open a stream with "
                "watch() in each event loop"
            )

    async def close(self) -> None:
        """Close the server cursor; iterating afterwards ends at once, and so does a read
        another task is waiting on."""
        self._refuse_other_loop("close")
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


async def _close_quietly(stream: Any) -> None:
    """Close a driver stream the change stream no longer reads, whatever the driver answers:
    a cursor it cannot kill now (one of an ended session) it kills from its background task,
    within about a second."""
    with suppress(PyMongoError):
        await stream.close()


# -- from a queryset to a stream -------------------------------------------------------------


def watch_query(
    query: Query,
    *,
    full_document: str = "updateLookup",
    full_document_before_change: str | None = None,
    resume_after: Mapping[str, Any] | None = None,
    start_after: Mapping[str, Any] | None = None,
    start_at_operation_time: Timestamp | None = None,
    batch_size: int | None = None,
    max_await_time_ms: int | None = None,
) -> ChangeStream[Any]:
    """Return the stream (not open yet) of the changes to the documents ``query`` matches:
    what ``QuerySet.watch()`` returns. What a change stream cannot follow (a slice,
    ``values()``, ``search()``, a ``near`` filter, a collation, ...) and options that cannot
    work raise :class:`QueryError` here, before anything is sent."""
    refuse_unwatchable(query)
    check_options(
        full_document,
        full_document_before_change,
        {
            "resume_after": resume_after,
            "start_after": start_after,
            "start_at_operation_time": start_at_operation_time,
        },
    )
    for name, count in (("batch_size", batch_size), ("max_await_time_ms", max_await_time_ms)):
        if count is not None:
            check_cursor_option(name, count)
    pipeline = event_pipeline(query)
    options: dict[str, Any] = {"full_document": full_document}
    for name, value in (
        ("full_document_before_change", full_document_before_change),
        ("resume_after", resume_after),
        ("start_after", start_after),
        ("start_at_operation_time", start_at_operation_time),
        ("batch_size", batch_size),
        ("max_await_time_ms", max_await_time_ms),
    ):
        if value is not None:
            options[name] = dict(value) if isinstance(value, Mapping) else value
    load = _load_lenient if query.lenient else _load_strict
    return ChangeStream(query.model, pipeline, options, load)


def refuse_unwatchable(query: Query) -> None:
    """Raise :class:`QueryError`, naming ``watch()`` and the culprit, when ``query`` asks for
    something a change stream cannot do (the server would refuse it with an untyped error, or
    worse, ignore it and deliver other events than the queryset matches)."""
    if query.nothing:
        raise QueryError("watch() on none() would never deliver an event")
    if query.is_sliced:
        raise QueryError(
            "watch() cannot follow a sliced queryset: a change stream has no order and no "
            "positions; filter it instead"
        )
    if query.values_fields is not None or query.grouped:
        raise QueryError(
            "watch() streams documents: it cannot follow values(), values_list() or annotate()"
        )
    extras = query.extras
    if extras.search is not None:
        raise QueryError(
            "watch() cannot follow search(): a change stream cannot use a text index; "
            "filter on the fields instead"
        )
    if extras.geo_near is not None:
        raise QueryError(
            "watch() cannot follow geo_near(): a change stream has no distances; "
            "filter with __within instead"
        )
    if extras.collation is not None and query.where and extras.collation.get("locale") != "simple":
        raise QueryError(
            "watch() cannot filter with collation(): a change stream compares strings binary "
            "(the server ignores a collation there), so it would miss changes that count() "
            "matches; drop collation() and filter on the stored values"
        )


def event_pipeline(query: Query) -> list[dict[str, Any]]:
    """Return the pipeline of ``query``'s change stream: its filter, matched on what each
    event carries; the events about the collection itself (:data:`STREAM_EVENTS`) pass
    whatever the filter."""
    match = _event_match(_collection_filter(query), _class_condition(query.model))
    if match is None:
        return []
    stream_events = {"operationType": {"$in": list(STREAM_EVENTS)}}
    return [{"$match": {"$or": [stream_events, match]}}]


def _collection_filter(query: Query) -> dict[str, Any]:
    """Return the filter ``query`` adds to its class condition, as it runs on the collection."""
    parts: list[dict[str, Any]] = []
    for where in query.where:
        if where.joins:
            raise QueryError("watch() cannot filter across references")
        parts.append(where.mql)
    return and_mql(parts)


def _class_condition(model: type[Any]) -> dict[str, Any]:
    """Return the ``_cls`` condition of a polymorphic subclass (empty for any other class)."""
    meta: Any = getattr(model, "_meta", None)
    # Only Options has class_values: another _meta (or none) needs no condition.
    condition: dict[str, Any] = meta.class_filter() if getattr(meta, "class_values", None) else {}
    return condition


def _event_match(
    filter: Mapping[str, Any], class_condition: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Return the condition a change event must meet to be delivered (``None``: every event).

    An event is delivered only when the filter can be proved on it. A filter on ``_id`` alone
    is proved on every event (each carries ``documentKey``); any other is proved on the
    document after the change, or, for a delete, on the document before it (present when the
    stream asks for it and the collection keeps pre-images). A subclass's class condition is
    proved the same way, except that when the filter names its ids (``id=x``, ``id__in``) an
    event that carries no document at all (a delete without a pre-image) is delivered on its
    id alone.
    """
    if not filter and not class_condition:
        return None
    if filter and _on_id_only(filter):
        by_key = _prefix_filter(filter, _AFTER)
        if not class_condition:
            return by_key
        if _names_ids(filter):
            return and_mql([by_key, _class_where_known(class_condition)])
    whole = and_mql([dict(filter), dict(class_condition)])
    deleted = and_mql([{"operationType": "delete"}, _proved_on(_BEFORE, whole)])
    return {"$or": [_proved_on(_AFTER, whole), deleted]}


def _proved_on(image: str, filter: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``filter`` matched on the event's document ``image``, which the event must carry
    (a negative filter would otherwise match an event without it, for want of the field)."""
    return and_mql([{image: {"$type": "object"}}, _prefix_filter(filter, image)])


def _class_where_known(class_condition: Mapping[str, Any]) -> dict[str, Any]:
    """Return the class condition on whichever document the event carries, after the change
    or else before it; an event that carries neither passes."""
    return {
        "$or": [
            _proved_on(_AFTER, class_condition),
            and_mql(
                [{_AFTER: {"$not": {"$type": "object"}}}, _proved_on(_BEFORE, class_condition)]
            ),
            {_AFTER: {"$not": {"$type": "object"}}, _BEFORE: {"$not": {"$type": "object"}}},
        ]
    }


def _on_id_only(filter: Mapping[str, Any]) -> bool:
    """Tell whether a collection filter tests nothing but ``_id`` (what every event carries,
    as ``documentKey._id``)."""
    for key, value in filter.items():
        if key in ("$and", "$or", "$nor"):
            if not all(_on_id_only(part) for part in value):
                return False
        elif key != ID_KEY:
            return False
    return True


def _names_ids(filter: Mapping[str, Any]) -> bool:
    """Tell whether a filter on ``_id`` alone keeps only ids it names (``id=x``, ``id__in``;
    not ``exclude(id=x)``), so that an event about any other document cannot pass it."""
    for key, value in filter.items():
        if key == "$and":
            named = any(_names_ids(part) for part in value)
        elif key == "$or":
            named = bool(value) and all(_names_ids(part) for part in value)
        elif key == ID_KEY:
            named = not isinstance(value, Mapping) or "$eq" in value or "$in" in value
        else:
            named = False
        if named:  # the top level ANDs its keys: one that names ids is enough
            return True
    return False


def _prefix_filter(filter: Mapping[str, Any], image: str) -> dict[str, Any]:
    """Rewrite a collection filter for change events, whose document is under ``image``
    (``_id`` is tested on ``documentKey``, which every event carries); refuse what a change
    stream's ``$match`` cannot run."""
    out: dict[str, Any] = {}
    for key, value in filter.items():
        if key in ("$and", "$or", "$nor"):
            out[key] = [_prefix_filter(part, image) for part in value]
        elif key == "$expr":
            raise QueryError("watch() cannot use F() expressions in its filter")
        elif key.startswith("$"):
            raise QueryError(f"watch() cannot use {key} in its filter")
        elif isinstance(value, Mapping) and "$near" in value:
            raise QueryError(
                f"watch() cannot filter with __near (on {key!r}): a change stream has no "
                "distances; filter with __within instead",
                field=key,
            )
        elif key == ID_KEY:
            out["documentKey._id"] = value
        else:
            out[f"{image}.{key}"] = value
    return out


def _load_strict(model: type[Any], raw: dict[str, Any]) -> Any:
    """Validate one stored document (a change event's) into ``model``: a document that does
    not fit raises pydantic's ``ValidationError``."""
    return load_documents(model, [raw])[0]


def _load_lenient(model: type[Any], raw: dict[str, Any]) -> Any:
    """Validate one stored document (a change event's) into ``model``, or an
    ``odm.Invalid`` when it does not fit (``lenient()``)."""
    return load_documents(model, [raw], lenient=True)[0]
