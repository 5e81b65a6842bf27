"""A batched update run again in the process where it failed.

A resumed ``batched_update`` kills and fences the session id its failed run stored
(``server_transactions.end_session_by_id``), numbering the fence beyond any number a client
gives: the server then refuses every transaction of that session. When the failed run was in
this same process, its session went back to the client's pool, and the resumed run could be
handed that very session for its own batches: it failed with "Cannot start transaction ...
because a newer transaction ... has already started on this session" (seen in CI, on a loaded
machine, where the pool's order differed). A batched run's session now never goes back to the
pool (``drivers.end_session_unpooled``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from odm import drivers
from odm.exceptions import MigrationError
from odm.migrations import Runner
from tests.integration.migrations.faults import FaultSetup, fault_setup

pytestmark = pytest.mark.odm_drivers("pymongo")

BATCHED = '''
from odm.migrations import batched_update, step

steps = [step(lambda db: batched_update(db.items, {}, {"$set": {"done": True}}, batch_size=2))]
'''

#: What a conflict with another transaction answers (the server labels it transient).
WRITE_CONFLICT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}

#: Server sessions taken at once to reorder the pool: more than it holds here.
TAKEN = 4


@pytest.fixture
async def setup(odm_uri: str, tmp_path: Path) -> AsyncIterator[FaultSetup]:
    async with fault_setup(odm_uri, tmp_path, "odm_reuse") as state:
        yield state


async def _stored_session_id(db: Any) -> Any:
    state = await db["_odm_migrations_state"].find_one({"lsid": {"$exists": True}})
    assert state is not None, "the batched update stored no session id"
    return state["lsid"]


async def _put_second_in_the_pool(client: Any, session_id: Any) -> bool:
    """Reorder ``client``'s pool so that the server session ``session_id``, if the pool holds
    it, is the second one handed out (the first goes to the fence that stands for the failed
    run's session); tell whether the pool held it."""
    sessions = []
    for _ in range(TAKEN):
        session = await drivers.start_session(client)
        await client.admin.command("ping", session=session)
        sessions.append(session)
    held = [s for s in sessions if s.session_id == session_id]
    others = [s for s in sessions if s.session_id != session_id]
    # Most recently ended, first handed out.
    for session in [*others[1:], *held, others[0]]:
        await drivers.end_session(session)
    return bool(held)


async def test_a_batched_update_resumed_in_the_same_process_runs_in_a_session_of_its_own(
    setup: FaultSetup,
) -> None:
    setup.write("0001_batched.py", BATCHED)
    await setup.db.items.insert_many([{"_id": i} for i in range(4)])
    # Every batch conflicts: the run gives up before its short lease may run out, and keeps
    # its position (with its session id) for the next run to resume from.
    setup.arm(["update"], "items", WRITE_CONFLICT, "alwaysOn")
    with pytest.raises(MigrationError, match="kept failing"):
        await Runner(setup.db, setup.dir, lock_lease=0.6).apply()
    setup.disarm()
    failed_run_session = await _stored_session_id(setup.db)

    # The failed run's session is out of the pool, whatever order the pool is in.
    assert not await _put_second_in_the_pool(setup.db.client, failed_run_session)

    assert await Runner(setup.db, setup.dir).apply() == ["0001_batched"]
    assert await setup.db.items.count_documents({"done": True}) == 4
