"""Geo lookups (``near``, ``within``, ``intersects``) and the values they take. No I/O.

On a field holding GeoJSON (:mod:`odm.models.geo`):

- ``loc__near=Point(...)`` or ``loc__near=Near(point, max_distance=5000, min_distance=0)``:
  ``$near`` on the sphere, nearest first, distances in metres (needs a ``2dsphere`` index);
- ``loc__within=Polygon(...)`` / ``MultiPolygon(...)`` (``$geoWithin`` + ``$geometry``),
  ``Circle(point, radius)`` (metres, ``$centerSphere``) or ``Box(west, south, east, north)``
  (degrees, ``$box``: a flat longitude/latitude rectangle);
- ``loc__intersects=<any geometry>``: ``$geoIntersects``.

A value that is not one of these objects (a dict from a request body) is validated as the
geometry the lookup takes, and only its validated GeoJSON is sent: nothing a user sends becomes
an operator or a path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ..exceptions import QueryError
from ..models.field_types import int_text
from ..models.geo import GEO_TYPES, Geometry, MultiPolygon, Point, Polygon, _position
from .lookups import Lookup, register_lookup
from .paths import FieldType, Kind

__all__ = ["EARTH_RADIUS_M", "Box", "Circle", "Near", "Within", "geometry_models"]

#: The radius ``$centerSphere`` divides by to turn metres into radians (MongoDB's figure).
EARTH_RADIUS_M: Final = 6378100.0


def _metres(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError(f"{what} must be a finite number of metres, not {value!r}")
    try:
        metres = float(value)  # an int past a double's range raises OverflowError
    except OverflowError:
        metres = math.inf
    if not math.isfinite(metres):
        shown = int_text(value) if isinstance(value, int) else repr(value)
        raise QueryError(f"{what} must be a finite number of metres, not {shown}")
    if metres < 0:
        raise QueryError(f"{what} must not be negative, not {value!r}")
    return metres


def _point(value: Any, what: str) -> Point:
    if isinstance(value, Point):
        return value
    try:
        return Point.model_validate(value)
    except PydanticValidationError as exc:
        raise QueryError(f"{what} must be a Point: {exc.errors()[0]['msg']}") from None


@dataclass(frozen=True, slots=True)
class Near:
    """The value of ``field__near``: a point and optional distance bounds, in metres."""

    point: Point
    max_distance: float | None = None
    min_distance: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "point", _point(self.point, "Near(point)"))
        for name in ("max_distance", "min_distance"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _metres(value, f"Near({name}=...)"))
        low, high = self.min_distance, self.max_distance
        if low is not None and high is not None and low > high:
            raise QueryError(f"Near(min_distance={low}) is beyond max_distance={high}")


@dataclass(frozen=True, slots=True)
class Circle:
    """A ``within`` area: every point at most ``radius`` metres from ``center``."""

    center: Point
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _point(self.center, "Circle(center)"))
        object.__setattr__(self, "radius", _metres(self.radius, "Circle(radius)"))


@dataclass(frozen=True, slots=True)
class Box:
    """A ``within`` area: the longitude/latitude rectangle between two corners (degrees)."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        corners = (self.west, self.south, self.east, self.north)
        for lon, lat in ((self.west, self.south), (self.east, self.north)):
            try:
                _position((float(lon), float(lat)))
            except (TypeError, ValueError) as exc:
                raise QueryError(f"Box{corners}: {exc}") from None
        if self.west > self.east or self.south > self.north:
            raise QueryError(
                "Box(west, south, east, north): west must not exceed east nor south north"
            )


def geometry_models(field: FieldType) -> tuple[type[Any], ...]:
    """Return the GeoJSON classes a field holds (empty: not a geo field)."""
    geo = set(GEO_TYPES.values())
    if field.kind is Kind.MODEL and field.models and all(m in geo for m in field.models):
        return field.models
    return ()


_AREA: Final[TypeAdapter[Any]] = TypeAdapter(
    Annotated[Polygon | MultiPolygon, Field(discriminator="type")]
)
_GEOMETRY: Final[TypeAdapter[Any]] = TypeAdapter(Geometry)


