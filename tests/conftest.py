"""Shared test settings; the real server and database fixtures come from odm.contrib.pytest.

``--odm-long`` runs the long variants (soak, big fuzz counts): tests marked ``slow`` are skipped
without it, and tests that only scale up read it through the ``odm_long`` fixture.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bytecode_cache import share_bytecode, unshare_bytecode

#: Where the run keeps the bytecode cache it made (``None``: it made none).
_BYTECODE = pytest.StashKey[str | None]()

#: The checkout's root, where ``python -m bench...`` finds the benchmark package.
ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare ``--odm-long``, ``--odm-write-reliability-page`` and ``--odm-admin-screenshots``."""
    parser.addoption(
        "--odm-long",
        action="store_true",
        default=False,
        help="run the long variants (tests marked slow; bigger loads and fuzz counts)",
    )
    parser.addoption(
        "--odm-write-reliability-page",
        action="store_true",
        default=False,
        help="rewrite docs/reliability.md from this run's figures (a full, passing run of "
        "tests/reliability); without it the tracked page is never touched",
    )
    parser.addoption(
        "--odm-admin-screenshots",
        action="store_true",
        default=False,
        help="have tests/browser save screenshots of the admin's pages into docs/img/ (for "
        "docs/admin.md); without it they write nothing into the work tree",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker (also declared in pyproject.toml), and give the Python
    processes the run starts one bytecode cache (:mod:`tests.bytecode_cache`)."""
    config.addinivalue_line("markers", "slow: long soak or fuzz variants, run with --odm-long")
    # The run that starts the others (pytest-xdist's controller, or the only process): its
    # workers inherit the environment, and so the cache, when they are started.
    if not hasattr(config, "workerinput"):
        config.stash[_BYTECODE] = share_bytecode()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's bytecode cache, if it made one."""
    directory = config.stash.get(_BYTECODE, None)
    if directory is not None:
        unshare_bytecode(directory)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``slow`` tests unless ``--odm-long`` is given."""
    if config.getoption("--odm-long"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --odm-long")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def odm_long(pytestconfig: pytest.Config) -> bool:
    """Whether ``--odm-long`` was given (tests scale their load and counts up with it)."""
    return bool(pytestconfig.getoption("--odm-long"))


@pytest.fixture
def run_module() -> Callable[..., str]:
    """Run ``python -m MODULE ARGS...`` from the checkout (the benchmark's tools) and return
    what it printed; a non-zero exit fails the test with the tool's own error output."""

    def run(*command: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run
