"""``drivers.end_session_unpooled``: a session whose id a later run may fence never serves
another operation of its client, under each driver odm supports.

The control case shows why it matters: the drivers pool server sessions most recently used
first, so a session ended the usual way is the very next one its client hands out.
"""

from __future__ import annotations

from typing import Any

from odm import drivers

#: How many sessions are taken at once after the end: more than the pool can hold here.
TAKEN = 4


async def _used_session(database: Any) -> Any:
    """A session of ``database``'s client that has sent a command (so it holds a server
    session)."""
    session = await drivers.start_session(database.client)
    await drivers.resolve(database.command("ping", session=session))
    return session


async def _next_ids(database: Any) -> list[Any]:
    """The ids of the next :data:`TAKEN` server sessions the client hands out."""
    sessions = [await _used_session(database) for _ in range(TAKEN)]
    ids = [session.session_id for session in sessions]
    for session in sessions:
        await drivers.end_session(session)
    return ids


async def test_a_session_ended_unpooled_is_never_handed_out_again(odm_database: Any) -> None:
    pooled = await _used_session(odm_database)
    pooled_id = pooled.session_id
    await drivers.end_session(pooled)
    assert pooled_id in await _next_ids(odm_database)  # the usual end: handed out again

    retired = await _used_session(odm_database)
    retired_id = retired.session_id
    await drivers.end_session_unpooled(retired)
    assert retired_id not in await _next_ids(odm_database)
    # Nor later, whatever the pool's order by then.
    assert retired_id not in await _next_ids(odm_database)


async def test_a_session_that_sent_nothing_takes_no_pooled_session_out(
    odm_database: Any,
) -> None:
    pooled = await _used_session(odm_database)
    pooled_id = pooled.session_id
    await drivers.end_session(pooled)
    # Ended unpooled before it sent anything: it holds no server session, and must not take
    # one from the pool (its id asked for, say) only to discard it.
    unused = await drivers.start_session(odm_database.client)
    await drivers.end_session_unpooled(unused)
    assert pooled_id in await _next_ids(odm_database)
