"""Index declarations: ``Index(...)`` -> a PyMongo ``IndexModel`` and a comparable spec; no I/O.

``Index("name", "-created")`` is compound (``-`` means descending), ``expire_after=`` makes a TTL
index, ``partial=`` a partial one, ``text=[...]`` a text index over several fields,
``collation=`` one that compares strings by a locale's rules (``{"locale": "en", "strength": 2}``:
case-insensitive; a query uses it when it asks for the same collation). Each index
has a name (the server's default ``field_1_other_-1`` unless ``name=`` is given); the name is
what :func:`odm.ensure_indexes` and the migrations compare with the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo import IndexModel

from ..collation import check_collation

__all__ = ["Index", "IndexKey", "index_differences"]

#: One key of an index: the stored field path and 1, -1, "text", "hashed", "2dsphere"...
IndexKey = tuple[str, int | str]


def _parse_key(field: str | tuple[str, int | str]) -> IndexKey:
    if isinstance(field, tuple):
        path, direction = field
        return path, direction
    if field.startswith("-"):
        return field[1:], -1
    if field.startswith("+"):
        return field[1:], 1
    return field, 1


class Index:
    """One index of a Document's collection, declared in ``Meta.indexes``.

    ``fields`` are field names (``"address.city"`` reaches into embedded documents, ``"-x"``
    is descending, ``("loc", "2dsphere")`` gives a direction explicitly); ``text=[...]`` adds
    text keys. Options mirror the server's: ``unique``, ``sparse``, ``expire_after`` (seconds,
    TTL), ``partial`` (a ``partialFilterExpression``), ``collation`` (a dict of the server's
    collation fields: ``locale``, ``strength``...) and ``name``.
    """

    __slots__ = ("collation", "expire_after", "keys", "name", "partial", "sparse", "unique")

    def __init__(
        self,
        *fields: str | tuple[str, int | str],
        unique: bool = False,
        sparse: bool = False,
        expire_after: float | None = None,
        partial: Mapping[str, Any] | None = None,
        text: Sequence[str] | None = None,
        name: str | None = None,
        collation: Mapping[str, Any] | None = None,
    ) -> None:
        keys = [_parse_key(f) for f in fields]
        keys.extend((path, "text") for path in (text or ()))
        if not keys:
            raise ValueError("Index() needs at least one field (or text=[...])")
        if expire_after is not None and expire_after < 0:
            raise ValueError(f"expire_after must not be negative, not {expire_after!r}")
        self.keys: list[IndexKey] = keys
        self.unique = unique
        self.sparse = sparse
        self.expire_after = expire_after
        self.partial: dict[str, Any] | None = dict(partial) if partial is not None else None
        self.collation: dict[str, Any] | None = (
            check_collation(collation, "Index(collation=...)") if collation is not None else None
        )
        self.name = name or "_".join(f"{path}_{direction}" for path, direction in keys)

    @property
    def fields(self) -> list[str]:
        """Return the field paths of the index, in key order."""
        return [path for path, _ in self.keys]

    @property
    def is_text(self) -> bool:
        """Tell whether the index has text keys."""
        return any(direction == "text" for _, direction in self.keys)

    def with_paths(self, resolve: Callable[[str], str]) -> Index:
        """Return a copy whose field paths went through ``resolve`` (field names -> stored keys).

        The name is kept if it was given, else derived again from the stored keys, as the server
        would.
        """
        copy = Index.__new__(Index)
        copy.keys = [(resolve(path), direction) for path, direction in self.keys]
        copy.unique, copy.sparse = self.unique, self.sparse
        copy.expire_after, copy.partial = self.expire_after, self.partial
        copy.collation = self.collation
        derived = "_".join(f"{path}_{direction}" for path, direction in self.keys)
        copy.name = (
            self.name
            if self.name != derived
            else "_".join(f"{p}_{d}" for p, d in copy.keys)
        )
        return copy

    def options(self) -> dict[str, Any]:
        """Return the options as the server names them (only those that are set)."""
        options: dict[str, Any] = {}
        if self.unique:
            options["unique"] = True
        if self.sparse:
            options["sparse"] = True
        if self.expire_after is not None:
            seconds = self.expire_after
            options["expireAfterSeconds"] = int(seconds) if float(seconds).is_integer() else seconds
        if self.partial is not None:
            options["partialFilterExpression"] = self.partial
        if self.collation is not None:
            options["collation"] = self.collation
        return options

    def spec(self) -> dict[str, Any]:
        """Return ``{"name", "key": [(path, direction), ...], **options}``, the normalized form
        that :func:`index_differences` compares with the server's ``list_indexes()`` output."""
        return {"name": self.name, "key": list(self.keys), **self.options()}

    def to_index_model(self) -> IndexModel:
        """Return the PyMongo ``IndexModel`` that creates this index."""
        return IndexModel(list(self.keys), name=self.name, **self.options())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Index) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.keys)))

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options().items())
        return f"Index({self.keys!r}, name={self.name!r}{options})"


