"""``odm_errors_middleware``: ODM, pydantic and driver errors as JSON responses.

Every answer has the shape ``{"error": <short code>, "detail": <message, list or null>}``:

=====================================================  ======  ====================
exception                                              status  ``error``
=====================================================  ======  ====================
``odm.DoesNotExist``                                   404     ``not_found``
pydantic ``ValidationError`` (of the request's data)   400     ``invalid``
``odm.QueryError``, a malformed ObjectId, bad JSON     400     ``invalid``
``odm.DuplicateKey``, pymongo ``DuplicateKeyError``    409     ``duplicate_key``
``odm.StaleDocument``                                  409     ``stale_document``
a write conflict (``TransientTransactionError``)       409     ``conflict``
``odm.OperationTimeout``, driver timeouts              503     ``timeout``
unreachable server (``ConnectionFailure``, ...)        503     ``unavailable``
anything else                                          500     ``internal``
=====================================================  ======  ====================

A 500 says nothing about the cause (the exception is logged instead), so that internals never
reach a client: a stored document that no longer fits its model is a 500, not the client's 400,
and the 404 of a ``Model.DoesNotExist`` the ODM raised names the model, never the filter (which
may hold values the server added: another user's, a secret's hash). ``HTTPException`` and
``CancelledError`` pass through untouched, and so does every error raised after the handler
started its response (a ``StreamResponse`` or a websocket prepared): its status line is gone, and
a second response written into its body would read as part of it; aiohttp closes the connection
instead, so the client sees the response cut short (an ``HTTPException``, which aiohttp would
write as that second response, goes on as a ``RuntimeError`` for it). Put this middleware
outermost so that it also sees errors raised by the commit of the unit of work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from bson.errors import InvalidId
from pydantic import ValidationError
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from odm.exceptions import (
    ConnectionFailed,
    DoesNotExist,
    DuplicateKey,
    OperationTimeout,
    QueryError,
    StaleDocument,
    is_stored_document_error,
)
from odm.timeouts import is_timeout

from .middlewares import logged_path, new_style, response_started
from .responses import json_dumps

logger = logging.getLogger("odm.contrib.aiohttp")

RETRY_AFTER_SECONDS = 1
"""The ``Retry-After`` header sent with a 503: the client may try again shortly."""


ECHO_LIMIT = 1000
"""The most characters of a field or a message an error answer holds, and the most bytes it
takes once written as JSON (an escaped NUL or a non-ASCII character takes six). The messages
of a ``QueryError``, an ``InvalidId`` or a validator quote what the request sent (a key, a
field name, a value), which may be as long as the body: cut in the middle (the reason, at the
end, is kept), an answer stays short whatever was sent."""

MIN_ECHO = 100
"""The most bytes a field or a message of a validation error takes when the answer lists
:data:`MAX_LISTED` of them (they share :data:`ECHO_LIMIT`, down to this)."""

MAX_LISTED = 10
"""The most validation errors (or fields of a duplicate key) an answer lists; a last entry
says how many more there were."""

_FULL_REPLY = ", full error:"
"""What PyMongo puts between a server error's message and the whole reply it appends
(cluster times, signatures, the command): an odm error whose message quotes a driver error
would carry it, and an answer never does."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _json_bytes(char: str) -> int:
    """Bytes ``char`` takes inside a JSON string of an error answer (ASCII only, see
    :func:`error_response`)."""
    if " " <= char <= "~":
        if char in "<>&":  # escaped by error_response
            return 6
        return 2 if char in '"\\' else 1
    if char in "\n\r\t\b\f":
        return 2
    return 12 if ord(char) > 0xFFFF else 6


def _fitting(chars: Iterable[str], budget: int) -> int:
    """Return how many of ``chars`` fit, from the first, in ``budget`` bytes of JSON."""
    count = 0
    for char in chars:
        budget -= _json_bytes(char)
        if budget < 0:
            break
        count += 1
    return count


