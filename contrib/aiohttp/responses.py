"""``json_response``: ``web.json_response`` for what the ODM returns.

``web.json_response(report)`` fails on a ``values()`` row or an aggregate that holds a
``Decimal``, an ObjectId or a datetime (``json.dumps`` knows none of them), and on a document.
``json_response(report)`` writes them through :func:`odm.to_jsonable` (ObjectIds and decimals
as strings, datetimes in ISO 8601); :func:`json_dumps` is the same as a ``dumps=`` argument.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from odm.jsonable import to_jsonable

__all__ = ["json_dumps", "json_response"]


def json_dumps(data: Any) -> str:
    """Return ``data`` as JSON text, ODM values included (``web.json_response(data,
    dumps=json_dumps)``)."""
    return json.dumps(to_jsonable(data))


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return ``web.json_response(data)`` for documents, lists of them, ``values()`` rows and
    aggregates (through :func:`odm.to_jsonable`)."""
    return web.json_response(data, status=status, headers=headers, dumps=json_dumps)
