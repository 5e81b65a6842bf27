"""The reference picker over a target of any size: keyset pages, a search over the target's
search fields, the chosen document kept shown, and nothing saved while picking."""

from __future__ import annotations

import html
from typing import Any

from odm.drivers import DriverName
from tests.integration.admin.conftest import Client, csrf
from tests.integration.admin.pages import picker
from tests.integration.admin.support import (
    ADMIN_HEADER,
    AdminAuthor,
    AdminBook,
    admin_models,
    create_app,
    fresh_name,
)

AUTHORS = 1000
PAGE = 50


async def authors(count: int = AUTHORS) -> list[AdminAuthor]:
    """``count`` authors, ``author 0000`` the oldest; returned newest first (the list order)."""
    made = [AdminAuthor(name=f"author {i:04d}", email=f"a{i}@example.org") for i in range(count)]
    await AdminAuthor.objects.bulk_create(made)
    return sorted(made, key=lambda a: a.id, reverse=True)


def labels(docs: list[AdminAuthor]) -> list[tuple[str, str]]:
    return [(str(a.id), f"{a.name} ({a.id})") for a in docs]


async def test_the_picker_pages_through_the_whole_target_by_keyset(admin: Client) -> None:
    newest_first = await authors()
    token = await csrf(admin, "/admin/book/add/")
    shown = picker(await (await admin.get("/admin/book/add/")).text(), "author")
    assert shown.options == labels(newest_first[:PAGE])
    assert shown.previous is None and shown.more is not None
    seen = list(shown.options)
    pages = 1
    form = {"csrf_token": token, "title": "typed", "pages": "3"}
    while shown.more:
        response = await admin.post("/admin/book/add/", data={**form, "_pick": shown.more})
        assert response.status == 200
        text = await response.text()
        assert 'name="title" value="typed"' in text  # what was typed stays
        shown = picker(text, "author")
        assert shown.previous is not None
        seen += shown.options
        pages += 1
    assert pages == AUTHORS // PAGE
    assert seen == labels(newest_first)
    back = await admin.post("/admin/book/add/", data={**form, "_pick": shown.previous})
    assert picker(await back.text(), "author").options == labels(newest_first[-2 * PAGE : -PAGE])
    assert await AdminBook.objects.count() == 0  # picking saves nothing


async def test_search_finds_a_document_beyond_the_first_pages_and_it_is_saved(
    admin: Client,
) -> None:
    newest_first = await authors()
    oldest = newest_first[-1]
    token = await csrf(admin, "/admin/book/add/")
    form = {"csrf_token": token, "title": "Tea", "pages": "3", "author": ""}
    response = await admin.post(
        "/admin/book/add/", data={**form, "_search.author": "AUTHOR 0000", "_pick": "author"}
    )
    assert response.status == 200
    shown = picker(await response.text(), "author")
    assert shown.options == labels([oldest])
    assert shown.search == shown.searched == "AUTHOR 0000"
    assert shown.more is None and shown.previous is None
    saved = await admin.post(
        "/admin/book/add/",
        data={
            **form,
            "author": str(oldest.id),
            "_search.author": "AUTHOR 0000",
            "_searched.author": "AUTHOR 0000",
        },
        allow_redirects=False,
    )
    assert saved.status == 303, await saved.text()
    book = await AdminBook.objects.get()
    assert book.author is not None and book.author.id == oldest.id


async def test_the_search_is_literal_and_over_the_target_search_fields(admin: Client) -> None:
    await authors(30)
    await AdminAuthor(name="Zed", email="zed.example@mail.org").insert()
    token = await csrf(admin, "/admin/book/add/")
    for search, names in [("ZED.EXAMPLE", ["Zed"]), (".*", []), ("author 002", None)]:
        response = await admin.post(
            "/admin/book/add/",
            data={"csrf_token": token, "_search.author": search, "_pick": "author"},
        )
        found = [
            label.split(" (")[0] for _, label in picker(await response.text(), "author").options
        ]
        expected = names if names is not None else [f"author {i:04d}" for i in range(29, 19, -1)]
        assert found == expected, search


async def test_a_search_typed_but_not_run_is_run_instead_of_saving(admin: Client) -> None:
    newest_first = await authors(120)
    token = await csrf(admin, "/admin/book/add/")
    # What Enter in the search box sends: the form's default button, Save, with the new search.
    response = await admin.post(
        "/admin/book/add/",
        data={
            "csrf_token": token,
            "title": "Tea",
            "pages": "3",
            "author": "",
            "_search.author": "author 0001",
            "_searched.author": "",
        },
    )
    assert response.status == 200
    text = await response.text()
    assert "The search was run; nothing is saved yet." in html.unescape(text)
    assert [i for i, _ in picker(text, "author").options] == [
        str(a.id) for a in newest_first if a.name.startswith("author 0001")
    ]
    assert await AdminBook.objects.count() == 0


