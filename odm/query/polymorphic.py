"""Fields of a polymorphic family's subclasses, seen from a base class's queries.

``Animal.objects.filter(folded_ears=True)`` names a field only ``Cat`` declares. A query on a
polymorphic base may use it when the name means one thing across the registered subclasses
that declare it (the same stored key and the same type): documents of the other classes simply
lack the key, as MongoDB (and MongoEngine) treat a missing field. When two subclasses declare
the name with different types or stored keys the path is ambiguous and refused, naming them.
No I/O; called by :func:`odm.query.paths.resolve` for the first part of a path only.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import QueryError
from ..models.field_types import FieldType, field_type_of, stored_key

__all__ = ["subclass_field"]


def _declaring(model: type[Any], name: str) -> list[type[Any]]:
    """Return the registered subclasses of ``model`` (in its family) that have field ``name``."""
    meta = getattr(model, "_meta", None)
    if meta is None or not getattr(meta, "polymorphic", False):
        return []
    return [
        cls
        for cls in meta.family.values()
        if cls is not model and issubclass(cls, model) and name in cls.model_fields
    ]


def subclass_field(model: type[Any], name: str) -> tuple[type[Any], FieldType] | None:
    """Return ``(declaring subclass, field type)`` of ``name``, a field that ``model`` itself
    lacks but some of its polymorphic subclasses declare; ``None`` when none does.

    Raises :class:`~odm.exceptions.QueryError` naming the subclasses when they disagree on the
    field's type (its filter form: constraints such as ``ge=0`` do not count) or stored key.
    """
    declaring = _declaring(model, name)
    if not declaring:
        return None
    # (stored key, filter annotation) -> the classes declaring it so; annotations may be
    # unhashable (Annotated metadata), so a list compared with ==.
    groups: list[tuple[tuple[str, Any], list[type[Any]]]] = []
    for cls in declaring:
        signature = (stored_key(cls, name), field_type_of(cls, name).annotation)
        for seen, members in groups:
            if seen == signature:
                members.append(cls)
                break
        else:
            groups.append((signature, [cls]))
    if len(groups) > 1:
        described = "; ".join(
            f"{', '.join(sorted(c.__name__ for c in members))}: "
            f"{field_type_of(members[0], name).label} stored as {key!r}"
            for (key, _), members in groups
        )
        raise QueryError(
            f"{model.__name__} has no field {name!r} of its own, and its subclasses declare it "
            f"differently ({described}): query one subclass instead "
            f"(e.g. {groups[0][1][0].__name__}.objects)",
            field=name,
        )
    first = groups[0][1][0]
    return first, field_type_of(first, name)
