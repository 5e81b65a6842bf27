"""After an aborted block, a document loaded (or refreshed) in it tells the truth even when the
block wrote with the raw driver, which odm does not see.

Before, only documents loaded after one of *odm's* writes were read back: a raw
``update_one(..., session=odm.current_session())`` (or, with PyMongo's ``bind()``, one with no
``session=`` at all) followed by a load left the object holding the aborted value in its
fields and its snapshot, and its next ``save()`` stored a value derived from it
(``balance += 1`` on an aborted +500). Now every document the block loaded is read back.

A property: a block runs a random program of raw writes (both ways), loads, refreshes, odm
saves (of objects loaded in the block and before it) and queryset updates over a few
documents, then fails; every object met in it then
holds what the database holds (its snapshot, its stored flag and, where the program did not
change the object's fields itself, its fields), and one more ``save()`` after a change stores
exactly that change.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uow_support import stored, truthful

import odm
from odm import F, drivers, executor
from odm.session import current_session
from tests.properties import server_property


class RwAccount(odm.Document):
    n: int = 0

    class Meta:
        collection = "uow_raw_writes_abort"


class Abort(Exception):
    """The block's own failure."""


IDS = st.integers(min_value=0, max_value=2)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("raw"), IDS, st.integers(min_value=1, max_value=500)),
        st.tuples(st.just("raw_bound"), IDS, st.integers(min_value=1, max_value=500)),
        st.tuples(st.just("load"), IDS),
        st.tuples(st.just("refresh"), IDS),
        st.tuples(st.just("save"), IDS, st.integers(min_value=1, max_value=9)),
        st.tuples(st.just("update"), IDS, st.integers(min_value=1, max_value=9)),
        st.tuples(st.just("save_outside"), IDS, st.integers(min_value=1, max_value=9)),
    ),
    min_size=1,
    max_size=8,
)


@server_property(40)
@given(program=STEPS)
async def test_every_document_of_an_aborted_block_tells_the_truth(
    odm_database: Any, program: list[tuple[Any, ...]]
) -> None:
    coll = executor.collection(RwAccount)
    await coll.delete_many({})
    outside = [RwAccount(n=10 * i) for i in range(3)]
    for account in outside:
        await account.insert()
    ids = [account.id for account in outside]
    met: dict[int, RwAccount] = {}  # the objects of the block, by index
    changed: set[int] = set()  # those whose fields the program changed itself
    bound = False
    with pytest.raises(Abort):
        async with odm.transaction():
            bound = drivers.supports_bind(current_session())
            for step in program:
                kind, index = step[0], step[1]
                if kind == "raw":
                    await coll.update_one(
                        {"_id": ids[index]}, {"$inc": {"n": step[2]}}, session=current_session()
                    )
                elif kind == "raw_bound" and bound:
                    await coll.update_one({"_id": ids[index]}, {"$inc": {"n": step[2]}})
                elif kind == "load":
                    met[index] = await RwAccount.objects.get(id=ids[index])
                elif kind == "refresh" and index in met:
                    # The block's own writes a refresh reads back stay the user's intent.
                    await met[index].refresh()
                elif kind == "save" and index in met:
                    met[index].n += step[2]
                    await met[index].save()
                    changed.add(index)  # its value is the user's intent: kept
                elif kind == "save_outside":  # an object of before the block
                    outside[index].n += step[2]
                    await outside[index].save()
                elif kind == "update":
                    await RwAccount.objects.filter(id=ids[index]).update(n=F("n") + step[2])
            raise Abort
    for index, account in met.items():
        await truthful(account, fields=index not in changed)
    for account in outside:
        await truthful(account)
    for index, account in met.items():
        before = await stored(account)
        assert before is not None
        account.n += 1
        await account.save()
        # An unchanged object held the stored value: the save adds exactly 1 to it.
        wanted = account.n if index in changed else before["n"] + 1
        assert await stored(account) == {**before, "n": wanted}, (index, program)


async def test_a_load_after_a_raw_write_is_read_back(odm_database: Any) -> None:
    """The case found: raw ``$inc`` of 500, load, abort, ``+= 1``, save: 71, not 571."""
    account = RwAccount(n=70)
    await account.insert()
    coll = executor.collection(RwAccount)
    with pytest.raises(Abort):
        async with odm.transaction():
            await coll.update_one(
                {"_id": account.id}, {"$inc": {"n": 500}}, session=current_session()
            )
            loaded = await RwAccount.objects.get(id=account.id)
            assert loaded.n == 570
            raise Abort
    assert loaded.n == 70
    loaded.n += 1
    await loaded.save()
    assert (await stored(loaded)) == {"_id": account.id, "n": 71}
