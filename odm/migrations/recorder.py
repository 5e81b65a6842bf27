"""What has been applied: one document per applied migration, plus a log of every change.

``_odm_migrations`` holds ``{_id: id, checksum, applied_at, applied_by, duration_ms}`` for each
applied file; ``_odm_migrations_log`` keeps every apply, rollback, mark and unmark (and failed
attempts) for audit. ``_odm_migrations_state`` holds the positions a killed run resumes from,
each with the checksum of the file it was saved for; a file's own position (``file:ID``) also
holds the lock token of the run that claimed it, and only that run's saves match it.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument

APPLIED = "_odm_migrations"
LOG = "_odm_migrations_log"
STATE = "_odm_migrations_state"
LOCK = "_odm_migrations_lock"


def whoami() -> str:
    """Return who is running this process: ``user@host:pid``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def now() -> datetime:
    """Return the current time, timezone-aware UTC (what gets stored)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class AppliedRecord:
    """One applied migration as recorded."""

    id: str
    checksum: str
    applied_at: datetime | None
    applied_by: str
    duration_ms: int
    marked: bool = False
    #: The ids the file depended on when applied (``None``: recorded before they were kept).
    depends: tuple[str, ...] | None = None


class Recorder:
    """Reads and writes the applied collection, the log and the resume state of a database.

    Writes go through the driver with no explicit session: inside the runner's bound
    transaction (PyMongo's ``session.bind()``) they join it, so a file and its record commit
    together.
    """

    def __init__(self, database: Any) -> None:
        self.database = database
        self.applied_collection = database[APPLIED]
        self.log_collection = database[LOG]
        self.state = database[STATE]

    async def applied(self) -> dict[str, AppliedRecord]:
        """Return the applied migrations by id."""
        records: dict[str, AppliedRecord] = {}
        async for doc in self.applied_collection.find({}):
            records[doc["_id"]] = AppliedRecord(
                id=doc["_id"],
                checksum=doc.get("checksum", ""),
                applied_at=doc.get("applied_at"),
                applied_by=doc.get("applied_by", ""),
                duration_ms=int(doc.get("duration_ms", 0)),
                marked=bool(doc.get("marked", False)),
                depends=tuple(doc["depends"]) if isinstance(doc.get("depends"), list) else None,
            )
        return records

    async def record_applied(
        self,
        migration_id: str,
        checksum: str,
        duration_ms: int,
        *,
        marked: bool = False,
        depends: Iterable[str] = (),
    ) -> None:
        """Record ``migration_id`` as applied with the checksum of its file.

        Its dependencies are kept too, so that a rollback still knows them once the file is gone.
        """
        await self.applied_collection.replace_one(
            {"_id": migration_id},
            {
                "_id": migration_id,
                "checksum": checksum,
                "applied_at": now(),
                "applied_by": whoami(),
                "duration_ms": duration_ms,
                "marked": marked,
                "depends": sorted(depends),
            },
            upsert=True,
        )

    async def rename(self, old_id: str, new_id: str) -> None:
        """Move the applied record of ``old_id`` to ``new_id`` (its file was renamed)."""
        doc = await self.applied_collection.find_one({"_id": old_id})
        if doc is None:
            return
        doc["_id"] = new_id
        await self.applied_collection.replace_one({"_id": new_id}, doc, upsert=True)
        await self.applied_collection.delete_one({"_id": old_id})

    async def forget(self, migration_id: str) -> None:
        """Remove the applied record of ``migration_id``."""
        await self.applied_collection.delete_one({"_id": migration_id})

    async def log(
        self,
        migration_id: str,
        action: str,
        *,
        checksum: str = "",
        duration_ms: int = 0,
        ok: bool = True,
        error: str | None = None,
        forced: bool = False,
        renamed_from: str | None = None,
    ) -> None:
        """Append an entry to the log (apply, rollback, mark, unmark, rename)."""
        entry: dict[str, Any] = {
            "migration": migration_id,
            "action": action,
            "at": now(),
            "by": whoami(),
            "checksum": checksum,
            "duration_ms": duration_ms,
            "ok": ok,
        }
        if error is not None:
            entry["error"] = error
        if forced:
            entry["forced"] = True
        if renamed_from is not None:
            entry["renamed_from"] = renamed_from
        await self.log_collection.insert_one(entry)

    async def step_position(self, migration_id: str, direction: str) -> int:
        """Return how many steps of an interrupted run in ``direction`` are already done."""
        doc = await self.file_state(migration_id)
        if doc is None or doc.get("direction") != direction:
            return 0
        return int(doc.get("next_step", 0))

    async def file_state(self, migration_id: str) -> dict[str, Any] | None:
        """Return where an earlier run left ``migration_id`` (``None``: nowhere)."""
        doc = await self.state.find_one({"_id": f"file:{migration_id}"})
        return dict(doc) if doc else None

    async def claim(self, migration_id: str, checksum: str, token: str) -> dict[str, Any]:
        """Make the run holding the lock with ``token`` the owner of the file's position.

        Read and taken in one write: a position an earlier holder saved before this is read
        here, and its saves after this no longer match (see :meth:`save_step_position`). The
        document is created when there is none, so that a late save cannot create it either.
        """
        doc = await self.state.find_one_and_update(
            {"_id": f"file:{migration_id}"},
            {
                "$set": {"token": token},
                "$setOnInsert": {"migration": migration_id, "checksum": checksum},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return dict(doc or {})

    async def save_step_position(
        self, migration_id: str, direction: str, next_step: int, checksum: str, token: str,
        **extra: Any,
    ) -> bool:
        """Remember that the first ``next_step`` steps of this run of the file (``checksum``)
        are done; ``False`` when the file's position is not owned by ``token`` (any more).

        The write matches only the position this run claimed: a run that lost the lock cannot
        move it under the new holder, whether or not its write runs in a transaction.
        """
        result = await self.state.update_one(
            {"_id": f"file:{migration_id}", "token": token},
            {
                "$set": {
                    "direction": direction,
                    "next_step": next_step,
                    "migration": migration_id,
                    "checksum": checksum,
                    "by": whoami(),
                    "at": now(),
                    **extra,
                }
            },
        )
        return bool(result.matched_count)

    async def saved_for_other_content(self, migration_id: str, checksum: str) -> bool:
        """Tell whether a resume position of ``migration_id`` was saved for other file content.

        One saved before checksums were kept (it has none) counts as other content: nothing
        shows that it was saved for this one.
        """
        found = await self.state.find_one(
            {
                "migration": migration_id,
                "checksum": {"$ne": checksum},
                # A claim that saved no position yet says nothing was done.
                "$or": [{"_id": {"$ne": f"file:{migration_id}"}}, {"next_step": {"$exists": True}}],
            },
            projection={"_id": 1},
        )
        return found is not None

    async def clear_state(
        self, migration_id: str, *, keep_steps_except: Iterable[int] | None = None
    ) -> None:
        """Forget every resume position of ``migration_id`` (its run finished or was undone).

        With ``keep_steps_except``, forget only where the file is (it starts over), the
        positions of the apply steps listed (0-based: they were rolled back) and those of the
        rollbacks run to compensate (a later failure must run them again); the resumable
        operations of the other steps keep theirs, so that a new run does not repeat them.
        """
        if keep_steps_except is None:
            await self.state.delete_many({"migration": migration_id})
            return
        await self.state.delete_one({"_id": f"file:{migration_id}"})
        compensated = re.escape(f"{migration_id}:compensate:")
        await self.state.delete_many({"_id": {"$regex": f"^{compensated}"}})
        for index in keep_steps_except:
            prefix = re.escape(f"{migration_id}:apply:{index}:")
            await self.state.delete_many({"_id": {"$regex": f"^{prefix}"}})
