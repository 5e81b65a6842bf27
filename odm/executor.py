"""The executor: the ONLY module that calls a driver collection.

Every function takes the Document class, finds its collection (cached per model and
database), runs one driver call under the model's read preference / write concern, inside
``timeout=`` (the driver's client-side operation timeout) and with the session bound by
``odm.transaction()`` / ``odm.session()`` (:func:`odm.session.current_session`): callers never
pass a session, so nothing inside a transaction can run outside it. A broken unique index
becomes :class:`odm.DuplicateKey`. Reads return raw BSON dicts; turning them into documents is
:func:`odm.models.loading.load_documents`'s job.

Kept small on purpose: this is the hot path that benchmarks compare with raw PyMongo.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AbstractContextManager
from types import CoroutineType
from typing import Any, Final

import bson
import pymongo
from bson.errors import InvalidDocument
from bson.raw_bson import RawBSONDocument
from pydantic import ValidationError
from pymongo import ReturnDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from . import connection as _connection
from . import drivers
from .codec import CODEC_OPTIONS, NAIVE_CODEC_OPTIONS
from .concerns import as_read_preference, as_write_concern
from .connection import database_for
from .exceptions import DuplicateKey, OperationTimeout, QueryError
from .nesting import check_payload
from .refusals import field_path as _field_path
from .refusals import outcome as _refusal_outcome
from .refusals import stored_value_refusal
from .session import current_session, current_unit_of_work, operation_session
from .timeouts import check_timeout, deadline_after, is_timeout, time_left

__all__ = [
    "CODEC_OPTIONS",
    "CommandTooLarge",
    "aggregate",
    "aggregate_list",
    "bulk_write",
    "collection",
    "count_documents",
    "create_indexes",
    "delete_many",
    "delete_one",
    "distinct",
    "drop_index",
    "encode_chunk",
    "estimated_document_count",
    "explain",
    "find",
    "find_list",
    "find_one",
    "find_one_and_delete",
    "find_one_and_update",
    "insert_chunk",
    "insert_one",
    "list_indexes",
    "replace_one",
    "unencodable_error",
    "update_many",
    "update_one",
    "watch",
    "write_guard",
]


# model -> (connection.version, collection object): the collection is rebuilt after a
# connect or disconnect (its database may have changed), and otherwise costs one dict lookup.
_collections: dict[type[Any], tuple[int, Any]] = {}


def collection(model: type[Any]) -> Any:
    """Return the driver collection of ``model`` with its codec, read and write defaults."""
    cached = _collections.get(model)
    if cached is not None and cached[0] == _connection.version:
        return cached[1]
    version = _connection.version
    meta = model._meta
    coll = database_for(model).get_collection(
        meta.collection,
        codec_options=CODEC_OPTIONS,
        read_preference=meta.read_preference,
        write_concern=meta.write_concern,
    )
    _collections[model] = (version, coll)
    return coll


# model -> (connection.version, the collection decoding naive datetimes).
_naive_collections: dict[type[Any], tuple[int, Any]] = {}


def _naive_collection(model: type[Any]) -> Any:
    cached = _naive_collections.get(model)
    if cached is not None and cached[0] == _connection.version:
        return cached[1]
    version = _connection.version
    naive = collection(model).with_options(codec_options=NAIVE_CODEC_OPTIONS)
    _naive_collections[model] = (version, naive)
    return naive


def _with(coll: Any, write_concern: Any = None, read_preference: Any = None) -> Any:
    if write_concern is None and read_preference is None:
        return coll
    return coll.with_options(
        write_concern=as_write_concern(write_concern),
        read_preference=as_read_preference(read_preference),
    )


def _duplicate(model: type[Any], details: Mapping[str, Any] | None, exc: BaseException) -> Any:
    """Return the DuplicateKey for the server's write error ``details`` (``errmsg``,
    ``keyPattern``, ``keyValue``), its parts as attributes."""
    details = details or {}
    message = str(details.get("errmsg") or exc)
    # The server names the index only in its message: "... index: email_1 dup key: {...}".
    index = message.split("index: ", 1)[1].split(" ", 1)[0] if "index: " in message else None
    key = details.get("keyValue")
    pattern = details.get("keyPattern")
    collection = model._meta.collection
    shown = index if index is not None else "?"
    return DuplicateKey(
        f"{model.__name__} ({collection}): duplicate key {key!r} breaks unique index {shown!r}",
        model=model,
        collection=collection,
        index=index,
        key={
            _field_path(model, str(name)): value
            for name, value in (key.items() if isinstance(key, Mapping) else ())
        },
        fields=tuple(
            _field_path(model, str(name))
            for name in (pattern if isinstance(pattern, Mapping) else ())
        ),
    )


#: Server errors that mean the query itself is wrong, not the server: an invalid regular
#: expression (51091, the ``regex`` lookups pass the caller's pattern on, which its message
#: quotes; it quotes nothing stored). A path that cannot be created (28, ``address.city``
#: where ``address`` is null) quotes the stored value in the way: see :mod:`odm.refusals`.
_REFUSED_QUERY_CODES = frozenset({51091})


def _unencodable(model: type[Any], payload: Any, exc: BaseException) -> Exception:
    """Return pydantic's ValidationError naming the field whose value BSON cannot encode
    (a NUL byte in a key, an integer beyond 64 bits, a lone surrogate...), found by encoding
    field by field."""
    for document in payload or ():
        if not isinstance(document, Mapping):  # an update pipeline: nothing to point at
            continue
        for key, value in document.items():
            # An update document holds {"$set": {"path": value}}: look one level down.
            pairs = value.items() if key.startswith("$") and isinstance(value, Mapping) else [
                (key, value)
            ]
            for path, item in pairs:
                try:
                    # As the driver encodes it: enums, dates and sets are storable.
                    bson.encode({"v": item}, codec_options=CODEC_OPTIONS)
                except _ENCODING_ERRORS as error:
                    return ValidationError.from_exception_data(
                        model.__name__,
                        [{
                            "type": "value_error",
                            "loc": tuple(str(path).split(".")),
                            "input": item,
                            "ctx": {"error": ValueError(f"cannot be stored in BSON: {error}")},
                        }],
                    )
    return ValidationError.from_exception_data(
        model.__name__,
        [{
            "type": "value_error",
            "loc": (),
            "input": None,
            "ctx": {"error": ValueError(f"a value cannot be stored in BSON: {exc}")},
        }],
    )


def _parallel_arrays(exc: OperationFailure) -> bool:
    """Tell whether the server refused a sort on two array fields of one document (a free-form
    field can hold arrays the model does not announce, so order_by cannot always see it)."""
    return exc.code == _BAD_VALUE and "parallel arrays" in str(exc)


#: What the encoder raises for a value BSON cannot hold: a NUL in a key, an integer beyond
#: 64 bits, a lone surrogate in a string (JSON allows "\ud800"; UTF-8 cannot encode it).
#: A tuple: built once, not per call.
_ENCODING_ERRORS = (InvalidDocument, OverflowError, UnicodeEncodeError)

_BAD_VALUE = 2


class CommandTooLarge(QueryError, DocumentTooLarge):
    """A command over MongoDB's 16 MB limit, refused by the driver before it was sent: a
    filter holding a huge list or string, an update or a document too big to store; or a
    write the server refused because the document it would store is over that limit
    (:func:`_too_large_write`).

    A :class:`~odm.exceptions.QueryError` (the caller's input is at fault: a web layer
    answers it 400), and still the driver's ``DocumentTooLarge`` for code that catches that.
    """


#: The writes the driver may split into several messages, one of which can be over the limit
#: after others were sent: their caller (odm.bulk) reads the driver's error itself.
_SPLIT_WRITES: Final = frozenset({"insert_many", "bulk_write"})

#: What each kind of command holds that made it too large, for the error's message.
_TOO_LARGE_SUBJECT: Final = {
    "insert": "the document",
    "replace": "the document",
    "update": "the update",
    "update_many": "the update",
    "find_one_and_update": "the filter or the update",
}

#: What a query over the limit can do instead (a document or an update cannot shrink).
_SPLIT_HINT: Final = (
    "; a long list of values (id__in=...) can be sent in several smaller queries"
)


def _too_large_message(model: type[Any], what: str, exc: BaseException) -> str:
    """Say which command of ``model`` went over the 16 MB limit, and what to do instead."""
    subject = _TOO_LARGE_SUBJECT.get(what)
    hint = ""
    if subject is None:
        subject, hint = "the query (its filter)", _SPLIT_HINT
    return (
        f"{model.__name__} {what}: {subject} is larger than MongoDB's 16 MB limit on a "
        f"command, so nothing was sent ({exc}){hint}"
    )


# -- a write the server refused for a document over 16 MB ------------------------------------

#: The server's codes for a write whose document is over 16 MB: BadValue ("object to insert
#: too large", a document over by less than 16 KB, which the driver lets through), an update
#: whose result would be over it, BSONObjectTooLarge (a result over by more).
_TOO_LARGE_RESULT: Final = 17419
_TOO_LARGE_DOCUMENT_CODES: Final = frozenset({_BAD_VALUE, _TOO_LARGE_RESULT, 10334})
#: Where the server's message of a BSONObjectTooLarge starts quoting the document.
_FIRST_ELEMENT: Final = " First element:"
#: What was too large, by write (the others: "the updated document would be").
_TOO_LARGE_STORED: Final = {
    "insert": "the document is",
    "replace": "the document is",
    "update_many": "a matching document, updated, would be",
}


def _too_large_write(model: type[Any], what: str, exc: OperationFailure) -> QueryError | None:
    """Return the :class:`CommandTooLarge` for a single write (``insert()``, ``save()``,
    ``update()``) the server refused because the document it would store is over MongoDB's
    16 MB limit; ``None`` for any other error. Only the server's short message is quoted:
    its whole reply (cluster time, signature, the document) stays in ``__cause__``."""
    if exc.code not in _TOO_LARGE_DOCUMENT_CODES or what not in _TOO_LARGE_SUBJECT:
        return None
    message = str((exc.details or {}).get("errmsg") or "")
    if exc.code == _BAD_VALUE and "too large" not in message:
        return None
    # BSONObjectTooLarge goes on with the document's first element (its _id, stored data).
    message = message.partition(_FIRST_ELEMENT)[0]
    subject = _TOO_LARGE_STORED.get(what, "the updated document would be")
    return CommandTooLarge(
        f"{model.__name__} {what}: {subject} larger than MongoDB's 16 MB limit on a "
        f"document, so the server refused it; {_refusal_outcome(what)} (the server said: "
        f"{message[:200]})"
    )


# -- a cancellation Python 3.11 loses --------------------------------------------------------

#: Python 3.11's ``asyncio.wait_for`` returns what it waited for when its caller is cancelled
#: as that finishes (gh-86296, fixed in 3.12), and PyMongo sends every command through it when
#: the call has a time limit (``timeout()``, ``pymongo.timeout()``, a client's ``timeoutMS`` or
#: ``socketTimeoutMS``): a cancellation in the first turns of the event loop after a command was
#: sent was lost, and the caller ran on as if never cancelled (to its next write, to its
#: block's commit). Where the interpreter loses them, each driver call counts the
#: cancellations requested of its task, and raises the one it lost.
_LOSES_CANCELS: Final = sys.version_info < (3, 12)


def _cancels_requested() -> int:
    """Return how many cancellations of the current task are pending (0 outside a task)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _raise_lost_cancel(model: type[Any], what: str, before: int) -> None:
    """Raise the ``CancelledError`` of a cancellation requested since ``before`` (the count
    of :func:`_cancels_requested` when the call started) that the driver call ``what`` on
    ``model`` returned through; the call is cut off for the unit of work, as one that the
    cancellation reached on its way would be (its outcome is learnt or the block fails)."""
    if _cancels_requested() > before:
        _cut_off(model, what, answered=True)
        raise asyncio.CancelledError(f"cancelled while {model.__name__} {what} finished")


