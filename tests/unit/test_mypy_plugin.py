"""``odm.mypy``: lookups checked at type-check time (#23 item 3).

mypy, configured with ``plugins = ["odm.mypy"]`` only, runs on tests/typing/sample_lookups.py
outside the source tree: the ``ok()`` half must pass, and each line of ``bad()`` must give
exactly the error its comment names.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pydantic.mypy import PydanticPlugin

import odm.mypy
from odm.query.lookups import LOOKUPS
from tests.mypy_cache import shared_cache

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "typing" / "sample_lookups.py"
EXPECTED = re.compile(r"#\s*error:\s*(?P<message>.+)$")


def run_mypy(tmp_path: Path, source: str | None = None) -> tuple[str, dict[int, str]]:
    (tmp_path / "sample.py").write_text(SAMPLE.read_text() if source is None else source)
    config = "[mypy]\nstrict = True\nplugins = odm.mypy\n"
    (tmp_path / "mypy.ini").write_text(config)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mypy")), "--config-file", "mypy.ini",
         "--python-executable", sys.executable,
         "--cache-dir", str(shared_cache("--strict", config)), "sample.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    out = result.stdout + result.stderr
    errors: dict[int, str] = {}
    for line in out.splitlines():
        match = re.match(r"sample\.py:(\d+): error: (.*)$", line)
        if match:
            errors[int(match.group(1))] = errors.get(int(match.group(1)), "") + match.group(2)
    return out, errors


def test_the_plugin_reports_exactly_the_wrong_lookups(tmp_path: Path) -> None:
    out, errors = run_mypy(tmp_path)
    expected = {
        number: match.group("message")
        for number, line in enumerate(SAMPLE.read_text().splitlines(), 1)
        if (match := EXPECTED.search(line))
    }
    assert len(expected) >= 15
    assert set(errors) == set(expected), out
    for number, message in expected.items():
        assert message.strip() in errors[number], (number, errors[number])
        assert "[odm-lookup]" in errors[number] or "[odm-value]" in errors[number]


def test_the_plugin_extends_pydantics_and_knows_every_lookup() -> None:
    assert issubclass(odm.mypy.plugin("1.0"), PydanticPlugin)
    assert set(LOOKUPS) == odm.mypy.LOOKUPS


OPTIONAL_REFERENCES = """
from odm import Document, Embedded, Reference


class OrAuthor(Document):
    name: str


class OrNote(Embedded):
    text: str


class OrBook(Document):
    title: str
    editor: Reference[OrAuthor] | None = None
    note: OrNote | None = None
    pages: int | None = None


def sample(author: OrAuthor) -> None:
    OrBook(title="t", editor=author)
    OrBook(title="t", editor=None, note=OrNote(text="x"), pages=3)
    reveal_type(OrBook(title="t").editor)
    OrBook(title=3, editor=author)
    OrBook(title="t", note=author)
    OrBook(title="t", pages="many")
"""


def test_an_optional_reference_takes_a_document_and_other_unions_stay_strict(
    tmp_path: Path,
) -> None:
    """``Reference[X] | None`` accepts an ``X`` in the constructor, as ``Reference[X]`` does
    through its descriptor; other arguments, and unions without a reference, are checked as
    before, and reading the field still gives the reference or None."""
    out, errors = run_mypy(tmp_path, OPTIONAL_REFERENCES)
    lines = {line.strip(): number
             for number, line in enumerate(OPTIONAL_REFERENCES.splitlines(), 1)}
    assert lines['OrBook(title="t", editor=author)'] not in errors, out
    assert lines['OrBook(title="t", editor=None, note=OrNote(text="x"), pages=3)'] not in errors
    revealed = errors.get(lines['reveal_type(OrBook(title="t").editor)'], "") + out
    assert 'Revealed type is "sample.OrAuthor"' not in revealed, out
    assert '"Union[odm.models.fields.Reference[sample.OrAuthor], None]"' in out or (
        '"odm.models.fields.Reference[sample.OrAuthor] | None"' in out
    ), out
    assert 'Argument "title" to "OrBook" has incompatible type "int"' in errors[
        lines['OrBook(title=3, editor=author)']], out
    assert 'Argument "note" to "OrBook" has incompatible type "OrAuthor"' in errors[
        lines['OrBook(title="t", note=author)']], out
    assert 'Argument "pages" to "OrBook" has incompatible type "str"' in errors[
        lines['OrBook(title="t", pages="many")']], out
