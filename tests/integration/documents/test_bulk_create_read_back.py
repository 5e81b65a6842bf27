"""A short list (up to 1,000 documents) that the driver sends in several messages of 48 MB,
failed by an error that names no document after its first message went in: the driver does
not say which went in, so every document was of unknown outcome (each ``save()`` read first,
``is_stored`` said false of the stored ones). Each message it sent was answered, so nothing
of the list still runs on the server: ``bulk_create`` reads back what is stored under the ids
it sent, and each document says it. What an id holds is read whole: one the list shares with
a document stored before the call holds that document, which the list's document then knows
as its stored form. Should the read fail, the documents stay of unknown outcome.

Documents of 1 MB, as in ``test_bulk_create_later_message.py`` (whose client, model and
checks these tests use): the first message holds 47 of them. PyMongo only (Motor runs the
same driver code; that file runs the plain case under both).
"""

from __future__ import annotations

from typing import Any

import pytest
import test_bulk_create_later_message as later
from pymongo.errors import OperationFailure

from odm.models.tracking import Unsure, get_snapshot

pytestmark = pytest.mark.odm_drivers("pymongo")

LmItem = later.LmItem
#: The fixture of a database whose client the fail points match (its ``appName``).
db = later.db


async def fail_later(db: Any, commands: list[str]) -> None:
    """Fail the ``insert`` after the first (a retry too) with a command error, and with it
    every ``commands`` sent after."""
    await db.client.admin.command({
        "configureFailPoint": "failCommand",
        "mode": {"skip": 1},
        "data": {"failCommands": commands, "appName": later.APP, "errorCode": 2},
    })


@pytest.mark.parametrize("ordered", [True, False])
async def test_each_document_knows_whether_it_went_in_and_what_its_id_holds(
    db: Any, ordered: bool
) -> None:
    docs = [LmItem(n=i) for i in range(50)]
    other = {"_id": docs[48].id, "n": -1}  # stored before, under an id of the second message
    await db["lm_items"].insert_one(other)
    await fail_later(db, ["insert"])
    with pytest.raises(OperationFailure):
        await LmItem.objects.bulk_create(docs, ordered=ordered)
    await later.fail_points_off(db)
    assert len(await later.stored_ids(db)) == 48  # the first message's 47, and the other
    await later.assert_marked(db, docs[:48])  # exactly: none of unknown outcome
    await later.assert_marked(db, docs[49:])
    taken = docs[48]
    assert taken.is_stored and get_snapshot(taken) == other  # not what it would have stored
    taken.n = 5
    await taken.save()  # the other document becomes what this one holds
    raw = await db["lm_items"].find_one({"_id": taken.id})
    assert raw == get_snapshot(taken) == taken.to_bson()
    await later.saves_as_stored(db, docs[47])  # inserted, without a read first


async def test_a_read_that_fails_leaves_them_of_unknown_outcome(db: Any) -> None:
    docs = [LmItem(n=i) for i in range(50)]
    # A write first: the server reads a new session's state with finds of its own (which the
    # fail point would count) on the session's first retryable write, the driver's session
    # pool then hands the insert below the same session.
    await db["warm_up"].insert_one({})
    await fail_later(db, ["insert", "find"])
    with pytest.raises(OperationFailure):
        await LmItem.objects.bulk_create(docs)
    await later.fail_points_off(db)
    assert 0 < len(await later.stored_ids(db)) < 50
    assert all(type(get_snapshot(doc)) is Unsure for doc in docs)
    await later.assert_marked(db, docs, unknown=range(50))
