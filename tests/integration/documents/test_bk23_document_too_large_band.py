"""A document over MongoDB's 16 MiB limit by at most 16 KiB gets the same clear error as one
over by more, through every write.

The server parses documents of up to 16 MiB + 16 KiB (BSONObjMaxInternalSize, 16,793,600
bytes): in that band the driver sends the document and the server refuses it alone, with a
write error (BadValue, "object to insert too large"; "Resulting document after update is
larger than 16777216" for an update), and above it refuses the whole command
(BSONObjectTooLarge). ``bulk_create`` used to raise the band's write error inside a
``BulkWriteError`` (an aiohttp 500), ``insert()``/``save()``/``update()`` the bare driver
``WriteError`` (a 500 too). Each now raises ``CommandTooLarge`` (a ``QueryError``: a 400)
naming the model, the document's position for a list, and what was written.
"""

from __future__ import annotations

import json
from typing import Any

import bson
import pytest

import odm
from odm import F
from odm.bulk import BulkCreateTooLarge
from odm.contrib.aiohttp.errors import response_for
from odm.executor import CommandTooLarge

pytestmark = pytest.mark.odm_drivers("pymongo")  # the messages are odm's, not the driver's

LIMIT = 16 * 1024 * 1024
#: The server's parsing limit, over LIMIT: found on mongod 6.0 by inserting documents of
#: each size (BSONObjMaxInternalSize).
BAND = 16 * 1024
#: Built once: every document of the module takes a slice of it.
FILLER = "x" * (LIMIT + BAND + 100)


class BkBlob(odm.Document):
    n: int
    data: str = ""
    pad: str = ""
    tags: list[str] = []

    class Meta:
        collection = "bk23_blobs"


def blob(n: int, size: int = 0, **fields: Any) -> BkBlob:
    """A ``BkBlob`` whose stored form takes exactly ``size`` bytes (0: as small as it is)."""
    document = BkBlob(n=n, **fields)
    if size:
        document.data = FILLER[: size - len(bson.encode(document.to_bson()))]
        assert len(bson.encode(document.to_bson())) == size
    return document


async def stored_ns(odm_database: Any) -> list[int]:
    rows = await odm_database["bk23_blobs"].find({}, {"n": 1}).sort("n", 1).to_list(None)
    return [row["n"] for row in rows]


def answered_400(error: Exception) -> None:
    """The aiohttp error middleware answers ``error`` 400, short, without the document."""
    response = response_for(error)
    assert response is not None and response.status == 400
    assert response.text is not None and len(response.text) < 2000
    assert json.loads(response.text)["error"] == "invalid"


@pytest.mark.parametrize("over", [1, BAND])
async def test_bulk_create_names_the_document_and_keeps_earlier_errors(
    odm_database: Any, over: int
) -> None:
    # Both edges of the band (its middle: the split list below): unordered, the server
    # refuses the culprit alone and goes on; the duplicate before it is kept in details.
    # (Just past the band it refuses the whole command: test_ru22_bulk_too_large.)
    documents = [blob(0), blob(1), blob(2, LIMIT + over), blob(3)]
    documents[1].id = documents[0].id
    with pytest.raises(BulkCreateTooLarge) as raised:
        await BkBlob.objects.timeout(60).bulk_create(documents, ordered=False)
    message = str(raised.value)
    assert message.startswith(
        "BkBlob bulk_create: document 2 of the 4 is larger than MongoDB's 16 MB limit on a "
        "document; "
    )
    stored = [i for i, document in enumerate(documents) if document.is_stored]
    assert await stored_ns(odm_database) == stored
    assert raised.value.details["nInserted"] == len(stored)
    assert stored == [0, 3]
    assert message.endswith(
        "; 2 other documents were inserted, 1 of them after it (is_stored says which); "
        "and 1 earlier document had a write error (the error's details list them): "
        f"document 1: E11000 duplicate key error collection: {odm_database.name}.bk23_blobs"
        f" index: _id_ dup key: {{ _id: ObjectId('{documents[0].id}') }}"
    )
    (duplicate,) = raised.value.details["writeErrors"]
    assert duplicate["index"] == 1 and duplicate["code"] == 11000
    answered_400(raised.value)


