"""Whether a text can be sent to MongoDB: BSON strings and keys are UTF-8.

A Python ``str`` can hold what UTF-8 cannot encode: a lone surrogate (``"\\ud800"``), which a
JSON ``"\\ud800"`` escape in a request body decodes to. The driver then fails to encode the
whole command, with an error that names neither the key nor the value; the ODM checks first
and names them.
"""

from __future__ import annotations

__all__ = ["encodable"]


def encodable(text: str) -> bool:
    """Tell whether ``text`` can be encoded as UTF-8 (it holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
