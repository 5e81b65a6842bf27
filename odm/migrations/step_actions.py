"""One step action (an apply or a rollback): resolved against the database, then performed.

An action is an :class:`Operation` or an async function of the database (see
:func:`resolve_action`); it is performed with its :class:`Context` bound, so that
:func:`current_context` finds it. A step that calls ``sys.exit()`` fails like one that raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..exceptions import MigrationError
from . import loader
from .loader import Migration
from .operations import (
    Context,
    Operation,
    StepAction,
    bind_context,
    resolve_action,
    unbind_context,
)


@contextlib.contextmanager
def exits_are_failures(migration: Migration) -> Iterator[None]:
    """Make a step's ``sys.exit()`` (a ``SystemExit``) a failure of that step.

    Left to propagate, it would end ``odm migrate`` (or the application that runs the
    migrations) with the step's status, which may read as odm's own (3: the lock is held),
    without the failure being logged or the steps before it rolled back. A ``KeyboardInterrupt``
    is not caught: it stops the run (see :meth:`FileRun.run`).
    """
    try:
        yield
    except SystemExit as exc:
        raise MigrationError(
            f"the step called {loader.exit_call(exc)} ({loader.where(exc, migration.path)}); a "
            "step fails by raising an exception, it must not exit"
        ) from exc


def resolve(migration: Migration, action: StepAction, database: Any) -> Any:
    """Return what performing ``action`` runs: an operation, a coroutine, or ``None``."""
    with exits_are_failures(migration):
        return resolve_action(action, database)


def joins_transaction(target: Any) -> bool:
    """Tell whether a resolved action can run in a transaction (MongoDB refuses some)."""
    return not (isinstance(target, Operation) and not target.transactional)


async def perform(migration: Migration, target: Any, context: Context) -> None:
    """Run a resolved action with ``context`` bound (``None``: nothing to run)."""
    token = bind_context(context)
    try:
        with exits_are_failures(migration):
            if isinstance(target, Operation):
                await target.run(context)
            elif target is not None:
                await target
    finally:
        unbind_context(token)
