"""One bytecode cache, in a temporary directory, for every Python process the suite starts.

Where ``PYTHONDONTWRITEBYTECODE`` is set (these machines set it), no Python process keeps the
bytecode of what it imports, so each one compiles again, from source, every module it imports
that has no ``.pyc`` yet: odm's own (an editable install) and, in nox's virtualenvs (installed
with ``--no-compile``), pydantic's, PyMongo's and the rest. Importing odm then costs some
1.0 s in a fresh process instead of 0.35 s, and the suite starts a few hundred Python
processes (the ``odm migrate`` CLI, pytest runs of sample projects, the benchmark's tools).

So the run that starts the suite points ``PYTHONPYCACHEPREFIX`` at a directory of its own and
lets its child processes write bytecode there: the first process to import a module compiles
it, the others read it. Nothing is written into the work tree or the virtualenvs, and the
directory goes when the run ends. Where bytecode is written anyway, or a prefix is already
chosen, nothing changes.
"""

from __future__ import annotations

import os
import shutil
import tempfile

#: The environment variables Python reads for where, and whether, it keeps bytecode.
PREFIX = "PYTHONPYCACHEPREFIX"
DONT_WRITE = "PYTHONDONTWRITEBYTECODE"


def share_bytecode() -> str | None:
    """Give this process's future children one bytecode cache; return its directory, or
    ``None`` when nothing was changed (bytecode is kept already, or a prefix is set)."""
    if not os.environ.get(DONT_WRITE) or os.environ.get(PREFIX):
        return None
    directory = tempfile.mkdtemp(prefix="odm-tests-bytecode-")
    os.environ[PREFIX] = directory
    del os.environ[DONT_WRITE]
    return directory


def unshare_bytecode(directory: str) -> None:
    """Undo :func:`share_bytecode`: no prefix, ``PYTHONDONTWRITEBYTECODE=1`` again (any
    non-empty value means the same to Python), and the cache removed."""
    if os.environ.get(PREFIX) == directory:
        del os.environ[PREFIX]
        os.environ[DONT_WRITE] = "1"
    shutil.rmtree(directory, ignore_errors=True)
