"""References in a real browser: picking one beyond the newest documents of a large target,
and the read-only detail page reached from the list, following a reference link."""

from __future__ import annotations

from typing import Any

from tests.integration.admin.support import AdminAuthor, AdminBook, full_book

AUTHORS = 1000
PAGE = 50


async def test_pick_a_reference_beyond_the_200_newest_of_1000(
    allowed: tuple[Any, str], screenshot: Any
) -> None:
    page, base = allowed
    made = [AdminAuthor(name=f"author {i:04d}", email=f"a{i}@example.org") for i in range(AUTHORS)]
    await AdminAuthor.objects.bulk_create(made)
    newest_first = sorted(made, key=lambda a: a.id, reverse=True)
    options = page.locator("#f-author option")

    await page.goto(f"{base}/admin/book/add/")
    await page.fill("#f-title", "Deep")
    await page.fill("#f-pages", "5")
    assert await options.count() == PAGE + 1  # and the empty choice
    # Page the picker by keyset past the 200 newest: the 251st..300th newest.
    for _ in range(5):
        await page.click("[data-picker=author] .pick-next")
        await page.wait_for_load_state()
    assert await page.input_value("#f-title") == "Deep"  # what was typed stays
    deep = newest_first[260]
    assert await options.nth(1).get_attribute("value") == str(newest_first[250].id)
    await page.select_option("#f-author", str(deep.id))
    await page.click("#save")
    await page.wait_for_selector("#notice")
    book = await AdminBook.objects.get()
    assert book.author is not None and book.author.id == deep.id

    # Change it to the oldest author, found by searching; Enter in the search box searches.
    await page.click("#edit")
    oldest = newest_first[-1]
    assert await page.input_value("#f-author") == str(deep.id)  # kept, though not listed
    assert await page.locator(f"#f-author option[value='{oldest.id}']").count() == 0
    await page.fill("#s-author", "author 0000")
    await page.press("#s-author", "Enter")
    await page.wait_for_selector("#picked")
    assert await AdminBook.objects.count() == 1 and (await AdminBook.objects.get()).title == "Deep"
    assert await options.all_inner_texts() == [
        "\u2014",
        f"author {AUTHORS - 261:04d} ({deep.id})",  # the chosen one, still chosen
        f"author 0000 ({oldest.id})",
    ]
    assert await page.input_value("#f-author") == str(deep.id)
    await page.select_option("#f-author", str(oldest.id))
    await page.set_viewport_size({"width": 1100, "height": 560})
    await screenshot(page, "picker")
    await page.click("#save")
    await page.wait_for_selector("#notice")
    await book.refresh()
    assert book.author is not None and book.author.id == oldest.id


async def test_open_the_detail_page_from_the_list_and_follow_a_reference(
    allowed: tuple[Any, str], screenshot: Any
) -> None:
    page, base = allowed
    book, author = await full_book("Tea and cake", "Ann Lee")
    await page.goto(f"{base}/admin/book/")
    await page.click(f"tr.row a[href='/admin/book/{book.id}/']")
    await page.wait_for_url(f"**/admin/book/{book.id}/")
    assert await page.locator("#document input, #document select").count() == 0
    assert await page.locator("dd[data-field=title]").inner_text() == "Tea and cake"
    assert await page.locator("dd[data-field='address.city']").inner_text() == "Oslo"
    assert await page.locator("td[data-field='lines.1.sku']").inner_text() == "cake"
    assert await page.locator("[data-field=tags] li").all_inner_texts() == ["green", "hot"]
    await page.set_viewport_size({"width": 1100, "height": 700})
    await screenshot(page, "detail")

    await page.click("[data-field=author] a.reference")
    await page.wait_for_url(f"**/admin/author/{author.id}/")
    assert await page.locator("dd[data-field=name]").inner_text() == "Ann Lee"
    await page.click("#edit")
    await page.wait_for_url(f"**/admin/author/{author.id}/edit/")
    assert await page.input_value("#f-name") == "Ann Lee"
