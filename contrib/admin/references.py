"""What the admin shows for a reference: the target document's label and its page's address."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from odm.exceptions import QueryError

from .options import ModelAdmin


def label(admin: ModelAdmin | None, doc: Any) -> str:
    """A document as a picker or a link shows it: its first non-empty searched field and id."""
    searched = admin.searched() if admin is not None else ()
    for name in searched:
        value = getattr(doc, name, None)
        if value:
            return f"{value} ({doc.id})"
    return str(doc.id)


async def labels(target: type[Any], admin: ModelAdmin | None, ids: Iterable[str]) -> dict[str, str]:
    """The labels of the documents of ``target`` with ``ids``, by id, in one query.

    An id that is not a document of ``target`` (gone, or not an id of its type) is absent.
    """
    wanted = sorted({i for i in ids if _is_id(target, i)})
    if not wanted:
        return {}
    found = await target.objects.filter(id__in=wanted)
    return {str(doc.id): label(admin, doc) for doc in found}


def _is_id(target: type[Any], id: str) -> bool:
    """Tell whether ``id`` reads as an id of ``target`` (its id field's type: an ObjectId,
    a string, a number...)."""
    try:
        target.objects.filter(id=id)
    except QueryError:
        return False
    return True
