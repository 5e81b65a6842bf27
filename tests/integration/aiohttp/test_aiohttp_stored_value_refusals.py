"""An update that a stored value refuses: the error names the update's field, never what the
document holds.

MongoDB's messages for these refusals quote the stored document: ``Cannot create field 'x' in
element {note: "SSN ..."}`` (the value in the way), ``{_id: "..."} has the field 'n' of
non-numeric type string``, ``Cannot apply array updates to non-array element lines: "..."``.
odm copied the message into its ``QueryError`` (``the server refused it: ...`` / ``(the server
said: ...)``), and ``odm_errors_middleware`` answered that text to the client, ``field`` null:
a POST of ``{"meta__note__x": 1}`` read back another field's stored secret. Now the message
says which field of the update could not be written, where, the BSON type held and what was
needed; the server's error stays the ``__cause__``.

Every planted value here holds :data:`SECRET`, and so does every document's ``_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st
from pymongo.errors import OperationFailure

import odm
from odm import Document, Embedded, F, Q, QueryError
from odm.contrib.aiohttp import json_body, odm_errors_middleware
from odm.session import current_session
from tests.properties import server_property

SECRET = "SSN 078-05-1120, hidden internal note"
COLLECTION = "refusal_vaults"


class RvLine(Embedded):
    sku: str = ""
    qty: int = 0


class RvVault(Document):
    id: str
    owner: str = "ann"
    meta: dict[str, Any] = {}
    data: Any = None
    tags: list[str] = []
    lines: list[RvLine] = []

    class Meta:
        collection = COLLECTION


class Kind(NamedTuple):
    """A refused update: what the document holds, the update, the field named, the words."""

    stored: Callable[[str], dict[str, Any]]
    update: Callable[[], dict[str, Any]]
    field: str
    says: str


KINDS: dict[str, Kind] = {
    "path through a string": Kind(
        lambda s: {"meta": {"note": s}}, lambda: {"meta__note__x": 1},
        "meta__note__x", "holds string at 'meta__note', not a document",
    ),
    "path through a list's element": Kind(
        lambda s: {"meta": {"notes": [s]}}, lambda: {"meta__notes__0__x": 1},
        "meta__notes__0__x", "holds string at 'meta__notes__0', not a document",
    ),
    "path through null": Kind(
        lambda s: {"meta": {"note": None}, "data": s}, lambda: {"meta__note__x": 1},
        "meta__note__x", "holds null at 'meta__note', not a document",
    ),
    "$inc on a string": Kind(
        lambda s: {"data": s}, lambda: {"data": F("data") + 1},
        "data", "holds string there, not a number",
    ),
    "$mul on a list": Kind(
        lambda s: {"data": [s]}, lambda: {"data": F("data") * 2},
        "data", "holds array there, not a number",
    ),
    "$push on a string": Kind(
        lambda s: {"tags": s}, lambda: {"tags": F("tags").push("t")},
        "tags", "holds string there, not a list",
    ),
    "$addToSet on a string": Kind(
        lambda s: {"tags": s}, lambda: {"tags": F("tags").add_to_set("t")},
        "tags", "holds string there, not a list",
    ),
    "$pull on a string": Kind(
        lambda s: {"tags": s}, lambda: {"tags": F("tags").pull("t")},
        "tags", "does not hold a list there",
    ),
    "each() on a string": Kind(
        lambda s: {"lines": s}, lambda: {"lines": F("lines").each(qty=5)},
        "lines__qty", "holds string at 'lines', not a list",
    ),
    "each(Q) (array filters) on a string": Kind(
        lambda s: {"lines": s}, lambda: {"lines": F("lines").each(Q(sku="a"), qty=5)},
        "lines__qty", "holds string at 'lines', not a list",
    ),
    "$inc in elements holding a string": Kind(
        lambda s: {"lines": [{"sku": "a", "qty": s}]},
        lambda: {"lines": F("lines").each(qty=F("qty") + 1)},
        "lines__qty", "holds string there, not a number",
    ),
}


def _id(secret: str = SECRET) -> str:
    return f"vault of {secret}"


async def _plant(kind: Kind, secret: str = SECRET) -> str:
    """Store the one document ``kind`` refuses (written by another program: the model does
    not load it); return its id."""
    raw = odm.get_database()[COLLECTION]
    await raw.delete_many({})
    await raw.insert_one({"_id": _id(secret), "owner": "ann", **kind.stored(secret)})
    return _id(secret)


def _assert_quotes_nothing_stored(text: str, secret: str = SECRET) -> None:
    assert secret not in text, text
    assert _id(secret) not in text and "{" not in text, text  # no document, no _id


async def _refused(kind: Kind, where: str, secret: str = SECRET) -> QueryError:
    """Send ``kind``'s update by ``where`` and return the QueryError it raised."""
    doc_id = await _plant(kind, secret)
    with pytest.raises(QueryError) as refused:
        if where == "update_one":  # one id: no check first, the server refuses it
            await RvVault.objects.filter(id=doc_id).update(**kind.update())
        else:  # inside a transaction an update_many asks nothing first either
            async with odm.transaction():
                await RvVault.objects.filter(owner="ann").update(**kind.update())
    assert isinstance(refused.value.__cause__, OperationFailure), "the server refused it"
    return refused.value


