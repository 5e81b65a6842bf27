"""The bound session: one context variable that every ODM operation reads.

``odm.transaction()`` (in :mod:`odm.blocks`) and :func:`session` bind a driver session here; the
executor passes :func:`current_session` to every driver call, so no operation inside the block
can run outside it and no caller ever passes ``session=`` by hand. Tasks spawned inside the block
inherit the binding (context variables are copied into new tasks); tasks started outside do not
see it.

A task spawned inside a block may outlive it (a fire-and-forget audit insert). Once the block
has ended, its session and unit of work no longer bind such a task: the task's operations run
outside any transaction, as those of a task spawned outside any block do (the unit of work is
marked ended, :meth:`odm.uow.UnitOfWork.end`; the session of an ``odm.session()`` block is
ended). While the block is open, the transaction refuses them (:mod:`odm.uow`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from . import drivers
from .connection import DEFAULT_ALIAS, get_client

T = TypeVar("T")

_bound_session: ContextVar[Any | None] = ContextVar("odm_session", default=None)
# Holds the odm.uow.UnitOfWork of the enclosing transaction() block (typed loosely to keep this
# module free of an import cycle with odm.uow).
_bound_uow: ContextVar[Any | None] = ContextVar("odm_unit_of_work", default=None)


def current_session() -> Any | None:
    """Return the driver session bound to this context, or ``None`` outside any block (also
    in a task spawned inside a block that has ended since)."""
    uow = _bound_uow.get()
    if uow is not None and uow.ended is not None:
        _leave(uow)
        return None
    return _open(_bound_session.get())


def operation_session(model: type[Any] | None = None) -> Any | None:
    """Return the session an ODM operation on ``model`` must use.

    The executor calls this before every driver call. Inside a transaction it refuses, with
    :class:`odm.TransactionError` and before anything is sent, an operation from a task spawned
    in the block, on a model of another connection alias, or after an inner block failed (see
    :mod:`odm.uow` for the rules). In a task spawned inside a block that has ended since, it
    returns ``None``: the operation runs outside any transaction.
    """
    uow = _bound_uow.get()
    if uow is not None:
        if uow.ended is not None:
            _leave(uow)
            return None
        uow.check_usable(model)
        return _bound_session.get()
    return _open(_bound_session.get())


def current_unit_of_work() -> Any | None:
    """Return the unit of work of the enclosing ``odm.transaction()`` block, if any (``None``
    in a task spawned inside a block that has ended since)."""
    uow = _bound_uow.get()
    if uow is not None and uow.ended is not None:
        return None
    return uow


def leave_bindings() -> None:
    """Leave, in the current context only, the session and the unit of work bound to it: odm's
    bindings and the driver's own (PyMongo's ``bind()``, which a transaction block enters).

    What runs in this context afterwards runs outside the enclosing block, as in a task started
    outside it; the block goes on in its own context. For a task spawned inside a block that
    must run apart from it (:func:`outside_blocks`)."""
    uow = _bound_uow.get()
    for bound in (None if uow is None else uow.session, _bound_session.get()):
        if bound is not None:
            drivers.leave_binding(bound)
    _bound_uow.set(None)
    _bound_session.set(None)


async def outside_blocks(work: Callable[[], Awaitable[T]]) -> T:
    """Return what ``work()`` gives, run outside the enclosing block: in a task of its own whose
    copy of this context has left the block (:func:`leave_bindings`), everything else in it
    kept. A cancellation of the caller cancels the task too (it is awaited here)."""

    async def apart() -> T:
        leave_bindings()
        return await work()

    return await asyncio.create_task(apart())


def _leave(uow: Any) -> None:
    """Leave, in this context, the driver's own binding of the session of ``uow``, whose
    block has ended (PyMongo's ``bind()``, inherited with odm's): the context has no session
    now, and the driver would otherwise send its operations in the ended session."""
    drivers.leave_binding(uow.session)


def _open(session: Any | None) -> Any | None:
    """``session`` (bound by ``odm.session()``, or ``None``), unless it has ended: the context
    is a task spawned inside that block, which has ended since."""
    if session is not None and session.has_ended:
        return None
    return session


@asynccontextmanager
async def session(
    alias: str = DEFAULT_ALIAS, *, causal_consistency: bool = True
) -> AsyncIterator[Any]:
    """Bind a causally consistent session (no transaction) to every ODM operation inside.

    Reads inside see the writes made before them in the block, even from secondaries. Inside a
    transaction the transaction's session is reused.
    """
    existing = current_session()
    if existing is not None:
        yield existing
        return
    driver_session = await drivers.start_session(
        get_client(alias), causal_consistency=causal_consistency
    )
    token = _bound_session.set(driver_session)
    try:
        yield driver_session
    finally:
        _bound_session.reset(token)
        await drivers.end_session(driver_session)