class _GeoLookup(Lookup):
    """A lookup that takes shapes, on a field holding GeoJSON (or a free-form one)."""

    kinds = frozenset({Kind.MODEL, Kind.ANY})

    def _check_kind(self) -> None:
        if self.subject.kind is not Kind.ANY and not geometry_models(self.subject):
            raise QueryError(
                f"lookup {self.lookup_name!r} needs a GeoJSON field (odm.Point, odm.Polygon...); "
                f"{self.path!r} is {self.target.field.label}",
                field=self.path,
            )

    def _geometry(self, adapter: TypeAdapter[Any], value: Any, expected: str) -> dict[str, Any]:
        try:
            shape = adapter.validate_python(value)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            raise QueryError(
                f"{self.path}__{self.lookup_name} takes {expected}: {first['msg']}",
                field=self.path,
            ) from None
        geojson: dict[str, Any] = shape.geojson()
        return geojson


@register_lookup
class NearLookup(_GeoLookup):
    """``loc__near=Point(...)`` / ``Near(point, max_distance=, min_distance=)``: nearest first."""

    lookup_name = "near"

    def prepare(self, value: Any) -> Any:
        """Validate a point (or a :class:`Near`) and render ``$near``'s operand."""
        near = value if isinstance(value, Near) else None
        point = near.point if near is not None else value
        geometry = self._geometry(_POINT, point, "a Point or a Near(point, max_distance=...)")
        operand: dict[str, Any] = {"$geometry": geometry}
        if near is not None and near.max_distance is not None:
            operand["$maxDistance"] = near.max_distance
        if near is not None and near.min_distance is not None:
            operand["$minDistance"] = near.min_distance
        return operand

    def operand(self) -> Any:
        """Return ``{"$near": {"$geometry": ..., "$maxDistance": ...}}``."""
        return {"$near": self.value}


_POINT: Final[TypeAdapter[Point]] = TypeAdapter(Point)


@register_lookup
class Within(_GeoLookup):
    """``loc__within=Polygon(...)`` / ``MultiPolygon`` / ``Circle(point, metres)`` / ``Box``."""

    lookup_name = "within"

    def prepare(self, value: Any) -> Any:
        """Render ``$geoWithin``'s operand from the area."""
        if isinstance(value, Circle):
            center = list(value.center.coordinates)
            return {"$centerSphere": [center, value.radius / EARTH_RADIUS_M]}
        if isinstance(value, Box):
            return {"$box": [[value.west, value.south], [value.east, value.north]]}
        expected = "a Polygon, a MultiPolygon, a Circle or a Box"
        return {"$geometry": self._geometry(_AREA, value, expected)}

    def operand(self) -> Any:
        """Return ``{"$geoWithin": {...}}``."""
        return {"$geoWithin": self.value}


@register_lookup
class Intersects(_GeoLookup):
    """``loc__intersects=<any GeoJSON geometry>``: the field's shape meets it."""

    lookup_name = "intersects"

    def prepare(self, value: Any) -> Any:
        """Validate a geometry of any GeoJSON type."""
        return {"$geometry": self._geometry(_GEOMETRY, value, "a GeoJSON geometry")}

    def operand(self) -> Any:
        """Return ``{"$geoIntersects": {"$geometry": ...}}``."""
        return {"$geoIntersects": self.value}


_LOGICAL: Final = frozenset({"$and", "$or", "$nor"})


def holds_near(mql: Any) -> bool:
    """Tell whether a compiled filter uses ``$near`` (which counts and pipelines refuse).

    ``$near`` only ever sits under a field (``{"loc": {"$near": ...}}``), at the top or in
    ``$and``/``$or``/``$nor``: only those are walked, never values (a long ``$in`` list costs
    nothing here, and a value cannot hold a ``$`` key anyway).
    """
    if not isinstance(mql, dict):
        return False
    for key, sub in mql.items():
        if key in _LOGICAL:
            if isinstance(sub, list) and any(holds_near(part) for part in sub):
                return True
        elif isinstance(sub, dict) and "$near" in sub:
            return True
    return False
