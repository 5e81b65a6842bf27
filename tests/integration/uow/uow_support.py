"""Helpers shared by the unit-of-work tests: fail points and the outcome of concurrent runs."""

from __future__ import annotations

from typing import Any

from pymongo.errors import PyMongoError


async def fail_point(db: Any, data: dict[str, Any], times: int = 1) -> None:
    """Arm the server's ``failCommand`` fail point for the next ``times`` matching commands."""
    await db.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data}
    )


async def fail_points_off(db: Any) -> None:
    """Disarm the ``failCommand`` fail point."""
    await db.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def gave_up(results: list[Any]) -> list[BaseException]:
    """Return the runs of ``asyncio.gather(..., return_exceptions=True)`` that raised, after
    checking each gave up on a transient error (on a loaded machine a transaction may exhaust
    its retries; it is then aborted whole) and that at most a quarter did."""
    failed = [r for r in results if isinstance(r, BaseException)]
    assert all(
        isinstance(r, PyMongoError) and r.has_error_label("TransientTransactionError")
        for r in failed
    ), failed
    assert len(failed) <= len(results) // 4, failed
    return failed