async def test_ordered_the_documents_from_it_on_are_not_inserted(odm_database: Any) -> None:
    documents = [blob(0), blob(1, LIMIT + 1), blob(2)]
    with pytest.raises(BulkCreateTooLarge, match=r"^BkBlob bulk_create: document 1 of the 3 is "
                       r"larger .*; 1 documents before it were inserted \(is_stored says "
                       r"which\), none from it on$"):
        await BkBlob.objects.timeout(60).bulk_create(documents)
    assert await stored_ns(odm_database) == [0]
    assert [document.is_stored for document in documents] == [True, False, False]


async def test_a_split_list_stops_at_the_chunk_of_the_document(odm_database: Any) -> None:
    documents = [blob(i) for i in range(1002)]
    documents[1001] = blob(1001, LIMIT + BAND // 2)
    with pytest.raises(BulkCreateTooLarge) as raised:
        await BkBlob.objects.timeout(60).bulk_create(documents, ordered=False)
    assert "document 1001 of the 1002" in str(raised.value)
    assert raised.value.details["writeErrors"] == []
    assert await stored_ns(odm_database) == list(range(1001))
    assert sum(document.is_stored for document in documents) == 1001


async def test_in_a_transaction_nothing_is_left(odm_database: Any) -> None:
    documents = [blob(0), blob(1, LIMIT + 1)]
    with pytest.raises(BulkCreateTooLarge, match=r"document 1 of the 2 .*rolled back$"):
        async with odm.transaction():
            await BkBlob.objects.timeout(60).bulk_create(documents)
    assert await stored_ns(odm_database) == []
    assert not any(document.is_stored for document in documents)


async def test_insert_and_save_of_a_new_document_name_the_model(odm_database: Any) -> None:
    # Over by up to ~16,150 bytes (the command's own bytes take the rest of the band) the
    # driver sends it and the server refuses it; over by more the driver refuses the command
    # (CommandTooLarge already).
    document = blob(1, LIMIT + 1)
    with pytest.raises(CommandTooLarge, match=r"^BkBlob insert: the document is larger than "
                       r"MongoDB's 16 MB limit"):
        await document.save()
    assert not document.is_stored
    assert await stored_ns(odm_database) == []
    with pytest.raises(CommandTooLarge) as raised:
        await document.insert()
    answered_400(raised.value)


async def test_save_that_grows_a_document_over_the_limit_writes_nothing(
    odm_database: Any,
) -> None:
    document = await blob(1).insert()
    document.data = FILLER[:LIMIT]
    with pytest.raises(CommandTooLarge, match=r"^BkBlob update: the updated document would "
                       r"be larger than MongoDB's 16 MB limit on a document, so the server "
                       r"refused it; nothing was written"):
        await document.save()
    assert (await odm_database["bk23_blobs"].find_one({"n": 1}))["data"] == ""
    # The object still holds the change it could not save, and knows it is unsaved.
    assert document.is_stored and document.data == FILLER[:LIMIT]
    document.data = "fits"
    await document.save()
    assert (await odm_database["bk23_blobs"].find_one({"n": 1}))["data"] == "fits"


async def test_update_many_says_what_it_wrote(odm_database: Any) -> None:
    # The same $set fits the first document and takes the second, padded, over the limit.
    await BkBlob.objects.bulk_create([blob(1), blob(2, pad="p" * 1000)])
    value = FILLER[: LIMIT - 200]
    with pytest.raises(CommandTooLarge, match=r"^BkBlob update_many: a matching document, "
                       r"updated, would be larger .*; the documents it updated before that "
                       r"one keep the change") as raised:
        await BkBlob.objects.order_by("n").update(data=value)
    answered_400(raised.value)
    sizes = await odm_database["bk23_blobs"].find(
        {}, {"size": {"$strLenBytes": "$data"}}
    ).sort("n", 1).to_list(None)
    assert [row["size"] for row in sizes] == [LIMIT - 200, 0]


async def test_a_push_past_the_limit_is_refused_by_name(odm_database: Any) -> None:
    await blob(1, LIMIT - 100).insert()
    for grown in (200, BAND + 200):  # in the band; past it (BSONObjectTooLarge)
        with pytest.raises(CommandTooLarge, match=r"^BkBlob update_many: .*would be larger"):
            await BkBlob.objects.filter(n=1).update(tags=F("tags").push("t" * grown))
    assert (await odm_database["bk23_blobs"].find_one({"n": 1}))["tags"] == []
