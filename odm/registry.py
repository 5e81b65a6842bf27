"""The registry of Document classes: filled by the metaclass at class creation.

``odm.registry`` is one :class:`Registry` instance (not a class-level dict), so that tests and
tools can build their own registries if they need to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .exceptions import DeclarationError

__all__ = ["Registry", "registry"]


def _same_declaration(a: type[Any], b: type[Any]) -> bool:
    # A class declared again by the same module and name (a reloaded module, a test function
    # run twice) replaces the old one rather than clashing with it.
    return bool(a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


class Registry:
    """Every concrete Document class, by name and by (alias, collection)."""

    def __init__(self) -> None:
        self._models: dict[str, type[Any]] = {}
        self._collections: dict[tuple[str, str], type[Any]] = {}

    def register(self, model: type[Any]) -> None:
        """Add ``model``; refuse a second, unrelated class on the same collection.

        Classes of one polymorphic family share their root's collection: only the root owns
        the collection entry.
        """
        meta = model._meta
        root = meta.root or model
        key = (meta.alias, meta.collection)
        owner = self._collections.get(key)
        if owner is not None and owner is not root and not _same_declaration(owner, root):
            raise DeclarationError(
                f"{model.__qualname__}: collection {meta.collection!r} (alias {meta.alias!r}) "
                f"is already used by {owner.__module__}.{owner.__qualname__}; give one of them "
                "another Meta.collection, or make the base polymorphic (Meta.polymorphic = True)"
            )
        if root is model:
            self._collections[key] = model
        for name, existing in list(self._models.items()):
            if _same_declaration(existing, model):
                del self._models[name]
        self._models[self._name_of(model)] = model

    @staticmethod
    def _name_of(model: type[Any]) -> str:
        return f"{model.__module__}.{model.__qualname__}"

    def unregister(self, model: type[Any]) -> None:
        """Forget ``model`` (tests use this to declare throwaway classes)."""
        self._models.pop(self._name_of(model), None)
        meta = model._meta
        key = (meta.alias, meta.collection)
        if self._collections.get(key) is model:
            del self._collections[key]

    def __iter__(self) -> Iterator[type[Any]]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model: object) -> bool:
        return any(m is model for m in self._models.values())

    def models(self, alias: str | None = None) -> list[type[Any]]:
        """Return the registered classes, only those of ``alias`` when it is given."""
        return [m for m in self._models.values() if alias is None or m._meta.alias == alias]

    def get(self, name: str) -> type[Any]:
        """Return the class named ``name`` (``"Customer"`` or ``"shop.models.Customer"``).

        Raises ``LookupError`` when no class or several classes have that name.
        """
        if name in self._models:
            return self._models[name]
        found = [m for m in self._models.values() if m.__name__ == name or m.__qualname__ == name]
        if len(found) == 1:
            return found[0]
        if not found:
            raise LookupError(f"no Document class named {name!r} is registered")
        where = ", ".join(self._name_of(m) for m in found)
        raise LookupError(f"several Document classes are named {name!r}: {where}")

    def for_collection(self, collection: str, alias: str = "default") -> type[Any] | None:
        """Return the class (the family root when polymorphic) stored in ``collection``."""
        return self._collections.get((alias, collection))

    def collections(self, alias: str | None = None) -> dict[tuple[str, str], type[Any]]:
        """Return ``{(alias, collection): model}`` for every collection, of ``alias`` if given."""
        return {k: m for k, m in self._collections.items() if alias is None or k[0] == alias}


#: The registry the metaclass fills.
registry = Registry()
