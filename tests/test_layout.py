"""The suite's own layout: unit tests mirror the package, servers start only in tests/e2e/, helpers live in tests/fixtures/,
fixtures are named for the data they hold."""

from __future__ import annotations

import ast
import collections
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.servers import BENTOML, ROOT, server_command

TESTS = ROOT / "tests"
PACKAGE = ROOT / "guarded_serving"
NOT_MIRRORS = {"e2e", "acceptance", "fixtures", "apps", "artifacts"}  # directories that do not mirror a package
# Fixture names that say the part the data plays, not what it is: five modules once had a `training` fixture, nine a
# `reference`, each over other rows, shapes and seeds. Name a fixture for its data (gaussian_300x4,
# logistic_reference_500) and build it from tests/fixtures/data.py.
ROLE_NAMES = frozenset({"training", "training_data", "training_csv", "reference"})
# The types a data fixture returns (a bare name, or inside Iterator[...]): two modules may not give one such name to
# two data sets.
DATA_TYPES = frozenset(
    {"ndarray", "DataFrame", "Reference", "Baseline", "JointBaseline", "Calibration", "Performance", "ConfidenceProfile"}
)


@pytest.mark.parametrize(
    ("command", "server"),
    [
        ([BENTOML, "serve", "tests.apps.toy:svc", "--port", "3000"], "bentoml serve"),
        ([sys.executable, "-m", "bentoml", "serve", "app:svc"], "bentoml serve"),
        (["bash", "-c", "cd examples && bentoml serve classifier.service:svc"], "bentoml serve"),
        ([str(Path(sys.executable).parent / "guarded-serving"), "serve", "app.py"], "guarded-serving serve"),
        (["/usr/lib/postgresql/16/bin/pg_ctl", "start", "-D", "/tmp/pg"], "pg_ctl"),
        (["prometheus", "--config.file=p.yml"], "prometheus"),
        ("chromium --headless --screenshot", "chromium"),
        ([BENTOML, "build"], None),
        ([str(Path(sys.executable).parent / "guarded-serving"), "report", "--db", "serve.db"], None),
        (["git", "ls-files"], None),
        ([sys.executable, "-c", "print('serve')"], None),
        ([sys.executable, "-c", "# as if the postgres extra were not installed"], None),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_command_that_starts_a_server_is_recognised(command: list[str] | str, server: str | None) -> None:
    assert server_command(command) == server


def test_a_test_outside_e2e_that_starts_bentoml_serve_fails_before_the_process_starts(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"starts bentoml serve but is not marked e2e: move it to tests/e2e/"):
        subprocess.Popen([BENTOML, "serve", "tests.apps.toy:svc", "--port", "1"], cwd=tmp_path)


def test_a_test_outside_e2e_that_listens_on_a_port_fails() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(pytest.fail.Exception, match=r"starts a server listening on \('127\.0\.0\.1', \d+\)"):
            s.listen()


def test_a_test_outside_e2e_may_run_other_programs() -> None:
    done = subprocess.run([sys.executable, "-c", "print('serve')"], capture_output=True, text=True, check=True)

    assert done.stdout == "serve\n"


def test_this_test_is_not_marked_e2e_or_acceptance(request: pytest.FixtureRequest) -> None:
    assert [m.name for m in request.node.iter_markers() if m.name in {"e2e", "acceptance"}] == []


def test_every_test_directory_mirrors_a_package_or_is_e2e_acceptance_or_fixtures() -> None:
    directories = {p.parent.relative_to(TESTS) for p in TESTS.rglob("test_*.py")} - {Path(".")}
    strays = [str(d) for d in directories if d.parts[0] not in NOT_MIRRORS and not (PACKAGE / d / "__init__.py").exists()]

    assert strays == []


def imports_of(path: Path) -> list[str]:
    """The modules ``path`` imports from, relative ones written with their leading dots."""
    tree = ast.parse(path.read_text())
    return ["." * node.level + (node.module or "") for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]


def test_no_test_module_imports_from_a_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in TESTS.rglob("*.py")
        if (found := [name for name in imports_of(path) if name.split(".")[-1] == "conftest"])
    }

    assert offenders == {}


def test_every_test_directory_is_a_package() -> None:
    """Test modules of the same name in two directories (tests/test_dashboard.py, tests/e2e/test_dashboard.py) need packages."""
    missing = sorted(
        str(d.relative_to(TESTS)) for d in {p.parent for p in TESTS.rglob("test_*.py")} if not (d / "__init__.py").exists()
    )

    assert missing == []


def test_blas_runs_one_thread_in_the_tests() -> None:
    """tests/conftest.py sets it before numpy loads; a plugin importing numpy first would undo it silently."""
    import numpy as np  # noqa: F401  (loads the BLAS library threadpoolctl reports on)
    from threadpoolctl import threadpool_info

    assert {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {
        "openblas": 1
    }


def fixtures_in(path: Path) -> list[tuple[str, set[str]]]:
    """The fixtures ``path`` defines: each one's name and the names in its return annotation."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(is_fixture_decorator, node.decorator_list)):
            returns = {
                n.id if isinstance(n, ast.Name) else n.attr
                for n in ast.walk(node.returns or ast.Pass())
                if isinstance(n, ast.Name | ast.Attribute)
            }
            found.append((node.name, returns))
    return found


def is_fixture_decorator(decorator: ast.expr) -> bool:
    """``@pytest.fixture``, ``@pytest.fixture(...)``, ``@fixture``, ``@fixture(...)``."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return ast.unparse(target) in {"pytest.fixture", "fixture"}


def role_named_fixtures(root: Path) -> list[str]:
    """``module::name`` of every fixture under ``root`` named for its role (ROLE_NAMES) rather than its data."""
    return sorted(
        f"{path.relative_to(root)}::{name}" for path in root.rglob("*.py") for name, _ in fixtures_in(path) if name in ROLE_NAMES
    )


def data_fixtures_defined_twice(root: Path) -> dict[str, list[str]]:
    """Data fixture names (returning one of DATA_TYPES) defined in more than one module under ``root``, with the modules."""
    modules: dict[str, list[str]] = collections.defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        for name, returns in fixtures_in(path):
            if returns & DATA_TYPES:
                modules[name].append(str(path.relative_to(root)))
    return {name: found for name, found in modules.items() if len(found) > 1}


def test_no_fixture_is_named_for_its_role_instead_of_its_data() -> None:
    assert role_named_fixtures(TESTS) == []


def test_no_two_modules_define_a_data_fixture_of_the_same_name() -> None:
    """A reader who meets ``gaussian_300x4`` in a signature finds one definition, whichever module it is in."""
    assert data_fixtures_defined_twice(TESTS) == {}


SEEDED_TRAINING = """
import numpy as np
import pytest


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    return np.random.default_rng({seed}).normal(size=({rows}, 3))
"""


def test_the_fixture_rules_catch_a_training_fixture_defined_twice_with_other_data(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(SEEDED_TRAINING.format(seed=1, rows=300))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_b.py").write_text(SEEDED_TRAINING.format(seed=3, rows=500))
    (tmp_path / "test_c.py").write_text("import pytest\n\n@pytest.fixture\ndef reference(): ...\n\ndef training(): ...\n")

    assert role_named_fixtures(tmp_path) == ["sub/test_b.py::training", "test_a.py::training", "test_c.py::reference"]
    assert data_fixtures_defined_twice(tmp_path) == {"training": ["sub/test_b.py", "test_a.py"]}
