"""``json_body``: a request's JSON body, with every body that cannot be decoded a 400.

``request.json()`` lets through errors no error middleware can tell from a bug (a 500):
:func:`json.loads`'s C scanner recurses once per level, so a body nested about 1,000 deep
raises a bare ``RecursionError``; an integer of more than ``sys.get_int_max_str_digits()``
(4,300) digits is a bare ``ValueError``; and ``request.text()`` raises ``UnicodeDecodeError``
for bytes that are not valid in the body's charset, and ``LookupError`` for a ``charset=`` of
the ``Content-Type`` that Python does not know. Here each becomes the
:class:`json.JSONDecodeError` of a bad body, which ``odm_errors_middleware`` answers with a 400.
What does parse is checked further by the ODM (a value nesting deeper than MongoDB's 100 levels
is refused, typed, before it is sent).

``json.loads`` also takes what is not JSON, or not one meaning: ``NaN``, ``Infinity`` and
``-Infinity`` (no JSON parser of a browser reads them back), and an object holding a key twice
(the last one wins, where other parsers, a proxy's or a signature check's, may keep the first).
Both are a 400 here too.

A body whose ``Content-Type`` is one an HTML form or a plain ``fetch()`` on another site may
send without asking (``text/plain``, ``application/x-www-form-urlencoded``,
``multipart/form-data``, or none at all: the "simple requests" of CORS) is refused with a 415,
before it is read: reading it as JSON would let any page a user visits make their browser post
to the API with its cookies (a cross-site request forgery). Every other type, CORS makes the
browser ask the server first.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import hdrs, web

from .responses import json_dumps

CROSS_SITE_CONTENT_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
"""The ``Content-Type`` s a page on another site can make a browser send without a CORS
preflight: ``json_body`` refuses them, and a body without one (415)."""


def _undecodable(message: str) -> json.JSONDecodeError:
    """The error of a body that is not JSON text, with no document to point into."""
    return json.JSONDecodeError(message, "", 0)


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
        raise _undecodable("the Content-Type names a charset that is not known") from None
    except ValueError as exc:
        # UnicodeDecodeError for bytes invalid in the charset; a bare UnicodeError from some
        # codecs (idna, punycode, undefined); a ValueError for a name holding a NUL.
        where = f" (byte {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        raise _undecodable(f"the body is not valid in {named}{where}") from None


def _refuse_constant(name: str) -> Any:
    """``json.loads``'s hook for ``NaN``, ``Infinity`` and ``-Infinity``: none is JSON."""
    raise _undecodable(f"{name} is not a JSON value")


def _first_repeated(keys: list[str]) -> str:
    """The first of ``keys`` that appeared before it (there is one)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    raise ValueError("no key is repeated")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s hook for an object: its dict, unless a key appears twice."""
    result = dict(pairs)
    if len(result) != len(pairs):
        twice = _first_repeated([key for key, _ in pairs])
        # As JSON and cut short: the key is the client's input, quoted back as data only.
        raise _undecodable(f"an object holds the key {json.dumps(twice[:40])} twice")
    return result


def _loads(text: str) -> Any:
    """``json.loads(text)``, with the parser's untyped errors turned into a JSONDecodeError."""
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("the body nests too deeply", text[:64], 0) from None
    except ValueError:
        # The only other ValueError of json.loads on a str: an integer longer than Python's
        # int-to-str limit. Its message names sys.set_int_max_str_digits(), a server setting
        # a client has no use for.
        raise _undecodable(
            f"a number has more than {sys.get_int_max_str_digits()} digits"
        ) from None


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
    is not valid in its charset (UTF-8 unless the ``Content-Type`` names another), or names a
    charset Python does not know. A body sent as a form or as text, or without a
    ``Content-Type``, raises ``HTTPUnsupportedMediaType`` (a 415, answered in the same JSON
    shape) before it is read.
    """
    _check_content_type(request)
    return _loads(_decode(await request.read(), request.charset))