def _unstart_unsent() -> None:
    """Nothing was sent: leave the current transaction (if any) as it was."""
    session = current_session()
    if session is not None:
        drivers.unstart_unsent_transaction(session)


class _run:
    """Run a driver call: under ``timeout`` (``pymongo.timeout()`` entered only when one is
    given), with a broken unique index raised as :class:`odm.DuplicateKey` and a passed
    deadline as :class:`odm.OperationTimeout` naming the model and ``what`` (the operation;
    the message is only built when there is an error).

    A class rather than a generator-based context manager: it runs around every driver call,
    and without a timeout it costs two method calls. The calls of every get(), page, save()
    and update() (``find_one``, ``find_list``, ``update_one``) without a timeout do its work
    without it: an ``except`` calling :func:`_raise_mapped` costs nothing until a call fails.
    """

    __slots__ = ("_cancels", "_deadline", "model", "payload", "sort", "timeout", "what")

    def __init__(
        self,
        model: type[Any],
        what: str,
        timeout: float | None,
        payload: Any = None,
        sort: Any = None,
    ) -> None:
        self.model = model
        self.what = what
        self.timeout = timeout
        #: The documents or update being written: read only to name the culprit of an
        #: encoding error, so the happy path pays nothing for it.
        self.payload = payload
        #: The sort of a read, to name its fields when the server refuses it.
        self.sort = sort
        self._deadline: Any = None
        self._cancels = 0

    def __enter__(self) -> None:
        if _LOSES_CANCELS:
            self._cancels = _cancels_requested()
        payload = self.payload
        if payload is not None:
            check_payload(self.model, payload)  # the server's depth errors are untyped
        timeout = self.timeout
        if timeout is not None:
            check_timeout(timeout)
            self._deadline = pymongo.timeout(timeout)
            self._deadline.__enter__()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._deadline is not None:
            self._deadline.__exit__(exc_type, exc, tb)
            self._deadline = None
        if exc is not None:
            _raise_mapped(exc, self.model, self.what, self.timeout, self.payload, self.sort)
        elif _LOSES_CANCELS:
            _raise_lost_cancel(self.model, self.what, self._cancels)


