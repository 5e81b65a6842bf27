"""A valid form whose write is refused comes back as a form: the values typed kept, the error at
the input it is about, nothing written. A key BSON cannot store in a JSON input (pointed at by
no executor error on an edit), a unique index another document holds (single, compound, on an
embedded path; also when that document is written while the form is being saved), a write
conflict with another request."""

from __future__ import annotations

import asyncio
import contextvars
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest

import odm
from odm import Document, Embedded, Index
from odm.contrib.admin import ModelAdmin
from odm.drivers import DriverName
from tests.integration.admin.admin_refusals_app import APP_NAME, serving_app
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import ADMIN_HEADER, AdminSetting
from tests.integration.admin.test_admin_bad_input import field_errors, general_errors, textarea


class S17Place(Embedded):
    """An embedded model with a unique path."""

    city: str = ""


class S17Member(Document):
    """A document with a unique field, a unique pair and a unique embedded path."""

    email: str
    tenant: str
    handle: str
    place: S17Place | None = None

    class Meta:
        collection = "s17_members"
        indexes = [
            Index("email", unique=True),
            Index("tenant", "handle", unique=True),
            Index("place.city", unique=True, sparse=True),
        ]


@pytest.fixture
async def members(aiohttp_client: Any, odm_uri: str, odm_driver: DriverName) -> Client:
    """A client of the members' admin, allowed in."""
    app = serving_app(odm_uri, odm_driver, [S17Member], [ModelAdmin(S17Member, name="member")])
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    return client


def typed(text: str, name: str) -> str:
    """The value of the form's text input ``name``."""
    found = re.search(
        rf'<input type="text" id="f-{re.escape(name)}" name="[^"]*" value="([^"]*)"', text
    )
    assert found is not None, f"no input {name!r}"
    return html.unescape(found.group(1))


async def stored() -> list[tuple[str, str, str, str | None]]:
    """Every member as stored, in insertion order."""
    return [
        (m.email, m.tenant, m.handle, m.place.city if m.place else None)
        for m in await S17Member.objects.order_by("id")
    ]


async def seeded() -> S17Member:
    """Ann (holding a@x, t/ann and Oslo) and Bob, who is edited; return Bob."""
    await S17Member(email="a@x", tenant="t", handle="ann", place=S17Place(city="Oslo")).insert()
    return await S17Member(email="b@x", tenant="t", handle="bob").insert()


BEFORE = [("a@x", "t", "ann", "Oslo"), ("b@x", "t", "bob", None)]

CLASHES = [
    ({"email": "a@x", "tenant": "u", "handle": "z"}, {"email": "email must be unique"}),
    (
        {"email": "c@x", "tenant": "t", "handle": "ann"},
        {
            "tenant": "tenant, handle must be unique together",
            "handle": "tenant, handle must be unique together",
        },
    ),
    (
        {"email": "c@x", "tenant": "u", "handle": "z", "place.city": "Oslo"},
        {"place.city": "place.city must be unique"},
    ),
]


def assert_refused_form(text: str, form: dict[str, str], expected: dict[str, str]) -> None:
    """The form shows each expected message at its input, and what was typed."""
    for name, message in expected.items():
        shown = field_errors(text, name)
        assert len(shown) == 1 and shown[0].startswith(message), (name, shown)
        assert "another S17Member already has" in shown[0]
    assert general_errors(text) == []
    for name, value in form.items():
        assert typed(text, name) == value, name


@pytest.mark.parametrize(("form", "expected"), CLASHES, ids=["single", "compound", "embedded"])
@pytest.mark.parametrize("page", ["add", "edit"])
async def test_a_duplicate_key_is_shown_at_the_index_fields_with_the_values_typed(
    members: Client, page: str, form: dict[str, str], expected: dict[str, str]
) -> None:
    bob = await seeded()
    token = await csrf(members)
    path = "/admin/member/add/" if page == "add" else f"/admin/member/{bob.id}/edit/"
    response = await members.post(path, data={"csrf_token": token, **form})
    assert response.status == 409
    assert response.content_type == "text/html"
    assert_refused_form(await response.text(), form, expected)
    assert await stored() == BEFORE


async def other_client_inserts() -> None:
    """Insert a member holding a@x, as another request does."""
    raw = odm.get_database()["s17_members"]
    await raw.insert_one({"email": "a@x", "tenant": "other", "handle": "other"})


@pytest.fixture
def sneaked_in() -> Iterator[None]:
    """Just before the next save of a member whose email is a@x, another request inserts one
    holding a@x, committed at once: it runs in a context of its own, out of the request's
    transaction (whose session PyMongo binds to raw calls too)."""

    async def insert_a_duplicate(sender: type[Any], document: Any, **_: Any) -> None:
        if document.email == "a@x":
            await asyncio.create_task(other_client_inserts(), context=contextvars.Context())

    odm.signals.pre_save.connect(insert_a_duplicate, sender=S17Member)
    yield
    odm.signals.pre_save.disconnect(insert_a_duplicate, sender=S17Member)


@pytest.mark.parametrize("page", ["add", "edit"])
async def test_a_duplicate_written_while_the_form_is_saved_is_shown_the_same_way(
    members: Client, sneaked_in: None, page: str
) -> None:
    bob = await S17Member(email="b@x", tenant="t", handle="bob").insert()
    token = await csrf(members)
    path = "/admin/member/add/" if page == "add" else f"/admin/member/{bob.id}/edit/"
    form = {"email": "a@x", "tenant": "u", "handle": "z"}
    response = await members.post(path, data={"csrf_token": token, **form})
    assert response.status == 409
    assert_refused_form(await response.text(), form, {"email": "email must be unique"})
    assert await stored() == [("b@x", "t", "bob", None), ("a@x", "other", "other", None)]


async def test_a_write_conflict_without_a_duplicate_asks_to_send_the_form_again(
    members: Client,
) -> None:
    bob = await seeded()
    token = await csrf(members)
    admin_db = odm.get_client().admin
    await admin_db.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {
                "failCommands": ["update"],
                "appName": APP_NAME,
                "errorCode": 112,  # WriteConflict
                "errorLabels": ["TransientTransactionError"],
            },
        }
    )
    try:
        form = {"email": "new@x", "tenant": "t", "handle": "bobby"}
        response = await members.post(
            f"/admin/member/{bob.id}/edit/", data={"csrf_token": token, **form}
        )
    finally:
        await admin_db.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert response.status == 409
    text = await response.text()
    (message,) = general_errors(text)
    assert (
        message.startswith("Someone else wrote the same data") and "Send the form again" in message
    )
    assert typed(text, "handle") == "bobby"
    assert await stored() == BEFORE


@pytest.mark.parametrize("page", ["add", "edit"])
async def test_a_key_bson_cannot_store_is_shown_at_its_json_input(admin: Client, page: str) -> None:
    setting = await AdminSetting(name="s", data={"a": 1}).insert()
    token = await csrf(admin)
    path = "/admin/setting/add/" if page == "add" else f"/admin/setting/{setting.id}/edit/"
    form = {"csrf_token": token, "name": "t", "data": '{"\\ud800": 1}'}
    response = await admin.post(path, data=form)
    assert response.status == 400
    text = await response.text()
    shown = field_errors(text, "data")
    assert len(shown) == 1, shown
    assert "cannot be stored in BSON" in shown[0] and "\\ud800" in shown[0], shown
    assert general_errors(text) == []
    assert '"\\ud800"' in textarea(text, "data")
    assert [(s.name, s.data) for s in await AdminSetting.objects.all()] == [("s", {"a": 1})]
