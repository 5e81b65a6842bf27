"""``Meta.optimistic_lock``: a document whose insert may not have run, once it learns what its
``_id`` holds, takes the stored version only when what is stored is what it sent.

``bulk_create`` reads back the ids of a short list the driver split, after a later message of
it was refused with an error that names no document (see ``test_bulk_create_read_back.py``).
An id the list shares with a document stored before the call holds that document: without the
lock the list's document takes it as its stored form; under the lock it must not take its
version too, else its ``save()`` passes the version check on a document it never loaded and
writes over it. It keeps what it sent: its ``save()`` and ``delete()`` raise
:class:`odm.StaleDocument`, and ``refresh()`` loads the stored document.

Documents of 1 MB, as in ``test_bulk_create_later_message.py`` (whose client and fail-point
helpers these tests use). PyMongo only (Motor runs the same driver code).
"""

from __future__ import annotations

from typing import Any

import pytest
import test_bulk_create_later_message as later
from pymongo.errors import OperationFailure

import odm
from odm.models.tracking import get_snapshot

pytestmark = pytest.mark.odm_drivers("pymongo")

#: The fixture of a database whose client the fail points match (its ``appName``).
db = later.db


class VerLmItem(odm.Document):
    n: int = 0
    blob: str = later.BLOB

    class Meta:
        collection = "ver_lm_items"
        optimistic_lock = True


async def test_a_document_read_back_under_another_documents_id_is_stale(db: Any) -> None:
    docs = [VerLmItem(n=i) for i in range(50)]
    # Stored before, by another object given the id (another process, say).
    await VerLmItem(id=docs[48].id, n=-1, blob="").insert()
    other = await db["ver_lm_items"].find_one({"_id": docs[48].id})
    await db.client.admin.command({
        "configureFailPoint": "failCommand",
        "mode": {"skip": 1},
        "data": {"failCommands": ["insert"], "appName": later.APP, "errorCode": 2},
    })
    with pytest.raises(OperationFailure):
        await VerLmItem.objects.bulk_create(docs)
    await later.fail_points_off(db)
    taken = docs[48]
    assert taken.version == 0 != other["version"]  # what it sent, not the other's
    assert get_snapshot(taken)["version"] == taken.version
    taken.n = 5
    with pytest.raises(odm.StaleDocument, match="VerLmItem"):
        await taken.save()
    with pytest.raises(odm.StaleDocument):
        await taken.delete()
    assert await db["ver_lm_items"].find_one({"_id": taken.id}) == other
    await taken.refresh()  # the stored document, which it may then save
    assert (taken.n, taken.version) == (-1, other["version"])
    taken.n = 6
    await taken.save()
    stored = await db["ver_lm_items"].find_one({"_id": taken.id})
    assert (stored["n"], stored["version"]) == (6, other["version"] + 1)
    first = docs[0]  # of the first message, inserted: its version is the stored one
    assert first.is_stored and first.version == 0
    assert (await db["ver_lm_items"].find_one({"_id": first.id}))["version"] == 0