def _raise_mapped(
    exc: BaseException,
    model: type[Any],
    what: str,
    timeout: float | None,
    payload: Any = None,
    sort: Any = None,
) -> None:
    """Raise odm's error for ``exc``, which the driver call ``what`` on ``model`` raised (or
    tell the bound unit of work that it was cut off or refused, and return: the caller lets
    ``exc`` go on). What :class:`_run` does on exit; the hottest calls (``find_one``,
    ``find_list``, ``update_one``) call it from an ``except`` of their own instead, which
    costs nothing until something fails."""
    if isinstance(exc, _ENCODING_ERRORS):
        if isinstance(exc, DocumentTooLarge):
            if what in _SPLIT_WRITES:
                return  # odm.bulk tells which of its messages went out
            _unstart_unsent()
            raise CommandTooLarge(_too_large_message(model, what, exc)) from exc
        _unstart_unsent()
        raise _unencodable(model, payload, exc) from exc
    if isinstance(exc, asyncio.CancelledError):
        _cut_off(model, what)
        return
    if not isinstance(exc, PyMongoError):
        return
    if is_timeout(exc):
        _cut_off(model, what, answered=isinstance(exc, OperationFailure))
        limit = f" within {timeout:g} s" if timeout is not None else ""
        raise OperationTimeout(
            f"{model.__name__} {what} did not finish{limit}: {exc}"
        ) from exc
    if isinstance(exc, ConnectionFailure):
        # The command may have run on the server, inside the transaction, with its reply
        # lost: committing would keep a write its caller could not record.
        _cut_off(model, what)
        return
    if isinstance(exc, OperationFailure):
        # An update a stored value refused: the server's message quotes the document, the
        # QueryError only the update's fields and the type held (the server's error stays
        # its __cause__, for logs).
        refusal = _stored_value_refusal(model, what, payload, exc)
        # Inside a transaction the server aborted it (or will not let it commit).
        _refused(model, what, exc, refusal)
        if refusal is not None:
            raise refusal from exc
    if isinstance(exc, OperationFailure) and (
        exc.code in _REFUSED_QUERY_CODES or _parallel_arrays(exc)
    ):
        message = (exc.details or {}).get("errmsg") or str(exc)
        fields = [key for key, _ in sort] if sort else []
        raise QueryError(
            f"{model.__name__} {what}: the server refused it: {message}"
            + (f" (sorted by {', '.join(fields)})" if fields else ""),
            field=fields[0] if fields else None,
        ) from exc
    if isinstance(exc, OperationFailure) and not isinstance(exc, BulkWriteError):
        too_large = _too_large_write(model, what, exc)
        if too_large is not None:
            raise too_large from exc
    if isinstance(exc, DuplicateKeyError):
        raise _duplicate(model, exc.details, exc) from exc
    if isinstance(exc, BulkWriteError):
        errors = (exc.details or {}).get("writeErrors") or []
        if errors and all(e.get("code") == 11000 for e in errors):
            raise _duplicate(model, errors[0], exc) from exc


