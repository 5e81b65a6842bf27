"""Geo (issue #21, item 9): GeoJSON field types, 2dsphere indexes, the near / within /
intersects lookups and geo_near() ordering by distance, on the real server."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import odm
from odm import (
    Box,
    Circle,
    DeclarationError,
    Document,
    Index,
    LineString,
    MultiPolygon,
    Near,
    Point,
    Polygon,
    QueryError,
)
from odm.contrib.pytest import MonitoredDatabase


class GeoPlace(Document):
    name: str
    kind: str = "cafe"
    loc: Point
    area: odm.Geometry | None = None

    class Meta:
        collection = "geo_places"
        indexes = [Index(("loc", "2dsphere")), Index(("area", "2dsphere"))]


class GeoRoute(Document):
    name: str
    path: LineString

    class Meta:
        collection = "geo_routes"


# Paris landmarks, (longitude, latitude).
NOTRE_DAME = Point(2.3499, 48.8530)
PLACES = {
    "louvre": (2.3376, 48.8606),
    "eiffel": (2.2945, 48.8584),
    "bastille": (2.3691, 48.8532),
    "versailles": (2.1204, 48.8049),
    "london": (-0.1276, 51.5072),
}


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance on MongoDB's sphere (radius 6378.1 km), in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a.lon, a.lat, b.lon, b.lat))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
        (lon2 - lon1) / 2
    ) ** 2
    return 2 * 6378100 * math.asin(math.sqrt(h))


async def _seed() -> dict[str, GeoPlace]:
    await odm.ensure_indexes(models=[GeoPlace])
    out = {}
    for name, (lon, lat) in PLACES.items():
        out[name] = await GeoPlace(name=name, loc=Point(lon, lat)).insert()
    return out


def test_geojson_types_validate_coordinates() -> None:
    assert Point(2.35, 48.85).model_dump() == {"type": "Point", "coordinates": (2.35, 48.85)}
    assert Point.model_validate({"type": "Point", "coordinates": [2.35, 48.85]}) == Point(
        2.35, 48.85
    )
    for bad, message in (
        ({"type": "Point", "coordinates": [200, 0]}, "longitude 200.0 is outside"),
        ({"type": "Point", "coordinates": [0, -91]}, "latitude -91.0 is outside"),
        ({"type": "Point", "coordinates": [math.inf, 0]}, "finite"),
        ({"type": "Polygon", "coordinates": [0, 0]}, "Point"),
        ({"type": "Point", "coordinates": [0, 0], "$where": "1"}, "Extra inputs"),
    ):
        with pytest.raises(ValidationError, match=message):
            Point.model_validate(bad)
    with pytest.raises(ValidationError, match="must be closed"):
        Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    with pytest.raises(ValidationError, match="at least 4 positions"):
        Polygon([(0, 0), (1, 0), (0, 0)])
    with pytest.raises(ValidationError, match="at least 2"):
        LineString([(0, 0)])
    with pytest.raises(ValidationError):
        GeoPlace(name="x", loc={"type": "Point", "coordinates": [0, 100]})  # type: ignore[arg-type]


@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90))
@settings(max_examples=50)
def test_any_valid_position_round_trips(lon: float, lat: float) -> None:
    point = Point(lon, lat)
    assert Point.model_validate(point.geojson()) == point
    assert (point.lon, point.lat) == (lon, lat)


@given(
    lon=st.one_of(
        st.just(math.nan), st.just(math.inf), st.floats(180.0001, 1e9), st.floats(-1e9, -180.0001)
    ),
    lat=st.floats(-90, 90),
)
@settings(max_examples=50)
def test_out_of_range_positions_are_refused(lon: float, lat: float) -> None:
    with pytest.raises(ValidationError, match=r"longitude|finite"):
        Point(lon, lat)


def test_a_2dsphere_index_on_a_non_geo_field_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"GeoBad: index 'name_2dsphere': field 'name'"):

        class GeoBad(Document):
            name: str

            class Meta:
                collection = "geo_bad"
                indexes = [Index(("name", "2dsphere"))]


async def test_geo_values_are_stored_as_geojson_and_load_back(odm_database: Any) -> None:
    places = await _seed()
    raw = await odm_database.geo_places.find_one({"name": "louvre"})
    assert raw["loc"] == {"type": "Point", "coordinates": [2.3376, 48.8606]}
    loaded = await GeoPlace.objects.get(name="louvre")
    assert loaded.loc == places["louvre"].loc and isinstance(loaded.loc, Point)
    loaded.area = Polygon.box(2.33, 48.85, 2.34, 48.87)
    await loaded.save()
    again = await GeoPlace.objects.get(name="louvre")
    assert isinstance(again.area, Polygon) and again.area == loaded.area
    route = await GeoRoute(name="r", path=LineString([(0, 0), (1, 1)])).insert()
    assert (await GeoRoute.objects.get(id=route.id)).path.coordinates == [(0, 0), (1, 1)]


async def test_saving_a_loaded_geo_value_sends_only_changes(monitored: MonitoredDatabase) -> None:
    await _seed()
    place = await GeoPlace.objects.get(name="eiffel")
    monitored.log.clear()
    await place.save()  # stored [lon, lat] and the loaded (lon, lat) tuple are the same value
    assert monitored.log.named("update") == []
    place.loc = Point(2.2950, 48.8580)
    await place.save()
    (update,) = monitored.log.named("update")
    # Only what changed: the coordinates (the type is the same).
    assert update["updates"][0]["u"] == {"$set": {"loc.coordinates": (2.2950, 48.8580)}}
    assert (await GeoPlace.objects.get(name="eiffel")).loc == Point(2.2950, 48.8580)


async def test_near_orders_by_distance_within_bounds(odm_database: Any) -> None:
    await _seed()
    nearest = await GeoPlace.objects.filter(loc__near=NOTRE_DAME)
    assert [p.name for p in nearest] == ["louvre", "bastille", "eiffel", "versailles", "london"]
    bounded = GeoPlace.objects.filter(
        loc__near=Near(NOTRE_DAME, max_distance=5000, min_distance=1300)
    )
    assert [p.name async for p in bounded] == ["bastille", "eiffel"]
    assert await bounded.exists()
    # A dict (a request body) is validated as a Point; nothing else passes.
    body = {"type": "Point", "coordinates": [2.3499, 48.8530]}
    assert (await GeoPlace.objects.filter(loc__near=body)[:1])[0].name == "louvre"
    for hostile in (
        {"type": "Point", "coordinates": [2, 48], "$maxDistance": 1},
        {"$geometry": body},
        {"type": "Point", "coordinates": {"$gt": 1}},
        "2.35,48.85",
    ):
        with pytest.raises(QueryError, match="loc__near takes a Point"):
            GeoPlace.objects.filter(loc__near=hostile)
    with pytest.raises(QueryError, match="must not be negative"):
        Near(NOTRE_DAME, max_distance=-1)
    # Where the server refuses $near (counts, pipelines), the error says what to use.
    with pytest.raises(QueryError, match="count\\(\\) cannot run a near lookup"):
        await GeoPlace.objects.filter(loc__near=NOTRE_DAME).count()
    with pytest.raises(QueryError, match="use geo_near"):
        await GeoPlace.objects.filter(loc__near=NOTRE_DAME).values_list("name", flat=True)


async def test_within_polygon_circle_and_box(odm_database: Any) -> None:
    await _seed()
    paris = Polygon([(2.2, 48.8), (2.45, 48.8), (2.45, 48.9), (2.2, 48.9), (2.2, 48.8)])

    async def names(area: Any) -> set[str]:
        return set(await GeoPlace.objects.filter(loc__within=area).values_list("name", flat=True))

    assert await names(paris) == {"louvre", "eiffel", "bastille"}
    both = MultiPolygon([paris.coordinates, Polygon.box(-1, 51, 0, 52).coordinates])
    assert await names(both) == {"louvre", "eiffel", "bastille", "london"}
    # Circle: the radius in metres, compared with the distances computed here.
    radius = 2500.0
    expected = {
        name for name, (lon, lat) in PLACES.items()
        if haversine_m(NOTRE_DAME, Point(lon, lat)) <= radius
    }
    assert await names(Circle(NOTRE_DAME, radius)) == expected == {"louvre", "bastille"}
    assert await names(Box(2.3, 48.85, 2.36, 48.87)) == {"louvre"}
    assert await GeoPlace.objects.filter(loc__within=Circle(NOTRE_DAME, 3000)).count() == 2
    with pytest.raises(QueryError, match="loc__within takes a Polygon"):
        GeoPlace.objects.filter(loc__within=NOTRE_DAME)
    with pytest.raises(QueryError, match="must be closed"):
        GeoPlace.objects.filter(
            loc__within={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}
        )
    with pytest.raises(QueryError, match="west must not exceed east"):
        Box(3, 0, 2, 1)
    with pytest.raises(QueryError, match="needs a GeoJSON field"):
        GeoPlace.objects.filter(name__within=paris)


async def test_intersects(odm_database: Any) -> None:
    places = await _seed()
    louvre = places["louvre"]
    louvre.area = Polygon.box(2.330, 48.858, 2.340, 48.864)
    await louvre.save()
    crossing = LineString([(2.335, 48.85), (2.335, 48.87)])
    assert await GeoPlace.objects.filter(area__intersects=crossing).values_list(
        "name", flat=True
    ) == ["louvre"]
    assert await GeoPlace.objects.filter(
        area__intersects={"type": "Point", "coordinates": [2.0, 40.0]}
    ).count() == 0


async def test_geo_near_gives_the_distance(monitored: MonitoredDatabase) -> None:
    await _seed()
    qs = GeoPlace.objects.geo_near("loc", NOTRE_DAME)
    rows = await qs.values("name", "distance")
    assert [r["name"] for r in rows] == ["louvre", "bastille", "eiffel", "versailles", "london"]
    for row in rows:
        lon, lat = PLACES[row["name"]]
        assert row["distance"] == pytest.approx(haversine_m(NOTRE_DAME, Point(lon, lat)), rel=1e-3)
    # Documents carry it as an annotation; filters, slicing, bounds and ordering compose.
    monitored.log.clear()
    near = await GeoPlace.objects.filter(kind="cafe").geo_near(
        "loc", NOTRE_DAME, distance="metres", max_distance=10_000
    )[1:3]
    assert [p.name for p in near] == ["bastille", "eiffel"]
    assert odm.annotations_of(near[0])["metres"] == pytest.approx(
        haversine_m(NOTRE_DAME, Point(*PLACES["bastille"])), rel=1e-3
    )
    assert odm.annotations_of(await GeoPlace.objects.get(name="louvre")) == {}
    stage = monitored.log.named("aggregate")[-1]["pipeline"][0]["$geoNear"]
    assert stage["query"] == {"kind": "cafe"} and stage["maxDistance"] == 10_000
    farthest = GeoPlace.objects.geo_near("loc", NOTRE_DAME).order_by("-distance")
    assert (await farthest.first()).name == "london"  # type: ignore[union-attr]
    assert (await GeoPlace.objects.geo_near("loc", NOTRE_DAME).last()).name == "london"  # type: ignore[union-attr]
    by_name = await GeoPlace.objects.geo_near("loc", NOTRE_DAME).order_by("name").values_list(
        "name", flat=True
    )
    assert by_name == sorted(PLACES)
    assert await GeoPlace.objects.geo_near("loc", NOTRE_DAME, max_distance=3000).count() == 2
    assert await GeoPlace.objects.geo_near("loc", NOTRE_DAME, min_distance=3000).exists()
    # An update or delete reaches the documents the bounds select, no others.
    assert await GeoPlace.objects.geo_near("loc", NOTRE_DAME, max_distance=3000).update(
        kind="near"
    ) == 2
    assert sorted(await GeoPlace.objects.filter(kind="near").values_list("name", flat=True)) == [
        "bastille", "louvre"
    ]


async def test_geo_near_refuses_what_cannot_work(odm_database: Any) -> None:
    with pytest.raises(QueryError, match="needs a 2dsphere index on 'path'"):
        GeoRoute.objects.geo_near("path", NOTRE_DAME)
    with pytest.raises(QueryError, match="is not a GeoJSON field"):
        GeoPlace.objects.geo_near("name", NOTRE_DAME)
    with pytest.raises(QueryError, match="must be a Point"):
        GeoPlace.objects.geo_near("loc", {"$near": 1})
    with pytest.raises(QueryError, match="annotation name 'name' is not allowed"):
        GeoPlace.objects.geo_near("loc", NOTRE_DAME, distance="name")
    with pytest.raises(QueryError, match="annotation name"):
        GeoPlace.objects.geo_near("loc", NOTRE_DAME, distance="$x")
    with pytest.raises(QueryError, match="a near lookup cannot be combined"):
        await GeoPlace.objects.filter(loc__near=NOTRE_DAME).geo_near("loc", NOTRE_DAME)
