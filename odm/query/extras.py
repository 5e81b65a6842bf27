"""What a queryset asks of the server beyond a filter: ``geo_near()``, ``search()`` and
``collation()``. No I/O.

They live in one immutable :class:`Extras` value on the :class:`~odm.query.query.Query` (one
slot, shared by clones until changed). ``geo_near`` and ``search`` add a computed value per
document (the distance, the text score), named by the caller: an *annotation* that
``values()``, ``values_list()`` and ``order_by()`` accept like a field, and that loaded
documents carry (:func:`annotations_of`). Everything the caller passes is validated here: terms
are strings, the point a :class:`~odm.models.geo.Point`, distances finite metres, names plain
names; only then does it become part of a command.
"""

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from ..exceptions import QueryError
from ..models import tracking
from ..models.tracking import annotations_of
from ..utf8 import encodable
from .geo import Near, geometry_models
from .paths import ID_FIELD, Kind, check_name, names_a_field, resolve
from .where import Where

__all__ = [
    "NO_EXTRAS",
    "TEXT_LANGUAGES",
    "Extras",
    "GeoNear",
    "QueryState",
    "TextSearch",
    "annotations_of",
    "set_annotations",
    "with_collation",
    "with_geo_near",
    "with_search",
]


@dataclass(frozen=True, slots=True)
class GeoNear:
    """A ``$geoNear`` first stage: documents by distance from ``point`` (GeoJSON) on ``key``."""

    key: str
    point: dict[str, Any]
    name: str
    max_distance: float | None = None
    min_distance: float | None = None

    def stage(self, query_filter: Mapping[str, Any]) -> dict[str, Any]:
        """Return the ``$geoNear`` stage, with the queryset's own filter as its ``query``."""
        spec: dict[str, Any] = {
            "near": self.point,
            "key": self.key,
            "distanceField": self.name,
            "spherical": True,
        }
        if query_filter:
            spec["query"] = dict(query_filter)
        if self.max_distance is not None:
            spec["maxDistance"] = self.max_distance
        if self.min_distance is not None:
            spec["minDistance"] = self.min_distance
        return {"$geoNear": spec}


@dataclass(frozen=True, slots=True)
class TextSearch:
    """A ``$text`` search; its score is the annotation ``name``."""

    terms: str
    language: str | None
    name: str

    def condition(self) -> dict[str, Any]:
        """Return the ``$text`` filter."""
        text: dict[str, Any] = {"$search": self.terms}
        if self.language is not None:
            text["$language"] = self.language
        return {"$text": text}


@dataclass(frozen=True, slots=True)
class Extras:
    """The queryset's geo_near / search / collation (each ``None`` when not asked for)."""

    geo_near: GeoNear | None = None
    search: TextSearch | None = None
    collation: Mapping[str, Any] | None = None
    #: The annotation names (distance, score) that rows and documents carry.
    computed: tuple[str, ...] = field(default=())

    def default_order(self) -> tuple[str, ...]:
        """Return the ordering these extras imply when none is given: nearest first, or the
        best text score first."""
        if self.geo_near is not None:
            return (self.geo_near.name,)
        if self.search is not None:
            return ("-" + self.search.name,)
        return ()


#: The languages of MongoDB's ``$text``, by name and by ISO 639-1 code, and ``none`` (no
#: stemming, no stop words): the manual's "Text Search Languages", the same list from MongoDB
#: 3.0 to 8.x. The server takes them in any case (``"English"``) and refuses any other name
#: with a bare OperationFailure, so an unknown one is refused here, typed.
TEXT_LANGUAGES: Final[frozenset[str]] = frozenset({
    "danish", "da", "dutch", "nl", "english", "en", "finnish", "fi", "french", "fr",
    "german", "de", "hungarian", "hu", "italian", "it", "norwegian", "nb", "portuguese", "pt",
    "romanian", "ro", "russian", "ru", "spanish", "es", "swedish", "sv", "turkish", "tr",
    "none",
})

#: A query without extras (the usual case: shared, never changed).
NO_EXTRAS: Final = Extras()


class QueryState(Protocol):
    """What the ``with_*`` functions read and set on a query: the parts of
    :class:`~odm.query.query.Query` they need (named here, so that this module, which the
    query imports, does not import it back)."""

    model: type[Any]
    where: tuple[Where, ...]
    annotations: dict[str, Any]
    values_fields: tuple[str, ...] | None
    extras: Extras


def _annotation_name(query: QueryState, name: Any, what: str) -> str:
    if not isinstance(name, str):
        raise QueryError(f"{what}: the annotation name must be a string, not {name!r}")
    check_name(name, where="annotation")
    if "__" in name or name in ("_id", ID_FIELD) or names_a_field(query.model, name):
        raise QueryError(
            f"{what}: annotation name {name!r} is not allowed (it must differ from the "
            f"fields of {query.model.__name__} and hold no '__')",
            field=name,
        )
    if name in query.extras.computed or name in query.annotations:
        raise QueryError(f"{what}: annotation {name!r} is already defined", field=name)
    return name


