"""How the ODM's collections encode and decode BSON: aware UTC datetimes, standard UUIDs, and
the plain value of what a pydantic dump holds but BSON has no type for (an enum member, a
``date``, a set). The executor gives these options to every collection; what must know how a
value comes back from the server (``odm.models.loadable``) uses them too."""

from __future__ import annotations

import datetime as _dt
import enum
from typing import Any

from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, TypeRegistry

from .stored_order import stored_set

__all__ = ["CODEC_OPTIONS", "NAIVE_CODEC_OPTIONS"]


def _encode_fallback(value: Any) -> Any:
    # Types that BSON cannot encode but a pydantic dump holds: stored as their plain value.
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.UTC)
    if isinstance(value, set | frozenset):
        # In the order every process stores a set in (a set in an Any or dict field, or of a
        # class without a dump plan): its iteration order changes with the hash seed.
        return stored_set(value)
    return value


#: How the ODM's collections encode and decode: aware UTC datetimes, standard UUIDs.
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict,
    tz_aware=True,
    uuid_representation=UuidRepresentation.STANDARD,
    type_registry=TypeRegistry(fallback_encoder=_encode_fallback),
)

#: The same, with naive datetimes: for the reads whose documents go to a class's datetime
#: fix-up (``odm.models.loading.load_documents(fixer=...)``), which makes them aware.
NAIVE_CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CODEC_OPTIONS.with_options(tz_aware=False)
