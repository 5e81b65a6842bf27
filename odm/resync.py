"""After a queryset's ``update()`` or ``delete()`` inside ``odm.transaction()``, the documents
the unit of work tracks in that collection are read again.

A bulk write runs on the server: it never passes through the objects the identity map holds,
and a later load of the same ``_id`` in the block gives back the held object as it was. Without
this, inside the block ``order.total`` would still show the value the update replaced, and
after the commit the object would disagree with the database without an error. SQLAlchemy does
the same after a bulk update (``synchronize_session="fetch"``); Django has no identity map.

Each held document of the collection is read in one ``find`` by ``_id`` (in the transaction, so
it sees the write): one the write deleted is no longer stored (``save()`` would insert it again,
as after ``delete()``); one it changed takes the stored values and snapshot, as ``refresh()``
does. The autoflush before the write (``QuerySet._write_target``) sent their own changes
first, so no value of the user's is replaced. Every change is noted in the journal, so that an
abort takes it back (:mod:`odm.journal`).
"""

from __future__ import annotations

from typing import Any

from . import executor
from .models.diffing import same
from .models.loading import load_stored
from .models.options import ID_KEY
from .models.tracking import collection_model, gone, raw_snapshot, stored_id, will_change

__all__ = ["read_again"]


async def read_again(uow: Any, model: type[Any], *, only: Any = None) -> None:
    """Read again the documents ``uow`` (a :class:`odm.uow.UnitOfWork`) holds in ``model``'s
    collection, after a bulk write to it in the transaction (``only``: the one ``_id`` the
    write's filter named, when it named one: the others cannot have changed)."""
    meta = model._meta
    held = uow.identity.of_collection(meta.alias, meta.collection)
    ids = [stored_id(document) for document in held]
    if only is not None:
        held = [document for document, ident in zip(held, ids, strict=True) if ident == only]
        ids = [only] * len(held)
    if not held:
        return
    raws = await executor.find_list(collection_model(model), {ID_KEY: {"$in": ids}})
    stored = {raw[ID_KEY]: raw for raw in raws}
    for document, ident in zip(held, ids, strict=True):
        raw = stored.get(ident)
        snapshot = raw_snapshot(document)
        if raw is None:
            if snapshot is not None:  # the write deleted it
                gone(document)
            continue
        if snapshot is not None and same(raw, snapshot):
            continue  # the write left it alone
        load_stored(document, raw, before=will_change)
        uow.was_read(document)
