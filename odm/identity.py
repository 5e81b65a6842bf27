"""IdentityMap: within one unit of work, one ``_id`` is one Python object.

An object is held under the id it had when it entered the map. Its code may give it another id
since (``doc.id = new``: a new document, see :func:`odm.models.tracking.get_snapshot`); from
then on it no longer stands for the document of its old id, so the map never hands it out for
that id (a query of the old id loads the stored document afresh) and leaves it out of the
flush and of the reads after a queryset write, until it is inserted under its new id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Key = tuple[str, str, Any]


class IdentityMap:
    """Documents of one unit of work keyed by (alias, collection, ``_id``).

    Keyed by collection rather than class so that a polymorphic family (one collection, many
    classes) still maps one stored document to one object.
    """

    __slots__ = ("_documents",)

    def __init__(self) -> None:
        self._documents: dict[Key, Any] = {}

    @staticmethod
    def key_of(document: Any) -> Key | None:
        """Return the map key of ``document`` as its id is (it may not be hashable: see
        :meth:`_held`), or ``None`` when it has no id yet."""
        ident = getattr(document, "id", None)
        if ident is None:
            return None
        meta = type(document)._meta
        return (meta.alias, meta.collection, ident)

    def _held(self, document: Any) -> tuple[Key | None, Any]:
        """Return the map key of ``document`` and the object held under it (``None``: none);
        the key is ``None`` when ``document`` cannot be mapped (no id yet).

        An id that cannot be hashed (a compound ``_id``: a dict, an embedded model) is keyed
        by its stored form, frozen (:class:`FrozenId`): looked for only once the usual key
        failed, so that the usual id costs nothing more."""
        key = self.key_of(document)
        if key is None:
            return None, None
        try:
            return key, self._documents.get(key)
        except TypeError:
            frozen = frozen_id(document)
            if frozen is None:  # not even its stored form can be hashed: not mapped
                return None, None
            key = (key[0], key[1], frozen)
            return key, self._documents.get(key)

    def key(self, document: Any) -> Key | None:
        """Return the map key of ``document`` as its id is now (a compound id frozen), or
        ``None`` when it cannot be mapped (no id yet)."""
        return self._held(document)[0]

    def add(self, document: Any) -> Any:
        """Return the canonical object for ``document``'s id, registering it if it is new.

        A document loaded a second time is dropped in favour of the first object, so changes
        made to that object are not lost under a fresh copy from the database.
        """
        key, held = self._held(document)
        if key is None:
            return document
        if held is not None and _still_of(held, key):
            return held
        self._documents[key] = document  # new, or the held object's id changed since
        return document

    def get(self, document: Any) -> Any | None:
        """Return the object held for ``document``'s id, or ``None`` (nothing is added)."""
        key, held = self._held(document)
        if key is None:
            return None
        return held if held is not None and _still_of(held, key) else None

    def replace(self, document: Any) -> None:
        """Make ``document`` the object of its id (it was just inserted: any object held
        for that id stood for a document deleted since)."""
        key, _ = self._held(document)
        if key is not None:
            self._documents[key] = document

    def discard(self, document: Any) -> Any | None:
        """Forget the object held for ``document``'s id (it was deleted) and return it (it
        may be another object than ``document``), or ``None`` when none was held."""
        key, held = self._held(document)
        if key is None or held is None:
            return None
        del self._documents[key]
        return held if _still_of(held, key) else None

    def of_collection(self, alias: str, collection: str) -> list[Any]:
        """Return the documents held for one collection (of any class of its family)."""
        return [
            document
            for key, document in self._documents.items()
            if key[0] == alias and key[1] == collection and _still_of(document, key)
        ]

    def __iter__(self) -> Iterator[Any]:
        """The documents held, each under the id it still has."""
        return iter([
            document for key, document in self._documents.items() if _still_of(document, key)
        ])

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, document: object) -> bool:
        key, held = self._held(document)
        return key is not None and held is document


def _still_of(document: Any, key: Key) -> bool:
    """Tell whether ``document``, held under ``key``, still has the id of that key (its code
    may have given it another since: a new document then)."""
    ident = getattr(document, "id", None)
    held = key[2]
    if ident is held or ident == held:
        return True
    try:
        hash(ident)
    except TypeError:  # a compound id: held under its stored form, frozen
        return bool(frozen_id(document) == held)
    return False


class FrozenId(tuple[Any, ...]):
    """A compound ``_id`` (a sub-document) as a hashable key: its stored form with every
    sub-document a tuple of ``(key, value)`` pairs in stored order and every array a tuple,
    each tagged. Two ids MongoDB tells apart (the same keys in another order) stay apart."""

    __slots__ = ()


#: The tags of a frozen sub-document and of a frozen array.
_DOCUMENT, _ARRAY = "{}", "[]"


def hashable_id(stored: Any) -> Any:
    """Return ``stored``, an ``_id`` as stored, as a key of a dict: itself when it can be
    hashed, else frozen (:class:`FrozenId`), or ``None`` when even that cannot be hashed."""
    try:
        hash(stored)
    except TypeError:
        frozen = FrozenId(_freeze(stored))
        try:
            hash(frozen)
        except TypeError:
            return None
        return frozen
    return stored


def by_stored_id(raws: Iterable[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Key stored documents by their ``_id`` as :func:`hashable_id` makes it (a compound
    ``_id`` is a dict): look one up with ``found.get(hashable_id(ident))``."""
    return {hashable_id(raw["_id"]): raw for raw in raws}


def frozen_id(document: Any) -> Any:
    """Return ``document``'s ``_id`` as stored, as :func:`hashable_id` makes it a key."""
    dumped = type(document).__pydantic_serializer__.to_python(
        document, by_alias=True, include={"id"}
    )
    return hashable_id(next(iter(dumped.values()), None))


def _freeze(value: Any) -> tuple[Any, ...]:
    if isinstance(value, Mapping):
        return (_DOCUMENT, tuple((key, _frozen_item(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return (_ARRAY, tuple(_frozen_item(item) for item in value))
    return (value,)


def _frozen_item(value: Any) -> Any:
    return _freeze(value) if isinstance(value, Mapping | list | tuple) else value