def _server_keys(info: Mapping[str, Any]) -> list[IndexKey]:
    """Return the keys of a server index description, text keys expanded from ``weights``."""
    keys: list[IndexKey] = []
    weights = info.get("weights") or {}
    for path, direction in dict(info.get("key", {})).items():
        if path == "_fts":
            keys.extend((w, "text") for w in sorted(weights))
        elif path != "_ftsx":
            keys.append((path, int(direction) if isinstance(direction, float) else direction))
    return keys


def _text_order(key: IndexKey) -> tuple[bool, str]:
    path, direction = key
    return (direction == "text", path if direction == "text" else "")


def index_differences(spec: Mapping[str, Any], server: Mapping[str, Any]) -> list[str]:
    """Return how the server index ``server`` (one ``list_indexes()`` item) differs from
    ``spec`` (:meth:`Index.spec`), as readable phrases; empty when they match."""
    wanted_keys = list(spec["key"])
    have_keys = _server_keys(server)
    if any(d == "text" for _, d in wanted_keys):
        # The server keeps text keys as a set of weights, not in declaration order.
        wanted_keys = sorted(wanted_keys, key=_text_order)
        have_keys = sorted(have_keys, key=_text_order)
    differences: list[str] = []
    if [(p, d) for p, d in wanted_keys] != [(p, d) for p, d in have_keys]:
        differences.append(f"keys {have_keys} on the server, {wanted_keys} declared")
    if _full_collation(spec.get("collation")) != _full_collation(server.get("collation")):
        differences.append(
            f"collation={_shown(server.get('collation'))!r} on the server, "
            f"{spec.get('collation')!r} declared"
        )
    for option in ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression"):
        want = spec.get(option)
        have = server.get(option)
        if option in ("unique", "sparse"):
            want, have = bool(want), bool(have)
        elif want is not None and have is not None and option == "expireAfterSeconds":
            want, have = float(want), float(have)
        elif have is not None and option == "partialFilterExpression":
            have = dict(have)
        if want != have:
            differences.append(f"{option}={have!r} on the server, {want!r} declared")
    return differences


#: The server's values for the collation fields a declaration leaves out (``backwards`` is
#: left out: its default depends on the locale), as ``list_indexes()`` reports them filled in.
_COLLATION_DEFAULTS: dict[str, Any] = {
    "caseLevel": False,
    "caseFirst": "off",
    "strength": 3,
    "numericOrdering": False,
    "alternate": "non-ignorable",
    "maxVariable": "punct",
    "normalization": False,
}


def _shown(collation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a server collation without its ICU ``version`` (not something one declares)."""
    if collation is None:
        return None
    return {k: v for k, v in dict(collation).items() if k != "version"}


def _full_collation(collation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a collation with the server's defaults filled in, for comparing a declaration
    (``{"locale": "en", "strength": 2}``) with what ``list_indexes()`` reports."""
    shown = _shown(collation)
    if shown is None or shown.get("locale") == "simple":
        return None  # the simple collation is the absence of one
    full = {**_COLLATION_DEFAULTS, **shown}
    if full.get("backwards") is False:
        del full["backwards"]  # the usual default: declared False and left out compare equal
    return full
