"""Every error answer of the aiohttp middleware is short, valid JSON and free of the server's
whole reply, whatever the request sent.

``clipped`` cut quoted input at 1,000 characters, but a character JSON escapes takes six
bytes (a NUL, ``<`` once escaped, any non-ASCII one), a validation error listed every error
(a list of a thousand bad items: a thousand entries), and an application's own
``DoesNotExist`` (a miss of ``get(name=<300 KB>)``), a ``DuplicateKey`` raised by hand or a
``QueryError`` quoting a driver error (whose text appends the server's reply: cluster time,
signature) went out whole. Each class ``response_for`` maps is attacked here with huge and
hostile strings.
"""

from __future__ import annotations

import json
from typing import Any

from bson.errors import InvalidId
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, field_validator
from pymongo.errors import DuplicateKeyError, OperationFailure

import odm
from odm.contrib.aiohttp.errors import ECHO_LIMIT, response_for

#: The most bytes an error answer may take: "a few KB".
ANSWER_BYTES = 4 * 1024
#: What a server's reply holds that no answer may carry (a signature's hash).
SECRET = "c2VydmVyLXNpZ25hdHVyZQ"

#: A megabyte of everything hostile at once.
MEGABYTE = "\x00\ud800</script>😀" * 80_000
#: Pieces of hostile input: what JSON escapes, what HTML reads, what UTF-8 cannot hold.
ATOMS = ["\x00", "\ud800", "\udfff", "</script>", "&", '"', "\\", "\n", "é", "😀", "a", "$."]


@st.composite
def hostile(draw: Any) -> str:
    """A string of up to ~250 KB made of runs of hostile pieces (built, not drawn char by
    char); the megabyte is an explicit example."""
    runs = draw(st.lists(
        st.tuples(st.sampled_from(ATOMS), st.sampled_from([1, 7, 400, 5_000])),
        min_size=1, max_size=6,
    ))
    return "".join(atom * count for atom, count in runs) + draw(st.text(max_size=20))


class Echo(BaseModel):
    """Validators that quote their input, as many applications' do."""

    name: str = ""
    counts: dict[str, int] = {}
    numbers: list[int] = []

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        raise ValueError(f"{value!r} is not a name")


class BkItem(odm.Document):
    name: str = ""

    class Meta:
        collection = "bk23_items"


def _server_failure(text: str) -> OperationFailure:
    """A server's error as the driver raises it: its text appends the whole reply."""
    return OperationFailure(text, 2, {
        "ok": 0.0, "errmsg": text, "code": 2,
        "$clusterTime": {"clusterTime": 1, "signature": {"hash": SECRET, "keyId": 7}},
        "operationTime": 1,
    })


def _validation_error(text: str, items: int) -> ValidationError:
    try:
        Echo.model_validate({
            "name": text, "counts": {text: "x"}, "numbers": ["x"] * items,
        })
    except ValidationError as error:
        return error
    raise AssertionError("validated")


def _errors(text: str, items: int) -> list[Exception]:
    """One error of every kind the middleware maps, each quoting ``text``."""
    failure = _server_failure(text)
    return [
        odm.DoesNotExist(f"no item named {text}"),
        BkItem.DoesNotExist(f"BkItem matching {{'name': '{text}'}} does not exist"),
        odm.QueryError(f"cannot filter on '{text}': {failure}", field=text),
        odm.UnsavedReference(text, field=text),
        InvalidId(f"'{text}' is not a valid ObjectId"),
        json.JSONDecodeError(text, text, 0),
        _validation_error(text, items),
        odm.DuplicateKey(text, fields=(text,) * 40),
        DuplicateKeyError(text, 11000, {"keyPattern": {text: 1, "b": 1}, "keyValue": {"b": text}}),
        odm.StaleDocument(text),
        odm.OperationTimeout(text),
    ]


def _check(error: Exception, text: str) -> None:
    response = response_for(error)
    assert response is not None, type(error)
    body = response.text
    assert body is not None
    size = len(body.encode("utf-8"))
    assert size <= ANSWER_BYTES, (type(error), size)
    answer = json.loads(body)
    assert set(answer) == {"error", "detail"}
    # No lone surrogate (a strict parser refuses one), no markup, no server reply.
    assert json.dumps(answer, ensure_ascii=False).encode("utf-8")
    assert "<" not in body
    assert SECRET not in body and "clusterTime" not in body


@settings(max_examples=10, deadline=None)
@given(text=hostile(), items=st.sampled_from([0, 3, 2_000]))
@example(text=MEGABYTE, items=2_000)
def test_every_answer_is_short_json_without_the_servers_reply(text: str, items: int) -> None:
    for error in _errors(text, items):
        _check(error, text)


def test_a_short_message_is_kept_whole() -> None:
    response = response_for(odm.QueryError("unknown field 'nope'", field="nope"))
    assert response is not None and response.text is not None
    assert json.loads(response.text)["detail"] == [
        {"field": "nope", "message": "unknown field 'nope'"}
    ]


def test_a_validation_error_lists_ten_and_counts_the_rest() -> None:
    response = response_for(_validation_error("v", 2_000))
    assert response is not None and response.text is not None
    detail = json.loads(response.text)["detail"]
    assert len(detail) == 11
    assert detail[-1] == {"field": None, "message": "and 1,992 more errors", "type": "too_many"}
    assert detail[0]["field"] == "name" and detail[0]["message"].endswith("is not a name")


def test_a_hand_made_not_found_is_cut_keeping_its_end() -> None:
    response = response_for(odm.DoesNotExist("\x00" * 300_000 + " is not there"))
    assert response is not None and response.text is not None
    detail = json.loads(response.text)["detail"]
    assert detail.endswith(" is not there") and "characters cut" in detail
    assert len(response.text) <= ECHO_LIMIT + 100
