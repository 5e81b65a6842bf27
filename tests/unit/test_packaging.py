"""Every Python package in odm/ and contrib/ is listed in pyproject.toml, so wheels carry it;
every supported Python is classified, tested by nox and run in CI."""

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for top, dotted in (("odm", "odm"), ("contrib", "odm.contrib")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((dotted, *rel)))
    assert found == listed


def _noxfile_constant(name: str) -> object:
    """A literal assigned at the top of noxfile.py (read, not imported: importing it puts
    interpreters on this process's PATH)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        target = getattr(node, "target", None) or next(iter(getattr(node, "targets", [])), None)
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return ast.literal_eval(node.value)
    raise LookupError(name)


def test_every_supported_python_is_classified_tested_and_run_in_ci() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    classified = {
        c.rsplit(" :: ", 1)[1]
        for c in config["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    pythons = _noxfile_constant("PYTHONS")
    assert isinstance(pythons, list)
    assert classified == set(pythons)
    oldest = min(pythons, key=lambda v: tuple(map(int, v.split("."))))
    assert config["project"]["requires-python"] == f">={oldest}"
    # CI: the README's .venv (python3, the main Python) runs the suite, nox the others.
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/pytest\n" in ci
    main = _noxfile_constant("MAIN_PYTHON")
    for version in pythons:
        if version != main:
            # Run (`-R`: in the virtualenv made beforehand by `--install-only`), not only made.
            assert re.search(rf"nox (?:-R )?-s tests-{re.escape(version)}\s", ci), version
