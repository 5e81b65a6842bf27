"""Read preferences and write concerns, from the spellings users write to the driver's objects.

Shared by a model's ``Meta`` (:mod:`odm.models.declaration`), a queryset's ``read_preference()``
and the executor's per-call options, so each spelling means the same thing everywhere.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReadPreference, WriteConcern

__all__ = ["as_read_preference", "as_write_concern"]

_READ_PREFERENCES = {
    "primary": "PRIMARY",
    "primarypreferred": "PRIMARY_PREFERRED",
    "primary_preferred": "PRIMARY_PREFERRED",
    "secondary": "SECONDARY",
    "secondarypreferred": "SECONDARY_PREFERRED",
    "secondary_preferred": "SECONDARY_PREFERRED",
    "nearest": "NEAREST",
}


def as_read_preference(value: Any) -> Any:
    """Return a PyMongo read preference for ``value`` (a name such as ``"secondaryPreferred"``
    or a ready ``ReadPreference``); ``None`` stays ``None``. Raises ``ValueError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        attribute = _READ_PREFERENCES.get(value.lower())
        if attribute is None:
            raise ValueError(
                f"unknown read preference {value!r}: expected one of primary, "
                "primaryPreferred, secondary, secondaryPreferred, nearest"
            )
        return getattr(ReadPreference, attribute)
    if hasattr(value, "mongos_mode"):
        return value
    raise ValueError(f"{value!r} is not a read preference")


def as_write_concern(value: Any) -> Any:
    """Return a PyMongo ``WriteConcern`` for ``value`` (a dict such as ``{"w": "majority"}``,
    a ``w`` value such as ``"majority"`` or ``1``, or a ready ``WriteConcern``)."""
    if value is None or isinstance(value, WriteConcern):
        return value
    if isinstance(value, dict):
        try:
            return WriteConcern(**value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad write concern {value!r}: {exc}") from exc
    if isinstance(value, str | int) and not isinstance(value, bool):
        return WriteConcern(w=value)
    raise ValueError(f"{value!r} is not a write concern")
