"""GeoJSON field types: ``odm.Point``, ``LineString``, ``Polygon`` and their ``Multi`` forms.

Each is a frozen pydantic model stored as MongoDB stores GeoJSON (``{"type": "Point",
"coordinates": [lon, lat]}``), so a ``2dsphere`` index and the geo lookups (``near``,
``within``, ``intersects``) work on it. Validation happens wherever a value comes from:
construction, loading, and filter values (a dict from a request body is validated as the
geometry the lookup expects, never passed on as structure). Positions are ``(longitude,
latitude)`` in degrees, GeoJSON's order: longitude in [-180, 180], latitude in [-90, 90],
finite numbers; a polygon's rings are closed (first position repeated last) with at least four
positions. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Final, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .options import _Opaque, _Scalar, find_field, inner_type

__all__ = [
    "GEO_TYPES",
    "Geometry",
    "LineString",
    "MultiLineString",
    "MultiPoint",
    "MultiPolygon",
    "Point",
    "Polygon",
    "Position",
    "is_geo_annotation",
]


def _position(value: tuple[float, float]) -> tuple[float, float]:
    lon, lat = value
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValueError(f"position {list(value)} must hold finite numbers")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(
            f"longitude {lon} is outside [-180, 180] (positions are (longitude, latitude))"
        )
    if not -90.0 <= lat <= 90.0:
        raise ValueError(
            f"latitude {lat} is outside [-90, 90] (positions are (longitude, latitude))"
        )
    return value


#: One ``(longitude, latitude)`` position, in degrees.
Position: TypeAlias = Annotated[tuple[float, float], AfterValidator(_position)]


def _ring(value: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(value) < 4:
        raise ValueError(
            f"a polygon ring needs at least 4 positions (a closed triangle), not {len(value)}"
        )
    if value[0] != value[-1]:
        raise ValueError(
            f"a polygon ring must be closed: its first position {list(value[0])} must be "
            f"repeated last (it ends at {list(value[-1])})"
        )
    return value


_Ring = Annotated[list[Position], AfterValidator(_ring)]
_Line = Annotated[list[Position], Field(min_length=2)]
_Rings = Annotated[list[_Ring], Field(min_length=1)]


class _Geometry(BaseModel):
    """Base of the GeoJSON types: frozen (a value, like a str), no undeclared keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    coordinates: Any

    #: The GeoJSON ``type`` of the class.
    geo_type: ClassVar[str]

    def geojson(self) -> dict[str, Any]:
        """Return the GeoJSON (and MongoDB) form: ``{"type": ..., "coordinates": [...]}``."""
        return self.model_dump(mode="json")


class Point(_Geometry):
    """A GeoJSON point: ``Point(2.35, 48.85)`` (longitude, latitude) or
    ``Point(coordinates=(2.35, 48.85))``."""

    geo_type: ClassVar[str] = "Point"
    type: Literal["Point"] = "Point"
    coordinates: Position

    def __init__(
        self, lon: float | None = None, lat: float | None = None, /, **data: Any
    ) -> None:
        if lon is not None or lat is not None:
            data["coordinates"] = (lon, lat)
        super().__init__(**data)

    @property
    def lon(self) -> float:
        """Return the longitude."""
        return self.coordinates[0]

    @property
    def lat(self) -> float:
        """Return the latitude."""
        return self.coordinates[1]


class LineString(_Geometry):
    """A GeoJSON line: two positions or more, ``LineString([(0, 0), (1, 1)])``."""

    geo_type: ClassVar[str] = "LineString"
    type: Literal["LineString"] = "LineString"
    coordinates: _Line

    def __init__(self, coordinates: Sequence[Any] | None = None, /, **data: Any) -> None:
        if coordinates is not None:
            data["coordinates"] = coordinates
        super().__init__(**data)


