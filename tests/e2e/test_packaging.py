"""The package as users get it: the sdist and the wheel hold every module, the wheel installed without ``-e``
imports, runs and serves, and ``bentofile.yaml`` builds a Bento that serves on its own.

Each environment here is a fresh venv filled by pip from the package index (the local wheel cache and PyPI),
never the development venv: an editable install would hide a module left out of the wheel or the Bento.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from guarded_serving import __version__
from tests.fixtures.servers import ROOT, Server, copy_checkout, free_port, serving

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BENTOFILE = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
IRIS_ROWS = {"rows": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def package_files() -> list[str]:
    """Every file of the package a fresh clone holds: its modules (drift/ too) and the py.typed marker."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "guarded_serving"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(name for name in listed if name.endswith((".py", "py.typed")))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the development venv or this checkout on any path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "BENTOML_DO_NOT_TRACK": "True", **extra}


def run(command: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result.stdout


def fresh_venv(path: Path, *packages: str | Path) -> Path:
    """A new venv at ``path`` with ``packages`` installed by pip; returns its bin folder."""
    run([sys.executable, "-m", "venv", path], cwd=path.parent)
    bin_dir = path / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "-q", *packages], cwd=path.parent)
    return bin_dir


def serve_from(bin_dir: Path, target: str, cwd: Path, env: dict[str, str]) -> Server:
    """``bentoml serve TARGET`` with the venv's own bentoml, on a free 127.0.0.1 port."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    db = cwd / "guarded.db"
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(bin_dir / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env={**env, "GUARDED_SERVING_DB": str(db)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return serving(process, f"http://127.0.0.1:{port}", db, log, target, started)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def dists(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist, as a release makes them."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, checkout], cwd=checkout)
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def installed(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (not editable) into a fresh venv: the bin folder."""
    return fresh_venv(tmp_path_factory.mktemp("wheel-venv") / "venv", dists["wheel"])


def test_the_sdist_holds_every_package_file(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}

    assert set(package_files()) <= names
    assert "guarded_serving/drift/checks.py" in names


def test_the_wheel_holds_every_package_file(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())

    assert set(package_files()) <= names


def test_the_installed_wheel_imports_from_site_packages_and_prints_its_version(installed: Path, tmp_path: Path) -> None:
    probe = "import guarded_serving, guarded_serving.drift; from guarded_serving import guard; print(guarded_serving.__file__)"

    location = Path(run([installed / "python", "-c", probe], cwd=tmp_path).strip())
    version = run([installed / "guarded-serving", "--version"], cwd=tmp_path)

    assert "site-packages" in location.parts
    assert not location.is_relative_to(ROOT)
    assert version.strip() == f"guarded-serving {__version__}"


def test_the_installed_wheel_serves_a_guarded_model(installed: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "numpy_function" / "service.py", tmp_path / "service.py")
    server = serve_from(installed, "service:score", tmp_path, clean_env())
    try:
        answer = server.client.post("/predict", json={"rows": [[0.0, 10.0, -1.0], [1.0, 12.0, -0.5]]})
        health = server.client.get("/health/model")
    finally:
        server.stop()

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 2
    assert health.status_code == 200
    assert health.json()["totals"]["rows"] == 2


# -- the Bento --------------------------------------------------------------------------------------------------


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0].lower()


def test_the_bentofile_lists_every_runtime_dependency_as_pyproject_does() -> None:
    packages = BENTOFILE["python"]["packages"]
    examples = {requirement_name(r): r for r in PYPROJECT["project"]["optional-dependencies"]["examples"]}

    assert set(PYPROJECT["project"]["dependencies"]) <= set(packages)
    extra = [p for p in packages if p not in PYPROJECT["project"]["dependencies"]]
    assert extra == [examples["scikit-learn"], examples["joblib"]]  # what the example's pickled model needs


def test_the_bentofile_includes_every_package_file() -> None:
    import pathspec  # BentoML's own matcher for `include`

    spec = pathspec.PathSpec.from_lines("gitwildmatch", BENTOFILE["include"])

    assert [name for name in package_files() if not spec.match_file(name)] == []


