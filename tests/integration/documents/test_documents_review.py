"""Review: copies of documents and what save() does with them."""

import copy
import pickle
from typing import Any

import bson
import pytest

import odm


class RvNote(odm.Document):
    title: str
    n: int = 0

    class Meta:
        collection = "rv_notes"


class RvLockedNote(odm.Document):
    title: str

    class Meta:
        collection = "rv_locked_notes"
        optimistic_lock = True


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda d: d.model_copy(), lambda d: d.model_copy(deep=True),
     lambda d: pickle.loads(pickle.dumps(d))],
    ids=["copy", "deepcopy", "model_copy", "model_copy_deep", "pickle"],
)
async def test_a_copy_of_a_stored_document_saves_as_an_update(
    odm_database: Any, duplicate: Any
) -> None:
    note = await RvNote(title="a").insert()
    twin = duplicate(note)
    assert twin.is_stored
    twin.n = 5
    await twin.save()
    assert await odm_database.rv_notes.count_documents({}) == 1
    assert (await RvNote.objects.get(id=note.id)).n == 5


async def test_a_copy_with_a_new_id_saves_as_a_new_document(odm_database: Any) -> None:
    note = await RvNote(title="a").insert()
    twin = note.model_copy(update={"id": bson.ObjectId(), "title": "b"})
    await twin.save()
    assert sorted(await RvNote.objects.values_list("title", flat=True)) == ["a", "b"]
    note.n = 1
    await note.save()
    assert (await RvNote.objects.get(title="a")).n == 1


async def test_a_copy_of_a_locked_document_keeps_its_version(odm_database: Any) -> None:
    note = await RvLockedNote(title="a").insert()
    twin = copy.deepcopy(note)
    twin.title = "b"
    await twin.save()
    note.title = "c"
    with pytest.raises(odm.StaleDocument):
        await note.save()
