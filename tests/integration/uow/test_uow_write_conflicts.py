"""A block that meets a write conflict: the server has aborted its transaction already.

The abort odm then sends is answered ``NoSuchTransaction``: the transaction is over, so the
server session is not killed (``killSessions``, a command the server runs over its whole
session catalogue, once per conflict under contention). An abort refused for another reason
still kills it: that transaction may still be open. Either way nothing is left open and the
documents tell the truth.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from pymongo.errors import PyMongoError
from uow_support import armed, fail_points_off, open_transactions, truthful

import odm
from odm import F, drivers, executor, transaction
from odm.contrib.pytest import MonitoredDatabase


class WcAccount(odm.Document):
    """An account two transactions fight over."""

    owner: str
    balance: int = 0

    class Meta:
        collection = "wc_accounts"


async def _held_by_another_transaction(account: WcAccount) -> Any:
    """A session whose open transaction has written ``account`` (every other transaction
    writing it now meets a write conflict), started from an empty context (inside a block
    it would join the block)."""

    async def start() -> Any:
        blocker = await drivers.start_session(executor.collection(WcAccount).database.client)
        await drivers.start_transaction(blocker)
        await executor.collection(WcAccount).update_one(
            {"_id": account.id}, {"$inc": {"balance": 100}}, session=blocker
        )
        return blocker

    return await asyncio.create_task(start(), context=contextvars.Context())


async def _conflicting_block(payer: WcAccount, payee: WcAccount) -> PyMongoError:
    """Run a block that changes ``payer`` in memory and then updates ``payee``, which another
    transaction holds; return the error it ended with."""
    with pytest.raises(PyMongoError) as caught:
        async with transaction():
            loaded = await WcAccount.objects.get(id=payer.id)
            loaded.balance -= 5
            await WcAccount.objects.filter(id=payee.id).update(balance=F("balance") + 5)
    return caught.value


async def test_a_write_conflict_ends_the_transaction_without_killing_its_session(
    odm_monitored: MonitoredDatabase,
) -> None:
    payer = await WcAccount(owner="payer", balance=50).insert()
    payee = await WcAccount(owner="payee").insert()
    blocker = await _held_by_another_transaction(payee)
    log = odm_monitored.log
    try:
        log.clear()
        error = await _conflicting_block(payer, payee)
        assert error.has_error_label("TransientTransactionError"), error
        names = log.names()
        assert names.count("abortTransaction") == 1, names
        assert "killSessions" not in names, names
        # Only the blocker's transaction is open: the block's ended with the conflict.
        blocker_lsid = blocker.session_id["id"].as_uuid()
        assert [op["lsid"]["id"] for op in await open_transactions(odm_monitored.database)] == [
            blocker_lsid
        ]
    finally:
        await drivers.resolve(blocker.abort_transaction())
        await drivers.end_session(blocker)
    await truthful(payer, fields=True)
    await truthful(payee, fields=True)


async def test_an_abort_refused_for_another_reason_still_kills_the_session(
    odm_monitored: MonitoredDatabase,
) -> None:
    payer = await WcAccount(owner="payer", balance=50).insert()
    payee = await WcAccount(owner="payee").insert()
    log = odm_monitored.log
    database = odm_monitored.database
    try:
        log.clear()
        with pytest.raises(ZeroDivisionError):
            async with transaction():
                loaded = await WcAccount.objects.get(id=payer.id)
                loaded.balance -= 5
                await WcAccount.objects.filter(id=payee.id).update(balance=F("balance") + 5)
                await armed(database, {"failCommands": ["abortTransaction"], "errorCode": 2})
                raise ZeroDivisionError
    finally:
        await fail_points_off(database)
    names = log.names()
    assert "abortTransaction" in names and "killSessions" in names, names
    assert await open_transactions(database) == []
    await truthful(payer, fields=True)
    await truthful(payee, fields=True)
