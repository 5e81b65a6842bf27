"""A write of a block that went through in part, then failed on the client, each on both
drivers: the block must not be able to commit what the objects do not know of.

- a ``bulk_create`` whose later chunk could not be encoded, after earlier chunks were
  inserted in the transaction: the block caught the error and committed them, while no object
  said it was stored (the next ``save()`` raised ``DuplicateKey``);
- the same inside one chunk, when the driver raises on a document after it sent the messages
  before it (it splits a list past 48 MB); outside a transaction those documents are of
  unknown outcome;
- an unordered ``bulk_create`` whose chunk broke a unique index in a transaction (which the
  server then aborted) sent the next chunk, and raised its NoSuchTransaction instead;
- a queryset ``update()`` whose documents could not be read back afterwards (a value the model
  refuses): the block caught the error and committed, its object still showing the old value.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from uow_support import stored, truthful

import odm
from odm import F, bulk, transaction


class PwItem(odm.Document):
    n: int = 0
    meta: dict[str, int] = {}

    class Meta:
        collection = "pw_items"


class PwCounter(odm.Document):
    n: int = odm.Field(default=0, ge=0)
    m: int = 0

    class Meta:
        collection = "pw_counters"


def unencodable(n: int) -> PwItem:
    """A document BSON cannot hold (a NUL in a key), found only when it is encoded."""
    return PwItem(n=n, meta={"bad\x00key": 1})


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split a list of more than 4 documents, in chunks of 2 to 4 (9 documents: [0, 2),
    [2, 5), [5, 7), [7, 9)), instead of the thousands a real split needs."""
    monkeypatch.setattr(bulk, "SPLIT_ABOVE", 4)
    monkeypatch.setattr(bulk, "FIRST_CHUNK", 2)
    monkeypatch.setattr(bulk, "CHUNK", 4)
    monkeypatch.setattr(bulk, "MIN_CHUNK", 2)


class PwBig(odm.Document):
    n: int = 0
    blob: str = ""
    meta: dict[str, int] = {}

    class Meta:
        collection = "pw_big"


def over_one_message() -> list[PwBig]:
    """49 documents of 1 MB, then one the driver cannot encode: PyMongo sends the list in
    messages of at most 48 MB, encoding each as it goes, so it inserts the first message's
    documents (47 of them) before it meets the culprit in the second."""
    blob = "x" * 1_000_000
    return [PwBig(n=i, blob=blob) for i in range(49)] + [PwBig(n=99, meta={"bad\x00key": 1})]


# -- bulk_create ----------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks")
async def test_a_bulk_create_failing_after_a_chunk_was_inserted_cannot_commit(
    odm_database: Any,
) -> None:
    docs = [PwItem(n=i) for i in range(8)] + [unencodable(8)]
    with pytest.raises(odm.TransactionError, match="PwItem bulk_create failed"):
        async with transaction():
            # Refused before anything was sent: the transaction is intact and goes on.
            with pytest.raises(ValidationError):
                await PwItem.objects.bulk_create([unencodable(-1), PwItem(n=-2)])
            assert await PwItem.objects.count() == 0
            with pytest.raises(ValidationError) as failed:
                await PwItem.objects.bulk_create(docs)
            assert not any(doc.is_stored for doc in docs)
            with pytest.raises(odm.TransactionError, match="PwItem bulk_create failed"):
                await PwItem.objects.count()  # 7 of them are in the transaction
    assert "7 of its 9 documents" in "".join(getattr(failed.value, "__notes__", ()))
    assert await odm_database["pw_items"].count_documents({}) == 0
    assert not any(doc.is_stored for doc in docs)
    await truthful(docs[0])
    await docs[0].save()  # inserted, not refused as a duplicate
    await truthful(docs[0], fields=True)


@pytest.mark.usefixtures("small_chunks")
async def test_an_unordered_bulk_create_stops_at_a_write_error_in_a_transaction(
    odm_database: Any,
) -> None:
    """The server aborted the transaction at the duplicate: the next chunk would only fail
    with NoSuchTransaction (a transient error: atomic would run the body again)."""
    taken = await PwItem(n=-1).insert()
    docs = [PwItem(n=i) for i in range(9)]
    docs[3] = PwItem(id=taken.id, n=3)
    with pytest.raises(odm.DuplicateKey):
        async with transaction():
            await PwItem.objects.bulk_create(docs, ordered=False)
    assert not any(doc.is_stored for doc in docs[:3] + docs[4:])
    assert await odm_database["pw_items"].count_documents({}) == 1


async def test_a_chunk_the_driver_sent_in_part_cannot_commit(odm_database: Any) -> None:
    docs = over_one_message()
    with pytest.raises(odm.TransactionError, match="may have been inserted"):
        async with transaction():
            with pytest.raises(ValidationError):
                await PwBig.objects.bulk_create(docs)
    assert await odm_database["pw_big"].count_documents({}) == 0
    for doc in docs[:3] + docs[-3:]:
        await truthful(doc)


async def test_a_chunk_the_driver_sent_in_part_is_of_unknown_outcome(odm_database: Any) -> None:
    docs = over_one_message()
    with pytest.raises(ValidationError):
        await PwBig.objects.bulk_create(docs)
    sent = await odm_database["pw_big"].count_documents({})
    assert 0 < sent < 49  # the driver's first message went in
    for doc in docs[sent - 2 : sent + 2]:  # each side of the cut
        doc.n += 1000
        await doc.save()  # learns whether it is stored first: no DuplicateKey
        await truthful(doc)
    assert await odm_database["pw_big"].count_documents({}) == sent + 2


# -- a queryset update whose documents cannot be read back ---------------------------------


async def test_an_update_whose_documents_cannot_be_read_back_cannot_commit(
    odm_database: Any,
) -> None:
    counter = await PwCounter(n=3).insert()
    with pytest.raises(odm.TransactionError, match=r"PwCounter update\(\) wrote") as ended:
        async with transaction():
            held = await PwCounter.objects.get(id=counter.id)
            with pytest.raises(ValidationError):  # n = -7 breaks ge=0
                await PwCounter.objects.filter(id=counter.id).update(n=F("n") - 10)
            held.m = 1
            with pytest.raises(odm.TransactionError, match=r"PwCounter update\(\)"):
                await held.save()
    assert repr(counter.id) in str(ended.value)
    assert await stored(held) == {"_id": counter.id, "n": 3, "m": 0}
    await truthful(held)
    assert (held.n, held.m) == (3, 1)
    await held.save()  # sends the change of the block's code, m, on the stored n
    assert await stored(held) == {"_id": counter.id, "n": 3, "m": 1}
