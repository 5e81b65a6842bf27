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
does. The autoflush before the write (``odm.filtered_writes.write_target``) sent their own changes
first, so no value of the user's is replaced. Every change is noted in the journal, so that an
abort takes it back (:mod:`odm.journal`).

When the read fails after the write was sent (most often a document the write left in a state
its model refuses, such as ``update(n=F("n") - 10)`` under ``n: int = Field(ge=0)``: it cannot
be loaded), the transaction becomes rollback-only (``UnitOfWork.rollback_only``): the held
documents still say what they said before the write, which the transaction no longer holds, so a
commit would make them lie (their next ``save()`` would diff against values the database no
longer has) and would keep a document its model cannot load. The block's next operation and its
end raise :class:`odm.TransactionError` naming the write and the document; the abort makes the
documents true again, and the error raised by the read goes on, with a note saying so. Letting
the block commit with that document dropped from the identity map, its snapshot marked unknown,
would store what the model refuses and let the document's next ``save()`` write its old value
back over the update.

Outside a transaction nothing is read again: there is no identity map, so odm holds no object
for the write to change, and an object loaded before it is a copy of its time (as after a write
by another client, Django's rule); its next ``save()`` sends only the fields changed in memory,
and under ``Meta.optimistic_lock`` (which the update bumps) it raises
:class:`odm.StaleDocument` instead; ``refresh()`` reads it again.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from . import executor
from .identity import by_stored_id, hashable_id
from .models.diffing import same
from .models.loading import load_stored
from .models.options import ID_KEY
from .models.tracking import collection_model, gone, raw_snapshot, stored_id, will_reread

__all__ = ["read_again"]


async def read_again(
    uow: Any, model: type[Any], *, only: Any = None, write: str = "update"
) -> None:
    """Read again the documents ``uow`` (a :class:`odm.uow.UnitOfWork`) holds in ``model``'s
    collection, after a bulk write to it in the transaction (``only``: the one ``_id`` the
    write's filter named, when it named one: the others cannot have changed; ``write``: the
    queryset method that wrote, to name it).

    If the read fails, the transaction becomes rollback-only and the error goes on (see the
    module's docstring)."""
    unloadable: list[Any] = []
    try:
        await _read_again(uow, model, only, unloadable)
    except BaseException as error:
        what = f"{model.__name__} {write}() wrote in this transaction, but " + (
            f"the document _id={unloadable[-1]!r} it left could not be loaded"
            if unloadable
            else "the documents it may have changed could not be read back"
        ) + f" ({_first_line(error)})"
        uow.rollback_only(what, error)
        raise


def _first_line(error: BaseException) -> str:
    """``error`` in a few words: its type and its first line (a ``ValidationError``'s first
    line names the model and the ``_id``, said already: its first error instead)."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"ValidationError: {where + ': ' if where else ''}{first['msg']}"
    text = str(error).strip().partition("\n")[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__



async def _read_again(uow: Any, model: type[Any], only: Any, failed: list[Any]) -> None:
    """:func:`read_again`; the id of a document that cannot be loaded is appended to
    ``failed`` before its error goes on."""
    meta = model._meta
    held = uow.identity.of_collection(meta.alias, meta.collection)
    ids = [stored_id(document) for document in held]
    if only is not None:
        held = [document for document, ident in zip(held, ids, strict=True) if ident == only]
        ids = [only] * len(held)
    if not held:
        return
    raws = await executor.find_list(collection_model(model), {ID_KEY: {"$in": ids}})
    stored = by_stored_id(raws)
    for document, ident in zip(held, ids, strict=True):
        raw = stored.get(hashable_id(ident))
        snapshot = raw_snapshot(document)
        if raw is None:
            if snapshot is not None:  # the write deleted it
                gone(document)
            continue
        if snapshot is not None and same(raw, snapshot):
            continue  # the write left it alone
        failed.append(ident)
        # Validated before anything changes; the block's own writes of it are kept first.
        load_stored(document, raw, before=will_reread)
        failed.pop()
        uow.was_read(document)