@pytest.mark.odm_drivers("pymongo")  # the words are odm's, not the driver's
@pytest.mark.parametrize("where", ["update_one", "transaction"])
@pytest.mark.parametrize("name", sorted(KINDS))
async def test_a_refused_update_names_the_field_and_quotes_nothing_stored(
    odm_database: Any, name: str, where: str
) -> None:
    kind = KINDS[name]
    error = await _refused(kind, where)
    message = str(error)
    _assert_quotes_nothing_stored(message)
    assert error.field == kind.field
    assert f"cannot write {kind.field!r}: a matching document {kind.says}" in message, message
    outcome = "the server aborted the transaction" if where == "transaction" else (
        "nothing was written"
    )
    assert outcome in message, message


@pytest.mark.odm_drivers("pymongo")
@pytest.mark.parametrize("in_transaction", [False, True], ids=["alone", "transaction"])
@pytest.mark.parametrize("change", ["set inside a dict", "push"])
async def test_a_refused_save_names_the_field_and_quotes_nothing_stored(
    odm_database: Any, change: str, in_transaction: bool
) -> None:
    """``save()`` sends ``$set`` of ``meta.note.x`` and ``$push`` of ``tags``: another program
    stored a string in their place since the document was loaded."""
    raw = odm_database[COLLECTION]
    await raw.insert_one({"_id": _id(), "meta": {"note": {"a": 1}}, "tags": ["a"]})
    doc = await RvVault.objects.get(id=_id())
    await raw.update_one({"_id": _id()}, {"$set": {"meta.note": SECRET, "tags": SECRET}})
    if change == "push":
        doc.tags.append("b")
    else:
        doc.meta["note"]["x"] = 1
    with pytest.raises(QueryError) as refused:
        if in_transaction:
            async with odm.transaction():
                await doc.save()
        else:
            await doc.save()
    _assert_quotes_nothing_stored(str(refused.value))
    field = "tags" if change == "push" else "meta__note__x"
    assert refused.value.field == field
    assert f"cannot write {field!r}" in str(refused.value)


@pytest.mark.odm_drivers("pymongo")
async def test_a_refused_flush_and_the_blocks_end_quote_nothing_stored(
    odm_database: Any,
) -> None:
    """A tracked document's change, written by the flush at the commit (a ``bulk_write``),
    refused: a QueryError naming the field (it was the driver's ``BulkWriteError``, quoting the
    document); and the ``TransactionError`` of a block that caught a refusal names it the
    same way (it quoted the server's message)."""
    raw = odm_database[COLLECTION]
    await raw.insert_one({"_id": _id(), "meta": {"note": {"a": 1}}})
    with pytest.raises(QueryError) as refused:
        async with odm.transaction():
            doc = await RvVault.objects.get(id=_id())
            await raw.update_one(
                {"_id": _id()}, {"$set": {"meta.note": SECRET}}, session=current_session()
            )
            doc.meta["note"]["x"] = 1  # no save(): the commit flushes it
    _assert_quotes_nothing_stored(str(refused.value))
    assert refused.value.field == "meta__note__x"

    await raw.update_one({"_id": _id()}, {"$set": {"meta.note": SECRET}})
    with pytest.raises(odm.TransactionError) as ended:
        async with odm.transaction():
            with pytest.raises(QueryError):
                await RvVault.objects.filter(id=_id()).update(meta__note__x=1)
            await RvVault.objects.count()  # the block goes on: rollback-only
    _assert_quotes_nothing_stored(str(ended.value))
    assert "cannot write 'meta__note__x'" in str(ended.value)


