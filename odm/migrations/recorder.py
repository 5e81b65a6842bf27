"""What has been applied: one document per applied migration, plus a log of every change.

``_odm_migrations`` holds ``{_id: id, checksum, applied_at, applied_by, duration_ms}`` for each
applied file; ``_odm_migrations_log`` keeps every apply, rollback, mark and unmark (and failed
attempts) for audit. ``_odm_migrations_state`` holds the positions a killed run resumes from,
each with the checksum of the file it was saved for; a file's own position (``file:ID``) also
holds the lock token of the run that claimed it, and only that run's saves match it. The
journal of a ``mark`` or an ``unmark`` made without a transaction (the change under way, the
log entries not yet written) is kept there too, by :mod:`.records_change`.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import reprlib
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from ..exceptions import MigrationError

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


def stored_value(value: Any) -> str:
    """Show a stored value in an error, cut short: a hostile one may be megabytes long."""
    return reprlib.repr(value)


def not_written_by_odm(
    what: str, field: str, value: Any, expected: str, then: str = ""
) -> MigrationError:
    """Return the error for a stored field that odm never writes so (edited by hand):
    ``what`` names the document (``"_odm_migrations: the record 'x' has"``), ``then`` what
    else may be done than fixing or deleting it."""
    return MigrationError(
        f"{what} {field} {stored_value(value)}, not {expected}; odm did not write it (edited "
        f"by hand?): fix or delete that document{then}"
    )


def bad_record(doc_id: Any, field: str, value: Any, expected: str) -> MigrationError:
    """Return the error for a field of an applied record that odm did not write."""
    return not_written_by_odm(
        f"{APPLIED}: the record {stored_value(doc_id)} has", field, value, expected
    )


def whole_number(value: Any) -> bool:
    """Tell whether a stored value is a whole number: an int, or a double such as ``12.0`` (the
    mongo shell stores numbers as doubles); not NaN, ``1.5`` or ``True``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or (math.isfinite(value) and value.is_integer())


