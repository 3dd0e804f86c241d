"""The public API is declared, importable and complete; the framework-free core never imports BentoML."""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import guarded_serving

PACKAGE = Path(guarded_serving.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def public_names_bound_in(path: Path) -> set[str]:
    """Every name a module binds at top level (imports, definitions, assignments), without underscore names."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in names if not name.startswith("_")}


def sources_matching(pattern: str) -> list[str]:
    regex = re.compile(pattern, re.MULTILINE)
    return [path.relative_to(PACKAGE).as_posix() for path in SOURCES if regex.search(path.read_text(encoding="utf-8"))]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("guarded_serving", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def test_all_is_sorted() -> None:
    assert guarded_serving.__all__ == sorted(guarded_serving.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(guarded_serving.__all__)) == len(guarded_serving.__all__)


@pytest.mark.parametrize("name", guarded_serving.__all__)
def test_every_name_in_all_is_importable_from_the_package(name: str) -> None:
    namespace: dict[str, object] = {}

    exec(f"from guarded_serving import {name}", namespace)

    assert namespace[name] is getattr(guarded_serving, name)


def test_every_public_name_defined_in_init_is_in_all() -> None:
    assert public_names_bound_in(PACKAGE / "__init__.py") - set(guarded_serving.__all__) == set()


def test_all_names_nothing_that_init_does_not_define() -> None:
    assert set(guarded_serving.__all__) - public_names_bound_in(PACKAGE / "__init__.py") == set()


def test_the_package_ships_py_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_every_module_but_service_imports_without_bentoml() -> None:
    modules = sorted(module_name(path) for path in SOURCES if module_name(path) != "guarded_serving.service")
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'bentoml' not in sys.modules, f'importing {name} imported bentoml'\n"
    )

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)

    assert {"guarded_serving", "guarded_serving.guard", "guarded_serving.monitor", "guarded_serving.store"} <= set(modules)
    assert completed.returncode == 0, completed.stderr


def test_monitor_and_guard_import_without_bentoml() -> None:
    script = "import sys, guarded_serving.monitor, guarded_serving.guard; assert 'bentoml' not in sys.modules"

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)

    assert completed.returncode == 0, completed.stderr


def test_only_service_imports_bentoml() -> None:
    assert sources_matching(r"^\s*(import|from)\s+bentoml\b") == ["service.py"]


def test_only_store_imports_sqlite_utils() -> None:
    assert sources_matching(r"^\s*(import|from)\s+sqlite_utils\b") == ["store.py"]
