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
  (and nobody wrote since): that is the snapshot, with its version (which the object takes
  too, unless its version was set by hand since: then the next write raises
  :class:`odm.StaleDocument`, as without a cut-off); the version the document had means
  nobody wrote at all: the stored form is the snapshot; anything else means someone else
  wrote meanwhile: the old snapshot stays, so the next write raises
  :class:`odm.StaleDocument` as any stale copy's does;
- otherwise: the old snapshot, path by path of the cut-off update (a dotted ``$set`` or
  ``$unset`` path, a ``$push`` target): where the stored value shows the write ran (it equals
  the value set, the path is gone, the pushed items follow the old list), the value that write
  left; elsewhere the old value. Nothing else is taken from the stored document: the next
  ``save()`` then sends again only the user's own changes that did not run, never a value
  someone else wrote meanwhile (even in the same sub-document or list) and never an append
  twice. (The document, like any copy loaded earlier, does not learn those other values.)

Its copies (:mod:`odm.models.copies`) learn it too (:func:`odm.models.copies.learnt`).

The read comes after the cut-off write has left the client: under Motor a cut-off call's
thread may still be about to send it, and the read waits for that thread
(:func:`odm.drivers.thread_calls_finished`). A write the server runs only after that read (it
was still queued there) is beyond what a client can see; ``docs/documents.md`` says so ("A
write cut off").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.errors import ConnectionFailure, WriteConcernError

from . import drivers, executor
from .models import copies
from .models.diffing import same
from .models.options import ID_KEY
from .models.tracking import Unsure, set_snapshot, unsure, will_change
from .models.writes import get_path, learnt_insert
from .session import current_unit_of_work
from .timeouts import deadline_after, is_cut_off, time_left

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
    # Its own write may still wait in a driver's thread (Motor): read after it, not before,
    # both within the one timeout=.
    deadline = deadline_after(timeout)
    await drivers.thread_calls_finished(timeout)
    stored = await executor.find_one(
        model, {ID_KEY: document.id}, timeout=time_left(deadline, 0.001)
    )
    will_change(document)
    before = dict(marked) if marked.existed else None
    snapshot: dict[str, Any] | None
    if stored is None:
        snapshot = None
    elif before is None:
        # An insert cut off: whatever is stored under its id; under the lock only when it is
        # what the insert sent, else the object is stale (see learnt_insert).
        planned = marked.planned
        snapshot = stored if planned is None else learnt_insert(document, planned, stored)
    elif model._meta.optimistic_lock:
        meta = model._meta
        key = meta.db_key(meta.version_field)
        if marked.planned is not None and same(stored, marked.planned):
            snapshot = stored
            _learn_version(document, before, stored)
        elif stored.get(key) == before.get(key):
            snapshot = stored
        else:
            snapshot = before
    elif marked.sent is not None:
        snapshot = _learn_paths(before, marked.sent, marked.planned or {}, stored)
    else:  # a whole-document write (an insert() of a stored document): its top-level keys
        snapshot = before
        for key in marked.touched:
            if key in stored:
                snapshot[key] = stored[key]
            else:
                snapshot.pop(key, None)
    set_snapshot(document, snapshot)
    copies.learnt(document, snapshot, stored=snapshot is stored)
    return snapshot


def _learn_version(document: Any, before: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """Under ``Meta.optimistic_lock``, give ``document`` the version of ``stored``, what its
    cut-off write left, if it still holds the one it had when that write was sent (that of
    ``before``, its snapshot then; ``None``: stored without one, which loads as 0).

    As for any other field, what is learnt goes to the snapshot, and the object's value only
    where the user did not change it since: a version set by hand after the cut-off (a
    client's, copied on with the rest of a request body) stays, so that the write about to
    be sent is refused as it is without a cut-off
    (:func:`odm.models.writes.write_filter`: :class:`odm.StaleDocument`) instead of passing
    the lock's check with that version silently replaced."""
    meta = type(document)._meta
    key = meta.db_key(meta.version_field)
    sent_at = before.get(key)
    if document.__dict__.get(meta.version_field) == (0 if sent_at is None else sent_at):
        document.__dict__[meta.version_field] = stored.get(key)


_MISSING: Any = object()


def _learn_paths(
    before: dict[str, Any],
    update: Mapping[str, Any],
    planned: Mapping[str, Any],
    stored: Mapping[str, Any],
) -> dict[str, Any]:
    """Return ``before`` with, at each path of ``update`` the stored document shows ran, the
    value ``planned`` has there (the other paths, and everything else, as in ``before``)."""
    snapshot = before
    for operator, paths in update.items():
        for path, argument in paths.items():
            now = get_path(stored, path, _MISSING)
            if operator == "$set":
                ran = now is not _MISSING and same(now, argument)
            elif operator == "$unset":
                ran = now is _MISSING
            elif operator == "$push":
                ran = _pushed(get_path(before, path, _MISSING), argument, now)
            else:  # not an operator save() sends: take the stored value
                snapshot = _put(snapshot, path, now)
                continue
            if ran:
                snapshot = _put(snapshot, path, get_path(planned, path, _MISSING))
    return snapshot


def _pushed(old: Any, argument: Any, now: Any) -> bool:
    """Tell whether the stored list ``now`` shows the ``$push`` of ``argument`` onto ``old``
    ran: the pushed items are in it, together and after the items ``old`` had (others may
    have pushed before or after them)."""
    items = argument["$each"] if isinstance(argument, Mapping) and "$each" in argument else [
        argument
    ]
    if not isinstance(now, list) or not items:
        return False
    start = len(old) if isinstance(old, list) else 0
    count = len(items)
    return any(
        same(now[at : at + count], items) for at in range(start, len(now) - count + 1)
    )


def _put(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (``_MISSING``: remove) dotted ``path`` in ``raw``, copying the sub-documents on the
    way (a snapshot's sub-documents may be shared with others: never mutated)."""
    if value is _MISSING and get_path(raw, path, _MISSING) is _MISSING:
        return raw
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        child = dict(child) if isinstance(child, Mapping) else {}
        node[part] = child
        node = child
    if value is _MISSING:
        node.pop(last, None)
    else:
        node[last] = value
    return raw
