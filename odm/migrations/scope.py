"""What the parts of one apply or rollback share, once its lock is held."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .loader import Migration
from .lock import MigrationLock
from .operations import Context
from .positions import FilePositions
from .recorder import Recorder
from .reporting import RunLog
from .transaction import FencedTransaction

#: Which way a file runs: its applies in order, or its rollbacks in reverse.
Direction = Literal["apply", "rollback"]

#: A file's steps in the order a direction runs them: (the step's 0-based index, its action).
StepSequence = list[tuple[int, Any]]


def step_sequence(migration: Migration, direction: Direction) -> StepSequence:
    """Return the actions ``direction`` runs: the applies in order, or the rollbacks reversed."""
    if direction == "apply":
        return [(i, s.apply) for i, s in enumerate(migration.steps)]
    return [(i, s.rollback) for i, s in reversed(list(enumerate(migration.steps)))]


@dataclass(frozen=True)
class RunScope:
    """One run under ``lock``: its database and records, whether the server runs transactions
    (``transactions``), and where progress goes (``echo``)."""

    database: Any
    recorder: Recorder
    lock: MigrationLock
    transactions: bool
    echo: Callable[[str], None]

    @property
    def positions(self) -> FilePositions:
        """The saved positions of the files this run runs, fenced by its lock."""
        return FilePositions(self.recorder, self.lock)

    @property
    def log(self) -> RunLog:
        """Where this run says (and logs) how a file's run ended when it did not finish."""
        return RunLog(self.recorder, self.echo, self.lock)

    def transaction(self) -> FencedTransaction:
        """Return a (not yet open) transaction fenced by this run's lock."""
        return FencedTransaction(self.database, self.lock)

    def context(
        self, migration: Migration, direction: str, index: int, in_transaction: bool
    ) -> Context:
        """Return the :class:`Context` that step ``index`` (0-based) of ``migration`` sees."""
        return Context(
            prove=self.lock.prove,
            lease_left=self.lock.lease_left,
            lease_bounded=self.lock.bounded,
            database=self.database,
            migration_id=migration.id,
            checksum=migration.checksum,
            direction=direction,
            step_index=index,
            state=self.recorder.state,
            in_transaction=in_transaction,
            transactions=self.transactions,
            echo=self.echo,
        )
