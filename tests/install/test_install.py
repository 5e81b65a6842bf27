"""The distribution as users get it: ``python -m build``, then a clean virtualenv.

Slower than the rest (a build in an isolated environment, two virtualenvs), still part of the
suite. They check issue #23's packaging promises:

- the sdist and the wheel carry ``odm.contrib``, ``py.typed`` and the demo's migrations, and
  the wheel (built from the sdist, as ``python -m build`` does) installs into a clean venv;
- mypy and pyright resolve ``odm`` and ``odm.contrib.*`` in a user project outside the source
  tree, both against that wheel and against the README's editable install (``pip install -e``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: Files that must be in both the sdist and the wheel (paths inside the package tree).
REQUIRED = (
    "odm/__init__.py",
    "odm/py.typed",
    "odm/contrib/__init__.py",
    "odm/contrib/pytest/__init__.py",
    "odm/contrib/aiohttp/__init__.py",
    "odm/demo/shop/migrations/0001_initial.py",
)

#: A user's module: two deliberate type errors that only a checker that resolved odm (and so
#: knows ``count()`` returns ``int`` and what ``CommandLog`` is) can report.
USER_APP = '''\
from odm import Document
from odm.contrib.pytest import CommandLog


class Customer(Document):
    name: str


async def main() -> None:
    count: str = await Customer.objects.count()
    log: int = CommandLog()
'''


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a command, fail the test with its output unless it succeeds; return stdout."""
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def make_venv(path: Path) -> Path:
    """A clean virtualenv (no system site-packages) on this interpreter; returns its python."""
    run(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``python -m build``: the sdist, and the wheel built from it (isolated build env)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def wheel_python(dist: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the wheel and its dependencies installed (pip, as a user would)."""
    python = make_venv(tmp_path_factory.mktemp("wheel") / "venv")
    run(python, "-m", "pip", "install", "-q", dist[1])
    return python


@pytest.fixture(scope="module")
def editable_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the README's editable install of this checkout.

    Its dependencies come from this test run's own environment through a ``.pth`` line (a
    plain path: the editable hook of this environment's own odm is not run from there), so
    that the test does not download them again; how the install exposes odm is what matters.
    """
    python = make_venv(tmp_path_factory.mktemp("editable") / "venv")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                    ).strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A user's project outside the source tree: one module, no configuration."""
    project = tmp_path / "userproject"
    project.mkdir()
    (project / "app.py").write_text(USER_APP)
    assert ROOT not in project.parents
    return project


def test_distribution_name_and_files(dist: tuple[Path, Path]) -> None:
    sdist, wheel = dist
    # The import name is odm; the distribution is odm-mongo (odm on the index is another project).
    assert wheel.name.startswith("odm_mongo-") and sdist.name.startswith("odm_mongo-")
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        in_sdist = {name.removeprefix(f"{top}/") for name in tf.getnames()}
    for name in REQUIRED:
        assert name in in_wheel, f"{name} missing from {wheel.name}"
        assert name in in_sdist, f"{name} missing from {sdist.name}"
    metadata = next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(metadata).decode()
    assert "Name: odm-mongo" in text
    assert "License-Expression: MIT" in text
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in text


def test_wheel_installs_into_a_clean_venv(wheel_python: Path, tmp_path: Path) -> None:
    # cwd is an empty directory, so that the checkout cannot be imported instead.
    out = run(wheel_python, "-c", (
        "import pathlib, odm, odm.contrib, odm.migrations;"
        "here = pathlib.Path(odm.__file__).parent;"
        "print(here);"
        "print((here / 'py.typed').is_file());"
        "print((here / 'demo/shop/migrations/0001_initial.py').is_file())"
    ), cwd=tmp_path)
    location, typed, migration = out.split()
    assert Path(location).is_relative_to(wheel_python.parents[1]), "odm came from elsewhere"
    assert (typed, migration) == ("True", "True")
    assert "migrate" in run(wheel_python.parent / "odm", "--help", cwd=tmp_path)


def check_mypy(project: Path, python: Path) -> None:
    """mypy --strict, run as a user would next to that venv, resolves odm and odm.contrib."""
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--python-executable", str(python),
         "--cache-dir", str(project / ".mypy_cache"), "app.py"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
    )
    out = result.stdout + result.stderr
    assert "import-not-found" not in out and "Cannot find implementation" not in out, out
    assert 'expression has type "int", variable has type "str"' in out, out
    assert 'expression has type "CommandLog", variable has type "int"' in out, out
    assert "Found 2 errors in 1 file" in out, out


def check_pyright(project: Path, python: Path) -> None:
    """pyright resolves odm and odm.contrib through the venv's site-packages too."""
    pyright = shutil.which("pyright", path=str(BIN))
    assert pyright, "pyright is not installed: pip install -e '.[dev]'"
    result = subprocess.run(
        [pyright, "--pythonpath", str(python), "app.py"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
    )
    out = result.stdout + result.stderr
    assert "reportMissingImports" not in out and "could not be resolved" not in out, out
    assert '"int" is not assignable to declared type "str"' in out, out
    assert '"CommandLog" is not assignable to declared type "int"' in out, out
    assert "2 errors" in out, out


def test_mypy_resolves_odm_from_the_wheel(user_project: Path, wheel_python: Path) -> None:
    check_mypy(user_project, wheel_python)


def test_mypy_resolves_odm_from_the_editable_install(
    user_project: Path, editable_python: Path
) -> None:
    check_mypy(user_project, editable_python)


def test_pyright_resolves_odm_from_the_wheel(user_project: Path, wheel_python: Path) -> None:
    check_pyright(user_project, wheel_python)


def test_pyright_resolves_odm_from_the_editable_install(
    user_project: Path, editable_python: Path
) -> None:
    check_pyright(user_project, editable_python)
