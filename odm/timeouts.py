"""Per-operation timeouts on the driver's client-side operation timeout (CSOT).

Every ODM operation takes ``timeout=`` seconds and runs inside :func:`operation_timeout`, which
enters ``pymongo.timeout()`` so that server selection, connection checkout, the command itself
and its retries all share one deadline, and turns the driver's timeout errors into
:class:`odm.OperationTimeout`. Nobody has to wrap calls in ``asyncio.wait_for`` (which would
cancel mid-write and leave the outcome unknown).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from .exceptions import OperationTimeout


def is_timeout(exc: BaseException) -> bool:
    """Tell whether a driver error means a deadline passed (CSOT, server selection, maxTimeMS)."""
    return isinstance(exc, PyMongoError) and bool(getattr(exc, "timeout", False))


def is_cut_off(exc: BaseException) -> bool:
    """Tell whether ``exc`` ended a call before its outcome was known: a cancellation, or a
    deadline that passed (:class:`odm.OperationTimeout` or the driver's own timeout error)."""
    return isinstance(exc, asyncio.CancelledError | OperationTimeout) or is_timeout(exc)


def left_unanswered(exc: BaseException) -> bool:
    """Tell whether ``exc`` ended a call whose command may still reach the server: the client
    stopped waiting for its answer (a cancellation, a client-side deadline, a dropped
    connection) rather than the server answering, even with an error (``maxTimeMS``)."""
    seen: BaseException | None = exc
    while isinstance(seen, OperationTimeout) and seen.__cause__ is not None:
        seen = seen.__cause__
    if isinstance(seen, asyncio.CancelledError | OperationTimeout):
        return True
    return isinstance(seen, ConnectionFailure) and not isinstance(seen, OperationFailure)


def deadline_after(seconds: float | None) -> float | None:
    """The ``time.monotonic()`` time at which a ``timeout=`` of ``seconds`` given now runs out
    (``None``: no timeout, no deadline); :func:`time_left` tells what is left of it."""
    return None if seconds is None else time.monotonic() + seconds


def time_left(deadline: float | None, at_least: float) -> float | None:
    """Seconds left until ``deadline``, a ``time.monotonic()`` time (``None``: no deadline,
    and so no timeout), and never less than ``at_least``: once it has passed, a call still
    gets a timeout it runs out on at once (or, with ``at_least=0.0``, learns none is left)."""
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), at_least)


#: The longest timeout the server can be told: the driver sends what is left of a deadline as
#: ``maxTimeMS``, which the server refuses above 2**31 - 1 ms (about 24.8 days).
MAX_TIMEOUT = (2**31 - 1) / 1000


def check_timeout(seconds: float | None) -> None:
    """Refuse a timeout that is not a positive number of seconds of at most
    :data:`MAX_TIMEOUT` (``None``: no timeout) with ``ValueError``, the one error every
    ``timeout=`` of the ODM raises for it."""
    if seconds is None:
        return
    # A str or a bool (from a request's query string, say) is no number of seconds; NaN is
    # refused by the comparisons, infinity and other huge values by the second: else they would
    # fail later, at the server or in the driver's arithmetic, as if the operation's data were bad.
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_TIMEOUT
    ):
        raise ValueError(
            f"timeout must be a positive number of seconds, at most {MAX_TIMEOUT:g} (the "
            f"server's limit, about 24.8 days), not {seconds!r}"
        )


@contextmanager
def operation_timeout(seconds: float | None, what: str = "operation") -> Iterator[None]:
    """Run the block under a client-side deadline of ``seconds`` (``None``: no own deadline).

    A deadline set by an enclosing block still applies; the driver keeps the shorter one.
    Timeouts inside the block surface as :class:`odm.OperationTimeout` naming ``what``.
    """
    check_timeout(seconds)
    try:
        if seconds is None:
            yield
        else:
            with pymongo.timeout(seconds):
                yield
    except PyMongoError as exc:
        if is_timeout(exc):
            limit = f" within {seconds:g} s" if seconds is not None else ""
            raise OperationTimeout(f"{what} did not finish{limit}: {exc}") from exc
        raise
