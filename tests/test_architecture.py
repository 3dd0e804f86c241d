"""The architecture the README draws: the core imports no edge even lazily, and a name means one thing.

tests/test_public_api.py checks the import graph at import time (no cycle, no bentoml in the core); these
tests add the imports made inside functions, and the names the package defines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.test_public_api import EDGES, MODULES, PACKAGE, RENDERERS, imports_of

# What only the edges may import: the renderers (HTML, SVG, terminal text, Prometheus), the CLI, the BentoML
# adapter and the HTTP answers that render the dashboard, and the users' test client.
EDGE_ONLY = RENDERERS | {
    "guarded_serving.charts",
    "guarded_serving.cli",
    "guarded_serving.service",
    "guarded_serving.endpoints",
    "guarded_serving.testing",
}
CORE = sorted(set(MODULES) - EDGES - EDGE_ONLY)
# The one lazy edge the core keeps: Monitor(metrics=prometheus_client) loads the Prometheus exporter when, and
# only when, it is asked for (a public keyword); nothing else in the core reaches an edge, even in a function.
ASKED_FOR = {("guarded_serving.monitor.core", "guarded_serving.metrics")}


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_edge_and_no_bentoml_even_inside_a_function(module: str) -> None:
    imported = imports_of(module, at_import_time=False)
    edges = {m for m in imported if m in EDGE_ONLY or m.split(".")[0] == "bentoml"} - {t for s, t in ASKED_FOR if s == module}

    assert edges == set()


def test_the_lazy_edge_the_core_keeps_is_still_there() -> None:
    """So that ASKED_FOR lists nothing that has gone (a stale allowance would hide a new import)."""
    assert all(target in imports_of(source, at_import_time=False) for source, target in ASKED_FOR)


def definitions() -> dict[str, list[str]]:
    """Every public top-level class and function of the package: its name -> the modules defining it."""
    defined: dict[str, list[str]] = defaultdict(list)
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef) and not node.name.startswith("_"):
                defined[node.name].append(name)
    return defined


def backend_role(module: str) -> str | None:
    """``writer`` for guarded_serving.store.sqlite.writer and ...postgres.writer: one role, one module per backend."""
    parts = module.split(".")
    return (
        ".".join(parts[3:]) or "package"
        if parts[:2] == ["guarded_serving", "store"] and parts[2:3] in (["sqlite"], ["postgres"])
        else None
    )


def test_a_public_name_is_defined_once_or_once_per_store_backend() -> None:
    """Two things do not share a name (the issue found two Columns, two Table, two Status, two parse_since); the
    store backends implement one contract, so each has its own Writer, Retention, create_schema ... in the same role."""
    shared = {}
    for name, modules in definitions().items():
        backends = [m for m in modules if backend_role(m) is not None]
        others = [m for m in modules if backend_role(m) is None and m != "guarded_serving.store.backends"]
        roles = {backend_role(m) for m in backends}
        if len(modules) > 1 and (others or len(roles) > 1 or len(backends) != len({m.split(".")[2] for m in backends})):
            shared[name] = modules

    assert shared == {}


@pytest.mark.parametrize("name", ["Columns", "Table", "Status", "parse_since"])
def test_the_names_that_collided_are_defined_once(name: str) -> None:
    assert len(definitions()[name]) == 1


def test_one_module_per_name_outside_the_store_backends() -> None:
    """One ``checks`` module, one ``options`` for the service ... (the store backends mirror each other)."""
    names: dict[str, list[str]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py" and path.parent.name not in ("sqlite", "postgres"):
            names[path.stem].append(path.relative_to(PACKAGE).as_posix())

    assert {stem: paths for stem, paths in names.items() if len(paths) > 1} == {"options": ["options.py", "store/options.py"]}


def test_the_readme_architecture_names_every_top_level_module() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    modules = sorted(p.name if p.is_file() else f"{p.name}/" for p in PACKAGE.iterdir() if _is_module(p))

    assert [m for m in modules if m not in section] == []


def _is_module(path: Path) -> bool:
    return (path.suffix == ".py" and not path.name.startswith("__")) or (path / "__init__.py").exists()
