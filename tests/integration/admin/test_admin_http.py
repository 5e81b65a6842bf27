"""The admin through HTTP on the real replica set: pages, lists, forms, and what is refused."""

from __future__ import annotations

import datetime as dt
import decimal
import html
import re

import pytest
from bson import ObjectId

import odm
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.support import AdminAuthor, AdminBook, AdminSetting, Binding, Line


def ids_in(text: str) -> list[str]:
    """The document ids of a list page, in order."""
    return re.findall(r'<tr class="row">\s*<td><a href="/admin/book/([0-9a-f]{24})/"', text)


async def books(count: int, **fields: object) -> list[AdminBook]:
    made = [AdminBook(title=f"book {i:03d}", pages=i + 1, **fields) for i in range(count)]
    await AdminBook.objects.bulk_create(made)
    return made


async def test_index_lists_models_with_counts(admin: Client) -> None:
    await books(3)
    response = await admin.get("/admin/")
    assert response.status == 200
    text = await response.text()
    assert 'href="/admin/book/">AdminBook</a>' in text
    assert re.search(r'AdminBook</a></td>\s*<td class="count">3</td>', text)
    assert 'odm_admin_csrf' in response.headers.get("Set-Cookie", "")


async def test_unauthorized_requests_are_refused(stranger: Client) -> None:
    for path in ("/admin/", "/admin/book/", f"/admin/book/{ObjectId()}/"):
        response = await stranger.get(path)
        assert response.status == 403
        assert "Not authorized" in await response.text()
    response = await stranger.post("/admin/book/add/", data={"title": "x", "pages": "1"})
    assert response.status == 403
    assert await AdminBook.objects.count() == 0


async def test_setup_admin_requires_authorize() -> None:
    from aiohttp import web

    from odm.contrib.admin import setup_admin

    with pytest.raises(TypeError):
        setup_admin(web.Application(), [AdminBook])  # type: ignore[call-arg]


async def test_post_without_or_with_a_wrong_csrf_token_is_refused(admin: Client) -> None:
    await csrf(admin)
    response = await admin.post("/admin/book/add/", data={"title": "x", "pages": "1"})
    assert response.status == 403
    assert "CSRF token" in await response.text()
    response = await admin.post(
        "/admin/book/add/", data={"title": "x", "pages": "1", "csrf_token": "forged"}
    )
    assert response.status == 403
    assert await AdminBook.objects.count() == 0


async def test_list_orders_by_a_column_both_ways(admin: Client) -> None:
    made = await books(5)
    by_pages = [str(b.id) for b in made]
    text = await (await admin.get("/admin/book/?o=pages")).text()
    assert ids_in(text) == by_pages
    text = await (await admin.get("/admin/book/?o=-pages")).text()
    assert ids_in(text) == by_pages[::-1]
    bad = await admin.get("/admin/book/?o=lines")
    assert bad.status == 400
    assert "parameter 'o'" in html.unescape(await bad.text())


async def test_filters_go_through_the_queryset_api(admin: Client) -> None:
    made = await books(6)
    text = await (await admin.get("/admin/book/?pages__gte=4&o=pages")).text()
    assert ids_in(text) == [str(b.id) for b in made[3:]]
    text = await (await admin.get("/admin/book/?title=book 002")).text()
    assert ids_in(text) == [str(made[2].id)]


async def test_filters_refuse_unknown_fields_lookups_and_bad_values(admin: Client) -> None:
    await books(2)
    for query, culprit in [
        ("nope=1", "nope"),
        ("pages__where=1", "pages__where"),
        ("pages__gte=many", "pages__gte"),
        ("title__gt[$ne]=1", "title__gt[$ne]"),
        ("%24where=1", "$where"),
        ("after=!!!", "after"),
    ]:
        response = await admin.get(f"/admin/book/?{query}")
        assert response.status == 400, query
        assert f"parameter {culprit!r}" in html.unescape(await response.text()), query


async def test_an_operator_as_a_value_is_only_a_value(admin: Client) -> None:
    await books(2)
    text = await (await admin.get('/admin/book/?title={"$ne": ""}')).text()
    assert ids_in(text) == []


async def test_search_matches_declared_fields(admin: Client) -> None:
    made = await books(3)
    text = await (await admin.get("/admin/book/?q=OK 001")).text()
    assert ids_in(text) == [str(made[1].id)]
    text = await (await admin.get("/admin/book/?q=.*")).text()
    assert ids_in(text) == []  # a literal, not a pattern


