"""What the next ``save()`` after a cut-off one learns, and that it sends nothing twice and
overwrites nothing someone else wrote meanwhile.

- The copies of a document (``model_copy``, ``copy.copy``, ``copy.deepcopy``) learn what it
  learns: a copy made before or after the cut-off does not make a later save push again.
- What is learnt is decided path by path of the cut-off update (a dotted ``$set`` path, a
  ``$push`` target), so another client's change inside the same sub-document or list survives.

The server holds the write (``failCommand`` with ``blockConnection``) past the caller's
``asyncio.timeout``, then runs it ("ran") or refuses it ("refused"), as in
``test_cut_off_writes.py``.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

import odm
from odm import executor
from odm.models.tracking import Unsure, get_snapshot

BLOCK_MS = 80
GIVE_UP = 0.02


class TruthAddress(odm.Embedded):
    city: str
    zip: str = ""


class TruthDoc(odm.Document):
    ref: str
    tags: list[str] = []
    address: TruthAddress = TruthAddress(city="Paris", zip="75000")

    class Meta:
        collection = "unsure_truth_docs"


class TruthLockedDoc(odm.Document):
    ref: str
    tags: list[str] = []

    class Meta:
        collection = "unsure_truth_locked_docs"
        optimistic_lock = True


async def cut_off_save(document: odm.Document) -> None:
    """Save ``document`` so that the call is cut off, and wait until the server is done with
    the held write."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(GIVE_UP):
            await document.save()
    assert isinstance(get_snapshot(document), Unsure)
    await asyncio.sleep(BLOCK_MS / 1000 + 0.04)


async def stored(document: odm.Document) -> dict[str, Any]:
    raw: dict[str, Any] | None = await executor.collection(type(document)).find_one(
        {"_id": document.id}
    )
    assert raw is not None
    return raw


@pytest.mark.parametrize("model", [TruthDoc, TruthLockedDoc])
async def test_copies_made_before_and_after_a_cut_off_push_do_not_push_it_again(
    hold: Any, model: type[TruthDoc] | type[TruthLockedDoc]
) -> None:
    doc = await model(ref="a", tags=["a"]).insert()
    kept = doc.model_copy()  # made before the cut-off: its family knew the old list
    doc.tags.append("mine")
    await hold("update", True, BLOCK_MS)
    await cut_off_save(doc)
    assert (await stored(doc))["tags"] == ["a", "mine"]  # it ran
    shallow, deep = copy.copy(doc), copy.deepcopy(doc)
    await deep.save()  # learns: nothing left to send
    await shallow.save()
    await doc.save()
    if model is TruthDoc:  # it shares the list (a shallow copy): nothing new to send
        await kept.save()
    else:  # under the lock it is a stale copy, as without a cut-off
        with pytest.raises(odm.StaleDocument):
            await kept.save()
    assert (await stored(doc))["tags"] == ["a", "mine"]
    assert get_snapshot(doc) == await stored(doc)


@pytest.mark.parametrize("outcome", ["ran", "refused"])
async def test_a_change_cut_off_leaves_the_rest_of_its_sub_document_and_list_alone(
    hold: Any, outcome: str
) -> None:
    doc = await TruthDoc(ref="a", tags=["a"]).insert()
    doc.address.city = "Lyon"
    doc.tags.append("mine")
    await hold("update", outcome == "ran", BLOCK_MS)
    await cut_off_save(doc)
    # Another client writes beside it, in the same sub-document and the same list.
    await TruthDoc.objects.filter(id=doc.id).update(
        address__zip="69000", tags=odm.F("tags").push("theirs")
    )
    await doc.save()
    raw = await stored(doc)
    assert raw["address"] == {"city": "Lyon", "zip": "69000"}
    expected = ["a", "mine", "theirs"] if outcome == "ran" else ["a", "theirs", "mine"]
    assert raw["tags"] == expected
    # The document stays a copy of its time (it never learnt the other client's values), but
    # a further save sends only its own changes.
    doc.address.city = "Nice"
    await doc.save()
    raw = await stored(doc)
    assert (raw["address"], raw["tags"]) == ({"city": "Nice", "zip": "69000"}, expected)
