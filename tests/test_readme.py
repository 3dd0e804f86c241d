"""The README is true: its set-up commands, curl lines and Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from guarded_serving.inputs.mixed import free_text_fields
from guarded_serving.tabular import columns_from_data
from tests.fixtures.servers import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCKS if lang == language]


def test_readme_starts_with_the_serve_and_test_commands() -> None:
    first_two = [code.strip() for _, code in BLOCKS[:2]]

    assert [lang for lang, _ in BLOCKS[:2]] == ["bash", "bash"]
    assert "bentoml serve examples.classifier.service:svc --host 127.0.0.1 --port 3000" in first_two[0]
    assert first_two[1].endswith("python -m tests")
    assert first_two[1] in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize("code", blocks("python"), ids=lambda code: code.strip().splitlines()[-1][:40])
def test_python_example_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_example"}

    exec(compile(code, "README.md", "exec"), namespace)

    # Each example ends in what it shows: a BentoML service, or a printed result.
    services = [name for name, value in namespace.items() if type(value).__name__ == "Service"]
    printed = capsys.readouterr().out
    assert services or printed.strip(), "the example neither builds a service nor prints anything"
    if "print(" in code and "concept" in code:
        assert printed.startswith("alert accuracy fell to 0")
    if "print(" in code and "monitor.observe(X[:10]" in code:
        assert printed.startswith("insufficient_data 1 ")
    if "brighter = " in code:  # images: drift worded in the input's own terms
        assert printed.strip() == "mean value 1.13x higher (4.88 -> 5.51 on average)"
    if "shouted" in code:  # the Text section quotes what it prints
        assert printed.startswith("3 of 8 features drifted: text.upper: share of upper-case letters 2% -> 51%; text.chars:")
        assert printed.strip()[: printed.index("(")] in README.replace("\n", " ")
    if '("text", TfidfVectorizer(), "review")' in code:  # mixed rows: the review is found to be free text
        assert free_text_fields(columns_from_data(namespace["X"])) == ("review",)
    if "TestClient(svc)" in code:
        assert printed.strip() == "200 [6.0] 422 a number 200"
    if "metrics=prometheus_client" in code:
        # prometheus_client's default registry is the process's: other tests of this worker add their models
        # to it, so the example runs as a user runs it, in a Python of its own.
        alone = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert alone.returncode == 0, alone.stderr[-2000:]
        assert alone.stdout.strip() == """['guarded_serving_rows_total{model="scorer",version=""} 50.0']"""


def test_every_file_of_the_repository_the_readme_names_exists() -> None:
    named = set(re.findall(r"\b(?:tests|bench|guarded_serving|examples)/[\w/.-]*\w\.(?:py|md|json|yaml)\b", README))
    assert len(named) > 20  # the pattern finds the README's references: a pattern gone wrong would pass vacuously
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == [], f"README.md names files that are not in the repository (moved?): {missing}"
