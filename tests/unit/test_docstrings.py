"""Every public module, class, function and method of odm and odm.contrib has a docstring."""

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import odm
import odm.contrib


def public_modules() -> list[ModuleType]:
    names = ["odm"]
    for package in (odm, odm.contrib):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):  # running it would run the CLI
                names.append(info.name)
    return [importlib.import_module(name) for name in names]


def undocumented(module: ModuleType) -> list[str]:
    missing = [] if module.__doc__ else [module.__name__]
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(f"{module.__name__}.{name}")
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") or not inspect.isfunction(value):
                    continue
                if value.__name__ != "<lambda>" and not value.__doc__:
                    missing.append(f"{module.__name__}.{name}.{member}")
    return missing


def test_every_public_name_has_a_docstring() -> None:
    missing = [name for module in public_modules() for name in undocumented(module)]
    assert missing == []


def test_the_package_ships_its_type_marker() -> None:
    assert (Path(odm.__file__).parent / "py.typed").exists()
