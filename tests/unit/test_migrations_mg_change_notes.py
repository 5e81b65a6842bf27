"""A change under way (``_odm_migrations_state`` ``records-change``) as stored may have been
edited by hand: reading it either gives back what odm wrote, or refuses it with a
:class:`MigrationError` naming the document; never another error, never a change that is not
one a mark, a rename or an unmark of its target makes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from odm.exceptions import MigrationError
from odm.migrations.recorder import log_entry, new_record
from odm.migrations.records_change import CHANGE_FIELDS, RecordsChange

MID = "0001_a"

#: Stored values of every kind a hand (or a hostile process) may write.
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.just(MID) | st.just("0000_old") | st.builds(ObjectId)
    | st.just(datetime(2025, 1, 1, tzinfo=UTC)),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["_id", "migration", "action", "checksum", "depends",
                                      "renamed_from", "x"]), inner, max_size=4),
    max_leaves=8,
)


def written_by_odm() -> list[RecordsChange]:
    """The changes odm writes: a mark (new, or of a record kept), a rename, an unmark."""
    record = new_record(MID, "c", 0, marked=True, depends=())
    return [
        RecordsChange("mark", MID, log_entry(MID, "mark", checksum="c"),
                      forget_positions=(MID,), put=record),
        RecordsChange("mark", MID, log_entry(MID, "mark", checksum="c"),
                      forget_positions=(MID,), update={"checksum": "c", "depends": []}),
        RecordsChange("rename", MID,
                      log_entry(MID, "rename", checksum="c", renamed_from="0000_old"),
                      forget_positions=(MID, "0000_old"), put=record, remove=("0000_old",)),
        RecordsChange("unmark", MID, log_entry(MID, "unmark", checksum="c"),
                      forget_positions=(MID,), remove=(MID,)),
    ]


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(0, 3),
    edits=st.dictionaries(st.sampled_from([*CHANGE_FIELDS, "extra"]), values, max_size=3),
)
def test_MgNote_an_edited_note_is_read_as_written_or_refused_by_name(
    which: int, edits: dict[str, Any]
) -> None:
    change = written_by_odm()[which]
    doc = {**change.document(), **edits}
    try:
        read = RecordsChange.from_document(doc)
    except MigrationError as exc:
        assert "_odm_migrations_state" in str(exc)
        return
    fields = [name for name in CHANGE_FIELDS if name != "_id"]  # the note is found by _id
    assert {k: read.document()[k] for k in fields} == {k: doc[k] for k in fields}
    assert RecordsChange.from_document(read.document()) == read
    assert read.migration == MID and read.action in ("mark", "rename", "unmark")


def test_MgNote_what_odm_writes_is_read_back_as_it_was() -> None:
    for change in written_by_odm():
        assert RecordsChange.from_document(change.document()) == change
