"""What a browser posts for a page's form (a module of helpers, without tests or Documents, so
that the tests importing it declare nothing twice)."""

from __future__ import annotations

from html.parser import HTMLParser


class BrowserForm(HTMLParser):
    """The ``<form>`` of a page as a browser submits it with its default button: its named
    inputs in document order (text, hidden, search: their value; a checkbox: ``on`` or its
    value when ticked), a select's chosen option (else its first), a textarea's text (with
    CRLF line breaks, the first line break after the tag dropped as HTML parsing does).
    Buttons are not posted (the default one has no name). ``boxes``: every checkbox's name
    and whether it is ticked; ``selects``: every select's name and option values."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.posted: list[tuple[str, str]] = []
        self.boxes: dict[str, bool] = {}
        self.selects: dict[str, list[str]] = {}
        self._inside = False
        self._select: tuple[str, list[str], list[str]] | None = None
        self._option: tuple[str | None, list[str]] | None = None
        self._textarea: tuple[str, list[str]] | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect the inputs opened inside the form."""
        found = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._inside = True
        if not self._inside or "disabled" in found:
            return
        name = found.get("name")
        if tag == "input" and name is not None:
            self._input(name, found)
        elif tag == "select" and name is not None:
            self._select = (name, [], [])
        elif tag == "option" and self._select is not None:
            self._option = (found.get("value") if "value" in found else None, [])
            if "selected" in found:
                self._select[2].append("pending")
        elif tag == "textarea" and name is not None:
            self._textarea = (name, [])

    def _input(self, name: str, found: dict[str, str]) -> None:
        kind = found.get("type", "text")
        if kind == "checkbox":
            self.boxes[name] = "checked" in found
            if "checked" in found:
                self.posted.append((name, found.get("value") or "on"))
        elif kind not in ("submit", "button", "image", "reset", "file"):
            self.posted.append((name, found.get("value", "")))

    def handle_data(self, data: str) -> None:
        """Keep the text of an option or a textarea."""
        if self._option is not None:
            self._option[1].append(data)
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        """Close an option, a select, a textarea or the form."""
        if tag == "option" and self._select is not None and self._option is not None:
            value, text = self._option
            value = " ".join("".join(text).split()) if value is None else value
            self._select[1].append(value)
            if self._select[2] and self._select[2][-1] == "pending":
                self._select[2][-1] = value
            self._option = None
        elif tag == "select" and self._select is not None:
            name, options, chosen = self._select
            self.selects[name] = options
            if chosen or options:
                self.posted.append((name, chosen[-1] if chosen else options[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            name, text = self._textarea
            self.posted.append((name, "".join(text).removeprefix("\n").replace("\n", "\r\n")))
            self._textarea = None
        elif tag == "form":
            self._inside = False


def flipped(posted: list[tuple[str, str]], box: str, ticked: bool) -> list[tuple[str, str]]:
    """``posted`` with the checkbox ``box`` ticked or unticked, as a browser would post it."""
    kept = [(name, value) for name, value in posted if name != box]
    return [*kept, (box, "on")] if ticked else kept


def chosen(posted: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """``posted`` with the select ``name`` set to ``value``."""
    return [(n, value if n == name else v) for n, v in posted]