async def test_keyset_pages_forward_and_back(admin: Client) -> None:
    await books(60, price=decimal.Decimal("1.50"))
    seen: list[str] = []
    path = "/admin/book/?o=-pages"
    pages: list[list[str]] = []
    while path:
        text = await (await admin.get(path)).text()
        ids = ids_in(text)
        pages.append(ids)
        seen += ids
        found = re.search(r'id="next" href="([^"]+)"', text)
        path = "/admin/book/" + found.group(1).replace("&amp;", "&") if found else ""
    assert [len(p) for p in pages] == [25, 25, 10]
    everything = [str(b.id) for b in await AdminBook.objects.order_by("-pages")]
    assert seen == everything
    previous = re.search(r'id="previous" href="([^"]+)"', text)
    assert previous is not None
    back = await admin.get("/admin/book/" + previous.group(1).replace("&amp;", "&"))
    assert ids_in(await back.text()) == pages[1]


async def test_keyset_pages_with_nulls_and_ties(admin: Client) -> None:
    when = dt.datetime(2024, 1, 1)
    for i in range(30):
        await AdminBook(title="same", pages=1, published=None if i % 3 else when).insert()
    for order in ("published", "-published", "title", "-title"):
        seen: list[str] = []
        path = f"/admin/book/?o={order}"
        while path:
            text = await (await admin.get(path)).text()
            seen += ids_in(text)
            found = re.search(r'id="next" href="([^"]+)"', text)
            path = "/admin/book/" + found.group(1).replace("&amp;", "&") if found else ""
        assert len(seen) == 30 and len(set(seen)) == 30, order


async def test_create_with_a_validation_error_then_fixed(admin: Client) -> None:
    author = await AdminAuthor(name="Ann").insert()
    token = await csrf(admin, "/admin/book/add/")
    blank = await (await admin.get("/admin/book/add/")).text()
    assert 'name="in_print" checked' in blank  # the field's default
    assert 'name="id"' not in blank  # read-only: not an input
    form = {
        "csrf_token": token,
        "title": "",
        "pages": "0",
        "price": "12.30",
        "binding": "cloth",
        "published": "2024-05-01T10:30:00",
        "in_print": "on",
        "author": str(author.id),
        "address.city": "Oslo",
        "address.zip": "0150",
        "lines.0.sku": "tea",
        "lines.0.qty": "2",
        "tags": "a\nb\n",
    }
    response = await admin.post("/admin/book/add/", data=form)
    assert response.status == 400
    text = await response.text()
    assert 'data-error="title"' in text and 'data-error="pages"' in text
    assert 'value="12.30"' in text  # what was typed is shown again
    assert 'name="published" value="2024-05-01T10:30:00"' in text
    assert await AdminBook.objects.count() == 0
    response = await admin.post(
        "/admin/book/add/", data={**form, "title": "Tea", "pages": "10"}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    book = await AdminBook.objects.get()
    assert response.headers["Location"] == f"/admin/book/{book.id}/?msg=created"
    assert (book.title, book.pages, book.price, book.binding) == (
        "Tea", 10, decimal.Decimal("12.30"), Binding.CLOTH
    )
    assert book.published == dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC)
    assert book.author is not None and book.author.id == author.id
    assert book.address is not None and book.address.city == "Oslo"
    assert book.lines == [Line(sku="tea", qty=2)] and book.tags == ["a", "b"]


async def test_fields_outside_the_model_or_read_only_are_refused(admin: Client) -> None:
    book = await AdminBook(title="T", pages=1).insert()
    token = await csrf(admin, f"/admin/book/{book.id}/edit/")
    base = {"csrf_token": token, "_version": "0", "title": "T2", "pages": "1"}
    for extra, culprit in [
        ({"is_admin": "1"}, "is_admin"),
        ({"notes": "hacked"}, "notes"),
        ({"id": str(ObjectId())}, "id"),
        ({"version": "9"}, "version"),
        ({"address.country": "X"}, "address.country"),
        ({"lines.x.sku": "X"}, "lines.x.sku"),
    ]:
        response = await admin.post(f"/admin/book/{book.id}/edit/", data={**base, **extra})
        assert response.status == 400, extra
        assert repr(culprit) in html.unescape(await response.text()), extra
    stored = await AdminBook.objects.get(id=book.id)
    assert (stored.title, stored.notes, stored.version) == ("T", "", 0)


