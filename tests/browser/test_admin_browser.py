"""The admin in a real browser (the system's Chromium, driven by Playwright)."""

from __future__ import annotations

import decimal
from typing import Any

from bson import ObjectId

from tests.integration.admin.support import AdminAuthor, AdminBook, Line

BOOKS = 10_000


async def test_index_filter_order_and_page_through_10000_documents(
    browser: Any, app_factory: Any, screenshot: Any
) -> None:
    base = await app_factory(per_page=1000)
    await AdminBook.objects.bulk_create(
        [AdminBook(title=f"book {i:05d}", pages=i + 1, price=decimal.Decimal("9.90"))
         for i in range(BOOKS)]
    )
    await AdminAuthor(name="Ann", email="ann@example.org").insert()
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    await context.add_cookies([{"name": "admin", "value": "yes", "url": base}])
    page = await context.new_page()
    page.set_default_timeout(20_000)

    await page.goto(f"{base}/admin/")
    book_row = page.locator("#models tr", has_text="AdminBook")
    assert await book_row.locator(".count").inner_text() == str(BOOKS)
    await page.set_viewport_size({"width": 1100, "height": 260})
    await screenshot(page, "index")
    await page.set_viewport_size({"width": 1100, "height": 800})

    await book_row.get_by_role("link", name="AdminBook").click()
    await page.wait_for_url("**/admin/book/")
    # Ordering by clicking a column: ascending, then descending.
    await page.locator("a.order[data-column=pages]").click()
    await page.wait_for_url("**o=pages**")
    assert await page.locator("tr.row td:nth-child(3)").first.inner_text() == "1"
    await page.locator("a.order[data-column=pages]").click()
    await page.wait_for_url("**o=-pages**")
    assert await page.locator("tr.row td:nth-child(3)").first.inner_text() == str(BOOKS)

    # Paging through everything, by keyset, in the order asked for.
    seen: list[int] = []
    while True:
        seen += [int(t) for t in await page.locator("tr.row td:nth-child(3)").all_inner_texts()]
        following = page.locator("#next")
        if not await following.count():
            break
        await following.click()
        await page.wait_for_load_state()
    assert seen == list(range(BOOKS, 0, -1))
    await page.locator("#previous").click()
    assert await page.locator("tr.row td:nth-child(3)").first.inner_text() == "2000"

    # A filter from the query string, then a search on top of it.
    await page.goto(f"{base}/admin/book/?pages__lte=30&o=pages")
    assert await page.locator("tr.row").count() == 30
    await page.fill("#search input[name=q]", "book 0001")
    await page.click("#search button")
    await page.wait_for_url("**q=book+0001**")
    titles = await page.locator("tr.row td:nth-child(2)").all_inner_texts()
    assert titles == [f"book {i:05d}" for i in range(10, 20)]
    await page.set_viewport_size({"width": 1100, "height": 520})
    await screenshot(page, "list")
    await page.click("text=Migrations")
    await page.wait_for_url("**/admin/_migrations/")
    assert await page.locator("#migrations tr.state-pending").count() >= 1
    await page.set_viewport_size({"width": 1100, "height": 300})
    await screenshot(page, "migrations")
    await page.goto(f"{base}/admin/book/?pages__where=1")
    assert "parameter 'pages__where'" in await page.locator("#problem").inner_text()
    await context.close()


