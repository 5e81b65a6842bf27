"""A document the open block wrote (or read after writing) cannot be written or refreshed from
outside that block while it is open: from another task, or through
``odm.session.outside_blocks()``. ``odm.TransactionError`` names the block's task, before
anything is sent.

Before, such a write waited on the server for the block's own uncommitted write: through
``outside_blocks()`` inside the block, a deadlock until the server's transaction lifetime
limit ended the block (60 s by default), after which the object said ``tags=[]`` while the
database held ``['x']``, and its next ``save()`` stored ``['x', 'x']``; from a concurrent task,
the block's abort and the outside save each recorded a state built on the other's, and the
user's change was silently lost on the next save.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uow_support import stored, truthful

import odm
from odm.contrib.pytest.queries import capture_queries
from odm.session import outside_blocks
from tests.properties import server_property


class OwCfg(odm.Document):
    n: int = 0
    tags: list[str] = []

    class Meta:
        collection = "uow_outside_writes"


class Abort(Exception):
    """The block's own failure."""


async def _save(doc: OwCfg) -> None:
    doc.tags.append("x")
    await doc.save()


async def _delete(doc: OwCfg) -> None:
    await doc.delete()


async def _refresh(doc: OwCfg) -> None:
    await doc.refresh()


CALLS: dict[str, Callable[[OwCfg], Awaitable[None]]] = {
    "save": _save, "delete": _delete, "refresh": _refresh,
}


async def _from_a_task(work: Callable[[], Awaitable[None]]) -> None:
    """``work`` in a task of its own, outside any block (spawned where none is bound)."""
    await asyncio.create_task(work(), context=contextvars.Context())


@server_property(20)
@given(
    call=st.sampled_from(sorted(CALLS)),
    via=st.sampled_from(["outside_blocks", "task"]),
    how=st.sampled_from(["loaded", "loaded before"]),
    commits=st.booleans(),
)
async def test_a_call_from_outside_the_block_that_wrote_the_document_is_refused(
    odm_database: Any, call: str, via: str, how: str, commits: bool
) -> None:
    await OwCfg.objects.all().delete()
    before = await OwCfg(n=0).insert()
    refused: list[BaseException] = []

    async def outside() -> None:
        with capture_queries() as sent:
            try:
                await CALLS[call](doc)
            except odm.TransactionError as exc:
                refused.append(exc)
        assert sent.names() == []  # refused before anything was sent

    async def block() -> None:
        async with odm.transaction():
            nonlocal doc
            doc = before if how == "loaded before" else await OwCfg.objects.get(id=before.id)
            doc.n = 1
            await doc.save()
            if via == "outside_blocks":
                await outside_blocks(outside)
            else:
                await _from_a_task(outside)
            if not commits:
                raise Abort

    doc = before
    if commits:
        await block()
    else:
        with pytest.raises(Abort):
            await block()
    (error,) = refused
    assert "has uncommitted changes of the transaction block open in task" in str(error)
    assert doc.tags == (["x"] if call == "save" else [])  # the refused save's change is kept
    await truthful(doc)
    assert (await stored(doc) or {})["n"] == (1 if commits else 0)
    # Once the block has ended, the call goes through.
    await CALLS[call](doc)
    if call == "delete":
        assert await stored(doc) is None and not doc.is_stored
    else:
        await truthful(doc, fields=True)


async def test_a_spawned_task_with_a_transaction_of_its_own_is_refused_too(
    odm_database: Any,
) -> None:
    """Not a retry loop of write conflicts until ``atomic`` gives up (120 s): refused."""
    doc = await OwCfg(n=0).insert()

    async def other() -> None:
        async with odm.transaction():
            doc.n = 5
            await doc.save()

    async with odm.transaction():
        doc.n = 1
        await doc.save()
        with pytest.raises(odm.TransactionError, match="uncommitted changes"):
            await asyncio.create_task(other())
        doc.n = 1  # the refused task's change, undone by hand: the block commits its own
    await truthful(doc, fields=True)
    assert (await stored(doc) or {})["n"] == 1
