"""Fixtures for the browser tests: the system's Chromium driven by Playwright, and the admin's
test app served on a real port.

Chromium is Debian's ``chromium`` package (``/usr/bin/chromium``, or ``$ODM_CHROMIUM``);
Playwright only drives it (``executable_path``), it downloads no browser. Without Chromium
every test here is skipped with a message saying how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from odm.drivers import DriverName
from tests.integration.admin.support import create_app, fresh_name

INSTALL_HINT = (
    "the browser tests need Chromium: apt-get install chromium (Debian's package, "
    "/usr/bin/chromium), or set ODM_CHROMIUM to a Chromium binary"
)

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def chromium_path() -> str | None:
    """The Chromium binary to drive, or ``None`` when there is none."""
    given = os.environ.get("ODM_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the browser tests, saying how to install Chromium, when it is missing."""
    missing = None
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing = "the browser tests need Playwright for Python: pip install -e '.[dev]'"
    if missing is None and chromium_path() is None:
        missing = INSTALL_HINT
    if missing is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (the system's), closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def app_factory(aiohttp_server: Any, odm_uri: str) -> Any:
    """Serve the admin's test app on a real port; return its base URL."""

    async def serve(per_page: int = 25, driver: DriverName = "pymongo") -> str:
        server = await aiohttp_server(create_app(odm_uri, fresh_name(), driver, per_page=per_page))
        return str(server.make_url("")).rstrip("/")

    return serve


@pytest.fixture
async def allowed(browser: Any, app_factory: Any) -> AsyncIterator[tuple[Any, str]]:
    """A page of a browser context that the test app allows, and the app's base URL."""
    base = await app_factory()
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    await context.add_cookies([{"name": "admin", "value": "yes", "url": base}])
    page = await context.new_page()
    page.set_default_timeout(15_000)
    yield page, base
    await context.close()


@pytest.fixture
def screenshot(pytestconfig: pytest.Config) -> Any:
    """``await screenshot(page, name)``: saved as docs/img/admin-<name>.png only with
    ``--odm-admin-screenshots`` (a normal run writes nothing into the work tree)."""
    enabled = bool(pytestconfig.getoption("--odm-admin-screenshots"))

    async def take(page: Any, name: str) -> None:
        if enabled:
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(DOCS_IMAGES / f"admin-{name}.png"), full_page=False)

    return take
