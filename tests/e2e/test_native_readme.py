"""The README's "Already on BentoML" section, its class-based part, is true: its service is the example's,
and its commands print what it says, in a BentoML home of their own."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.fixtures.servers import ROOT, start_server

README = (ROOT / "README.md").read_text()
SECTION = README[
    README.index("### A class-based service, guarded in place") : README.index("### Services that use `bentoml.monitor`")
]
[SERVICE] = re.findall(r"```python\n(.*?)```", SECTION, flags=re.S)
[COMMANDS] = re.findall(r"```bash\n(.*?)```", SECTION, flags=re.S)


def test_the_readme_service_is_the_example_as_it_is_tested() -> None:
    example = (ROOT / "examples" / "bentoml_native" / "service.py").read_text()
    code = example[example.index("import bentoml") :]

    assert code == SERVICE


def test_the_readme_commands_train_serve_and_answer_as_it_says(tmp_path: Path) -> None:
    train, serve, good, bad, build = COMMANDS.strip().splitlines()
    home = {"BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    env = {**os.environ, **home, "PYTHONPATH": str(ROOT)}
    assert train.startswith(".venv/bin/python ")
    trained = subprocess.run([sys.executable, *shlex.split(train)[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-3000:]
    [target] = re.findall(r"bentoml serve (\S+) --host 127.0.0.1 --port 3000$", serve)
    server = start_server(target, tmp_path, env=home)
    try:
        answers = [
            subprocess.run(shlex.split(line.replace("http://127.0.0.1:3000", server.url)), capture_output=True, text=True).stdout
            for line in (good, bad)
        ]
    finally:
        server.stop()

    assert answers[0] == "[0, 2]"
    assert '"detail": "row 0, feature \'sepal_width\': got \\"wide\\"; expected a number"' in answers[1]
    assert build == ".venv/bin/bentoml build -f examples/bentoml_native/bentofile.yaml"  # built in test_model_store.py