def _sent(call: Any) -> Any:
    """Return the awaitable of a driver call (``call``, its result), held by the bound unit of
    work when the call runs in a thread (Motor).

    PyMongo's calls are coroutines of the caller's task, which a cancellation stops. Motor
    runs each call in a thread and returns a future; a cancellation cancels the future, not
    the thread, which may still send its command after the block has ended (see
    :meth:`odm.uow.UnitOfWork.outlive`), or, outside a block, after the document whose write
    it is read what is stored (see :func:`odm.drivers.outlived`).
    """
    if type(call) is CoroutineType or not isinstance(call, asyncio.Future):
        return call
    uow = current_unit_of_work()
    if uow is None:
        return drivers.outlived(call)
    return uow.outlive(call)


def _cut_off(model: type[Any], what: str, *, answered: bool = False) -> None:
    """Tell the bound unit of work, if any, that the driver call ``what`` on ``model`` was cut
    off (see :meth:`odm.uow.UnitOfWork.cut_off`); ``answered``: the server's answer came (a
    timeout it reported, a cancellation that came as the call returned)."""
    uow = current_unit_of_work()
    if uow is not None:
        uow.cut_off(f"{model.__name__} {what}", answered=answered)


def _refused(
    model: type[Any], what: str, exc: OperationFailure, refusal: QueryError | None = None
) -> None:
    """Tell the bound unit of work, if any, that the server refused the driver call ``what``
    on ``model`` with ``exc`` (see :meth:`odm.uow.UnitOfWork.refused`); ``refusal``, odm's
    words for it, when the server's message quotes stored values."""
    uow = current_unit_of_work()
    if uow is not None:
        prefix = f"{model.__name__} {what}"
        shown = None if refusal is None else str(refusal).removeprefix(prefix + ": ")
        uow.refused(prefix, exc, shown)


