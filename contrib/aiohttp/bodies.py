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
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import web


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


def _loads(text: str) -> Any:
    """``json.loads(text)``, with the parser's untyped errors turned into a JSONDecodeError."""
    try:
        return json.loads(text)
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


async def json_body(request: web.Request) -> Any:
    """Return the request's body decoded as JSON.

    A body that cannot be decoded raises :class:`json.JSONDecodeError` (a 400 under
    ``odm_errors_middleware``): one that is not JSON, nests too deeply to be parsed, holds an
    integer of more than 4,300 digits, is not valid in its charset (UTF-8 unless the
    ``Content-Type`` names another), or names a charset Python does not know.
    """
    return _loads(_decode(await request.read(), request.charset))
