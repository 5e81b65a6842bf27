"""Reading the admin's pages in the HTTP tests: a reference picker's options and buttons, the
fields of a detail page."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PickerView:
    """A reference picker as a page shows it."""

    options: list[tuple[str, str]]
    selected: str | None
    search: str | None
    searched: str | None
    more: str | None
    previous: str | None


def picker(text: str, field: str) -> PickerView:
    """The picker of ``field`` on a form page (its select must be there)."""
    select = re.search(rf'<select id="f-{field}" name="{field}">(.*?)</select>', text, re.S)
    assert select is not None, f"no select for {field!r}"
    options, selected = [], None
    for value, chosen, label in re.findall(
        r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(1)
    ):
        if value:
            options.append((value, html.unescape(label)))
        if chosen:
            selected = value
    search = re.search(rf'name="_search\.{field}" value="([^"]*)"', text)
    searched = re.search(rf'name="_searched\.{field}" value="([^"]*)"', text)
    more = re.search(rf'class="pick-next" name="_pick" value="({field}:after:[^"]+)"', text)
    previous = re.search(
        rf'class="pick-previous" name="_pick" value="({field}:before:[^"]+)"', text
    )
    return PickerView(
        options=options,
        selected=selected,
        search=html.unescape(search.group(1)) if search else None,
        searched=html.unescape(searched.group(1)) if searched else None,
        more=more.group(1) if more else None,
        previous=previous.group(1) if previous else None,
    )


def field_html(text: str, path: str) -> str:
    """The inner HTML of the detail page's element for the field at ``path``."""
    found = re.search(rf'<(dd|td|li) data-field="{re.escape(path)}">(.*?)</\1>', text, re.S)
    assert found is not None, f"no field {path!r} on the page"
    return found.group(2).strip()


def field_text(text: str, path: str) -> str:
    """The text of the detail page's field at ``path`` (tags removed, entities decoded)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", field_html(text, path))).split())
