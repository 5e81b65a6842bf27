"""What ``plan`` prints for a step: the operation that will run, and whether in a transaction.

A step's callable is never run for real here. A plain function (``lambda db:
batched_update(...)``) is called with a stand-in database whose collections only have names,
so that the operation it builds can describe itself; anything else it tries (a driver call, an
attribute the stand-in lacks) leaves it described by name and line. An ``async def`` is not
called at all: its body is what runs, in the file's transaction when there is one.
"""

from __future__ import annotations

import inspect
from typing import Any

from .operations import Operation, StepAction, describe_action


class _Unplannable(Exception):
    """The callable did more than build an operation from collection names."""


class PlanCollection:
    """A collection as a step's callable sees it while planning: a name and nothing else."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> PlanCollection:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return PlanCollection(f"{self.name}.{attribute}")  # a sub-collection, as in PyMongo

    def __getitem__(self, name: str) -> PlanCollection:
        return PlanCollection(f"{self.name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A method call (``db.items.update_many(...)``) would reach the server when awaited.
        raise _Unplannable(self.name)


class PlanDatabase:
    """The stand-in database passed to a step's callable while planning."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> PlanCollection:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return PlanCollection(attribute)

    def __getitem__(self, name: str) -> PlanCollection:
        return PlanCollection(name)

    def get_collection(self, name: str, *args: Any, **kwargs: Any) -> PlanCollection:
        """Return the stand-in collection ``name``."""
        return PlanCollection(name)


def planned_operation(action: StepAction, database_name: str) -> Operation | None:
    """Return the operation ``action`` would run, if that can be told without running it."""
    if isinstance(action, Operation):
        return action
    if inspect.iscoroutinefunction(action):
        return None
    try:
        result = action(PlanDatabase(database_name))
    except (Exception, SystemExit):
        # SystemExit too: a callable that exits must not end `odm migrate plan` with its status.
        return None
    if inspect.iscoroutine(result):
        result.close()
    return result if isinstance(result, Operation) else None


def describe_step(action: StepAction | None, database_name: str, transactions: bool) -> str:
    """Return the line ``plan`` prints for one step: what runs, and where.

    ``transactions``: whether the file runs in a transaction (the server has them and the file
    does not opt out).
    """
    if action is None:
        return "(nothing)"
    operation = planned_operation(action, database_name)
    if operation is None:
        what = describe_action(action)
        if not transactions:
            return f"{what} [no transaction]"
        if inspect.iscoroutinefunction(action):
            return f"{what} [in a transaction]"
        return (
            f"{what} [in a transaction, unless it returns an operation that runs outside one; "
            "what it returns is known only when it runs]"
        )
    what = operation.describe()
    if not isinstance(action, Operation):
        what += f" (built by {_origin(action)})"
    if not transactions:
        return f"{what} [no transaction]"
    if operation.transactional:
        return f"{what} [in a transaction]"
    return f"{what} [outside a transaction: {operation.outside_note}]"


def _origin(action: Any) -> str:
    name = getattr(action, "__qualname__", type(action).__name__)
    code = getattr(action, "__code__", None)
    return f"{name}, line {code.co_firstlineno}" if code is not None else str(name)