def _stored_value_refusal(
    model: type[Any], what: str, payload: Any, exc: OperationFailure
) -> QueryError | None:
    """Return the ``QueryError`` for ``exc`` when it is an update a stored value refused
    (:func:`odm.refusals.stored_value_refusal`), a bulk write's first write error included
    (the unit of work's flush: ``payload`` holds its updates in order); else ``None``."""
    details = exc.details if isinstance(exc.details, Mapping) else {}
    if isinstance(exc, BulkWriteError):
        errors = details.get("writeErrors") or []
        first = errors[0] if errors and isinstance(errors[0], Mapping) else None
        if first is None:
            return None
        index = first.get("index")
        update = (
            payload[index : index + 1]
            if isinstance(index, int) and isinstance(payload, Sequence)
            else None
        )
        return stored_value_refusal(
            model, what, update, first.get("code"), str(first.get("errmsg") or "")
        )
    return stored_value_refusal(model, what, payload, exc.code, str(details.get("errmsg") or ""))


# -- reads -----------------------------------------------------------------------------------


async def find_one(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    projection: Any = None,
    sort: Sequence[tuple[str, int]] | None = None,
    skip: int = 0,
    timeout: float | None = None,
    read_preference: Any = None,
    tz_aware: bool = True,
    **options: Any,
) -> dict[str, Any] | None:
    """Return the first raw document matching ``filter``, or ``None`` (``tz_aware=False``:
    datetimes decoded naive, for ``load_documents(fixer=...)``)."""
    source = collection(model) if tz_aware else _naive_collection(model)
    coll = _with(source, read_preference=read_preference)
    if timeout is not None:
        with _run(model, "find_one", timeout):
            timed: dict[str, Any] | None = await _sent(coll.find_one(
                filter, projection, sort=sort, skip=skip, session=operation_session(model),
                **options,
            ))
        return timed
    # _run's work without its object: one read per get(), and nothing to do unless it fails.
    cancels = _cancels_requested() if _LOSES_CANCELS else 0
    try:
        result: dict[str, Any] | None = await _sent(coll.find_one(
            filter, projection, sort=sort, skip=skip, session=operation_session(model), **options
        ))
    except BaseException as exc:
        _raise_mapped(exc, model, "find_one", None)
        raise
    if _LOSES_CANCELS:
        _raise_lost_cancel(model, "find_one", cancels)
    return result


