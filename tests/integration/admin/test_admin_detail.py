"""The read-only detail page: every field shown, references as links, links to edit and
delete, and the list and the forms leading to it."""

from __future__ import annotations

import re

from bson import ObjectId

from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.pages import field_html, field_text
from tests.integration.admin.support import AdminBook, full_book


async def test_every_field_is_shown_read_only(admin: Client) -> None:
    book, author = await full_book()
    response = await admin.get(f"/admin/book/{book.id}/")
    assert response.status == 200
    text = await response.text()
    assert "<form" not in text and "<input" not in text and "<select" not in text
    shown = {
        "id": str(book.id),
        "title": "Tea & <b>cake</b>",
        "pages": "120",
        "price": "12.30",
        "binding": "cloth",
        "published": "2024-05-01 10:30:00 UTC",
        "in_print": "no",
        "author": f"Ann <Lee> ({author.id})",
        "address.city": "Oslo",
        "address.zip": "0150",
        "lines.0.sku": "tea",
        "lines.0.qty": "2",
        "lines.1.sku": "cake",
        "lines.1.qty": "1",
        "tags.0": "green",
        "tags.1": "hot",
        "notes": "",
        "version": "0",
    }
    for path, value in shown.items():
        assert field_text(text, path) == value, path
    assert "&lt;b&gt;cake&lt;/b&gt;" in field_html(text, "title")  # escaped, not markup


async def test_a_reference_links_to_the_target_detail_page(admin: Client) -> None:
    book, author = await full_book()
    text = await (await admin.get(f"/admin/book/{book.id}/")).text()
    link = re.search(r'<a class="reference" href="([^"]+)">', field_html(text, "author"))
    assert link is not None and link.group(1) == f"/admin/author/{author.id}/"
    target = await admin.get(link.group(1))
    assert target.status == 200
    assert field_text(await target.text(), "name") == "Ann <Lee>"


async def test_a_dangling_reference_is_named_not_linked(admin: Client) -> None:
    gone = ObjectId()
    book = await AdminBook(title="T", pages=1, author=gone).insert()
    text = await (await admin.get(f"/admin/book/{book.id}/")).text()
    assert "<a" not in field_html(text, "author")
    assert field_text(text, "author") == f"{gone} (no such AdminAuthor)"


async def test_empty_values_show_a_dash(admin: Client) -> None:
    book = await AdminBook(title="T", pages=1).insert()
    text = await (await admin.get(f"/admin/book/{book.id}/")).text()
    for path in ("published", "author", "address", "lines", "tags"):
        assert field_text(text, path) == "\u2014", path


async def test_links_to_edit_and_delete_and_the_list_links_here(admin: Client) -> None:
    book, _ = await full_book()
    listed = await (await admin.get("/admin/book/")).text()
    assert f'<td><a href="/admin/book/{book.id}/">{book.id}</a></td>' in listed
    text = await (await admin.get(f"/admin/book/{book.id}/")).text()
    assert f'id="edit" href="/admin/book/{book.id}/edit/"' in text
    assert f'id="delete" href="/admin/book/{book.id}/delete/"' in text
    edit = await (await admin.get(f"/admin/book/{book.id}/edit/")).text()
    assert f'id="view" href="/admin/book/{book.id}/"' in edit
    assert f'action="/admin/book/{book.id}/edit/"' in edit


async def test_saving_shows_the_detail_page(admin: Client) -> None:
    book, _ = await full_book()
    token = await csrf(admin, f"/admin/book/{book.id}/edit/")
    response = await admin.post(
        f"/admin/book/{book.id}/edit/",
        data={"csrf_token": token, "_version": "0", "title": "Coffee", "pages": "7"},
    )
    assert response.status == 200
    assert str(response.url.path) == f"/admin/book/{book.id}/"
    text = await response.text()
    assert "The changes were saved." in text
    assert field_text(text, "title") == "Coffee" and field_text(text, "pages") == "7"


async def test_a_detail_page_not_found(admin: Client) -> None:
    assert (await admin.get(f"/admin/book/{ObjectId()}/")).status == 404
    assert (await admin.get("/admin/book/not-an-id/")).status == 404
    assert (await admin.get(f"/admin/nope/{ObjectId()}/")).status == 404
