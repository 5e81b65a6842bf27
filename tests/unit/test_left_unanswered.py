"""Which errors leave a command that may still reach the server (and so a session to fence
after the abort, see ``odm.server_transactions.fence_session``): those where the client stopped
waiting, not those where the server answered."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from odm import OperationTimeout
from odm.timeouts import left_unanswered


def timed_out(cause: BaseException | None) -> OperationTimeout:
    error = OperationTimeout("Order save did not finish")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        asyncio.CancelledError(),
        NetworkTimeout("timed out"),
        AutoReconnect("connection closed"),
        ServerSelectionTimeoutError("no primary"),
        timed_out(NetworkTimeout("timed out")),
        timed_out(None),  # odm's own deadline: whether it was sent is not known here
        timed_out(timed_out(asyncio.CancelledError())),
    ],
    ids=repr,
)
def test_the_client_gave_up_waiting(error: BaseException) -> None:
    assert left_unanswered(error)


@pytest.mark.parametrize(
    "error",
    [
        ExecutionTimeout("operation exceeded time limit", 50),
        WTimeoutError("waiting for replication timed out", 64),
        OperationFailure("duplicate key", 11000),
        timed_out(ExecutionTimeout("operation exceeded time limit", 50)),
        ValueError("not a driver error"),
    ],
    ids=repr,
)
def test_the_server_answered(error: BaseException) -> None:
    assert not left_unanswered(error)