# The README's Bento section (the class-based example's block builds a Bento too, as a step among others)
README_BUILD = next(
    code.strip()
    for code in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    if "bentoml build" in code and code.startswith(".venv/bin/pip install uv")
)


@pytest.fixture(scope="module")
def bento(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, str]]:
    """The README's Bento command, in a fresh venv that holds only the packages the Bento lists: its first step
    (install uv) as written, the rest (train, ``bentoml build``) with no network at all.

    Returns the venv's bin folder, the Bento's tag and the environment (a BentoML home of its own)."""
    install_uv, *steps = README_BUILD.split(" && ")
    assert install_uv == ".venv/bin/pip install uv"
    bin_dir = fresh_venv(checkout / ".venv", *BENTOFILE["python"]["packages"])
    env = clean_env(BENTOML_HOME=str(tmp_path_factory.mktemp("bentoml-home")))
    run(["bash", "-c", install_uv], cwd=checkout, env=env)
    # guarded_serving is not installed in that venv: the training script imports it from the checkout.
    built = run([*offline(), "bash", "-c", " && ".join(steps) + " --output tag"], cwd=checkout, env={**env, "PYTHONPATH": "."})
    [tag] = re.findall(r"guarded-iris:\w+", built)
    return bin_dir, tag, env


def offline() -> list[str]:
    """A command prefix that runs the command in a network namespace of its own, which has no network at all.

    Root (this project's machines and CI) may make one; elsewhere the pip and HTTP clients are pointed at a
    closed loopback port instead, so that any download fails just as loudly.
    """
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is not None and probe.returncode == 0:
        return ["unshare", "-n"]
    closed = f"http://127.0.0.1:{free_port()}"
    return ["env", "PIP_NO_INDEX=1", "PIP_FIND_LINKS=", f"HTTP_PROXY={closed}", f"HTTPS_PROXY={closed}", "UV_OFFLINE=1"]


def test_the_built_bento_holds_every_package_file(bento: tuple[Path, str, dict[str, str]]) -> None:
    _, tag, env = bento
    name, version = tag.split(":")
    source = Path(env["BENTOML_HOME"]) / "bentos" / name / version / "src"

    assert [name for name in package_files() if not (source / name).is_file()] == []


def test_the_built_bento_serves_predictions_and_health(bento: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    bin_dir, tag, env = bento
    server = serve_from(bin_dir, tag, tmp_path, env)  # guarded_serving is not installed here: only the Bento has it
    try:
        answer = server.client.post("/predict", json=IRIS_ROWS)
        health = server.client.get("/health/model")
    finally:
        server.stop()

    assert answer.status_code == 200, answer.text
    assert [len(p) for p in answer.json()["predictions"]] == [3, 3]
    assert health.status_code == 200
    assert health.json()["model"]["name"] == "iris"


def test_the_built_bento_keeps_its_log_store_where_it_is_served_from(
    bento: tuple[Path, str, dict[str, str]], tmp_path: Path
) -> None:
    """No GUARDED_SERVING_DB: the README's ./guarded_serving.db is in the directory `bentoml serve` ran in (the
    shell's $PWD), where `guarded-serving report` looks; not in the Bento's own folder, which BentoML's workers
    run in (before: ~/bentoml/bentos/guarded-iris/<version>/src/guarded_serving.db, packed by `bentoml export`)."""
    bin_dir, tag, env = bento
    name, version = tag.split(":")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(bin_dir / "bentoml"), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env={**{k: v for k, v in env.items() if k != "GUARDED_SERVING_DB"}, "PWD": str(tmp_path)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = serving(process, f"http://127.0.0.1:{port}", tmp_path / "guarded_serving.db", log, tag, time.perf_counter())
    try:
        answer = server.client.post("/predict", json=IRIS_ROWS)
        server.client.get("/health/model")  # waits for the store to write what was answered
    finally:
        server.stop()

    assert answer.status_code == 200, answer.text
    source = Path(env["BENTOML_HOME"]) / "bentos" / name / version / "src"
    assert not list(source.glob("guarded_serving.db*"))
    with sqlite3.connect(tmp_path / "guarded_serving.db") as con:  # guarded_serving itself is only in the Bento
        assert con.execute("SELECT status, rows FROM requests").fetchall() == [("ok", 2)]