async def find(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    projection: Any = None,
    sort: Sequence[tuple[str, int]] | None = None,
    skip: int = 0,
    limit: int = 0,
    batch_size: int = 0,
    timeout: float | None = None,
    read_preference: Any = None,
    tz_aware: bool = True,
    **options: Any,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Yield the raw documents matching ``filter`` batch by batch (memory stays flat;
    ``tz_aware=False``: datetimes decoded naive, for ``load_documents(fixer=...)``).

    ``timeout`` covers the whole iteration: each batch gets what is left of it. Close the
    generator (``aclose()`` or ``contextlib.aclosing``) when stopping early, so the server
    cursor is killed at once.
    """
    source = collection(model) if tz_aware else _naive_collection(model)
    coll = _with(source, read_preference=read_preference)
    if batch_size:
        options["batch_size"] = batch_size
    cursor = coll.find(
        filter, projection, sort=sort, skip=skip, limit=limit, session=operation_session(model),
        **options,
    )
    chunk = batch_size or 1000
    deadline = deadline_after(timeout)
    what = "find"
    try:
        while True:
            left = time_left(deadline, 1e-6)
            with _run(model, what, left, sort=sort):
                batch: list[dict[str, Any]] = await _sent(cursor.to_list(chunk))
            if not batch:
                return
            yield batch
    finally:
        await drivers.resolve(cursor.close())


async def find_list(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    projection: Any = None,
    sort: Sequence[tuple[str, int]] | None = None,
    skip: int = 0,
    limit: int = 0,
    timeout: float | None = None,
    read_preference: Any = None,
    tz_aware: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """Return every raw document matching ``filter`` as one list (``tz_aware=False``:
    datetimes decoded naive, for ``load_documents(fixer=...)``)."""
    source = collection(model) if tz_aware else _naive_collection(model)
    coll = _with(source, read_preference=read_preference)
    if timeout is not None:
        with _run(model, "find", timeout, sort=sort):
            timed = coll.find(
                filter, projection, sort=sort, skip=skip, limit=limit,
                session=operation_session(model), **options,
            )
            found: list[dict[str, Any]] = await _sent(timed.to_list(None))
        return found
    # _run's work without its object (see find_one).
    cancels = _cancels_requested() if _LOSES_CANCELS else 0
    try:
        cursor = coll.find(
            filter, projection, sort=sort, skip=skip, limit=limit, session=operation_session(model),
            **options,
        )
        result: list[dict[str, Any]] = await _sent(cursor.to_list(None))
    except BaseException as exc:
        _raise_mapped(exc, model, "find", None, sort=sort)
        raise
    if _LOSES_CANCELS:
        _raise_lost_cancel(model, "find", cancels)
    return result


async def count_documents(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    timeout: float | None = None,
    read_preference: Any = None,
    **options: Any,
) -> int:
    """Return how many documents match ``filter`` (``skip=`` / ``limit=`` / ``hint=`` pass on)."""
    coll = _with(collection(model), read_preference=read_preference)
    with _run(model, "count", timeout):
        count: int = await _sent(
            coll.count_documents(filter, session=operation_session(model), **options)
        )
    return count


async def estimated_document_count(model: type[Any], *, timeout: float | None = None) -> int:
    """Return the collection's size from its metadata (fast, ignores transactions' writes)."""
    with _run(model, "estimated count", timeout):
        count: int = await collection(model).estimated_document_count()
    return count


async def distinct(
    model: type[Any],
    key: str,
    filter: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    read_preference: Any = None,
) -> list[Any]:
    """Return the distinct values of ``key`` among the documents matching ``filter``."""
    coll = _with(collection(model), read_preference=read_preference)
    with _run(model, "distinct", timeout):
        values: list[Any] = await _sent(
            coll.distinct(key, filter, session=operation_session(model))
        )
    return values


async def aggregate(
    model: type[Any],
    pipeline: list[dict[str, Any]],
    *,
    batch_size: int = 0,
    timeout: float | None = None,
    read_preference: Any = None,
    **options: Any,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Yield the results of ``pipeline`` on ``model``'s collection batch by batch."""
    coll = _with(collection(model), read_preference=read_preference)
    if batch_size:
        options["batchSize"] = batch_size
    chunk = batch_size or 1000
    deadline = deadline_after(timeout)
    what = "aggregate"
    with _run(model, what, timeout):
        cursor = await drivers.aggregate(
            coll, pipeline, session=operation_session(model), **options
        )
    try:
        while True:
            left = time_left(deadline, 1e-6)
            with _run(model, what, left):
                batch: list[dict[str, Any]] = await _sent(cursor.to_list(chunk))
            if not batch:
                return
            yield batch
    finally:
        await drivers.resolve(cursor.close())