async def test_edit_an_embedded_list_and_the_lock_refuses_a_stale_edit(admin: Client) -> None:
    book = await AdminBook(
        title="T", pages=1, lines=[Line(sku="a", qty=1), Line(sku="b", qty=2)]
    ).insert()
    token = await csrf(admin, f"/admin/book/{book.id}/edit/")
    page = await (await admin.get(f"/admin/book/{book.id}/edit/")).text()
    assert 'name="lines.1.sku" value="b"' in page and 'name="lines.2.sku" value=""' in page
    form = {
        "csrf_token": token, "_version": "0", "title": "T", "pages": "1",
        "lines.0.sku": "a", "lines.0.qty": "5",
        "lines.1.sku": "b", "lines.1.qty": "2", "lines.1._delete": "on",
        "lines.2.sku": "c", "lines.2.qty": "3",
    }
    response = await admin.post(f"/admin/book/{book.id}/edit/", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    stored = await AdminBook.objects.get(id=book.id)
    assert stored.lines == [Line(sku="a", qty=5), Line(sku="c", qty=3)]
    assert stored.version == 1
    stale = await admin.post(f"/admin/book/{book.id}/edit/", data={**form, "title": "late"})
    assert stale.status == 409
    assert "Someone else changed this document" in await stale.text()
    assert (await AdminBook.objects.get(id=book.id)).title == "T"


async def test_a_bad_reference_is_a_field_error(admin: Client) -> None:
    token = await csrf(admin, "/admin/book/add/")
    for value in (str(ObjectId()), "not-an-id"):
        response = await admin.post(
            "/admin/book/add/",
            data={"csrf_token": token, "title": "T", "pages": "1", "author": value},
        )
        assert response.status == 400
        assert 'data-error="author"' in await response.text()
    assert await AdminBook.objects.count() == 0


async def test_delete_after_confirmation(admin: Client) -> None:
    book = await AdminBook(title="T", pages=1).insert()
    token = await csrf(admin, f"/admin/book/{book.id}/delete/")
    response = await admin.post(
        f"/admin/book/{book.id}/delete/", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    assert await AdminBook.objects.count() == 0
    assert (await admin.get(f"/admin/book/{book.id}/")).status == 404


async def test_migrations_page_lists_pending_migrations(admin: Client) -> None:
    response = await admin.get("/admin/_migrations/")
    assert response.status == 200
    text = await response.text()
    assert "0001" in text and "pending" in text


async def test_a_read_only_embedded_list_is_shown_not_offered(
    aiohttp_client: object, odm_uri: str
) -> None:
    from typing import Any

    from aiohttp import web

    from odm.contrib.admin import ModelAdmin, setup_admin
    from odm.contrib.aiohttp import setup_odm
    from tests.integration.admin.support import ADMIN_HEADER, authorize, fresh_name

    name = fresh_name()
    app = web.Application()
    setup_odm(app, odm_uri, db=name, models=[AdminBook], timeout=30.0)
    setup_admin(app, [ModelAdmin(AdminBook, readonly_fields=("lines",))], authorize=authorize)
    client: Any = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})  # type: ignore[operator]
    book = await AdminBook(title="T", pages=1, lines=[Line(sku="a", qty=1)]).insert()
    try:
        text = await (await client.get(f"/admin/adminbook/{book.id}/edit/")).text()
        assert 'name="lines.0.sku"' not in text and '"sku": "a"' in text
        token = await csrf(client, f"/admin/adminbook/{book.id}/edit/")
        response = await client.post(
            f"/admin/adminbook/{book.id}/edit/",
            data={"csrf_token": token, "_version": "0", "lines.0.sku": "b", "lines.0.qty": "1"},
        )
        assert response.status == 400
        assert "'lines.0.sku': the field is read-only" in html.unescape(await response.text())
    finally:
        await odm.get_client().drop_database(name)


async def test_text_that_is_not_json_is_shown_again_as_typed(admin: Client) -> None:
    """A JSON input holding invalid JSON: the form comes back with the text as it was typed
    (to fix it, not retype it) and one message saying why, and nothing is written."""
    token = await csrf(admin, "/admin/setting/add/")
    typed = '{"a": 1, "b": }'
    response = await admin.post(
        "/admin/setting/add/", data={"csrf_token": token, "name": "s", "data": typed}
    )
    assert response.status == 400
    text = html.unescape(await response.text())
    assert f">{typed}</textarea>" in text
    messages = re.findall(r'data-error="data"[^>]*>([^<]*)<', text)
    assert len(messages) == 1 and messages[0].startswith("not valid JSON"), messages
    assert await AdminSetting.objects.count() == 0

    setting = await AdminSetting(name="s", data={"a": 1}).insert()
    token = await csrf(admin, f"/admin/setting/{setting.id}/edit/")
    response = await admin.post(
        f"/admin/setting/{setting.id}/edit/",
        data={"csrf_token": token, "name": "renamed", "data": typed},
    )
    assert response.status == 400
    assert f">{typed}</textarea>" in html.unescape(await response.text())
    stored = await AdminSetting.objects.get(id=setting.id)
    assert (stored.name, stored.data) == ("s", {"a": 1})

    response = await admin.post(
        f"/admin/setting/{setting.id}/edit/",
        data={"csrf_token": token, "name": "renamed", "data": '{"a": 1, "b": 2}'},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    await stored.refresh()
    assert (stored.name, stored.data) == ("renamed", {"a": 1, "b": 2})
