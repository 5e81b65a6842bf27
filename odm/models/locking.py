"""The optimistic lock's counter: what a declared version field must be.

Under ``Meta.optimistic_lock`` the metaclass adds ``version: int = 0`` (``Meta.version_field``
names it) unless the class or a base declares it; declaring it is how type checkers without
odm's mypy plugin learn of it. odm then counts in the declared field, so a declaration that
cannot hold the count, or that would not start at 0, is refused at class creation. So is a
member of a polymorphic family whose lock differs from its family's: the family shares one
collection, so each of its writes must check and raise the one counter its documents hold.
"""

from __future__ import annotations

import typing
from typing import Any

from ..exceptions import DeclarationError
from .options import Options

__all__ = ["check_version_field"]


def _spelled(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def check_version_field(cls: type[Any], lock: bool, name: str) -> None:
    """Raise :class:`odm.DeclarationError`, naming class and field, when ``cls`` is under an
    optimistic lock (``lock``) whose counter field ``name`` is not an ``int`` defaulting to 0,
    or whose lock is not its polymorphic family's (:func:`_check_family_lock`).

    Called before anything records the class (registry, polymorphic family), so that a refused
    class leaves nothing behind."""
    if lock:
        _check_counter(cls, name)
    _check_family_lock(cls, lock, name)


def _check_counter(cls: type[Any], name: str) -> None:
    """Raise :class:`odm.DeclarationError` when the lock's counter field ``name`` of ``cls``
    is not an ``int`` defaulting to 0."""
    where = f"{cls.__qualname__}.{name}"
    wanted = f"declare it `{name}: int = 0`, or leave it out and odm adds that field"
    info = cls.model_fields.get(name)
    if info is None:
        raise DeclarationError(
            f"{where}: Meta.optimistic_lock counts versions in {name!r}, which is not a field "
            f"(a ClassVar or a private attribute?); {wanted}"
        )
    annotation = info.annotation
    if isinstance(annotation, str | typing.ForwardRef):
        return  # not resolved yet: the name can only resolve to what was meant
    if annotation is not int:
        raise DeclarationError(
            f"{where}: the optimistic lock's counter must be an int, not "
            f"{_spelled(annotation)}; {wanted}"
        )
    default = info.get_default(call_default_factory=False)
    if info.default_factory is not None or type(default) is not int or default != 0:
        found = "it has a default factory" if info.default_factory is not None else (
            "it has no default" if info.is_required() else f"its default is {default!r}"
        )
        raise DeclarationError(
            f"{where}: the optimistic lock's counter starts at 0 for a new document, so it "
            f"must default to 0 ({found}); {wanted}"
        )


def _stored_key(cls: type[Any], name: str) -> str:
    """The key field ``name`` of ``cls`` is stored under (its alias, or its name)."""
    info = cls.model_fields.get(name)
    return getattr(info, "alias", None) or name


def _check_family_lock(cls: type[Any], lock: bool, name: str) -> None:
    """Raise :class:`odm.DeclarationError` when ``cls`` joins a polymorphic family (its base
    is a concrete polymorphic class) with another lock than that base's: on or off, or the
    counter stored under another key.

    The family's documents share a collection, and a query on any class of it writes every
    subclass's documents: a class without the lock writes them without checking or raising
    the version, so an object under the lock that loaded one of them would not see the
    write (an update through the unlocked class, a delete and an insert of its id with the
    version the object holds) and its own save would pass the check and overwrite it."""
    parent: Options | None = next(
        (meta for b in cls.__bases__ if isinstance(meta := getattr(b, "_meta", None), Options)),
        None,
    )
    if parent is None or not parent.polymorphic or parent.abstract:
        return
    theirs = _spelled_lock(parent.optimistic_lock, parent.db_key(parent.version_field))
    ours = _spelled_lock(lock, _stored_key(cls, name))
    if ours != theirs:
        raise DeclarationError(
            f"{cls.__qualname__}: a polymorphic family shares one collection, so one optimistic "
            f"lock: its base {parent.model.__qualname__} has {theirs}, this class {ours}; set "
            "Meta.optimistic_lock (and Meta.version_field) on the family's root only"
        )


def _spelled_lock(lock: bool, key: str) -> str:
    """How an error names a class's lock: off, or on with the key its counter is stored under."""
    return f"Meta.optimistic_lock on (the counter stored as {key!r})" if lock else (
        "no Meta.optimistic_lock"
    )
