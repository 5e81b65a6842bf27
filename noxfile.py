"""nox sessions. ``tests``: the whole suite on every Python that ``requires-python`` admits.

The README's ``.venv`` runs the suite on 3.11 (``.venv/bin/pytest``); ``.ci/run`` then runs
``.venv/bin/nox -s tests-3.12 tests-3.13`` for the other interpreters. Each session is a fresh
virtualenv with ``.[dev]`` installed, as a user's would be, and runs the same ``pytest``, with
one difference on the interpreters other than 3.11: the checks whose outcome does not depend
on the interpreter that runs them are left to the 3.11 run, so that the three runs fit in CI's
time (see ``INTERPRETER_INDEPENDENT``). Give pytest arguments after ``--`` to run anything else.

Interpreters are looked up as ``python3.X`` on ``PATH``; where a pyenv shim stands there
without that version enabled (``pyenv: python3.12: command not found``), the pyenv install
of that version is put on ``PATH`` instead, so that ``nox`` works on these machines without
``pyenv global`` being changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

#: Every minor version that ``requires-python = ">=3.11"`` admits and the classifiers list.
PYTHONS = ["3.11", "3.12", "3.13"]

#: The Python that the README's ``.venv`` (and so the first, complete CI run) uses.
MAIN_PYTHON = "3.11"

#: Left out of the runs on the other interpreters, because the 3.11 run already gives their
#: answer: ruff and mypy check the source against ``target-version``/``python_version`` 3.11
#: whatever runs them; the typing tests run mypy and pyright on samples (static analysis, the
#: same verdict whichever interpreter starts them); and the wheel is pure Python
#: (``py3-none-any``), built and installed the same way by every interpreter. Together they
#: are the slowest tests, and leaving them out keeps the three runs within CI's time.
INTERPRETER_INDEPENDENT = [
    "tests/unit/test_static.py",
    "tests/unit/test_typed_constructors.py",
    "tests/unit/test_mypy_plugin.py",
    "tests/install",
]

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = False


def _runs(executable: str) -> bool:
    """Whether ``executable --version`` works (a bare pyenv shim fails for disabled versions)."""
    try:
        return subprocess.run(
            [executable, "--version"], capture_output=True, check=False, timeout=30
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _pyenv_bin(version: str) -> str | None:
    """The ``bin`` directory of pyenv's newest install of ``version`` (``3.12`` -> 3.12.x)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    installs = sorted(
        Path(root, "versions").glob(f"{version}.*"),
        key=lambda p: [int(part) for part in p.name.split(".") if part.isdigit()],
    )
    for install in reversed(installs):
        if (install / "bin" / f"python{version}").exists():
            return str(install / "bin")
    return None


def _expose_interpreters() -> None:
    """Put each supported interpreter that ``PATH`` cannot run ahead on ``PATH`` (see above)."""
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found and _runs(found):
            continue
        directory = _pyenv_bin(version)
        if directory is not None:
            os.environ["PATH"] = directory + os.pathsep + os.environ.get("PATH", "")


_expose_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (the README's ``pytest``) on one interpreter; extra args go to pytest."""
    session.install("-e", ".[dev]")
    args = list(session.posargs)
    if not args and session.python != MAIN_PYTHON:
        args = [f"--ignore={path}" for path in INTERPRETER_INDEPENDENT]
    session.run("pytest", *args)