async def test_the_chosen_document_stays_shown_when_not_listed(admin: Client) -> None:
    newest_first = await authors(300)
    oldest = newest_first[-1]
    book = await AdminBook(title="T", pages=1, author=oldest).insert()
    text = await (await admin.get(f"/admin/book/{book.id}/edit/")).text()
    shown = picker(text, "author")
    assert shown.selected == str(oldest.id)
    assert shown.options[0] == (str(oldest.id), f"author 0000 ({oldest.id})")
    assert shown.options[1:] == labels(newest_first[:PAGE])
    token = await csrf(admin, f"/admin/book/{book.id}/edit/")
    form = {
        "csrf_token": token,
        "_version": "0",
        "title": "T",
        "pages": "1",
        "author": str(oldest.id),
    }
    # Searching for something else keeps the chosen one, chosen.
    response = await admin.post(
        f"/admin/book/{book.id}/edit/",
        data={**form, "_search.author": "author 0150", "_pick": "author"},
    )
    shown = picker(await response.text(), "author")
    assert shown.selected == str(oldest.id)
    assert [label for _, label in shown.options] == [
        f"author 0000 ({oldest.id})",
        f"author 0150 ({newest_first[-151].id})",
    ]


async def test_picking_keeps_the_version_the_form_was_opened_at(admin: Client) -> None:
    await authors(60)
    book = await AdminBook(title="T", pages=1).insert()
    token = await csrf(admin, f"/admin/book/{book.id}/edit/")
    form = {"csrf_token": token, "_version": "0", "title": "Mine", "pages": "1"}
    other = await AdminBook.objects.get(id=book.id)
    other.title = "Theirs"
    await other.save()  # version 1, while the form is open at version 0
    picked = await admin.post(
        f"/admin/book/{book.id}/edit/", data={**form, "_search.author": "author", "_pick": "author"}
    )
    assert picked.status == 200
    assert 'name="_version" value="0"' in await picked.text()
    stale = await admin.post(f"/admin/book/{book.id}/edit/", data=form)
    assert stale.status == 409
    assert (await AdminBook.objects.get(id=book.id)).title == "Theirs"


async def test_picker_names_outside_the_form_are_refused(admin: Client) -> None:
    await authors(3)
    token = await csrf(admin, "/admin/book/add/")
    form = {"csrf_token": token, "title": "T", "pages": "1"}
    for extra, culprit in [
        ({"_pick": "title"}, "_pick"),
        ({"_pick": "nope"}, "_pick"),
        ({"_pick": "author:sideways:abc"}, "_pick"),
        ({"_pick": "author:after:"}, "_pick"),
        ({"_pick": "author:after:!!!"}, "_pick"),
        ({"_search.title": "x"}, "_search.title"),
        ({"_searched.nope": "x"}, "_searched.nope"),
        ({"_search.author.x": "x"}, "_search.author.x"),
    ]:
        response = await admin.post("/admin/book/add/", data={**form, **extra})
        assert response.status == 400, extra
        assert repr(culprit) in html.unescape(await response.text()), extra
    assert await AdminBook.objects.count() == 0


async def test_a_target_the_admin_does_not_serve_is_picked_by_id_never_searched(
    aiohttp_client: Any, odm_uri: str, odm_driver: DriverName
) -> None:
    """Searching a model the admin hides would be an oracle on its fields (a password hash
    guessed a character at a time): its picker lists ids, names none of its fields, and a
    search posted to it anyway is refused, naming the input."""
    books_only = [admin for admin in admin_models() if admin.model is not AdminAuthor]
    app = create_app(odm_uri, fresh_name(), odm_driver, admins=books_only)
    client: Client = await aiohttp_client(app, headers={ADMIN_HEADER: "yes"})
    secret = await AdminAuthor(name="Ann", email="s3cret@example.org").insert()
    assert (await client.get("/admin/author/")).status == 404
    text = await (await client.get("/admin/book/add/")).text()
    shown = picker(text, "author")
    assert shown.options == [(str(secret.id), str(secret.id))]
    assert shown.search is None and "email" not in text and "s3cret" not in text
    token = await csrf(client, "/admin/book/add/")
    form = {"csrf_token": token, "title": "T", "pages": "1", "author": ""}
    for search in ("_search.author", "_searched.author"):
        response = await client.post(
            "/admin/book/add/", data={**form, search: "s3cret", "_pick": "author"}
        )
        assert response.status == 400, search
        assert repr(search) in html.unescape(await response.text())
    picked = await client.post("/admin/book/add/", data={**form, "_pick": "author"})
    assert picker(await picked.text(), "author").options == [(str(secret.id), str(secret.id))]
    saved = await client.post(
        "/admin/book/add/", data={**form, "author": str(secret.id)}, allow_redirects=False
    )
    assert saved.status == 303, await saved.text()
    book = await AdminBook.objects.get()
    assert book.author is not None and book.author.id == secret.id