class Polygon(_Geometry):
    """A GeoJSON polygon: an outer ring, then holes, each closed:
    ``Polygon([(0, 0), (4, 0), (4, 4), (0, 0)])``."""

    geo_type: ClassVar[str] = "Polygon"
    type: Literal["Polygon"] = "Polygon"
    coordinates: _Rings

    def __init__(self, *rings: Sequence[Any], **data: Any) -> None:
        if rings:
            data["coordinates"] = list(rings)
        super().__init__(**data)

    @classmethod
    def box(cls, west: float, south: float, east: float, north: float) -> Polygon:
        """Return the rectangle between two corners (south-west, north-east), in degrees.

        On a ``2dsphere`` index its edges are geodesics: the north and south edges bow
        slightly toward the pole, as every GeoJSON polygon's do.
        """
        return cls(
            [(west, south), (east, south), (east, north), (west, north), (west, south)]
        )


class MultiPoint(_Geometry):
    """A GeoJSON set of points: ``MultiPoint([(0, 0), (1, 1)])``."""

    geo_type: ClassVar[str] = "MultiPoint"
    type: Literal["MultiPoint"] = "MultiPoint"
    coordinates: Annotated[list[Position], Field(min_length=1)]

    def __init__(self, coordinates: Sequence[Any] | None = None, /, **data: Any) -> None:
        if coordinates is not None:
            data["coordinates"] = coordinates
        super().__init__(**data)


class MultiLineString(_Geometry):
    """A GeoJSON set of lines: ``MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3)]])``."""

    geo_type: ClassVar[str] = "MultiLineString"
    type: Literal["MultiLineString"] = "MultiLineString"
    coordinates: Annotated[list[_Line], Field(min_length=1)]

    def __init__(self, coordinates: Sequence[Any] | None = None, /, **data: Any) -> None:
        if coordinates is not None:
            data["coordinates"] = coordinates
        super().__init__(**data)


class MultiPolygon(_Geometry):
    """A GeoJSON set of polygons, each a list of closed rings."""

    geo_type: ClassVar[str] = "MultiPolygon"
    type: Literal["MultiPolygon"] = "MultiPolygon"
    coordinates: Annotated[list[_Rings], Field(min_length=1)]

    def __init__(self, coordinates: Sequence[Any] | None = None, /, **data: Any) -> None:
        if coordinates is not None:
            data["coordinates"] = coordinates
        super().__init__(**data)


#: Every GeoJSON class, by its ``type``.
GEO_TYPES: Final[dict[str, type[_Geometry]]] = {
    cls.geo_type: cls
    for cls in (Point, LineString, Polygon, MultiPoint, MultiLineString, MultiPolygon)
}

#: Any GeoJSON geometry, told apart by its ``type`` key (a field that holds shapes of any kind).
Geometry: TypeAlias = Annotated[
    Point | LineString | Polygon | MultiPoint | MultiLineString | MultiPolygon,
    Field(discriminator="type"),
]


def is_geo_annotation(annotation: Any) -> bool:
    """Tell whether a field annotation holds GeoJSON geometries (possibly Optional, in a
    union, or in a list): what a ``2dsphere`` index may cover."""
    from typing import get_args

    if isinstance(annotation, type):
        return issubclass(annotation, _Geometry)
    return any(is_geo_annotation(arg) for arg in get_args(annotation))


def geo_index_error(model: type[BaseModel], path: str) -> str | None:
    """Return why a ``2dsphere`` index cannot be on ``path`` of ``model`` (``None``: it can).

    The field must hold GeoJSON; below a free-form (``dict``, ``Any``) field or a type not yet
    resolved nothing is known, so nothing is refused.
    """
    current: Any = model
    parts = path.split(".")
    for index, part in enumerate(parts):
        if current is _Opaque or part.isdigit():
            return None
        if current is _Scalar:
            return None  # reported as an unknown path by the declaration's own check
        found = find_field(current, part)
        if found is None:
            return None
        annotation = found[1]
        if isinstance(annotation, str) or type(annotation).__name__ == "ForwardRef":
            return None
        if index == len(parts) - 1:
            if is_geo_annotation(annotation) or inner_type(annotation) is _Opaque:
                return None
            label = getattr(annotation, "__name__", None) or str(annotation)
            return (
                f"field {path!r} is {label}; a 2dsphere index needs a GeoJSON field "
                "(odm.Point, odm.Polygon, odm.Geometry...)"
            )
        current = inner_type(annotation)
    return None
