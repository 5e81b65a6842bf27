"""One mypy cache per test process and mypy configuration, for the tests that run mypy on a
sample.

Each sample imports odm, pydantic and PyMongo, which take mypy most of its time. A cache made
by the first run is then read by the next ones with the same options, as a user's editor
would: mypy checks again every module whose source changed, and never caches a module that
had errors (nor one that imports such a module), so each sample is checked afresh. One per
process: pytest-xdist's workers would otherwise write one cache at the same time, which mypy
does not support. Removed when the process exits.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

_ROOT: Path | None = None


def shared_cache(*options: str) -> Path:
    """The cache directory of this process for a mypy run with ``options`` (the command-line
    flags and the text of its configuration file, which decide what mypy may reuse)."""
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="odm-mypy-cache-"))
        atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
    key = hashlib.sha256("\0".join(options).encode()).hexdigest()[:16]
    return _ROOT / key
