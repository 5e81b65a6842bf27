"""The snapshot of a document whose write was cut off (:class:`odm.models.tracking.Unsure`):
what it records, and that copies and pickles keep it (a copy is that document: its next
``save()`` must learn too)."""

from __future__ import annotations

import copy
import pickle

import odm
from odm.models.tracking import Unsure, get_snapshot, set_snapshot, unsure


class UnsureDoc(odm.Document):
    n: int = 0
    tags: list[str] = []
    address: dict[str, str] = {}

    class Meta:
        collection = "unsure_docs"


def test_an_update_cut_off_records_the_old_snapshot_and_the_top_level_keys_it_touched() -> None:
    doc = UnsureDoc(n=1)
    before = {"_id": doc.id, "n": 1, "tags": [], "address": {"city": "Lyon"}}
    set_snapshot(doc, before)
    planned = {**before, "n": 2, "tags": ["x"], "address": {"city": "Paris"}}
    update = {
        "$set": {"n": 2, "address.city": "Paris"},
        "$push": {"tags": {"$each": ["x"]}},
    }
    unsure(doc, "save", planned, update)
    marked = get_snapshot(doc)
    assert isinstance(marked, Unsure)
    assert dict(marked) == before
    assert (marked.call, marked.existed, marked.planned) == ("save", True, planned)
    assert marked.touched == {"n", "address", "tags"}
    assert doc.is_stored


def test_an_insert_cut_off_is_not_known_to_be_stored() -> None:
    doc = UnsureDoc(n=1)
    raw = doc.to_bson()
    unsure(doc, "insert", raw, None)
    marked = get_snapshot(doc)
    assert isinstance(marked, Unsure)
    assert (dict(marked), marked.existed, marked.touched) == ({}, False, frozenset(raw))
    assert not doc.is_stored


def test_cut_off_again_before_learning_keeps_the_first_known_state() -> None:
    doc = UnsureDoc(n=1)
    unsure(doc, "insert", doc.to_bson(), None)
    unsure(doc, "insert", doc.to_bson(), None)
    marked = get_snapshot(doc)
    assert isinstance(marked, Unsure)
    assert (dict(marked), marked.existed) == ({}, False)
    stored = UnsureDoc(n=3)
    set_snapshot(stored, {"_id": stored.id, "n": 3})
    unsure(stored, "delete", None, None)
    unsure(stored, "delete", None, None)
    again = get_snapshot(stored)
    assert isinstance(again, Unsure)
    assert (dict(again), again.existed, again.touched) == ({"_id": stored.id, "n": 3}, True, set())


def test_copies_and_pickles_keep_an_unsure_snapshot() -> None:
    doc = UnsureDoc(n=1)
    set_snapshot(doc, {"_id": doc.id, "n": 1})
    doc.n = 2
    unsure(doc, "save", {"_id": doc.id, "n": 2}, {"$set": {"n": 2}})
    for copied in (
        copy.copy(doc), copy.deepcopy(doc), pickle.loads(pickle.dumps(doc)), doc.model_copy()
    ):
        marked = get_snapshot(copied)
        assert isinstance(marked, Unsure)
        assert dict(marked) == {"_id": doc.id, "n": 1}
        assert (marked.call, marked.existed, marked.touched) == ("save", True, {"n"})
        assert copied.is_stored
