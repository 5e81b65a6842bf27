"""Migrations: yoyo-style files of steps, run by ``odm migrate`` under a deploy lock.

A migration file ``migrations/NNNN_slug.py`` lists ``steps``; each pairs an apply with an
optional rollback, written with the operations below or as async functions of the database::

    from odm.migrations import step, create_index, drop_index

    __depends__ = {"0001_initial"}
    steps = [step(create_index("customers", "email", unique=True),
                  drop_index("customers", "email_1"))]

See ``docs/migrations.md`` for the verbs, the lock, checksums, resumable batches and transactions.
"""

from .batched import BatchedUpdate, batched_update
from .loader import Migration
from .lock import LockHeld, LockLost, MigrationLock, break_lock
from .operations import (
    Context,
    Operation,
    Step,
    create_collection,
    create_index,
    current_context,
    drop_collection,
    drop_index,
    rename_field,
    run_pipeline,
    set_validator,
    step,
)
from .runner import Runner, Status

__all__ = [
    "BatchedUpdate",
    "Context",
    "LockHeld",
    "LockLost",
    "Migration",
    "MigrationLock",
    "Operation",
    "Runner",
    "Status",
    "Step",
    "batched_update",
    "break_lock",
    "create_collection",
    "create_index",
    "current_context",
    "drop_collection",
    "drop_index",
    "rename_field",
    "run_pipeline",
    "set_validator",
    "step",
]
