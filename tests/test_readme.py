"""The README is true: its set-up commands, curl lines and Python examples run as written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from guarded_serving import Reference

from .conftest import ROOT, copy_checkout, free_port

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
    if "metrics=prometheus_client" in code:
        assert printed.strip() == """['guarded_serving_rows_total{model="scorer"} 50.0']"""


@pytest.fixture(scope="module")
def fresh_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files (tracked or not ignored) copied into an empty folder, without any venv."""
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="module")
def readme_service(fresh_checkout: Path) -> Iterator[tuple[Path, int]]:
    """README command 1, run as written on the fresh copy (only the port changed to a free one)."""
    port = free_port()
    command = blocks("bash")[0].strip().replace("--port 3000", f"--port {port}")
    log = (fresh_checkout / "command1.log").open("wb")
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=fresh_checkout, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, (fresh_checkout / "command1.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("README command 1 did not serve within 10 minutes")
        yield fresh_checkout, port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        log.close()


def text_block(starting: str) -> str:
    """The README's ```text block that starts with ``starting``: what a command prints."""
    [block] = [code for code in blocks("text") if code.startswith(starting)]
    return block


def quoted_after(words: str) -> str:
    """The `code` the README quotes right after ``words`` (which may span a line break)."""
    found = re.search(re.escape(words).replace(r"\ ", r"\s+") + r"\s+`([^`]+)`", README)
    assert found is not None, f"the README no longer quotes anything after {words!r}"
    return found.group(1)


def in_order(shown: list[str], printed: list[str]) -> list[str]:
    """The lines of ``shown`` not found in ``printed`` in the same order (``...`` stands for lines left out)."""
    remaining = iter(printed)
    return [line for line in shown if line != "..." and line not in remaining]


def test_readme_commands_run_in_order_print_what_it_shows(readme_service: tuple[Path, int]) -> None:
    """The curl lines, then the command-line examples, each line run as written and in order against the served
    example (only the port changed), as a user following the README would: what they print is what it shows."""
    checkout, port = readme_service
    [commands] = [code for code in blocks("bash") if "guarded-serving report" in code]
    lines = [line for line in (blocks("bash")[2] + commands).strip().splitlines() if line]
    outputs = []
    for line in lines:
        command = line.replace("127.0.0.1:3000", f"127.0.0.1:{port}")
        result = subprocess.run(["bash", "-c", command], cwd=checkout, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        outputs.append(result.stdout)

    predict, bad, health, table, traffic, profile, report, as_json, tail = outputs
    answer, shown = json.loads(predict), json.loads(text_block('{"predictions"'))
    assert list(answer) == list(shown) == ["predictions", "request_id"]
    np.testing.assert_allclose(answer["predictions"], shown["predictions"], rtol=1e-9, atol=0)  # as printed, not rounded
    assert re.fullmatch(r"[0-9a-f]{32}", answer["request_id"])
    assert quoted_after("The second is a `422` whose body says") in json.loads(bad)["detail"]
    assert json.loads(health)["totals"] == {"requests": 2, "rows": 2, "rejected": 1, "errors": 0}
    logged = [line for line in table.splitlines()[2:] if line.strip()]  # no race: the report waited for the store
    statuses = [next(word for word in line.split() if word in ("ok", "rejected", "error")) for line in logged]
    assert statuses == ["ok", "rejected"], table
    assert answer["request_id"] in logged[0]
    assert json.loads(bad)["request_id"] in logged[1]
    assert f"data_drift: alert: {quoted_after('`data_drift` check then says')}" in traffic.splitlines()
    assert profile.startswith("Profiled 105 rows of examples/classifier/training.csv: 4 features (all numeric)")
    from_csv = Reference.load(checkout / "reference-from-csv.json")
    trained = Reference.load(checkout / "examples" / "classifier" / "reference.json")
    assert (from_csv.features, from_csv.outputs, from_csv.performance) == (trained.features, trained.outputs, trained.performance)
    assert in_order(text_block("Model 'iris'").splitlines(), report.splitlines()) == []
    drift = json.loads(as_json)["checks"]["data_drift"]["features"]
    assert [name for name, entry in drift.items() if entry["drifted"]] == ["petal_length"]
    rejected = tail.splitlines()[1:]
    assert len(rejected) == 5
    assert all(" rejected " in line for line in rejected)
