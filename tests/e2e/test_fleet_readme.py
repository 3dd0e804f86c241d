"""The README's "Fleets" example runs as written: two replicas on one PostgreSQL database, a prediction served by
one, its label sent to the other, and the other's report. Only the database URL, its password, the ports and the
venv's path are this test's own; the install step is the test venv's (it has the postgres extra)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.postgres import PASSWORD, USER, PostgresServer
from tests.fixtures.servers import ROOT, copy_checkout, free_port
from tests.fixtures.waiting import wait_for

README = (ROOT / "README.md").read_text()
FLEETS = README[README.index("## Fleets") : README.index("## Command line")]
START, CALLS = re.findall(r"```bash\n(.*?)```", FLEETS, flags=re.S)
BIN = str(Path(sys.executable).parent) + "/"


@pytest.fixture
def replicas(postgres: PostgresServer, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    checkout = copy_checkout(tmp_path)
    url = postgres.database("readme").replace(f"{USER}:{PASSWORD}@", f"{USER}@")
    ports = {"3001": str(free_port()), "3002": str(free_port())}
    script = START.replace('.venv/bin/pip install -e ".[examples,postgres]" && ', "")
    script = script.replace("postgresql://guarded@127.0.0.1:5432/fleet", url).replace(
        "PGPASSWORD=change-me", f"PGPASSWORD={PASSWORD}"
    )
    for port, free in ports.items():
        script = script.replace(f"--port {port}", f"--port {free}")
    script = script.replace(".venv/bin/", BIN) + "wait\n"
    log = (tmp_path / "replicas.log").open("wb")
    process = subprocess.Popen(["bash", "-c", script], cwd=checkout, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "replicas.log").read_text()[-3000:]
        try:
            return all(httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=2).status_code == 200 for p in ports.values())
        except httpx.TransportError:
            return False

    try:
        assert wait_for(ready, timeout=180, interval=0.5), (tmp_path / "replicas.log").read_text()[-3000:]
        yield checkout, ports
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_the_fleets_example_labels_on_b_what_a_served_and_b_reports_both(replicas: tuple[Path, dict[str, str]]) -> None:
    checkout, ports = replicas
    calls = CALLS.replace(".venv/bin/", BIN)
    for port, free in ports.items():
        calls = calls.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{free}/")

    result = subprocess.run(["bash", "-c", calls], cwd=checkout, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['{"accepted":1,"new":1,"replaced":0}' + "['replica-a', 'replica-b'] ok 1"]