def _without_server_reply(text: str) -> str:
    """``text`` up to the server's whole reply a driver error's text appends, if any."""
    before, found, _ = text.partition(_FULL_REPLY)
    return f"{before} [the server's reply left out]" if found else text


def _plain_unicode(text: str) -> str:
    """``text`` with every lone surrogate (which no UTF-8 and no strict JSON parser takes)
    replaced by U+FFFD; a pair of surrogates becomes the character it spells."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clipped(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, or when it is longer than ``limit`` characters or takes more than ``limit``
    bytes as JSON, its start and its end around a marker saying how much was cut (``limit``
    characters and bytes in all, at most). The server's whole reply a driver error's text
    appends is left out, and lone surrogates are replaced (U+FFFD)."""
    text = _without_server_reply(text)
    if len(text) > limit or _fitting(text, limit) < len(text):
        kept = limit - _MARKER_ROOM
        head = _fitting(text, kept * 2 // 3)
        tail = _fitting(reversed(text), kept - kept * 2 // 3)
        cut = len(text) - head - tail
        text = f"{text[:head]}...[{cut:,} characters cut]...{text[len(text) - tail:]}"
    return _plain_unicode(text)


_MARKER_ROOM = 40
"""Characters :func:`clipped` leaves for its marker (``...[12,345,678 characters cut]...``)."""


def error_response(
    status: int, error: str, detail: Any = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    """Return the JSON error response ``{"error": error, "detail": detail}`` with ``status``.

    ``<``, ``>`` and ``&`` are written as JSON escapes: a detail quoting ``</script>`` from
    the request reads the same to a JSON parser, and stays inert in a page that embeds it."""
    # Through odm.to_jsonable: a detail may hold an ObjectId or a Decimal. Outside strings
    # JSON has none of the three characters, so replacing them in the text is safe.
    text = json_dumps({"error": error, "detail": detail}).translate(_HTML_ESCAPES)
    return web.Response(
        text=text, status=status, headers=headers, content_type="application/json"
    )


_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
"""The JSON escapes of the characters that mean something in HTML."""


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Input values and ctx are left out: they may be large, secret or not JSON-serializable.
    # The location and the message may quote the request's keys and values: cut short, the
    # more errors there are the shorter, and no more than MAX_LISTED of them.
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    listed = errors[:MAX_LISTED]
    limit = max(ECHO_LIMIT // max(len(listed), 1), MIN_ECHO)
    answer = [
        {
            "field": clipped(".".join(str(part) for part in error["loc"]), limit),
            "message": clipped(error["msg"], limit),
            "type": clipped(error["type"], MIN_ECHO),
        }
        for error in listed
    ]
    if len(errors) > len(listed):
        answer.append(_more(len(errors) - len(listed), "errors"))
    return answer


def _more(count: int, what: str) -> dict[str, Any]:
    """The last entry of a list cut at :data:`MAX_LISTED`: how many more there were."""
    return {"field": None, "message": f"and {count:,} more {what}", "type": "too_many"}


DUPLICATE_KEY_CODES = frozenset({11000, 11001})
"""Server error codes of a unique index violation."""


def _causes(exc: BaseException) -> list[BaseException]:
    # The ODM raises its own errors "from" the driver's: look at the whole chain.
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain


def _duplicate_error(exc: BaseException) -> dict[str, Any] | None:
    """Return the server's write error when ``exc`` (or its cause) is a duplicate key."""
    for cause in _causes(exc):
        if isinstance(cause, DuplicateKeyError):
            return dict(cause.details or {})
        if isinstance(cause, BulkWriteError):
            for error in cause.details.get("writeErrors", []):
                if error.get("code") in DUPLICATE_KEY_CODES:
                    return dict(error)
    if isinstance(exc, DuplicateKey):
        return {}
    return None


def _duplicate_fields(exc: BaseException, error: dict[str, Any]) -> list[str]:
    # The fields that clashed, not their values (keyValue), which may be personal data: as
    # odm's DuplicateKey names them for its model (field names, as filter() takes them), else
    # the server's key pattern (stored keys: a raw driver write).
    fields = exc.fields if isinstance(exc, DuplicateKey) else ()
    names = [str(f) for f in fields] or [str(name) for name in error.get("keyPattern") or {}]
    # A DuplicateKey raised by hand may name anything: as short as a validation error's.
    return [clipped(name, MIN_ECHO) for name in names[:MAX_LISTED]]


def _is_unreachable(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, ServerSelectionTimeoutError | ConnectionFailed):
            return True
        if isinstance(cause, ConnectionFailure) and not is_timeout(cause):
            return True
    return False


def _is_write_conflict(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError")


def _not_found_detail(exc: DoesNotExist) -> str:
    """The 404's detail: the message of an ``odm.DoesNotExist`` raised by hand, or for a
    ``Model.DoesNotExist`` (the ODM's, whose message repeats the whole filter, values
    included) the model's name alone, as Django REST framework answers."""
    model = type(exc).model
    if model is not None:
        return f"no {model.__name__} matches the request"
    # Raised by hand, its message may quote what the request asked for.
    return clipped(str(exc)) or "no such document"


def response_for(exc: Exception) -> web.Response | None:
    """Return the JSON response that ``exc`` maps to, or ``None`` when it is not a known error."""
    if isinstance(exc, DoesNotExist):
        return error_response(404, "not_found", _not_found_detail(exc))
    if isinstance(exc, ValidationError):
        if is_stored_document_error(exc):
            return None
        return error_response(400, "invalid", _field_errors(exc))
    if isinstance(exc, QueryError):
        field = None if exc.field is None else clipped(exc.field)
        return error_response(400, "invalid", [{"field": field, "message": clipped(str(exc))}])
    if isinstance(exc, InvalidId):
        return error_response(400, "invalid", [{"field": None, "message": clipped(str(exc))}])
    if isinstance(exc, json.JSONDecodeError):
        return error_response(
            400, "invalid", f"the request body is not valid JSON: {clipped(exc.msg)}"
        )
    duplicate = _duplicate_error(exc)
    if duplicate is not None:
        return error_response(
            409, "duplicate_key", {"fields": _duplicate_fields(exc, duplicate)}
        )
    if isinstance(exc, StaleDocument):
        return error_response(
            409, "stale_document", "the document was changed by someone else; reload it"
        )
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _is_unreachable(exc):
        return error_response(503, "unavailable", "the database is unreachable", headers=retry)
    if isinstance(exc, OperationTimeout) or is_timeout(exc):
        return error_response(503, "timeout", "the database did not answer in time", headers=retry)
    if _is_write_conflict(exc):
        return error_response(
            409, "conflict", "a concurrent request changed the same data; try again"
        )
    return None


@new_style
async def odm_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the exceptions of the handler (and inner middlewares) into JSON error responses.

    See the module docstring for the table. Unknown exceptions become a bare 500 and are logged
    with their traceback. An error raised once the response has started (an ``HTTPException``
    too) goes on to aiohttp, which logs it and closes the connection.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if response_started(request):
            # aiohttp would write it after the body already sent, as a second response; an
            # error of another kind makes it close the connection instead.
            raise RuntimeError(f"{type(exc).__name__} raised after the response started") from exc
        raise
    except Exception as exc:
        if response_started(request):
            raise
        response = response_for(exc)
        path = logged_path(request)
        if response is not None:
            if response.status >= 500:
                # Not a bug but worth seeing in the logs: the database is slow or away.
                logger.warning("%s %s: %s", request.method, path, _describe(exc))
            return response
        logger.exception("%s %s: unhandled exception", request.method, path)
        return error_response(500, "internal", None)
