"""``json_body``: a request's JSON body, with a body nested too deep for Python a 400.

``request.json()`` parses with :func:`json.loads`, whose C scanner recurses once per level:
a body nested about 1,000 deep raises a bare ``RecursionError``, which no error middleware
can tell from a bug (a 500). Here it becomes the :class:`json.JSONDecodeError` of a bad body,
which ``odm_errors_middleware`` answers with a 400. What does parse is checked further by the
ODM (a value nesting deeper than MongoDB's 100 levels is refused, typed, before it is sent).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("the body nests too deeply", text[:64], 0) from None


async def json_body(request: web.Request) -> Any:
    """Return the request's body decoded as JSON; a body that is not JSON, or nests too
    deeply to be parsed, raises :class:`json.JSONDecodeError` (a 400 under
    ``odm_errors_middleware``)."""
    return await request.json(loads=_loads)
