"""The reference kept with a model in BentoML's model store (guarded_serving.bento.save_reference): read back by
tag, used by ``guard(model=...)``, and shipped by ``bentoml build`` with the Bento, which serves /health/model
from a BentoML home that has never seen the model.

Each BentoML home is a temporary folder; BentoML reads ``BENTOML_HOME`` when it is imported, so the model store
is used in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.e2e.test_packaging import offline
from tests.fixtures.servers import BENTOML, ROOT, start_server
from tests.fixtures.waiting import wait_for

SAVE_AND_LOAD = """
import bentoml, json, numpy as np
from guarded_serving.bento import load_reference, reference_path, save_reference
from guarded_serving.errors import ConfigurationError

X = np.random.default_rng(0).normal(size=(200, 3))
with bentoml.models.create("summer"):
    pass
save_reference("summer:latest", X, feature_names=["a", "b", "c"])  # by tag, once in the store
with bentoml.models.create("made") as made:  # not in the store until the block ends
    save_reference(made, X[:50], feature_names=["x", "y", "z"])
with bentoml.models.create("bare"):
    pass
problems = {}
for tag in ("bare:latest", "nowhere:latest"):
    try:
        load_reference(tag)
    except ConfigurationError as exc:
        problems[tag] = str(exc)
summer, made = load_reference("summer:latest"), load_reference("made:latest")
print(json.dumps({
    "summer": [summer.feature_names, summer.rows, summer.environment.packages.get("numpy")],
    "made": [made.feature_names, made.rows],
    "file": reference_path("summer:latest").name,
    "problems": problems,
}))
"""


def in_home(home: Path, script: str, cwd: Path = ROOT) -> str:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_reference_saved_with_a_model_is_found_by_its_tag_with_the_saving_environment(tmp_path: Path) -> None:
    found = json.loads(in_home(tmp_path / "home", SAVE_AND_LOAD))

    assert found["summer"] == [["a", "b", "c"], 200, __import__("numpy").__version__]
    assert found["made"] == [["x", "y", "z"], 50]
    assert found["file"] == "guarded_serving_reference.json"
    assert found["problems"] == {
        "bare:latest": (
            "model: expected a model saved with its reference (guarded_serving.bento.save_reference), got 'bare:latest'"
        ),
        "nowhere:latest": (
            "model: expected the tag of a model in BentoML's model store (bentoml models list), got 'nowhere:latest'"
        ),
    }


def test_guard_takes_a_model_tag_for_its_reference(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import bentoml
        from guarded_serving import guard
        from tests.apps.iris_model import save
        tag = save()
        svc = guard(bentoml.sklearn.load_model(tag).predict, model=tag, name="iris", db=":memory:")
        print(svc.name, svc.apis["predict"].route)
        """
    )
    assert in_home(tmp_path / "home", script).split() == ["iris", "/predict"]


def test_guard_takes_a_reference_or_a_model_not_both() -> None:
    from guarded_serving import ConfigurationError, guard

    expected = r"^model: expected either reference= or model= \(a BentoML model tag\), not both"
    with pytest.raises(ConfigurationError, match=expected):
        guard(sum, reference=[[1.0]], model="iris:latest", name="both")


@pytest.fixture(scope="module")
def exported_bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The example trained in one BentoML home, built there with no network, and exported to a file."""
    home = tmp_path_factory.mktemp("build-home")
    in_home(home, "from examples.bentoml_native.train import main; main()")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    built = subprocess.run(
        [*offline(), BENTOML, "build", "-f", "examples/bentoml_native/bentofile.yaml", "--output", "tag"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    tag = built.stdout.strip().rsplit("__tag__:", 1)[-1].strip()
    archive = tmp_path_factory.mktemp("export") / "iris.bento"
    exported = subprocess.run([BENTOML, "export", tag, str(archive)], env=env, capture_output=True, text=True, check=False)
    assert exported.returncode == 0, exported.stderr[-3000:]
    return archive, tag


def test_the_exported_bento_holds_the_reference_beside_its_model(exported_bento: tuple[Path, str]) -> None:
    archive, _ = exported_bento
    with tarfile.open(archive) as bento:
        names = bento.getnames()

    assert any(n.startswith("./models/iris_classifier/") and n.endswith("/guarded_serving_reference.json") for n in names)


def test_the_bento_imported_into_a_fresh_home_serves_health_from_the_shipped_reference(
    exported_bento: tuple[Path, str], tmp_path: Path
) -> None:
    archive, tag = exported_bento
    home = tmp_path / "fresh-home"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    imported = subprocess.run([BENTOML, "import", str(archive)], env=env, capture_output=True, text=True, check=False)
    assert imported.returncode == 0, imported.stderr[-3000:]
    server = start_server(tag, tmp_path, cwd=tmp_path, env={"BENTOML_HOME": str(home)})
    try:
        answer = server.client.post("/classify", json={"data": [[5.1, 3.5, 1.4, 0.2]]})
        assert wait_for(lambda: server.client.get("/health/model").json()["totals"]["requests"] == 1)
        report = server.client.get("/health/model").json()
    finally:
        server.stop()

    assert (answer.status_code, answer.json()) == (200, [0])
    assert report["model"]["name"] == "irisclassifier.classify"
    assert report["checks"]["data_drift"]["baseline"] == {"source": "reference rows", "rows": 45, "since": None}
