"""The optimistic lock's counter: what a declared version field must be.

Under ``Meta.optimistic_lock`` the metaclass adds ``version: int = 0`` (``Meta.version_field``
names it) unless the class or a base declares it; declaring it is how type checkers without
odm's mypy plugin learn of it. odm then counts in the declared field, so a declaration that
cannot hold the count, or that would not start at 0, is refused at class creation.
"""

from __future__ import annotations

import typing
from typing import Any

from ..exceptions import DeclarationError

__all__ = ["check_version_field"]


def _spelled(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def check_version_field(cls: type[Any], lock: bool, name: str) -> None:
    """Raise :class:`odm.DeclarationError`, naming class and field, when ``cls`` is under an
    optimistic lock (``lock``) whose counter field ``name`` is not an ``int`` defaulting to 0.

    Called before anything records the class (registry, polymorphic family), so that a refused
    class leaves nothing behind."""
    if not lock:
        return
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
