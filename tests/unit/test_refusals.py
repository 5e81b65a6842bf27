"""odm.refusals words the server's refusal of an update without quoting the document.

The messages below are the server's own (MongoDB 8, captured with a stored value and an
``_id`` holding :data:`SECRET`), for the operators ``update()`` does not send but a raw update
through the executor may (``$rename``, ``$bit``, ``$pop``, ``$``): the integration test
``tests/integration/aiohttp/test_aiohttp_stored_value_refusals.py`` sends the others.
"""

from __future__ import annotations

from typing import Any

import pytest

from odm import Document
from odm.refusals import stored_value_refusal

SECRET = 'SEC type evil field \'x\' in element {"'


class RfDoc(Document):
    meta: dict[str, Any] = {}

    class Meta:
        collection = "rf_docs"


def _q(text: str) -> str:
    """``text`` as the server prints a string."""
    return f'"{text}"'


CASES = [
    # (code, message, update, field, words)
    (28, f"cannot use the part (note of meta.note.x) to traverse the element "
         f"({{note: {_q(SECRET)}}})", {"$rename": {"meta.note.x": "y"}}, "meta__note__x",
     "holds string at 'meta__note', not a document"),
    (28, f"Cannot create field 'x' in element {{note: {_q(SECRET)}}}",
     {"$rename": {"a": "meta.note.x"}}, "meta__note__x",
     "holds string at 'meta__note', not a document"),
    (28, f"Cannot create field 'x' in element {{0: {_q(SECRET)}}}",
     {"$set": {"meta.l.$.x": 1}}, "meta__l__x", "holds string at 'meta__l', not a document"),
    (28, "Cannot create field 'x' in element {note: new Date(1577836800000)}",
     {"$set": {"meta.note.x": 1}}, "meta__note__x", "holds date at 'meta__note'"),
    (28, "Cannot create field 'x' in element {note: SEC}",  # JavaScript code: type untold
     {"$set": {"meta.note.x": 1}}, "meta__note__x", "does not hold a document at 'meta__note'"),
    (2, f"Cannot apply $bit to a value of non-integral type._id: {_q(SECRET)} has the field n "
        "of non-integer type string", {"$bit": {"meta.n": {"and": 1}}}, "meta__n",
     "holds string there, not an integer"),
    (14, "Path 'meta.l' contains an element of non-array type 'string'",
     {"$pop": {"meta.l": 1}}, "meta__l", "holds string there, not a list"),
    (14, f"Cannot apply $inc to a value of non-numeric type. {{_id: {_q(SECRET + ' type evil')}}}"
         " has the field 'n' of non-numeric type string", {"$inc": {"meta.n": 1}}, "meta__n",
     "holds string there, not a number"),
    (2, f"The field 'meta.l' must be an array but is of type evil in document {{_id: "
        f"{_q(SECRET)}}}", {"$push": {"meta.l": 1}}, "meta__l", "does not hold a list there"),
]


@pytest.mark.parametrize(("code", "message", "update", "field", "words"), CASES)
def test_the_refusal_names_the_update_field_and_a_type_only(
    code: int, message: str, update: dict[str, Any], field: str, words: str
) -> None:
    error = stored_value_refusal(RfDoc, "update", [update], code, message)
    assert error is not None
    text = str(error)
    assert "SEC" not in text and "evil" not in text and "{" not in text, text
    assert error.field == field
    assert f"cannot write {field!r}: a matching document {words}" in text, text


def test_a_refusal_the_update_does_not_tell_says_so_without_the_message() -> None:
    message = f"Cannot create field 'x' in element {{note: {_q(SECRET)}}}"
    error = stored_value_refusal(RfDoc, "find_one_and_update", None, 28, message)
    assert error is not None and error.field is None
    assert "SEC" not in str(error) and "needs a document" in str(error)
    odd = stored_value_refusal(RfDoc, "update", None, 28, f"new wording {SECRET}")
    assert odd is not None and "SEC" not in str(odd) and "PathNotViable" in str(odd)


def test_other_errors_are_left_to_the_executor() -> None:
    assert stored_value_refusal(RfDoc, "update", None, 11000, "E11000 duplicate key") is None
    assert stored_value_refusal(RfDoc, "find", None, 2, "cannot sort with keys that are "
                                "parallel arrays") is None
