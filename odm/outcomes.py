"""What a document learns about a write of its own whose outcome is unknown.

A write cut off by a cancellation or a deadline (``asyncio.timeout()``, ``timeout=``, a
request whose client went away) may have run on the server, or may not have, or may still be
running there; so may one whose connection was lost (after the driver's retry), and one whose
write concern was not confirmed may yet be rolled back. Inside ``odm.transaction()`` a call
cut off makes the whole transaction roll back (:meth:`odm.uow.UnitOfWork.cut_off`). Outside
one there is nothing to roll back, so the document says it does not know: its snapshot
becomes an :class:`~odm.models.tracking.Unsure` one (:func:`mark_if_unknown`), and the next
``save()`` or ``delete()`` of it reads the stored document before it trusts its snapshot
(:func:`learn_outcome`). Without that, a ``save()``
whose ``$push`` ran would push again, and one whose ``$set`` ran and was then undone in memory
would send nothing.

What is learnt, from the stored document:

- gone: the document is not stored (a ``save()`` inserts it again);
- under ``Meta.optimistic_lock``: the stored form the cut-off write would leave means it ran
  (and nobody wrote since): that is the snapshot, with its version; the version the document
  had means nobody wrote at all: the stored form is the snapshot; anything else means someone
  else wrote meanwhile: the old snapshot stays, so the next write raises
  :class:`odm.StaleDocument` as any stale copy's does;
- otherwise: the old snapshot, but for the top-level keys the cut-off write touched, which are
  taken as stored (so the next ``save()`` writes exactly what differs there, and a field
  someone else changed meanwhile elsewhere is still left alone).

A write the server runs only after that read (it was still queued there) is beyond what a
client can see; ``docs/documents.md`` says so ("A write cut off").
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import ConnectionFailure, WriteConcernError

from . import executor
from .models.diffing import same
from .models.options import ID_KEY
from .models.tracking import Unsure, set_snapshot, unsure, will_change
from .session import current_unit_of_work
from .timeouts import is_cut_off

__all__ = ["learn_outcome", "mark_if_unknown", "outcome_unknown"]


def outcome_unknown(error: BaseException) -> bool:
    """Tell whether ``error`` ended a write without telling whether it ran: a cancellation or
    a deadline (:func:`odm.timeouts.is_cut_off`), a lost connection (after the driver's one
    retry of a retryable write), or a write concern the servers did not confirm (the primary
    applied it; a failover may still roll it back)."""
    return is_cut_off(error) or isinstance(error, ConnectionFailure | WriteConcernError)


def mark_if_unknown(
    document: Any,
    error: BaseException,
    call: str,
    planned: dict[str, Any] | None,
    update: dict[str, Any] | None = None,
) -> None:
    """Make ``document``'s snapshot :class:`~odm.models.tracking.Unsure` when ``error`` left
    the outcome of ``call``, its write, unknown outside a transaction (inside one, the
    transaction is rolled back and the abort puts the snapshot back)."""
    if current_unit_of_work() is None and outcome_unknown(error):
        unsure(document, call, planned, update)


async def learn_outcome(
    document: Any, marked: Unsure, *, timeout: float | None = None
) -> dict[str, Any] | None:
    """Read ``document``'s stored form, replace its :class:`~odm.models.tracking.Unsure`
    snapshot ``marked`` with what that tells (see the module's rules) and return the new
    snapshot (``None``: not stored)."""
    model = type(document)
    stored = await executor.find_one(model, {ID_KEY: document.id}, timeout=timeout)
    will_change(document)
    before = dict(marked) if marked.existed else None
    snapshot: dict[str, Any] | None
    if stored is None:
        snapshot = None
    elif before is None:
        snapshot = stored  # an insert cut off: whatever is stored under its id
    elif model._meta.optimistic_lock:
        meta = model._meta
        key = meta.db_key(meta.version_field)
        if marked.planned is not None and same(stored, marked.planned):
            snapshot = stored
            document.__dict__[meta.version_field] = stored.get(key)
        elif stored.get(key) == before.get(key):
            snapshot = stored
        else:
            snapshot = before
    else:
        snapshot = before
        for key in marked.touched:
            if key in stored:
                snapshot[key] = stored[key]
            else:
                snapshot.pop(key, None)
    set_snapshot(document, snapshot)
    return snapshot
