"""An unordered ``bulk_create`` split into chunks, with a duplicate key in an early chunk and
a document over MongoDB's limit in a later one, raises a ``CommandTooLarge`` that also says
the duplicate key's write error, and keeps it reachable as a ``BulkWriteError``'s
``details``. The message used to name the document too large alone: the duplicate was lost."""

from __future__ import annotations

from typing import Any

import pytest

import odm
from odm.bulk import SPLIT_ABOVE
from odm.executor import CommandTooLarge

pytestmark = pytest.mark.odm_drivers("pymongo")  # the message is odm's, not the driver's

#: Over the server's parsing limit: the insert of the run that holds it is refused.
REFUSED = 17_000_000
#: One more than a list is sent whole: the list is split into chunks.
COUNT = SPLIT_ABOVE + 2
#: The document that repeats the id of the one before it (in the first chunk), and the one too
#: large (the last, in the last chunk).
DUPLICATE, TOO_LARGE = 5, COUNT - 1


class HbBulkBlob(odm.Document):
    n: int
    data: str = ""

    class Meta:
        collection = "hb22_bulk_blobs"


async def test_the_earlier_write_error_is_said_and_kept(odm_database: Any) -> None:
    documents = [HbBulkBlob(n=i) for i in range(COUNT)]
    documents[DUPLICATE].id = documents[DUPLICATE - 1].id
    documents[TOO_LARGE].data = "x" * REFUSED
    with pytest.raises(CommandTooLarge) as raised:
        await HbBulkBlob.objects.timeout(60).bulk_create(documents, ordered=False)
    message = str(raised.value)
    stored = [i for i, document in enumerate(documents) if document.is_stored]
    assert message.startswith(
        f"HbBulkBlob bulk_create: document {TOO_LARGE} of the {COUNT} is larger than "
        f"MongoDB's 16 MB limit on a document; {len(stored)} documents before it were inserted"
    )
    assert (
        f"; and 1 earlier document had a write error (the error's details list them): "
        f"document {DUPLICATE}: E11000 duplicate key error"
    ) in message
    details = raised.value.details  # type: ignore[attr-defined]
    (error,) = details["writeErrors"]
    assert error["index"] == DUPLICATE and error["code"] == 11000
    assert details["nInserted"] == len(stored)
    # The chunks before the one too large went in, but for the duplicate.
    assert DUPLICATE not in stored and stored[: DUPLICATE + 1] == [*range(DUPLICATE), DUPLICATE + 1]
    assert TOO_LARGE not in stored
    assert await odm_database["hb22_bulk_blobs"].count_documents({}) == len(stored)


async def test_without_write_errors_the_message_is_unchanged(odm_database: Any) -> None:
    documents = [HbBulkBlob(n=i) for i in range(COUNT)]
    documents[TOO_LARGE].data = "x" * REFUSED
    with pytest.raises(CommandTooLarge) as raised:
        await HbBulkBlob.objects.timeout(60).bulk_create(documents, ordered=False)
    stored = sum(document.is_stored for document in documents)
    assert str(raised.value).endswith(
        f"{stored} documents before it were inserted (is_stored says which), none from it on"
    )
    assert raised.value.details["writeErrors"] == []  # type: ignore[attr-defined]