async def aggregate_list(
    model: type[Any],
    pipeline: list[dict[str, Any]],
    *,
    timeout: float | None = None,
    read_preference: Any = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Return every result of ``pipeline`` as one list."""
    coll = _with(collection(model), read_preference=read_preference)
    with _run(model, "aggregate", timeout):
        cursor = await drivers.aggregate(
            coll, pipeline, session=operation_session(model), **options
        )
        result: list[dict[str, Any]] = await _sent(cursor.to_list(None))
    return result


# -- writes ----------------------------------------------------------------------------------


async def insert_one(
    model: type[Any],
    document: Mapping[str, Any],
    *,
    timeout: float | None = None,
    write_concern: Any = None,
) -> Any:
    """Insert one raw document; return the driver's ``InsertOneResult``."""
    coll = _with(collection(model), write_concern)
    with _run(model, "insert", timeout, [document]):
        return await _sent(coll.insert_one(document, session=operation_session(model)))


def write_guard(model: type[Any], what: str, timeout: float | None) -> AbstractContextManager[None]:
    """Return the context a write made of several driver calls runs in (``bulk_create``'s
    chunks): one deadline of ``timeout`` for all of them (tasks started inside inherit it) and
    the driver's errors mapped as for a single call (:class:`odm.DuplicateKey`,
    :class:`odm.OperationTimeout`...)."""
    return _run(model, what, timeout)


def unencodable_error(
    model: type[Any], documents: Sequence[Mapping[str, Any]], exc: BaseException
) -> Exception:
    """Return the pydantic ``ValidationError`` naming the field of ``documents`` (stored
    forms) whose value BSON cannot encode; ``exc`` is the encoder's error."""
    return _unencodable(model, documents, exc)


def encode_chunk(
    model: type[Any], documents: Sequence[Mapping[str, Any]]
) -> list[RawBSONDocument]:
    """Encode stored forms as the model's collection would (its codec), ready for
    :func:`insert_chunk`: the driver then copies the bytes instead of encoding, so a caller
    can encode the next chunk while the server inserts the previous one. A value BSON cannot
    hold raises pydantic's ``ValidationError`` naming its field (nothing is sent)."""
    with _run(model, "insert_many", None, documents):
        return [
            RawBSONDocument(bson.encode(document, codec_options=CODEC_OPTIONS))
            for document in documents
        ]


async def insert_chunk(
    model: type[Any], documents: Sequence[Mapping[str, Any]], *, ordered: bool, session: Any
) -> Any:
    """Insert stored forms with one ``insert_many``; return its result.

    Unlike the other functions, ``session`` is passed in (the caller takes it with
    :func:`~odm.session.operation_session` in its own task, so this may run in a helper task)
    and errors are not mapped: call it inside :func:`write_guard`.
    """
    return await _sent(collection(model).insert_many(documents, ordered=ordered, session=session))


async def update_one(
    model: type[Any],
    filter: Mapping[str, Any],
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    upsert: bool = False,
    timeout: float | None = None,
    write_concern: Any = None,
    **options: Any,
) -> Any:
    """Update the first document matching ``filter``; return the ``UpdateResult``."""
    coll = _with(collection(model), write_concern)
    payload = [update]
    if timeout is not None:
        with _run(model, "update", timeout, payload):
            return await _sent(coll.update_one(
                filter, update, upsert=upsert, session=operation_session(model), **options
            ))
    # _run's work without its object (see find_one): one call per save() and per update().
    check_payload(model, payload)  # the server's depth errors are untyped
    cancels = _cancels_requested() if _LOSES_CANCELS else 0
    try:
        updated = await _sent(coll.update_one(
            filter, update, upsert=upsert, session=operation_session(model), **options
        ))
    except BaseException as exc:
        _raise_mapped(exc, model, "update", None, payload)
        raise
    if _LOSES_CANCELS:
        _raise_lost_cancel(model, "update", cancels)
    return updated


async def update_many(
    model: type[Any],
    filter: Mapping[str, Any],
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    upsert: bool = False,
    timeout: float | None = None,
    write_concern: Any = None,
    **options: Any,
) -> Any:
    """Update every document matching ``filter``; return the ``UpdateResult``."""
    coll = _with(collection(model), write_concern)
    with _run(model, "update_many", timeout, [update]):
        return await _sent(coll.update_many(
            filter, update, upsert=upsert, session=operation_session(model), **options
        ))


async def replace_one(
    model: type[Any],
    filter: Mapping[str, Any],
    document: Mapping[str, Any],
    *,
    upsert: bool = False,
    timeout: float | None = None,
    write_concern: Any = None,
) -> Any:
    """Replace the first document matching ``filter``; return the ``UpdateResult``."""
    coll = _with(collection(model), write_concern)
    with _run(model, "replace", timeout, [document]):
        return await _sent(coll.replace_one(
            filter, document, upsert=upsert, session=operation_session(model)
        ))


async def find_one_and_update(
    model: type[Any],
    filter: Mapping[str, Any],
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    projection: Any = None,
    sort: Sequence[tuple[str, int]] | None = None,
    upsert: bool = False,
    return_new: bool = True,
    timeout: float | None = None,
    write_concern: Any = None,
    **options: Any,
) -> dict[str, Any] | None:
    """Update one document atomically and return it (after the update unless
    ``return_new=False``), or ``None`` when nothing matched."""
    coll = _with(collection(model), write_concern)
    with _run(model, "find_one_and_update", timeout):
        result: dict[str, Any] | None = await _sent(coll.find_one_and_update(
            filter,
            update,
            projection=projection,
            sort=sort,
            upsert=upsert,
            return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
            session=operation_session(model),
            **options,
        ))
    return result


async def find_one_and_delete(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    projection: Any = None,
    sort: Sequence[tuple[str, int]] | None = None,
    timeout: float | None = None,
    write_concern: Any = None,
) -> dict[str, Any] | None:
    """Delete one document atomically and return it, or ``None`` when nothing matched."""
    coll = _with(collection(model), write_concern)
    with _run(model, "find_one_and_delete", timeout):
        result: dict[str, Any] | None = await _sent(coll.find_one_and_delete(
            filter, projection=projection, sort=sort, session=operation_session(model)
        ))
    return result


async def delete_one(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    timeout: float | None = None,
    write_concern: Any = None,
    **options: Any,
) -> Any:
    """Delete the first document matching ``filter``; return the ``DeleteResult``
    (``collation=`` passes on)."""
    coll = _with(collection(model), write_concern)
    with _run(model, "delete", timeout):
        return await _sent(coll.delete_one(filter, session=operation_session(model), **options))


async def delete_many(
    model: type[Any],
    filter: Mapping[str, Any],
    *,
    timeout: float | None = None,
    write_concern: Any = None,
    **options: Any,
) -> Any:
    """Delete every document matching ``filter``; return the ``DeleteResult``
    (``collation=`` passes on)."""
    coll = _with(collection(model), write_concern)
    with _run(model, "delete_many", timeout):
        return await _sent(coll.delete_many(filter, session=operation_session(model), **options))


async def bulk_write(
    model: type[Any],
    requests: Sequence[Any],
    *,
    ordered: bool = True,
    timeout: float | None = None,
    write_concern: Any = None,
) -> Any:
    """Send PyMongo write models (``UpdateOne``, ``InsertOne``...) in one ``bulk_write``."""
    coll = _with(collection(model), write_concern)
    with _run(
        model, "bulk_write", timeout, [getattr(r, "_doc", {}) for r in requests]
    ):
        return await _sent(coll.bulk_write(
            list(requests), ordered=ordered, session=operation_session(model)
        ))


# -- indexes and change streams --------------------------------------------------------------


async def create_indexes(
    model: type[Any], indexes: Sequence[Any], *, timeout: float | None = None
) -> list[str]:
    """Create PyMongo ``IndexModel``s on ``model``'s collection; return their names."""
    with _run(model, "create_indexes", timeout):
        names: list[str] = await _sent(collection(model).create_indexes(
            list(indexes), session=operation_session(model)
        ))
    return names


async def list_indexes(model: type[Any], *, timeout: float | None = None) -> list[dict[str, Any]]:
    """Return the server's description of each index of ``model``'s collection (none when the
    collection does not exist yet)."""
    with _run(model, "list_indexes", timeout):
        try:
            cursor = await drivers.resolve(
                collection(model).list_indexes(session=operation_session(model))
            )
            found: list[dict[str, Any]] = [dict(i) for i in await _sent(cursor.to_list(None))]
        except OperationFailure as exc:
            if exc.code == 26:  # NamespaceNotFound: no collection, so no index
                return []
            raise
    return found


async def drop_index(model: type[Any], name: str, *, timeout: float | None = None) -> None:
    """Drop the index ``name`` of ``model``'s collection."""
    with _run(model, "drop_index", timeout):
        await _sent(collection(model).drop_index(name, session=operation_session(model)))


async def explain(
    model: type[Any], command: dict[str, Any], *, timeout: float | None = None
) -> dict[str, Any]:
    """Return the server's ``queryPlanner`` explanation of a ``find`` or ``aggregate``
    command on ``model``'s collection."""
    database = collection(model).database
    with _run(model, "explain", timeout):
        plan: dict[str, Any] = await database.command(
            {"explain": command, "verbosity": "queryPlanner"}, session=operation_session(model)
        )
    return plan


async def watch(
    model: type[Any],
    pipeline: list[dict[str, Any]] | None = None,
    *,
    timeout: float | None = None,
    **options: Any,
) -> Any:
    """Open a change stream on ``model``'s collection and return the driver's stream."""
    with _run(model, "watch", timeout):
        return await drivers.watch(
            collection(model), pipeline or [], session=operation_session(model), **options
        )
