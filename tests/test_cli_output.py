"""The command line's output, pinned to the character for fixed inputs: a change of wording or layout fails here.

tests/test_cli.py checks what the commands mean (the same answers as the Python API); this file keeps what they
print the same from one version to the next, as users' scripts and eyes read it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guarded_serving.cli import main
from guarded_serving.store import RequestRecord
from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.data import write_plans_csv

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def plans_csv(tmp_path: Path) -> Path:
    """200 seeded rows: a numeric feature with empty cells, a categorical one, a 0/1 label and two probabilities."""
    return write_plans_csv(tmp_path / "train.csv", rows=200, seed=21)


@pytest.fixture
def log_db(tmp_path: Path) -> Path:
    """Six requests 1.5 s apart from 2026-01-01 00:00 UTC, the fifth rejected."""
    db = tmp_path / "log.db"
    with SqliteStore(db) as store:
        for i in range(6):
            rejected = i == 4
            store.put(
                RequestRecord(
                    request_id=f"req-{i}",
                    ts=T0 + i * 1.5,
                    model="toy",
                    version="v1" if i % 2 else None,
                    status="rejected" if rejected else "ok",
                    rows=i + 1,
                    latency_ms=2.5 * i,
                    failed_stage="validate" if rejected else None,
                    error="row 0, feature 'a': got \"x\"; expected a number" if rejected else None,
                    inputs=None if rejected else [[1.0, 2.0, 3.0]] * (i + 1),
                    outputs=None if rejected else [6.0] * (i + 1),
                )
            )
    return db


def test_profile_prints_one_sentence(plans_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ref.json"

    assert main(["profile", str(plans_csv), "--out", str(out), "--target", "label", "--predictions", "p0,p1"]) == 0
    assert capsys.readouterr().out == (
        f"Profiled 200 rows of {plans_csv}: 2 features (1 categorical: plan), the target, 2 model outputs, "
        f"classification performance (accuracy 0.765). Wrote {out}.\n"
    )


def test_tail_prints_a_table(log_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "--db", str(log_db), "-n", "5"]) == 0
    assert capsys.readouterr().out == (  # two versions in the log: which one each request was ("-": unversioned)
        "TIME (UTC)               VERSION       REQUEST ID                        STATUS    ROWS    LATENCY"
        "     FAILED STAGE: ERROR\n"
        "2026-01-01 00:00:01.500  v1            req-1                             ok             2      2.5 ms\n"
        "2026-01-01 00:00:03.000  -             req-2                             ok             3      5.0 ms\n"
        "2026-01-01 00:00:04.500  v1            req-3                             ok             4      7.5 ms\n"
        "2026-01-01 00:00:06.000  -             req-4                             rejected       5     10.0 ms  "
        "validate: row 0, feature 'a': got \"x\"; expected a number\n"
        "2026-01-01 00:00:07.500  v1            req-5                             ok             6     12.5 ms\n"
    )


def test_tail_json_prints_one_object_a_line(log_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "--db", str(log_db), "-n", "2", "--json"]) == 0
    assert capsys.readouterr().out == (
        '{"ts": "2026-01-01T00:00:06.000+00:00", "model": "toy", "version": null, "request_id": "req-4", '
        '"status": "rejected", "rows": 5, "latency_ms": 10.0, "failed_stage": "validate", '
        '"error": "row 0, feature \'a\': got \\"x\\"; expected a number"}\n'
        '{"ts": "2026-01-01T00:00:07.500+00:00", "model": "toy", "version": "v1", "request_id": "req-5", '
        '"status": "ok", "rows": 6, "latency_ms": 12.5, "failed_stage": null, "error": null}\n'
    )
