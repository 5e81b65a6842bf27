"""``json_body``: a request's JSON body, with every body that cannot be decoded a 400.

``request.json()`` lets through errors no error middleware can tell from a bug (a 500):
``request.text()`` raises ``UnicodeDecodeError`` for bytes that are not valid in the body's
charset, and ``LookupError`` for a ``charset=`` of the ``Content-Type`` that Python does not
know, and :func:`json.loads` a bare ``RecursionError`` or ``ValueError`` for text nested too
deeply or a number too long, and ``request.read()`` a ``RequestPayloadError`` for a body not
valid in its ``Content-Encoding`` (``gzip`` on bytes that are not). Here each becomes the
:class:`json.JSONDecodeError` of a bad body, which ``odm_errors_middleware`` answers with a 400.
The text is read by
:func:`.strict_json.strict_loads` (the admin's JSON inputs are read by it too), which also
refuses what ``json.loads`` takes but is not JSON, or not one meaning: ``NaN``, ``Infinity``
and ``-Infinity``, and an object holding a key twice. What does parse is checked further by the
ODM (a value nesting deeper than MongoDB's 100 levels is refused, typed, before it is sent).

A body whose ``Content-Type`` is one an HTML form or a plain ``fetch()`` on another site may
send without asking (``text/plain``, ``application/x-www-form-urlencoded``,
``multipart/form-data``, or none at all: the "simple requests" of CORS) is refused with a 415,
before it is read: reading it as JSON would let any page a user visits make their browser post
to the API with its cookies (a cross-site request forgery). Every other type, CORS makes the
browser ask the server first.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import ContentEncodingError

from .responses import json_dumps
from .strict_json import NotJSON, strict_loads

CROSS_SITE_CONTENT_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
"""The ``Content-Type`` s a page on another site can make a browser send without a CORS
preflight: ``json_body`` refuses them, and a body without one (415)."""


def _decode(raw: bytes, charset: str | None) -> str:
    """``raw`` as text in ``charset`` (UTF-8 when none is given, as aiohttp does).

    The messages do not repeat the charset: it is the client's input, and error answers never
    echo input (docs/aiohttp.md).
    """
    named = "the charset its Content-Type names" if charset else "UTF-8"
    try:
        return raw.decode(charset or "utf-8")
    except LookupError:
        # Not a codec, or not a text encoding ("base64").
        raise NotJSON("the Content-Type names a charset that is not known") from None
    except ValueError as exc:
        # UnicodeDecodeError for bytes invalid in the charset; a bare UnicodeError from some
        # codecs (idna, punycode, undefined); a ValueError for a name holding a NUL.
        where = f" (byte {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        raise NotJSON(f"the body is not valid in {named}{where}") from None


def _check_content_type(request: web.Request) -> None:
    """Raise the 415 of a body sent as a form or as text, or with no ``Content-Type``."""
    if hdrs.CONTENT_TYPE in request.headers and (
        request.content_type not in CROSS_SITE_CONTENT_TYPES
    ):
        return
    # The client's Content-Type is not repeated: error answers never echo input.
    detail = "send the body as JSON, with the header Content-Type: application/json"
    raise web.HTTPUnsupportedMediaType(
        text=json_dumps({"error": "unsupported_media_type", "detail": detail}),
        content_type="application/json",
    )


async def json_body(request: web.Request) -> Any:
    """Return the request's body decoded as JSON.

    A body that cannot be decoded raises :class:`json.JSONDecodeError` (a 400 under
    ``odm_errors_middleware``): one that is not JSON, nests too deeply to be parsed, holds an
    integer of more than 4,300 digits, ``NaN`` or ``Infinity``, or an object with a key twice,
    is not valid in its charset (UTF-8 unless the ``Content-Type`` names another), names a
    charset Python does not know, or is not valid in its ``Content-Encoding``. A body sent as a
    form or as text, or without a ``Content-Type``, raises ``HTTPUnsupportedMediaType`` (a 415,
    answered in the same JSON shape) before it is read.
    """
    _check_content_type(request)
    return strict_loads(_decode(await _read(request), request.charset))


async def _read(request: web.Request) -> bytes:
    """The request's body, as aiohttp decoded it from its ``Content-Encoding``.

    aiohttp raises ``RequestPayloadError`` for a body it cannot read: one not valid in the
    ``Content-Encoding`` it names (``gzip`` on bytes that are not), or a chunked body whose
    framing is broken. The client's fault, a 400, not the 500 of an unknown error.
    """
    try:
        return await request.read()
    except web.RequestPayloadError as exc:
        if isinstance(exc.__cause__, ContentEncodingError):
            raise NotJSON("the body is not valid in the Content-Encoding it names") from None
        raise NotJSON("the body could not be read: it is cut short or badly framed") from None
