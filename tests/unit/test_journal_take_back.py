"""What an abort does to the values a document read inside the block (``odm.journal``).

A document read after the block wrote may hold the block's own writes; after the abort its
snapshot is what the database holds (``stored``), and ``take_back_reads`` sets back every value
that is still what was ``read``, keeping what the block's code changed since. Checked here on
random stored and read states and random edits, without a server: the next ``save()``
(``prepare_update``) then sends exactly the edits, and with no edit the document is the
stored one.
"""

from __future__ import annotations

from typing import Any

import bson
from hypothesis import given
from hypothesis import strategies as st

from odm.document import Document
from odm.journal import take_back_reads
from odm.models.loading import load_documents
from odm.models.tracking import set_snapshot
from odm.models.writes import prepare_update


class TbDoc(Document):
    n: int = 0
    s: str = ""
    tags: list[str] = []
    meta: dict[str, int] = {}

    class Meta:
        collection = "tb_docs"


ID = bson.ObjectId("0" * 24)
words = st.sampled_from(["a", "b", "c", "d"])
state = st.fixed_dictionaries({
    "n": st.integers(-3, 3),
    "s": words,
    "tags": st.lists(words, max_size=3),
    "meta": st.dictionaries(words, st.integers(0, 3), max_size=3),
})
edit = st.one_of(
    st.tuples(st.just("n"), st.integers(-3, 3)),
    st.tuples(st.just("s"), words),
    st.tuples(st.just("append"), words),
    st.tuples(st.just("pop"), st.none()),
    st.tuples(st.just("meta"), st.tuples(words, st.integers(0, 3))),
    st.tuples(st.just("unmeta"), words),
)


def stored_form(values: dict[str, Any]) -> dict[str, Any]:
    return {"_id": ID, **values}


def loaded(raw: dict[str, Any]) -> TbDoc:
    (document,) = load_documents(TbDoc, [dict(raw)])
    return document


def apply(document: TbDoc, how: tuple[str, Any]) -> None:
    kind, value = how
    if kind == "n":
        document.n = value
    elif kind == "s":
        document.s = value
    elif kind == "append":
        document.tags.append(value)
    elif kind == "pop":
        if document.tags:
            document.tags.pop()
    elif kind == "meta":
        document.meta[value[0]] = value[1]
    else:
        document.meta.pop(value, None)


def after_abort(stored: dict[str, Any], read: dict[str, Any], edits: list[Any]) -> TbDoc:
    """A document loaded from ``read`` in the block, edited, then aborted: its snapshot is
    put back to ``stored`` and what it read is taken back."""
    document = loaded(read)
    for how in edits:
        apply(document, how)
    set_snapshot(document, stored)
    take_back_reads(document, read, stored)
    return document


@given(stored=state, read=state)
def test_a_document_the_block_did_not_change_is_the_stored_one(
    stored: dict[str, Any], read: dict[str, Any]
) -> None:
    document = after_abort(stored_form(stored), stored_form(read), [])
    assert document.to_bson() == stored_form(stored)
    assert prepare_update(document) is None  # the next save() sends nothing


@given(read=state, edits=st.lists(edit, max_size=5))
def test_when_the_block_wrote_nothing_the_edits_stay_as_they_are(
    read: dict[str, Any], edits: list[Any]
) -> None:
    raw = stored_form(read)
    expected = loaded(raw)
    for how in edits:
        apply(expected, how)
    document = after_abort(raw, stored_form(read), edits)
    assert document.to_bson() == expected.to_bson()


@given(stored=state, read=state, edits=st.lists(edit, min_size=1, max_size=5))
def test_the_next_save_sends_the_edits_and_nothing_the_block_read(
    stored: dict[str, Any], read: dict[str, Any], edits: list[Any]
) -> None:
    edited = loaded(stored_form(read))
    for how in edits:
        apply(edited, how)
    document = after_abort(stored_form(stored), stored_form(read), edits)
    result = document.to_bson()
    # Each field the block's code left as it read it is the stored one.
    for name in ("n", "s"):
        mine, was = getattr(edited, name), read[name]
        assert result[name] == (stored[name] if mine == was else mine)
    grown = len(edited.tags) > len(read["tags"])
    if edited.tags == read["tags"]:
        assert result["tags"] == stored["tags"]
    elif grown and edited.tags[: len(read["tags"])] == read["tags"]:
        appended = edited.tags[len(read["tags"]) :]
        assert result["tags"] == stored["tags"] + appended  # an append stays an append
    else:
        assert result["tags"] == edited.tags  # changed otherwise: kept whole
    for key in {*stored["meta"], *read["meta"], *edited.meta}:
        mine, was = edited.meta.get(key), read["meta"].get(key)
        assert result["meta"].get(key) == (stored["meta"].get(key) if mine == was else mine)
    # And the update the next save() would send touches only what the block's code changed.
    plan = prepare_update(document)
    if plan is not None:
        _, update, _ = plan
        touched = {path.split(".")[0] for op in update.values() for path in op}
        changed = {name for name in ("n", "s") if getattr(edited, name) != read[name]}
        if edited.tags != read["tags"]:
            changed.add("tags")
        if edited.meta != read["meta"]:
            changed.add("meta")
        assert touched <= changed, (update, changed)
