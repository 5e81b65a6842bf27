"""The suite's shared bytecode cache (tests/bytecode_cache.py): where it applies, a child
process writes its bytecode into the run's directory and the next one reads it from there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bytecode_cache import DONT_WRITE, PREFIX, share_bytecode, unshare_bytecode


def _compiled(prefix: Path) -> list[str]:
    return sorted(path.name for path in prefix.rglob("*.pyc"))


def test_children_share_one_cache_and_it_goes_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PREFIX, raising=False)
    monkeypatch.setenv(DONT_WRITE, "1")
    (tmp_path / "sample_module.py").write_text("VALUE = 41 + 1\n")
    directory = share_bytecode()
    assert directory is not None
    try:
        assert os.environ[PREFIX] == directory and DONT_WRITE not in os.environ
        for _ in range(2):
            subprocess.run(
                [sys.executable, "-c", "import sample_module; assert sample_module.VALUE == 42"],
                cwd=tmp_path, check=True, env={**os.environ, "PYTHONPATH": str(tmp_path)},
            )
        compiled = _compiled(Path(directory))
        assert f"sample_module.{sys.implementation.cache_tag}.pyc" in compiled
        # Nothing beside the source: the cache lives only in the run's directory.
        assert not (tmp_path / "__pycache__").exists()
    finally:
        unshare_bytecode(directory)
    assert not Path(directory).exists()
    assert os.environ[DONT_WRITE] == "1" and PREFIX not in os.environ


def test_nothing_changes_where_bytecode_is_kept_or_a_prefix_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PREFIX, raising=False)
    monkeypatch.delenv(DONT_WRITE, raising=False)
    assert share_bytecode() is None
    assert PREFIX not in os.environ
    monkeypatch.setenv(DONT_WRITE, "1")
    monkeypatch.setenv(PREFIX, str(tmp_path))
    assert share_bytecode() is None
    assert os.environ[PREFIX] == str(tmp_path) and os.environ[DONT_WRITE] == "1"
