"""Redacted features end to end: a canary value sent to a real `bentoml serve` in a redacted feature reaches no sink.

Sinks: every table of the log store (and the bytes of its files), the service's stdout/stderr, the answers, the
metrics, `guarded-serving report` and `tail`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from guarded_serving.cli import main
from guarded_serving.redaction import WITHHELD
from tests.apps.faults import PRIVATE_FEATURES
from tests.fixtures.servers import Server
from tests.fixtures.waiting import wait_for
from tests.test_redaction import CITY_CANARY, WRONG_TYPE_CANARY, leaks, private_row


def dump_tables(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
        return "\n".join(repr(row) for table in tables for row in conn.execute(f"SELECT * FROM {table}"))


def test_a_canary_in_a_redacted_feature_reaches_no_sink(serve: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server: Server = serve("tests.apps.faults:private")
    client = server.client
    answers: list[httpx.Response] = []
    for start in range(3):  # enough rows for a judged window
        rows = [private_row(age=30.0 + start + i / 10) for i in range(50)]
        answers.append(client.post("/predict", json={"rows": rows}))
    as_objects = [dict(zip(PRIVATE_FEATURES, private_row(), strict=True))]
    answers.append(client.post("/predict", json={"rows": as_objects}))
    wrong_type = client.post("/predict", json={"rows": [[41.0, WRONG_TYPE_CANARY, CITY_CANARY, 52.0]]})
    model_error = client.post("/predict", json={"rows": [private_row(age=999)]})
    answers += [wrong_type, model_error, client.post("/predict", json={"rows": [private_row(age=-1)]})]
    answers += [client.get("/health/model"), client.get("/health/model?format=html"), client.get("/health/model/history")]
    answers.append(httpx.get(server.url + "/metrics", timeout=30))

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 422, 500, 200, 200, 200, 200, 200]
    assert wrong_type.json()["problems"][0] == {"row": 0, "feature": "ssn", "problem": WITHHELD, "expected": "a number"}
    assert model_error.json()["error"] == "ValueError"
    assert wait_for(lambda: sqlite3.connect(server.db).execute("SELECT count(*) FROM requests").fetchone()[0] == 7)
    assert server.stop() == 0  # flushes everything and writes its last log lines

    for argv in (["report"], ["report", "--json"], ["report", "--since", "1d"], ["tail"], ["tail", "--json"]):
        assert main([*argv, "--db", str(server.db)]) == 0
    assert main(["report", "--db", str(server.db), "--html", str(tmp_path / "report.html")]) == 0
    cli_out, cli_err = capsys.readouterr()
    stored = dump_tables(server.db)
    files = b"".join(p.read_bytes() for p in server.db.parent.glob(server.db.name + "*"))
    sinks = {
        "answers": "\n".join(a.text for a in answers),
        "service logs": server.logs(),
        "tables": stored,
        "database files": files,
        "report and tail": cli_out + cli_err + (tmp_path / "report.html").read_text(),
    }
    assert {name: leaks(text) for name, text in sinks.items()} == {name: [] for name in sinks}
    assert "ValueError" in stored  # what is withheld is still named
    assert "ssn" in stored