def record_of(doc: Mapping[str, Any]) -> AppliedRecord:
    """Read one applied record, refusing a field of a type odm never writes there.

    Fields missing from records written by older versions take their defaults.
    """
    doc_id = doc.get("_id")
    if not isinstance(doc_id, str) or not doc_id:
        raise not_written_by_odm(f"{APPLIED}: a record has", "_id", doc_id, "a migration id")
    checks: tuple[tuple[str, Any, str], ...] = (
        ("checksum", str, "a checksum (a string)"),
        ("applied_at", datetime, "a date"),
        ("applied_by", str, "a string"),
        ("marked", bool, "true or false"),
    )
    for field_name, kind, expected in checks:
        value = doc.get(field_name)
        if value is not None and not isinstance(value, kind):
            raise bad_record(doc_id, field_name, value, expected)
    duration = doc.get("duration_ms", 0)
    if duration is not None and not (whole_number(duration) and duration >= 0):
        raise bad_record(doc_id, "duration_ms", duration, "a whole number of milliseconds")
    depends = doc.get("depends")
    if depends is not None and not (
        isinstance(depends, list) and all(isinstance(d, str) for d in depends)
    ):
        raise bad_record(doc_id, "depends", depends, "a list of migration ids")
    return AppliedRecord(
        id=doc_id,
        checksum=doc.get("checksum") or "",
        applied_at=doc.get("applied_at"),
        applied_by=doc.get("applied_by") or "",
        duration_ms=int(duration or 0),
        marked=bool(doc.get("marked", False)),
        depends=tuple(depends) if depends is not None else None,
    )


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
        """Return the applied migrations by id.

        A record odm did not write (edited by hand: an ``_id`` that is not a string, a field of
        the wrong type) raises :class:`MigrationError` naming the document and the field, rather
        than being half-read into a wrong decision.
        """
        records: dict[str, AppliedRecord] = {}
        async for doc in self.applied_collection.find({}):
            record = record_of(doc)
            records[record.id] = record
        return records

    async def record_applied(
        self,
        migration_id: str,
        checksum: str,
        duration_ms: int,
        *,
        marked: bool = False,
        depends: Iterable[str] = (),
        session: Any = None,
    ) -> None:
        """Record ``migration_id`` as applied with the checksum of its file (carried by
        ``session``, if given).

        Its dependencies are kept too, so that a rollback still knows them once the file is gone.
        """
        await self.applied_collection.replace_one(
            {"_id": migration_id},
            new_record(migration_id, checksum, duration_ms, marked=marked, depends=depends),
            upsert=True,
            **in_session(session),
        )

    async def forget(self, migration_id: str, *, session: Any = None) -> None:
        """Remove the applied record of ``migration_id`` (carried by ``session``, if given)."""
        await self.applied_collection.delete_one({"_id": migration_id}, **in_session(session))

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
        await self.log_collection.insert_one(
            log_entry(
                migration_id, action, checksum=checksum, duration_ms=duration_ms, ok=ok,
                error=error, forced=forced, renamed_from=renamed_from,
            )
        )

    async def file_state(self, migration_id: str) -> dict[str, Any] | None:
        """Return where an earlier run left ``migration_id`` (``None``: nowhere)."""
        doc = await self.state.find_one({"_id": file_key(migration_id)})
        return dict(doc) if doc else None

    async def stopped_rollbacks(self) -> dict[str, dict[str, Any]]:
        """Return, by migration id, the saved positions of rollbacks that stopped part-way."""
        found: dict[str, dict[str, Any]] = {}
        async for doc in self.state.find({"_id": {"$regex": "^file:"}, "direction": "rollback"}):
            found[str(doc["_id"]).removeprefix("file:")] = dict(doc)
        return found

    async def claim(self, migration_id: str, checksum: str, token: str) -> dict[str, Any]:
        """Make the run holding the lock with ``token`` the owner of the file's position.

        Read and taken in one write: a position an earlier holder saved before this is read
        here, and its saves after this no longer match (see :meth:`save_step_position`). The
        document is created when there is none, so that a late save cannot create it either.
        """
        doc = await self.state.find_one_and_update(
            {"_id": file_key(migration_id)},
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
            {"_id": file_key(migration_id), "token": token},
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
                "$or": [{"_id": {"$ne": file_key(migration_id)}}, {"next_step": {"$exists": True}}],
            },
            projection={"_id": 1},
        )
        return found is not None

    async def clear_state(
        self,
        migration_id: str,
        *,
        keep_steps_except: Iterable[int] | None = None,
        token: str | None = None,
        session: Any = None,
    ) -> None:
        """Forget every resume position of ``migration_id`` (its run finished or was undone).

        With ``keep_steps_except``, forget only where the file is (it starts over), the
        positions of the apply steps listed (0-based: they were rolled back) and those of the
        rollbacks run to compensate (a later failure must run them again); the resumable
        operations of the other steps keep theirs, so that a new run does not repeat them.
        With ``token``, the file's own position is forgotten only while that run owns it.
        ``session`` carries the deletes.
        """
        options = in_session(session)
        own: dict[str, Any] = {"_id": file_key(migration_id)}
        if token is not None:
            own["token"] = token
        if keep_steps_except is None:
            # The file's own position first: cut short after it, the next run starts the file
            # over, and its operations' positions still say what they did.
            await self.state.delete_one(own, **options)
            every = re.escape(f"{migration_id}:")
            await self.state.delete_many(
                {"$or": [{"migration": migration_id}, {"_id": {"$regex": f"^{every}"}}]},
                **options,
            )
            return
        # What was rolled back first, the file's own position last: cut short before it, that
        # position still says the rollback is to be finished and lists what was rolled back,
        # so the next apply forgets these again instead of resuming steps that were undone.
        compensated = re.escape(f"{migration_id}:compensate:")
        await self.state.delete_many({"_id": {"$regex": f"^{compensated}"}}, **options)
        for index in keep_steps_except:
            prefix = re.escape(f"{migration_id}:apply:{index}:")
            await self.state.delete_many({"_id": {"$regex": f"^{prefix}"}}, **options)
        await self.state.delete_one(own, **options)


def log_entry(
    migration_id: str,
    action: str,
    *,
    checksum: str = "",
    duration_ms: int = 0,
    ok: bool = True,
    error: str | None = None,
    forced: bool = False,
    renamed_from: str | None = None,
) -> dict[str, Any]:
    """Return the log entry of ``action`` on ``migration_id``, by this process, now."""
    entry: dict[str, Any] = {
        "_id": ObjectId(),
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
    return entry


def new_record(
    migration_id: str, checksum: str, duration_ms: int, *, marked: bool, depends: Iterable[str]
) -> dict[str, Any]:
    """Return the applied record of ``migration_id``, applied by this process now."""
    return {
        "_id": migration_id,
        "checksum": checksum,
        "applied_at": now(),
        "applied_by": whoami(),
        "duration_ms": duration_ms,
        "marked": marked,
        "depends": sorted(depends),
    }


def done_as_recorded(action: str, checksum: str | None, record: AppliedRecord | None) -> bool:
    """Tell whether ``record`` (``None``: none) is what a finished ``action`` (``"apply"`` or
    ``"rollback"``) of the file whose content is ``checksum`` leaves recorded."""
    if action == "apply":
        return record is not None and record.checksum == checksum
    return record is None


def in_session(session: Any) -> dict[str, Any]:
    """Return the options of a write carried by ``session`` (none: the driver's own)."""
    return {} if session is None else {"session": session}


def file_key(migration_id: str) -> str:
    """Return the ``_id`` of the state document holding a file's own saved position."""
    return f"file:{migration_id}"
