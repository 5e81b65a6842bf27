"""``json_response``: ``web.json_response`` for what the ODM returns.

``web.json_response(report)`` fails on a ``values()`` row or an aggregate that holds a
``Decimal``, an ObjectId or a datetime (``json.dumps`` knows none of them), and on a document.
``json_response(report)`` writes them through :func:`odm.to_jsonable` (ObjectIds and decimals
as strings, datetimes in ISO 8601); :func:`json_dumps` is the same as a ``dumps=`` argument.
A float that is NaN or infinite is written ``null``, as pydantic's ``model_dump_json()`` and
JavaScript's ``JSON.stringify`` write it: ``json.dumps`` would write ``NaN``, which no JSON parser
of a browser reads.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from odm.jsonable import to_jsonable

__all__ = ["json_dumps", "json_response"]


def _finite(data: Any) -> Any:
    """``data`` (JSON data) with every NaN or infinite float replaced by ``None``."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_finite(value) for value in data]
    return data


def json_dumps(data: Any) -> str:
    """Return ``data`` as JSON text, ODM values included (``web.json_response(data,
    dumps=json_dumps)``); a NaN or infinite float is written ``null``."""
    jsonable = to_jsonable(data)
    try:
        return json.dumps(jsonable, allow_nan=False)
    except ValueError:
        # Rare: walk the data only when it holds a float JSON has no number for.
        return json.dumps(_finite(jsonable), allow_nan=False)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return ``web.json_response(data)`` for documents, lists of them, ``values()`` rows and
    aggregates (through :func:`odm.to_jsonable`)."""
    return web.json_response(data, status=status, headers=headers, dumps=json_dumps)
