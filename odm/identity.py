"""IdentityMap: within one unit of work, one ``_id`` is one Python object.

An object is held under the id it had when it entered the map. Its code may give it another id
since (``doc.id = new``: a new document, see :func:`odm.models.tracking.get_snapshot`); from
then on it no longer stands for the document of its old id, so the map never hands it out for
that id (a query of the old id loads the stored document afresh) and leaves it out of the
flush and of the reads after a queryset write, until it is inserted under its new id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
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
        """Return the map key of ``document``, or ``None`` when it has no id yet."""
        ident = getattr(document, "id", None)
        if ident is None:
            return None
        meta = type(document)._meta
        return (meta.alias, meta.collection, ident)

    def add(self, document: Any) -> Any:
        """Return the canonical object for ``document``'s id, registering it if it is new.

        A document loaded a second time is dropped in favour of the first object, so changes
        made to that object are not lost under a fresh copy from the database.
        """
        key = self.key_of(document)
        if key is None:
            return document
        try:
            held = self._documents.get(key)
        except TypeError:  # an unhashable id (a dict, say) cannot be mapped
            return document
        if held is not None and _still_of(held, key):
            return held
        self._documents[key] = document  # new, or the held object's id changed since
        return document

    def get(self, document: Any) -> Any | None:
        """Return the object held for ``document``'s id, or ``None`` (nothing is added)."""
        key = self.key_of(document)
        if key is None:
            return None
        try:
            held = self._documents.get(key)
        except TypeError:
            return None
        return held if held is not None and _still_of(held, key) else None

    def replace(self, document: Any) -> None:
        """Make ``document`` the object of its id (it was just inserted: any object held
        for that id stood for a document deleted since)."""
        key = self.key_of(document)
        if key is None:
            return
        with suppress(TypeError):  # an unhashable id cannot be mapped
            self._documents[key] = document

    def discard(self, document: Any) -> Any | None:
        """Forget the object held for ``document``'s id (it was deleted) and return it (it
        may be another object than ``document``), or ``None`` when none was held."""
        key = self.key_of(document)
        if key is None:
            return None
        try:
            held = self._documents.pop(key, None)
        except TypeError:  # an unhashable id cannot be mapped
            return None
        return held if held is not None and _still_of(held, key) else None

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
        key = self.key_of(document)
        return key is not None and self._documents.get(key) is document


def _still_of(document: Any, key: Key) -> bool:
    """Tell whether ``document``, held under ``key``, still has the id of that key (its code
    may have given it another since: a new document then)."""
    ident = getattr(document, "id", None)
    return ident is key[2] or ident == key[2]
