"""Which files a run takes: each file's state against the applied records, and the refusals.

A run refuses, before it touches anything, a file changed since it was applied (unless forced),
one renamed since, one edited since an earlier run of it stopped part-way (unless restarted),
and a rollback that would leave applied a migration depending on one it rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..exceptions import MigrationError
from . import loader
from .loader import Migration
from .recorder import AppliedRecord, Recorder

#: A file's state against the applied records (see :class:`Status`).
State = Literal["applied", "pending", "changed", "missing", "renamed"]


@dataclass(frozen=True)
class Status:
    """One row of ``list``: a migration file and/or its applied record.

    ``renamed``: a file not applied under its id whose content (checksum) is that of an applied
    migration whose file is gone, ``renamed_from``; ``record`` is that migration's record.
    """

    id: str
    state: State
    migration: Migration | None
    record: AppliedRecord | None
    renamed_from: str | None = None
    #: How many of its steps an earlier rollback of this applied file rolled back before it
    #: stopped (failed, killed or lost the lock): the file is recorded as applied, but is not
    #: all there.
    rolled_back: int = 0


def file_statuses(
    migrations: Sequence[Migration], applied: Mapping[str, AppliedRecord]
) -> list[Status]:
    """Return a row for every file and every applied record (see :meth:`Runner.status`)."""
    known = {m.id for m in migrations}
    gone: dict[str, list[str]] = {}  # checksum -> applied ids whose file is gone
    for mid in sorted(set(applied) - known):
        gone.setdefault(applied[mid].checksum, []).append(mid)
    renamed_away: set[str] = set()
    rows = []
    for migration in migrations:
        record = applied.get(migration.id)
        if record is not None:
            state: State = "applied" if record.checksum == migration.checksum else "changed"
            rows.append(Status(migration.id, state, migration, record))
        elif migration.checksum in gone:
            old = gone[migration.checksum][0]
            renamed_away.add(old)
            rows.append(Status(migration.id, "renamed", migration, applied[old], old))
        else:
            rows.append(Status(migration.id, "pending", migration, None))
    for mid in sorted(set(applied) - known - renamed_away):
        rows.append(Status(mid, "missing", None, applied[mid]))
    return rows


def refuse_changed(rows: Sequence[Status], force: bool, echo: Callable[[str], None]) -> None:
    """Refuse files changed since applied; with ``force``, warn of them instead."""
    changed = [row.id for row in rows if row.state == "changed"]
    if changed and not force:
        raise MigrationError(
            f"changed since applied: {', '.join(changed)} (the file's checksum differs "
            "from the recorded one); restore the file, record the edit with `odm migrate "
            "mark ID`, or pass --force"
        )
    for mid in changed:
        echo(f"warning: {mid} changed since it was applied (--force)")


def refuse_rolled_back(rows: Sequence[Status], force: bool, echo: Callable[[str], None]) -> None:
    """Refuse to apply while an applied file's rollback stopped part-way; with ``force``, warn.

    That file is recorded as applied, but the steps rolled back are gone: applying more (a
    file depending on it, say) would build on what is not there, and "nothing to apply"
    would say all is in place.
    """
    stopped = [row for row in rows if row.rolled_back]
    told = ", ".join(
        f"{row.id} ({row.rolled_back} step(s) rolled back)" for row in stopped
    )
    if stopped and not force:
        raise MigrationError(
            f"an earlier rollback stopped part-way: {told}; the file is still recorded as "
            "applied without those steps. Finish rolling it back (`odm migrate rollback` "
            "resumes it), or pass --force to apply anyway"
        )
    if stopped:
        echo(f"warning: an earlier rollback stopped part-way: {told} (--force)")


def refuse_renamed(rows: Sequence[Status]) -> None:
    """Refuse files renamed since applied (no ``force``: that would apply them twice)."""
    renamed = [row for row in rows if row.state == "renamed"]
    if renamed:
        pairs = ", ".join(f"{row.id} (applied as {row.renamed_from})" for row in renamed)
        raise MigrationError(
            f"renamed since applied: {pairs}: the same content is applied under the old id, "
            f"whose file is gone, and will not be applied again; record the new name with "
            f"`odm migrate mark {renamed[0].id}`, or restore the old file name"
        )


def warn_copies(
    rows: Sequence[Status], pending: Sequence[Migration], echo: Callable[[str], None]
) -> None:
    """Warn of a pending file whose content is that of a file applied under another id.

    Not refused: the same steps may be meant to run twice (a re-run backfill); but a copy
    made by mistake would repeat them, so both files are named.
    """
    applied = {
        row.migration.checksum: row.id
        for row in rows if row.state == "applied" and row.migration is not None
    }
    for migration in pending:
        twin = applied.get(migration.checksum)
        if twin is not None:
            echo(
                f"warning: {migration.id} ({migration.path.name}) has the same content "
                f"(checksum) as {twin}, which is applied: applying it runs the same steps "
                "again"
            )


def pending_files(rows: Sequence[Status], to: str | None) -> list[Migration]:
    """Return the pending files, in order: all, or ``to`` and what it depends on."""
    pending = [row.migration for row in rows if row.state == "pending" and row.migration]
    if to is None:
        return pending
    migrations = [row.migration for row in rows if row.migration]
    target = loader.resolve_id(migrations, to)
    wanted = loader.ancestors(migrations, target) | {target}
    return [m for m in pending if m.id in wanted]


def restarting_ids(
    rows: Sequence[Status], chosen: Sequence[Migration], restart: Sequence[str]
) -> set[str]:
    """Return the ids ``restart`` names, each of a file this run is about to run."""
    migrations = [row.migration for row in rows if row.migration]
    ids = {m.id for m in chosen}
    restarting: set[str] = set()
    for given in restart:
        mid = loader.resolve_id(migrations, given)
        if mid not in ids:
            raise MigrationError(
                f"--restart {given}: {mid} is not among the files this run would run "
                f"({', '.join(sorted(ids)) or 'none'})"
            )
        restarting.add(mid)
    return restarting


async def refuse_stale(
    recorder: Recorder, chosen: Sequence[Migration], direction: str, restarting: set[str]
) -> None:
    """Refuse to resume a file from positions saved for other content of it.

    Positions are kept by step index and operation count: after an edit they would point
    at other steps, skipping new ones and repeating done ones, so nothing is resumed.
    """
    stale = [
        m for m in chosen
        if m.id not in restarting
        and await recorder.saved_for_other_content(m.id, m.checksum)
    ]
    if not stale:
        return
    names = ", ".join(f"{m.id} ({m.path})" for m in stale)
    flags = " ".join(f"--restart {m.id}" for m in stale)
    raise MigrationError(
        f"changed since an earlier {direction} of it stopped part-way: {names}; the "
        "positions that run saved are for other content of the file (its checksum differs, "
        "or was not recorded), and resuming from them could skip or repeat steps. Check "
        "what that run left done (steps without a rollback stay done), then start the file "
        f"over: run `odm migrate {direction}` again with `{flags}`; or restore the file to "
        "resume"
    )


def refuse_unknown(rows: Sequence[Status], force: bool, echo: Callable[[str], None]) -> None:
    """Refuse a rollback while an applied migration's file is missing (or renamed); with
    ``force``, warn of them instead.

    Such a migration cannot be rolled back, and what it depends on is only known from its
    record.
    """
    unknown = [
        f"{row.renamed_from} (its file renamed to {row.id})" if row.state == "renamed"
        else row.id
        for row in rows if row.state in ("missing", "renamed")
    ]
    if unknown and not force:
        raise MigrationError(
            f"applied but the file is missing: {', '.join(unknown)}; restore the file, "
            "`odm migrate mark` a renamed one, `odm migrate unmark` one that is gone for "
            "good, or pass --force to roll back what nothing applied depends on"
        )
    for name in unknown:
        echo(f"warning: {name} is applied but its file is missing (--force)")


def rollback_targets(rows: Sequence[Status], to: str | None, steps: int | None) -> list[Status]:
    """Return the applied rows to roll back, newest first: all after ``to``, or the last
    ``steps`` (1 by default)."""
    applied_rows = [row for row in rows if row.state in ("applied", "changed")]
    if to is not None:
        migrations = [row.migration for row in rows if row.migration]
        target = loader.resolve_id(migrations, to)
        keep = loader.ancestors(migrations, target) | {target}
        return [row for row in reversed(applied_rows) if row.id not in keep]
    count = 1 if steps is None else steps
    if count < 1:
        raise MigrationError(f"--steps must be at least 1, not {count}")
    return list(reversed(applied_rows))[:count]


def refuse_needed(rows: Sequence[Status], targets: Sequence[Status]) -> None:
    """Refuse to roll back a migration that one staying applied depends on."""
    applied = [row for row in rows if row.record is not None]
    staying = {row.record.id: row for row in applied if row.record is not None}
    for target in targets:
        staying.pop(target.id, None)
        assert target.record is not None
        for row in staying.values():
            record = row.record
            assert record is not None
            name = record.id if row.migration is not None else f"{record.id} (file missing)"
            if row.migration is not None:
                depends: frozenset[str] | None = row.migration.depends
            elif record.depends is not None:
                depends = frozenset(record.depends)
            else:
                depends = None
            if depends is not None and target.id not in depends:
                continue
            if depends is None and not _applied_after(record, target.record):
                continue
            why = "depends on it" if depends is not None else (
                "was applied after it and its dependencies were not recorded"
            )
            raise MigrationError(
                f"cannot roll back {target.id}: {name}, which stays applied, {why}; roll "
                "that back first (restore its file if it is missing)"
            )


def _applied_after(record: AppliedRecord, other: AppliedRecord) -> bool:
    # Without times to compare, assume the worst: it may depend on the other.
    if record.applied_at is None or other.applied_at is None:
        return True
    return record.applied_at >= other.applied_at
