"""``strict_loads``: JSON text read as JSON means it, with every refusal a JSONDecodeError.

The one reader of JSON a user sends: ``json_body`` reads request bodies with it, and the admin
the text of its JSON inputs (``odm.contrib.admin`` is built on this integration and imports
from it, never the other way). No import of aiohttp here: the admin's form reading needs none.

``json.loads`` takes what is not JSON, or not one meaning: ``NaN``, ``Infinity`` and
``-Infinity`` (no JSON parser of a browser reads them back), and an object holding a key twice
(the last one wins, where other parsers, a proxy's or a signature check's, may keep the first).
It also lets through errors no caller can tell from a bug: its C scanner recurses once per
level, so text nested about 1,000 deep raises a bare ``RecursionError``, and an integer of more
than ``sys.get_int_max_str_digits()`` (4,300) digits is a bare ``ValueError``. Each of these is
a :class:`NotJSON` here.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class NotJSON(json.JSONDecodeError):
    """Text refused for what it holds, not for where its syntax breaks: its message has no
    position (``str()`` is the message alone, not ``line 1 column 1 (char 0)``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)

    def __str__(self) -> str:
        return self.msg


def _refuse_constant(name: str) -> Any:
    """``json.loads``'s hook for ``NaN``, ``Infinity`` and ``-Infinity``: none is JSON."""
    raise NotJSON(f"{name} is not a JSON value")


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
        # As JSON and cut short: the key is the user's input, quoted back as data only.
        raise NotJSON(f"an object holds the key {json.dumps(twice[:40])} twice")
    return result


def strict_loads(text: str) -> Any:
    """Return ``text`` parsed as JSON; raise :class:`json.JSONDecodeError` for anything else.

    Besides what :func:`json.loads` refuses (with its position), refused as :class:`NotJSON`:
    ``NaN``, ``Infinity`` and ``-Infinity``; an object with a key twice; text nested too
    deeply to be parsed; an integer of more than 4,300 digits.
    """
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise NotJSON("it nests too deeply to be read") from None
    except ValueError:
        # The only other ValueError of json.loads on a str: an integer longer than Python's
        # int-to-str limit. Its message names sys.set_int_max_str_digits(), a server setting
        # a user has no use for.
        raise NotJSON(f"a number has more than {sys.get_int_max_str_digits()} digits") from None
