"""``bulk_create``'s ``CommandTooLarge`` names the document the server refused the command for.

The server refuses an ``insert`` command holding a document over its parsing limit
(BSONObjMaxInternalSize, 16 MB + 16 KB) with BSONObjectTooLarge, naming none; one between
16 MB and that limit only gets a write error of its own. The message used to name the first
document over 16 MB of the run, so a slightly smaller one before the culprit was blamed.
The error is a ``QueryError``: the aiohttp error middleware answers it 400, without the
document.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import odm
from odm.contrib.aiohttp.errors import response_for
from odm.executor import CommandTooLarge

pytestmark = pytest.mark.odm_drivers("pymongo")  # the message is odm's, not the driver's

#: Over the server's parsing limit: the command is refused.
REFUSED = 17_000_000
#: Over 16 MB, under the parsing limit: a write error of its own when alone.
SLIGHTLY_OVER = 16 * 1024 * 1024 + 100


class RuBulkBlob(odm.Document):
    n: int
    data: str = ""

    class Meta:
        collection = "ru_bulk_blobs"


async def test_the_document_the_server_refused_is_named(odm_database: Any) -> None:
    documents = [RuBulkBlob(n=i) for i in range(4)]
    documents[1].data = "x" * SLIGHTLY_OVER
    documents[2].data = "x" * REFUSED
    with pytest.raises(CommandTooLarge) as raised:
        await RuBulkBlob.objects.timeout(60).bulk_create(documents)
    assert str(raised.value) == (
        "RuBulkBlob bulk_create: document 2 of the 4 is larger than MongoDB's 16 MB limit on "
        "a document; nothing was inserted"
    )
    assert f"_id: {documents[2].id!r}" in str(raised.value.__cause__)  # the server's culprit
    assert await odm_database["ru_bulk_blobs"].count_documents({}) == 0
    assert not any(document.is_stored for document in documents)
    response = response_for(raised.value)  # the aiohttp middleware's answer
    assert response is not None and response.status == 400
    assert response.text is not None and len(response.text) < 1000
    assert json.loads(response.text)["error"] == "invalid"
