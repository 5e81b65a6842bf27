"""The docs cannot lie: every ```python block of README.md and docs/ runs, and the site builds."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_runner import file_blocks, python_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUNNER = Path(__file__).with_name("markdown_runner.py")


def server_address(uri: str) -> str:
    return uri.split("://", 1)[1].split("/", 1)[0].split(",")[0]


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if python_blocks(p.read_text()) or file_blocks(p.read_text())],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_python_blocks_run(page: Path, odm_uri: str) -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(page), server_address(odm_uri)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        # A page's own test project (blocks that name a file) runs against this server too.
        env={**os.environ, "ODM_TEST_URI": odm_uri},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runner_finds_blocks_with_their_line_numbers() -> None:
    text = "# t\n\n```python\nx = 1\n```\n\n```text\nnot run\n```\n\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(4, "x = 1\n"), (12, "y = 2\n")]


def test_runner_writes_blocks_that_name_a_file() -> None:
    text = '```python title="test_a.py"\nx = 1\n```\n\n```ini title="pytest.ini"\n[pytest]\n```\n'
    assert python_blocks(text) == []
    assert file_blocks(text) == {"test_a.py": "x = 1\n", "pytest.ini": "[pytest]\n"}


def test_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
