"""The unit of work's journal: each document's tracking state before a transaction changed it.

A write inside ``odm.transaction()`` (``insert``, ``save``, ``delete``, ``refresh``,
``bulk_create``, the flush) changes what a document believes the database holds: its snapshot,
its optimistic-lock version, whether it is stored. Those beliefs only come true if the
transaction commits. So before the first such change in a block, the unit of work keeps the
document's state here; an abort of any cause puts every kept state back
(:meth:`Journal.restore`), and a commit simply forgets them (:meth:`Journal.clear`). When a
commit's outcome is unknown, the states are read again from the server instead
(:meth:`Journal.reload`). Field values are never put back: they are the user's intent, and the
next ``save()`` writes exactly what differs from what the database holds.

SQLAlchemy does the same on ``Session.rollback()`` (it expires instance state); odm keeps the
old state instead of reloading it, so that an optimistic lock still sees a concurrent write.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from pymongo.errors import PyMongoError

from . import executor
from .exceptions import OperationTimeout
from .models.copies import written
from .models.loading import _snapshot_of
from .models.options import ID_KEY
from .models.tracking import (
    TrackingState,
    capture_state,
    collection_model,
    restore_state,
    set_snapshot,
)

__all__ = ["Journal"]

logger = logging.getLogger("odm.uow")


class Journal:
    """Documents whose tracking state a transaction changed, with their state before it, and
    documents loaded after the transaction wrote (their state is read back after an abort)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        # Keyed by id(): the entry holds the document, so its id() stays its own. A state of
        # None means "read it back": the document was loaded after the transaction wrote, so
        # what it was loaded with may be one of the transaction's own writes.
        self._entries: dict[int, tuple[Any, TrackingState | None]] = {}

    def remember(self, document: Any) -> None:
        """Keep ``document``'s state unless it was kept already (the first change wins)."""
        key = id(document)
        if key not in self._entries:
            self._entries[key] = (document, capture_state(document))

    def remember_to_reload(self, document: Any) -> None:
        """Mark ``document``, loaded after the transaction wrote, to be read back on abort."""
        key = id(document)
        if key not in self._entries:
            self._entries[key] = (document, None)

    def __len__(self) -> int:
        return len(self._entries)

    def restore(self) -> None:
        """Put every kept state back (the transaction was aborted) and forget them; documents
        to read back stay, for :meth:`reload` once the session is gone."""
        left: dict[int, tuple[Any, TrackingState | None]] = {}
        for key, (document, state) in reversed(self._entries.items()):
            if state is None:
                left[key] = (document, state)
            else:
                restore_state(document, state)
        self._entries = left

    def clear(self) -> None:
        """Forget the kept states (the transaction committed: the new states are true)."""
        self._entries = {}

    async def reload(self) -> None:
        """Read the state of every document still kept from the server, outside the
        transaction (after a commit of unknown outcome, or for documents loaded after the
        transaction wrote): its snapshot becomes the stored document, or ``None`` where there
        is none. Where the server cannot be read, the kept state is put back (a document to
        read back is left as it is) and a warning logged: the outcome is the caller's to
        check then."""
        entries, self._entries = self._entries, {}
        groups: dict[type[Any], list[tuple[Any, TrackingState | None]]] = defaultdict(list)
        for document, state in entries.values():
            groups[collection_model(type(document))].append((document, state))
        for model, group in groups.items():
            ids = [_stored_id(document) for document, _ in group]
            try:
                raws = await executor.find_list(model, {ID_KEY: {"$in": ids}})
            except (PyMongoError, OperationTimeout) as exc:  # the executor's own timeout too
                logger.warning(
                    "could not read %d %s document(s) back after a failed transaction (%s): "
                    "their tracking state may not match the database",
                    len(group), model.__name__, exc,
                )
                for document, state in group:
                    if state is not None:
                        restore_state(document, state)
                continue
            stored = {raw[ID_KEY]: raw for raw in raws}
            for (document, state), ident in zip(group, ids, strict=True):
                if state is not None:
                    restore_state(document, state)
                raw = stored.get(ident)
                meta = type(document)._meta
                snapshot = None if raw is None else _snapshot_of(meta, raw)
                set_snapshot(document, snapshot)
                if snapshot is not None:
                    written(document, snapshot)
                if raw is not None and meta.optimistic_lock:
                    document.__dict__[meta.version_field] = raw.get(
                        meta.db_key(meta.version_field)
                    )


def _stored_id(document: Any) -> Any:
    """Return ``document``'s ``_id`` as stored."""
    dumped = type(document).__pydantic_serializer__.to_python(
        document, by_alias=True, include={"id"}
    )
    return dumped.get(ID_KEY)
