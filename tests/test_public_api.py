"""The public API is declared, importable and complete; the framework-free core never imports BentoML."""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import ast
import functools
import json
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


# The BentoML adapters: the guard() service, the bentoml.monitor backend, a class-based service guarded in
# place, the model store.
ADAPTERS = {"guarded_serving.service", "guarded_serving.bentoml_monitor"} | {
    module_name(path) for path in SOURCES if path.parent.name == "bento"
}


NOT_ADAPTERS = sorted(module_name(path) for path in SOURCES if module_name(path) not in ADAPTERS)


@pytest.fixture(scope="module")
def fresh_imports() -> dict[str, object]:
    """What a fresh Python loads: the public entry points first (is psycopg loaded?), then every module but
    the BentoML adapters one by one (the first that loads bentoml). One interpreter for both questions: each
    start costs ~1.7 s of importing numpy, scipy and the package."""
    script = (
        "import importlib, json, sys\n"
        "import guarded_serving, guarded_serving.store, guarded_serving.cli\n"
        "psycopg = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool'))\n"
        "bentoml_by = None\n"
        f"for name in {NOT_ADAPTERS!r}:\n"
        "    importlib.import_module(name)\n"
        "    if bentoml_by is None and 'bentoml' in sys.modules:\n"
        "        bentoml_by = name\n"
        "print(json.dumps({'psycopg': psycopg, 'bentoml_by': bentoml_by}))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_every_module_but_the_bentoml_adapters_imports_without_bentoml(fresh_imports: dict[str, object]) -> None:
    assert {"guarded_serving", "guarded_serving.guard", "guarded_serving.monitor", "guarded_serving.store"} <= set(NOT_ADAPTERS)
    assert fresh_imports["bentoml_by"] is None


def test_only_the_bentoml_adapters_import_bentoml() -> None:
    assert sources_matching(r"^\s*(import|from)\s+(bentoml|_bentoml_\w+)\b") == [
        "bento/api.py",
        "bento/modelstore.py",
        "bento/routes.py",
        "bento/typed.py",
        "bentoml_monitor.py",
        "service.py",
    ]


@pytest.mark.parametrize("library", ["sqlite3", "sqlite_utils"])
def test_only_the_sqlite_backend_imports_sqlite(library: str) -> None:
    importers = sources_matching(rf"^\s*(import|from)\s+{library}\b")

    assert importers
    assert [path for path in importers if not path.startswith("store/sqlite/")] == []


@pytest.mark.parametrize("library", ["psycopg", "psycopg_pool"])
def test_only_the_postgresql_backend_imports_psycopg(library: str) -> None:
    importers = sources_matching(rf"^\s*(import|from)\s+{library}\b")

    assert importers
    assert [path for path in importers if not path.startswith("store/postgres/")] == []


def test_the_package_imports_without_psycopg_until_a_postgresql_url_is_used(fresh_imports: dict[str, object]) -> None:
    assert fresh_imports["psycopg"] == []


MODULES = {module_name(path): path for path in SOURCES}


def imported_modules(path: Path) -> set[str]:
    """The package's modules that a module imports at its top level, relative imports resolved."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            stem = ".".join(part for part in (base, node.module or "") if part)
            found.update(f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in MODULES else stem for alias in node.names)
    return found & set(MODULES)


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle in an import graph (module -> modules it imports), as the modules along it, or []."""
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> list[str]:
        if name in trail:
            return [*trail[trail.index(name) :], name]
        if name in done:
            return []
        for target in sorted(graph.get(name, ())):
            if cycle := visit(target, [*trail, name]):
                return cycle
        done.add(name)
        return []

    return next((cycle for name in sorted(graph) if (cycle := visit(name, []))), [])


def test_the_store_package_has_no_import_cycle() -> None:
    graph = {name: imported_modules(path) for name, path in MODULES.items() if name.startswith("guarded_serving.store")}

    assert import_cycle(graph) == []


def test_a_module_that_imports_its_own_package_back_is_a_cycle() -> None:
    graph = {"pkg": {"pkg.reader"}, "pkg.reader": {"pkg.records", "pkg"}, "pkg.records": set()}

    assert import_cycle(graph) == ["pkg", "pkg.reader", "pkg"]


def test_relative_imports_resolve_to_the_modules_they_name() -> None:
    imported = imported_modules(PACKAGE / "store" / "readonly.py")

    assert {"guarded_serving.errors", "guarded_serving.store.contract", "guarded_serving.drift.window"} <= imported


# -- the layout: dependencies point one way ------------------------------------------------------------------------

# The edges: the BentoML adapter, the CLI, the renderers, the HTTP answers that use them and the test client. Everything else is
# the core, which a batch job or another web framework can use without any of them.
EDGES = {
    "guarded_serving",
    "guarded_serving.__main__",
    "guarded_serving.service",
    *ADAPTERS,
    "guarded_serving.cli",
    "guarded_serving.terminal",
    "guarded_serving.dashboard",
    "guarded_serving.metrics",
    "guarded_serving.endpoints",
    "guarded_serving.guard",
    "guarded_serving.testing",  # the users' test client: the request path without BentoML, the dashboard included
}
RENDERERS = {"guarded_serving.dashboard", "guarded_serving.terminal", "guarded_serving.metrics"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@functools.cache  # the core test walks the graph once per module: parse each source once, not ~100 times
def imports_of(module: str, *, at_import_time: bool) -> frozenset[str]:
    """The package's modules (and bentoml) that ``module`` imports: all of them, or only those its import runs
    (module level, outside ``if TYPE_CHECKING:``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt] | list[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base]) if base else ".".join(parts)
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and at_import_time:
                continue
            visit(list(ast.iter_child_nodes(node)))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return frozenset({m for m in found if m in MODULES and m != module} | {m for m in found if m.split(".")[0] == "bentoml"})


def test_no_module_imports_itself_back_through_others() -> None:
    graph = {module: imports_of(module, at_import_time=False) - {"guarded_serving"} for module in MODULES}
    cycles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, trail = stack.pop()
            for target in graph.get(node, ()):
                if target == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif target not in seen and target in graph:
                    seen.add(target)
                    stack.append((target, (*trail, target)))

    assert cycles == []


@pytest.mark.parametrize("module", sorted(set(MODULES) - EDGES))
def test_the_core_loads_no_renderer_no_cli_and_no_bentoml(module: str) -> None:
    loaded, queue = set(), [module]
    while queue:
        for target in imports_of(queue.pop(), at_import_time=True) - {"guarded_serving"}:
            if target not in loaded:
                loaded.add(target)
                if target in MODULES:
                    queue.append(target)

    assert loaded & (RENDERERS | {"guarded_serving.cli", "guarded_serving.service", "guarded_serving.endpoints"}) == set()
    assert not any(m.split(".")[0] == "bentoml" for m in loaded)


SIZED = SOURCES


@pytest.mark.parametrize("path", SIZED, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_is_longer_than_about_400_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 430


@pytest.mark.parametrize("path", SIZED, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_class_is_longer_than_about_250_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.end_lineno}

    assert {name: lines for name, lines in long.items() if lines > 260} == {}


def test_only_envvars_reads_environment_variables() -> None:
    assert sources_matching(r"os\.environ|os\.getenv") == ["envvars.py"]