async def test_create_fix_edit_embedded_list_follow_reference_delete(
    allowed: tuple[Any, str], screenshot: Any
) -> None:
    page, base = allowed
    author = await AdminAuthor(name="Ann", email="ann@example.org").insert()

    await page.goto(f"{base}/admin/book/add/")
    await page.fill("#f-title", "")
    await page.fill("#f-pages", "0")
    await page.fill("#f-price", "12.30")
    await page.select_option("#f-binding", "cloth")
    await page.fill("#f-published", "2024-05-01T10:30:00")
    await page.select_option("#f-author", str(author.id))
    await page.fill("[name='lines.0.sku']", "tea")
    await page.fill("[name='lines.0.qty']", "2")
    await page.click("#save")
    await page.wait_for_selector("#errors")
    assert await page.locator("[data-error=pages]").count() == 1
    assert await page.locator("[data-error=title]").count() == 1
    assert await page.input_value("#f-price") == "12.30"  # what was typed stays
    await screenshot(page, "validation")
    assert await AdminBook.objects.count() == 0

    await page.fill("#f-title", "Tea")
    await page.fill("#f-pages", "120")
    await page.click("#save")
    await page.wait_for_selector("#notice")
    book = await AdminBook.objects.get()
    assert (book.title, book.pages, book.price) == ("Tea", 120, decimal.Decimal("12.30"))
    assert book.lines == [Line(sku="tea", qty=2)]
    # Saved: the document's detail page, read-only.
    assert page.url.startswith(f"{base}/admin/book/{book.id}/?")
    assert await page.locator("#document input").count() == 0

    # Edit the embedded list: change a row, add one, then remove the first.
    await page.click("#edit")
    await page.fill("[name='lines.0.qty']", "3")
    await page.fill("[name='lines.1.sku']", "cake")
    await page.fill("[name='lines.1.qty']", "1")
    await screenshot(page, "edit")
    await page.click("#save")
    await page.wait_for_selector("#notice")
    await book.refresh()
    assert book.lines == [Line(sku="tea", qty=3), Line(sku="cake", qty=1)]
    assert await page.locator("[data-field='lines.1.sku']").inner_text() == "cake"
    await page.click("#edit")
    await page.check("[name='lines.0._delete']")
    await page.click("#save")
    await page.wait_for_selector("#notice")
    await book.refresh()
    assert book.lines == [Line(sku="cake", qty=1)]

    # Follow the reference to the author.
    await page.click("[data-field=author] a.reference")
    await page.wait_for_url(f"**/admin/author/{author.id}/")
    assert await page.locator("dd[data-field=name]").inner_text() == "Ann"

    # Delete, after confirmation.
    await page.goto(f"{base}/admin/book/{book.id}/")
    await page.click("#delete")
    await page.click("#confirm")
    await page.wait_for_url("**/admin/book/?msg=deleted")
    assert await page.locator("#notice").inner_text() == "The document was deleted."
    assert await AdminBook.objects.count() == 0


async def test_a_stale_edit_is_refused(allowed: tuple[Any, str]) -> None:
    page, base = allowed
    book = await AdminBook(title="Tea", pages=10).insert()
    await page.goto(f"{base}/admin/book/{book.id}/edit/")
    # Someone else saves the document while the form is open.
    other = await AdminBook.objects.get(id=book.id)
    other.title = "Coffee"
    await other.save()
    await page.fill("#f-title", "Green tea")
    await page.click("#save")
    problem = await page.locator("#problem").inner_text()
    assert "Someone else changed this document" in problem
    assert (await AdminBook.objects.get(id=book.id)).title == "Coffee"


async def test_unauthorized_and_missing_csrf_token_are_refused(
    browser: Any, allowed: tuple[Any, str]
) -> None:
    page, base = allowed
    stranger = await browser.new_context()
    refused = await stranger.new_page()
    response = await refused.goto(f"{base}/admin/")
    assert response is not None and response.status == 403
    assert "Not authorized" in await refused.content()
    await stranger.close()

    await page.goto(f"{base}/admin/author/add/")
    await page.fill("#f-name", "Mallory")
    # A form without its token, as another site's form would be.
    await page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    async with page.expect_navigation() as navigation:
        await page.click("#save")
    answer = await navigation.value
    assert answer is not None and answer.status == 403
    assert "CSRF token is missing or wrong" in await page.content()
    assert await AdminAuthor.objects.count() == 0
    missing = await page.goto(f"{base}/admin/author/{ObjectId()}/")
    assert missing is not None and missing.status == 404