def _is_text_language(language: Any) -> bool:
    """Whether ``$text`` takes ``language``: one of :data:`TEXT_LANGUAGES` in any case.

    ASCII only, as the server lowers case: ``str.lower()`` would also turn the Kelvin sign
    of ``"TUR\u212aISH"`` into the ``k`` of ``"turkish"``, which the server refuses."""
    return (
        isinstance(language, str) and language.isascii() and language.lower() in TEXT_LANGUAGES
    )


def with_search(query: QueryState, terms: Any, language: Any, score: Any) -> None:
    """Make ``query`` a ``$text`` search for ``terms`` (the model needs a text index)."""
    what = f"{query.model.__name__}.objects.search()"
    if not isinstance(terms, str):
        raise QueryError(f"{what} takes the search terms as a string, not {type(terms).__name__}")
    if not encodable(terms):
        raise QueryError(
            f"{what}: the search terms hold a lone surrogate, which cannot be encoded as UTF-8"
        )
    if language is not None and not _is_text_language(language):
        shown = reprlib.repr(language) if isinstance(language, str) else type(language).__name__
        raise QueryError(
            f"{what}: unknown language {shown}: MongoDB's text search knows "
            f"{', '.join(sorted(n for n in TEXT_LANGUAGES if len(n) > 2 and n != 'none'))}, "
            "their ISO 639-1 codes ('en', 'fr'...) and 'none'"
        )
    if query.extras.search is not None:
        raise QueryError(f"{what} was already called on this queryset (MongoDB runs one $text)")
    if query.extras.geo_near is not None:
        raise QueryError(f"{what} cannot follow geo_near(): MongoDB cannot combine them")
    meta = getattr(query.model, "_meta", None)
    indexes = getattr(meta, "indexes", ())
    if not any(index.is_text for index in indexes):
        raise QueryError(
            f"{query.model.__name__} has no text index: declare one, e.g. "
            "Meta.indexes = [odm.Index(text=['title', 'body'])], to use search()"
        )
    name = _annotation_name(query, score, what)
    search = TextSearch(terms, language, name)
    query.where = (*query.where, Where(search.condition()))
    query.extras = replace(
        query.extras, search=search, computed=(*query.extras.computed, name)
    )


def with_geo_near(
    query: QueryState,
    path: Any,
    point: Any,
    *,
    distance: Any,
    max_distance: Any,
    min_distance: Any,
) -> None:
    """Make ``query`` start with ``$geoNear`` from ``point`` on the GeoJSON field ``path``."""
    what = f"geo_near({path!r})"
    if query.extras.geo_near is not None:
        raise QueryError(f"{what}: geo_near() was already called on this queryset")
    if query.extras.search is not None:
        raise QueryError(f"{what} cannot follow search(): MongoDB cannot combine them")
    if query.annotations or query.values_fields is not None:
        raise QueryError(f"{what} must come before values() and annotate()")
    target = resolve(query.model, path)
    if target.joins or target.free or (
        target.field.kind is not Kind.ANY and not geometry_models(target.field)
    ):
        raise QueryError(
            f"{what}: {path!r} is not a GeoJSON field of {query.model.__name__} "
            f"({target.field.label})",
            field=path,
        )
    meta = getattr(query.model, "_meta", None)
    if not any(
        key == target.db_path and direction == "2dsphere"
        for index in getattr(meta, "indexes", ())
        for key, direction in index.keys
    ):
        raise QueryError(
            f"{what} needs a 2dsphere index on {path!r}: declare "
            f"odm.Index(({path!r}, '2dsphere')) in {query.model.__name__}.Meta.indexes",
            field=path,
        )
    near = Near(point, max_distance=max_distance, min_distance=min_distance)
    name = _annotation_name(query, distance, what)
    geo = GeoNear(
        key=target.db_path,
        point=near.point.geojson(),
        name=name,
        max_distance=near.max_distance,
        min_distance=near.min_distance,
    )
    query.extras = replace(query.extras, geo_near=geo, computed=(*query.extras.computed, name))


def with_collation(query: QueryState, collation: Mapping[str, Any] | None) -> None:
    """Compare strings in ``query`` (filters, ordering, ``$group``) by ``collation``; ``None``
    returns to the collection's default."""
    query.extras = replace(query.extras, collation=collation)


# -- the annotations of loaded documents ----------------------------------------------------

def set_annotations(documents: list[Any], values: list[dict[str, Any]]) -> None:
    """Give each loaded document its computed values (distance, score)."""
    for document, computed in zip(documents, values, strict=True):
        try:
            tracking.set_annotations(document, computed)
        except AttributeError:
            continue  # not a Document (an Invalid row of a lenient() queryset)