#: Pieces of a planted value that the server's message could be misread by (a quoted type,
#: a quoted field, the end of an element), around a marker that must never come out.
_MARK = "Qv7Zk"
_PIECES = [
    " type ", "string", "field 'tags' ", "' in element {", "} ", '"', "'", ": ", "\n",
    "has the field 'data' of non-numeric type ", "must be an array but is of type ",
    "non-array element lines: ", "\u00e9", "\U0001f4a5", "</script>",
]


@pytest.mark.odm_drivers("pymongo")
@server_property(max_examples=30, database=None)
@given(
    pieces=st.lists(st.sampled_from(_PIECES), max_size=4),
    noise=st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    name=st.sampled_from(sorted(KINDS)),
    where=st.sampled_from(["update_one", "transaction"]),
)
@example(pieces=[" type "], noise="", name="$push on a string", where="update_one")
@example(pieces=["field 'tags' "], noise="}", name="path through a string", where="transaction")
async def test_no_planted_value_comes_out_of_a_refusal(
    odm_database: Any, pieces: list[str], noise: str, name: str, where: str
) -> None:
    """Whatever the stored values and the ``_id`` hold, around the marker: neither the value
    nor the marker is in the message (a word after ``type`` in the ``_id`` came out as the
    "type held", for one)."""
    secret = "".join(pieces[:2]) + _MARK + noise + "".join(pieces[2:])
    kind = KINDS[name]
    error = await _refused(kind, where, secret)
    message = str(error)
    assert _MARK not in message and secret not in message, message
    assert error.field == kind.field
    assert kind.says in message


# -- what the client reads --------------------------------------------------------------------


def _routes(by_id: bool) -> web.RouteTableDef:
    """The handlers; ``by_id``: they update the one document by its id (outside a
    transaction, an ``update_many`` is checked first, and that check's answer names the
    document by its ``_id``), else the documents of an owner."""
    routes = web.RouteTableDef()

    def chosen(owner: str) -> odm.QuerySet[RvVault]:
        return RvVault.objects.filter(id=_id()) if by_id else RvVault.objects.filter(owner=owner)

    @routes.post("/profiles/{user}")
    async def patch(request: web.Request) -> web.Response:
        body = await json_body(request)
        count = await chosen(request.match_info["user"]).update(**body)
        return web.json_response({"updated": count})

    @routes.post("/kinds/{kind}")
    async def refused(request: web.Request) -> web.Response:
        kind = KINDS[request.match_info["kind"]]
        count = await chosen("ann").update(**kind.update())
        return web.json_response({"updated": count})

    @routes.post("/save")
    async def save(request: web.Request) -> web.Response:
        doc = await RvVault.objects.get(id=_id())
        await odm.get_database()[COLLECTION].update_one(
            {"_id": _id()}, {"$set": {"meta.note": SECRET}}, session=current_session()
        )
        doc.meta["note"]["x"] = 1
        await doc.save()
        return web.json_response({})

    return routes


async def _answer(response: Any, field: str) -> None:
    text: str = await response.text()
    assert response.status == 400, text
    assert SECRET not in text and _id() not in text, text
    body = await response.json()
    assert body["error"] == "invalid"
    assert [d["field"] for d in body["detail"]] == [field], text
    message = body["detail"][0]["message"]
    _assert_quotes_nothing_stored(message)
    assert f"cannot write {field!r}" in message, message


@pytest.mark.parametrize("in_transaction", [True, False], ids=["unit_of_work", "alone"])
async def test_the_client_reads_the_field_not_the_stored_values(
    make_client: Any, in_transaction: bool
) -> None:
    """The report's request: a POST of ``{"meta__note__x": 1}`` where ``meta.note`` is a
    string answered ``"field": null`` and the server's message quoting the stored note; so did
    one by id outside a transaction. Every kind of refusal, and a ``save()``."""
    client = await make_client(
        _routes(by_id=not in_transaction),
        collections=(COLLECTION,),
        **({} if in_transaction else {"middlewares": [odm_errors_middleware]}),
    )
    kind = KINDS["path through a string"]
    await _plant(kind)
    for payload in ({"meta__note__x": 1}, {"meta__note__0": 1}):
        response = await client.post("/profiles/ann", json=payload)
        await _answer(response, next(iter(payload)))
    for name, kind in KINDS.items():
        await _plant(kind)
        response = await client.post(f"/kinds/{name}")
        await _answer(response, kind.field)
    raw = odm.get_database()[COLLECTION]
    await raw.replace_one({"_id": _id()}, {"meta": {"note": {"a": 1}}})
    await _answer(await client.post("/save"), "meta__note__x")
