"""The suite's own layout: unit tests mirror the package, servers start only in tests/e2e/, helpers live in tests/fixtures/."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.servers import BENTOML, ROOT, server_command

TESTS = ROOT / "tests"
PACKAGE = ROOT / "guarded_serving"
NOT_MIRRORS = {"e2e", "acceptance", "fixtures", "apps", "artifacts"}  # directories that do not mirror a package


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
