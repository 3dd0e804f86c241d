"""The command line: `guarded-serving profile | report | tail`, called as `main([...])`.

Each command mirrors a Python API call; these tests hold it to giving the same answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import runpy
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.cli import ProgressBar, build_parser, main
from guarded_serving.offline import offline_health
from guarded_serving.store import RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SqliteStore
from guarded_serving.times import parse_since
from tests.fixtures.data import read_csv_exact, write_customers_csv
from tests.fixtures.servers import ROOT
from tests.fixtures.tailing import following
from tests.fixtures.waiting import wait_for

BIN = Path(sys.executable).parent
FEATURES = ["a", "b", "c"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- profile ---------------------------------------------------------------------------------------
@pytest.fixture
def customer_csv(tmp_path: Path) -> Path:
    """500 rows: two numeric features (one with empty cells), a text one, a 0/1 label and two probabilities."""
    return write_customers_csv(tmp_path / "train.csv", rows=500, seed=5)


def test_profile_of_a_csv_is_the_reference_python_builds_from_the_same_file(
    customer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reference.json"

    code, printed, _ = run(capsys, "profile", str(customer_csv), "--out", str(out), "--target", "label", "--predictions", "p0,p1")

    frame = read_csv_exact(customer_csv)
    python = Reference.from_data(frame[["age", "income", "colour"]], y=frame["label"], predictions=frame[["p0", "p1"]].to_numpy())
    saved = Reference.load(out)
    assert code == 0
    assert saved.features == python.features
    assert saved.target == python.target
    assert saved.outputs == python.outputs
    assert saved.performance == python.performance
    assert [f.kind for f in saved.features] == ["numeric", "numeric", "categorical"]
    assert saved.features[1].missing_rate == pytest.approx(0.04)
    assert saved.performance is not None
    assert saved.performance.classes == (0, 1)
    assert printed.startswith(
        f"Profiled 500 rows of {customer_csv}: 3 features (1 categorical: colour), the target, 2 model outputs"
    )


def test_profile_of_a_npy_file_names_its_columns_and_matches_from_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.random.default_rng(6).normal(size=(300, 4))
    np.save(tmp_path / "train.npy", data)
    out = tmp_path / "reference.json"

    code, _, _ = run(
        capsys,
        "profile",
        str(tmp_path / "train.npy"),
        "--out",
        str(out),
        "--feature-names",
        "x,y,z,score",
        "--predictions",
        "score",
    )

    python = Reference.from_data(data[:, :3], predictions=data[:, 3], feature_names=["x", "y", "z"])
    saved = Reference.load(out)
    assert code == 0
    assert saved.features == python.features
    assert saved.outputs == python.outputs
    assert saved.feature_names == ("x", "y", "z")


def test_profile_of_a_parquet_file_matches_from_data_of_the_dataframe(
    customer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = read_csv_exact(customer_csv)
    frame.to_parquet(tmp_path / "train.parquet")

    code, _, _ = run(capsys, "profile", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "r.json"), "--target", "label")

    python = Reference.from_data(frame[["age", "income", "colour", "p0", "p1"]], y=frame["label"])
    saved = Reference.load(tmp_path / "r.json")
    assert code == 0
    assert saved.features == python.features
    assert saved.target == python.target


def test_profile_of_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "train.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow...` raise ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)

    code, _, err = run(capsys, "profile", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "r.json"))

    assert code == 2
    assert "DATA: expected pyarrow to be installed to read Parquet (pip install pyarrow)" in err
    assert "Traceback" not in err


def test_profile_keeps_whole_numbers_of_a_categorical_column_as_integers(
    customer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "profile", str(customer_csv), "--out", str(tmp_path / "r.json"), "--categorical", "age")

    age = Reference.load(tmp_path / "r.json").features[0]
    assert code == 0
    assert age.kind == "categorical"
    assert all(isinstance(category, int) for category, _ in age.categories)


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("a,b\n1,2\n3\n", (), "line 3: expected 2 values, one per column of the header, got ['3']"),
        ("a,b\n1,inf\n", (), "column 'b', row 1 under the header: expected a finite number or an empty cell, got 'inf'"),
        ("a,b\n", (), "DATA: expected a CSV file with at least one row under its header"),
        ("a,b\n1,2\n", ("--target", "label"), "--target: expected one of the columns of"),
        ("a,b\n1,2\n", ("--categorical", "c"), "--categorical: expected feature columns among ['a', 'b'], got ['c']"),
        ("a,b\n1,2\n", ("--feature-names", "x"), "--feature-names: expected 2 names, one per column of"),
        ("a,b\n1,2\n", ("--task", "regression"), "--task needs --target and --predictions"),
    ],
    ids=["ragged-row", "infinity", "no-rows", "unknown-target", "unknown-categorical", "too-few-names", "task-alone"],
)
def test_profile_errors_name_the_value_and_what_was_expected(
    content: str, options: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.csv").write_text(content)

    code, _out, err = run(capsys, "profile", str(tmp_path / "data.csv"), "--out", str(tmp_path / "r.json"), *options)

    assert code == 2
    assert message in err
    assert err.startswith("guarded-serving profile: error: ")
    assert not (tmp_path / "r.json").exists()


def test_profile_refuses_an_unknown_file_type_and_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.xlsx").write_text("")

    unknown = run(capsys, "profile", str(tmp_path / "data.xlsx"), "--out", str(tmp_path / "r.json"))
    missing = run(capsys, "profile", str(tmp_path / "gone.csv"), "--out", str(tmp_path / "r.json"))

    assert unknown[0] == missing[0] == 2
    assert "DATA: expected a file ending in one of ['.csv', '.npy', '.parquet', '.pq']" in unknown[2]
    assert "DATA: expected an existing file (no such file)" in missing[2]


def test_a_usage_error_exits_with_2_and_help_with_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--window", "0"]) == 2
    assert "argument --window: expected a whole number of at least 1, got '0'" in capsys.readouterr().err
    assert main(["profile", "x.csv"]) == 2  # --out is required
    assert main(["--help"]) == 0


# -- progress --------------------------------------------------------------------------------------
def test_the_progress_bar_draws_when_forced_and_stays_silent_off_a_terminal(
    customer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forced = run(capsys, "profile", str(customer_csv), "--out", str(tmp_path / "r.json"), "--progress", "always")
    auto = run(capsys, "profile", str(customer_csv), "--out", str(tmp_path / "r.json"))  # stderr is not a terminal here

    assert re.search(r"\rreading train\.csv \[#{30}\] 100% 0\.0/0\.0 MB\n$", forced[2])
    assert auto[2] == ""


def test_the_progress_bar_in_auto_mode_waits_half_a_second_before_drawing() -> None:
    class Terminal:
        text = ""

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    terminal = Terminal()
    bar = ProgressBar("re-encoding", "auto", stream=terminal)  # type: ignore[arg-type]
    bar(10, 100)
    drawn_at_once = terminal.text
    bar.started -= 1.0
    bar(50, 100)
    bar.close()

    assert drawn_at_once == ""
    assert terminal.text == "\rre-encoding [###############---------------]  50% 50/100 rows\n"


# -- report ----------------------------------------------------------------------------------------
def traffic(monitor: Monitor, shift: float, requests: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(requests):
        rows = rng.normal(size=(10, 3)) + np.array([0.0, shift, 0.0])
        monitor.observe(rows, rows.sum(axis=1), latency_ms=2.0)


def toy_reference() -> Reference:
    training = np.random.default_rng(0).normal(size=(1000, 3))
    return Reference.from_data(training, predictions=training.sum(axis=1), feature_names=FEATURES)


def drifting(monitor: Monitor) -> Monitor:
    """30 healthy requests of 10 rows, then 120 where feature 'b' moved by 1 std."""
    traffic(monitor, 0.0, 30, seed=1)
    traffic(monitor, 1.0, 120, seed=2)
    return monitor


@pytest.fixture
def drifted_db(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A log store of drifting traffic, and the live report (as JSON) the monitor gave before it stopped."""
    db = tmp_path / "guarded.db"
    with Monitor(toy_reference(), name="toy", version="7", db=db) as monitor:
        drifting(monitor)
        monitor.flush()
        live = monitor.health().to_json()
    return db, live


def drifted_features(report: dict[str, object]) -> dict[str, list[str]]:
    checks = report["checks"]
    assert isinstance(checks, dict)
    return {
        name: sorted(f for f, entry in check["features"].items() if entry["drifted"])
        for name, check in checks.items()
        if isinstance(check.get("features"), dict)
    }


def test_report_json_is_the_live_report_recomputed_from_the_file(
    drifted_db: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, live = drifted_db

    code, out, _ = run(capsys, "report", "--db", str(db), "--json")

    offline = json.loads(out)
    assert code == 0
    assert (
        drifted_features(offline)
        == drifted_features(live)
        == {
            "data_drift": ["b"],
            "prediction_drift": ["prediction"],
            "data_quality": ["b"],
            "joint_drift": [],
        }
    )
    judged = ("data_drift", "prediction_drift", "data_quality", "concept_drift", "joint_drift", "estimated_performance")
    for name in (*judged, "pipeline", "environment"):
        assert offline["checks"][name] == live["checks"][name], name  # type: ignore[index]
    assert offline["status"] == live["status"] == "alert"
    assert offline["model"] == {"name": "toy", "version": "7"}
    assert offline["window"] == live["window"]
    assert offline["totals"] == live["totals"]
    assert offline["offline"] == {"db": str(db), "since": None, "reference": "the store", "replayed": None}
    assert offline["checks"]["store"]["summary"].startswith(f"Read offline from {db} (1500 rows logged)")


def test_report_prints_the_status_each_check_and_the_drifted_features_with_their_figures(
    drifted_db: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, live = drifted_db

    code, out, _ = run(capsys, "report", "--db", str(db))

    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"Model 'toy' version '7', from {db}"
    assert lines[1] == "status     ALERT"
    assert lines[2] == "window     1000 of 1000 rows: the stored window, as the live endpoint judges it"
    assert lines[3] == "totals     150 requests: 1500 rows answered, 0 rejected, 0 errors"
    drift_summary = live["checks"]["data_drift"]["summary"]  # type: ignore[index]
    shown = rf"data_drift +alert +{re.escape(drift_summary)}"  # columns as wide as their longest cell
    assert any(re.fullmatch(shown, line) for line in lines)
    assert "Drifted features:" in lines
    figures = [line for line in lines if line.startswith("data_drift ") and " b " in line]
    assert len(figures) == 1
    assert re.search(r"data_drift +b +alert +mean \+\d\.\d\d std, wasserstein \d", figures[0])


def test_report_reads_the_file_without_writing_or_creating_anything(
    drifted_db: tuple[Path, dict[str, object]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, _ = drifted_db
    before = sha256(db)
    files_before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)  # a relative path: a long tmp_path (pytest-xdist's) would be shortened in the message

    run(capsys, "report", "--db", str(db))
    code, _, err = run(capsys, "report", "--db", "missing.db")

    assert sha256(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before
    assert code == 2
    assert "--db: expected the SQLite file a guarded service writes (no such file), got 'missing.db'" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database at all, just text" * 10, "--db: expected a guarded-serving log store (file is not a database)"),
        (b"", "--db: expected a guarded-serving log store (this SQLite file has no requests table)"),
    ],
    ids=["not-sqlite", "empty-file"],
)
@pytest.mark.parametrize("command", ["report", "tail"])
def test_a_file_that_is_not_a_log_store_is_named_as_such(
    command: str, content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.db").write_bytes(content)

    code, _, err = run(capsys, command, "--db", str(tmp_path / "x.db"))

    assert code == 2
    assert message in err
    assert (tmp_path / "x.db").read_bytes() == content


def test_a_reference_that_cannot_be_read_is_a_usage_error(
    drifted_db: tuple[Path, dict[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = drifted_db
    (tmp_path / "bad.json").write_text("{")

    code, _, err = run(capsys, "report", "--db", str(db), "--reference", str(tmp_path / "bad.json"))

    assert code == 2
    assert f"error: reference '{tmp_path / 'bad.json'}' is not valid JSON" in err


def test_report_since_re_encodes_the_logged_rows_and_counts_rows_without_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    training = np.random.default_rng(0).normal(size=(1000, 3))
    db = tmp_path / "guarded.db"
    with Monitor(training, name="toy", db=db, feature_names=FEATURES) as old:
        traffic(old, 0.0, 40, seed=3)
    cut = time.time()
    assert wait_for(lambda: time.time() > cut + 0.002, timeout=1.0, interval=0.001)  # the store keeps milliseconds
    with Monitor(training, name="toy", db=db, feature_names=FEATURES, sample_rate=0.5) as new:  # half the rows not logged
        traffic(new, 1.5, 60, seed=4)

    code, out, _ = run(capsys, "report", "--db", str(db), "--since", str(cut), "--json")

    report = json.loads(out)
    replayed = report["offline"]["replayed"]
    assert code == 0
    assert report["totals"]["requests"] == 60
    assert replayed["rows_answered"] == 600
    assert 200 < replayed["rows_with_inputs"] < 400
    assert replayed["rows_judged"] == replayed["rows_with_inputs"] == report["window"]["rows"]
    assert replayed["rows_without_inputs"] == 600 - replayed["rows_with_inputs"]
    assert drifted_features(report)["data_drift"] == ["b"]
    assert report["checks"]["data_drift"]["features"]["b"]["mean_shift_std"] > 1.2  # the old, healthy rows are not in it

    table = run(capsys, "report", "--db", str(db), "--since", str(cut))[1]
    assert f"rows re-encoded from the logged inputs, logged since {report['offline']['since']};" in table
    assert f"; {replayed['rows_without_inputs']} answered rows have no stored inputs" in table


def test_report_since_in_the_future_has_too_little_data_to_judge(
    drifted_db: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = drifted_db

    code, out, _ = run(capsys, "report", "--db", str(db), "--since", "2999-01-01T00:00", "--json")

    report = json.loads(out)
    assert code == 0
    assert report["totals"]["requests"] == 0
    assert report["checks"]["data_drift"]["status"] == "insufficient_data"
    assert report["status"] == "insufficient_data"


def test_report_window_judges_the_newest_rows_re_encoded(
    drifted_db: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = drifted_db

    report = json.loads(run(capsys, "report", "--db", str(db), "--window", "300", "--json")[1])

    assert report["window"] == {"rows": 300, "capacity": 300}
    assert report["offline"]["replayed"] == {
        "rows_answered": 1500,
        "rows_with_inputs": 1500,
        "rows_judged": 300,
        "rows_without_inputs": 0,
    }
    live = drifting(Monitor(toy_reference(), name="toy", window=300)).health().to_json()  # in memory, window 300
    assert report["checks"]["data_drift"] == live["checks"]["data_drift"]
    assert "b" in drifted_features(report)["data_drift"]


@pytest.mark.parametrize(("fail_on", "expected"), [("warn", 1), ("alert", 1), (None, 0)])
def test_report_fail_on_exits_with_1_at_or_above_the_status(
    fail_on: str | None, expected: int, drifted_db: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = drifted_db

    code = run(capsys, "report", "--db", str(db), *(("--fail-on", fail_on) if fail_on else ()))[0]

    assert code == expected


def test_report_fail_on_alert_exits_0_for_a_healthy_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    training = np.random.default_rng(0).normal(size=(1000, 3))
    with Monitor(training, name="toy", db=tmp_path / "g.db") as monitor:
        traffic(monitor, 0.0, 30, seed=9)

    code, out, _ = run(capsys, "report", "--db", str(tmp_path / "g.db"), "--fail-on", "warn")

    assert code == 0, out
    assert "status     OK" in out


def test_an_unexpected_failure_exits_with_3_and_a_message_not_a_traceback(
    drifted_db: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 1 means "the status is at or above --fail-on": a crash must not look like that to a script."""
    db, _ = drifted_db

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("unsupported operand type(s) for +: 'float' and 'NoneType'")

    monkeypatch.setattr("guarded_serving.cli.offline_health", broken)
    code, out, err = run(capsys, "report", "--db", str(db), "--fail-on", "warn")

    assert code == 3
    assert out == ""
    assert "Traceback" not in err
    assert err.splitlines()[0] == (
        "guarded-serving report: internal error: TypeError: unsupported operand type(s) for +: 'float' and 'NoneType'"
    )


def test_report_needs_model_when_the_file_holds_several(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    training = np.random.default_rng(0).normal(size=(500, 3))
    for name in ("churn", "fraud"):
        with Monitor(training, name=name, db=tmp_path / "g.db") as monitor:
            traffic(monitor, 0.0, 2, seed=1)

    code, _, err = run(capsys, "report", "--db", str(tmp_path / "g.db"))
    chosen = json.loads(run(capsys, "report", "--db", str(tmp_path / "g.db"), "--model", "fraud", "--json")[1])

    assert code == 2
    assert f"--model: expected one of the models in {tmp_path / 'g.db'}: ['churn', 'fraud'], got None" in err
    assert chosen["model"]["name"] == "fraud"


def test_report_of_a_file_without_a_saved_reference_asks_for_one(
    drifted_db: tuple[Path, dict[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, live = drifted_db
    with sqlite3.connect(db) as conn:  # as in a file written before the models table existed
        (saved,) = conn.execute("SELECT reference FROM models").fetchone()
        conn.execute("DROP TABLE models")
    Reference.from_json(json.loads(saved)).save(tmp_path / "reference.json")

    code, _, err = run(capsys, "report", "--db", str(db))
    given = json.loads(run(capsys, "report", "--db", str(db), "--reference", str(tmp_path / "reference.json"), "--json")[1])

    assert code == 2
    assert "--reference: expected a saved reference file for model 'toy'" in err
    assert drifted_features(given) == drifted_features(live)
    assert given["offline"]["reference"] == str(tmp_path / "reference.json")


def test_report_html_writes_the_dashboard_and_leaves_the_file_as_it_was(
    drifted_db: tuple[Path, dict[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, live = drifted_db
    before = db.read_bytes()

    code, out, _ = run(capsys, "report", "--db", str(db), "--html", str(tmp_path / "report.html"))

    page = (tmp_path / "report.html").read_text()
    assert code == 0
    assert out.endswith(f"Wrote {tmp_path / 'report.html'}.\n")
    assert page.startswith("<!DOCTYPE html>")
    assert '<body data-status="alert">' in page
    checks = live["checks"]
    assert isinstance(checks, dict)
    for name in checks:  # a card per check the live endpoint had
        assert f'data-check="{name}"' in page
    assert 'data-check="data_drift" data-status="alert"' in page
    for feature in drifted_features(live)["data_drift"]:
        assert f'<figure class="hist" data-feature="{feature}"' in page
    assert "<script" not in page
    assert "http://" not in page
    assert "https://" not in page
    assert db.read_bytes() == before  # an offline report never writes (no snapshot, no schema change)


def test_parse_since_reads_iso_times_epoch_seconds_and_durations() -> None:
    now = 1_800_000_000.0

    assert parse_since("2027-01-15T08:00:00", now) == now  # naive times are UTC
    assert parse_since("2027-01-15T09:00:00+01:00", now) == 1_800_000_000.0
    assert parse_since("1800000000", now) == now
    assert parse_since("90s", now) == now - 90
    assert parse_since("30m", now) == now - 1800
    assert parse_since("1h", now) == now - 3600
    assert parse_since("2d", now) == now - 2 * 86400


def test_offline_health_is_the_python_side_of_report(drifted_db: tuple[Path, dict[str, object]]) -> None:
    db, live = drifted_db

    offline = offline_health(db)

    assert offline.report.check("data_drift").summary == live["checks"]["data_drift"]["summary"]  # type: ignore[index]


# -- tail ------------------------------------------------------------------------------------------
def record(
    request_id: str, status: str = "ok", model: str = "toy", error: str | None = None, version: str | None = None
) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        ts=time.time(),
        model=model,
        version=version,
        status=status,  # type: ignore[arg-type]
        rows=2,
        latency_ms=3.25,
        failed_stage="validate" if error else None,
        error=error,
        inputs=[[1.0, 2.0, 3.0]] * 2 if status == "ok" else None,
        outputs=[6.0, 6.0] if status == "ok" else None,
    )


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    db = tmp_path / "tail.db"
    with SqliteStore(db) as store:
        for i in range(30):
            store.put(record(f"req-{i:02d}", "rejected" if i % 10 == 9 else "ok", error="row 0: bad" if i % 10 == 9 else None))
    return db


def test_tail_shows_the_newest_requests_newest_last(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tail", "--db", str(logged), "-n", "3")

    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["TIME", "(UTC)", "REQUEST", "ID", "STATUS", "ROWS", "LATENCY", "FAILED", "STAGE:", "ERROR"]
    assert [line.split()[2] for line in lines[1:]] == ["req-27", "req-28", "req-29"]
    assert lines[-1].split()[3:] == ["rejected", "2", "3.2", "ms", "validate:", "row", "0:", "bad"]


def test_tail_shows_one_version_or_which_version_each_request_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "canary.db"
    with SqliteStore(db) as store:
        for i in range(6):
            store.put(record(f"req-{i}", version="2" if i % 3 == 2 else "1"))  # a canary taking a third of the traffic

    _, every, _ = run(capsys, "tail", "--db", str(db), "-n", "3")
    code, canary, _ = run(capsys, "tail", "--db", str(db), "--model-version", "2", "--json")

    lines = every.splitlines()
    assert lines[0].split()[:4] == ["TIME", "(UTC)", "VERSION", "REQUEST"]
    assert [line.split()[2:4] for line in lines[1:]] == [["1", "req-3"], ["1", "req-4"], ["2", "req-5"]]
    assert code == 0
    found = [json.loads(line) for line in canary.splitlines()]
    assert [(r["request_id"], r["version"]) for r in found] == [("req-2", "2"), ("req-5", "2")]


def test_tail_filters_by_status_and_prints_json_lines(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tail", "--db", str(logged), "--status", "rejected", "--json")

    found = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [r["request_id"] for r in found] == ["req-09", "req-19", "req-29"]
    assert found[0]["error"] == "row 0: bad"
    assert found[0]["failed_stage"] == "validate"


def test_tail_escapes_control_characters_from_logged_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SqliteStore(tmp_path / "t.db") as store:
        store.put(record("evil", "rejected", error="got '\x1b[2J\x1b]0;pwned\x07'"))

    out = run(capsys, "tail", "--db", str(tmp_path / "t.db"))[1]

    assert "\x1b" not in out
    assert "\x07" not in out
    assert "got '\\x1b[2J\\x1b]0;pwned\\x07'" in out


def test_tail_follow_prints_requests_logged_while_it_runs(logged: Path) -> None:
    with following(str(logged)) as tail:
        assert tail.next_line().startswith("TIME (UTC)")
        assert "req-29" in tail.next_line()
        with SqliteStore(logged, StoreOptions(flush_interval=0.05)) as store:  # a writer, meanwhile, as the service's would
            for i in range(3):
                store.put(record(f"new-{i}"))
                store.flush()
        seen = [tail.next_line() for _ in range(3)]
        assert tail.interrupt() == 0
    assert [line.split()[2] for line in seen] == ["new-0", "new-1", "new-2"]


def test_tail_of_an_empty_store_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SqliteStore(tmp_path / "empty.db"):
        pass

    code, out, _ = run(capsys, "tail", "--db", str(tmp_path / "empty.db"), "--status", "error")

    assert code == 0
    assert out == f"No requests logged in {tmp_path / 'empty.db'} with status error.\n"


# -- the program ---------------------------------------------------------------------------------
def test_python_m_guarded_serving_and_the_console_script_are_the_same_program(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The installed console script in a Python of its own; `python -m guarded_serving` run here by runpy, as
    # `-m` runs it (a second interpreter would cost ~1.7 s of imports for the same __main__ module).
    script = subprocess.run([str(BIN / "guarded-serving"), "--version"], capture_output=True, text=True, timeout=60)
    monkeypatch.setattr(sys, "argv", ["guarded_serving", "--version"])
    with pytest.raises(SystemExit) as module:
        runpy.run_module("guarded_serving", run_name="__main__", alter_sys=True)

    assert module.value.code == script.returncode == 0
    assert capsys.readouterr().out == script.stdout == "guarded-serving 0.1.0\n"


# -- documentation ---------------------------------------------------------------------------------
def command_line_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Command line\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def subcommands() -> dict[str, object]:
    parser = build_parser()
    [choices] = [a for a in parser._actions if a.choices and a.dest == "command"]
    assert isinstance(choices.choices, dict)
    return dict(choices.choices)


def options_of(name: str) -> list[str]:
    parser = subcommands()[name]
    return [s for action in parser._actions for s in action.option_strings if s not in ("-h", "--help")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_command_and_option_is_documented_in_the_readme(command: str) -> None:
    section = command_line_section()

    assert f"`guarded-serving {command}" in section, f"README's Command line section does not show `guarded-serving {command}`"
    undocumented = [option for option in options_of(command) if f"`{option}" not in section]
    assert undocumented == [], f"README's Command line section does not document {command} {undocumented}"


def test_the_program_options_are_documented_in_the_readme() -> None:
    section = command_line_section()
    options = [s for a in build_parser()._actions for s in a.option_strings if s not in ("-h", "--help")]

    assert options == ["--version"]
    assert [option for option in options if f"`guarded-serving {option}`" not in section] == []


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_option_has_help_text(command: str) -> None:
    parser = subcommands()[command]

    assert parser.description  # type: ignore[attr-defined]
    missing = [a.dest for a in parser._actions if not a.help]  # type: ignore[attr-defined]
    assert missing == []


def test_the_console_script_is_declared() -> None:
    assert 'guarded-serving = "guarded_serving.cli:main"' in (ROOT / "pyproject.toml").read_text()
    assert os.access(BIN / "guarded-serving", os.X_OK)


def test_profile_with_holdout_reads_labels_and_outputs_from_the_held_out_file(
    customer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = read_csv_exact(customer_csv)
    held_csv = tmp_path / "held.csv"
    frame.iloc[400:].to_csv(held_csv, index=False)
    frame.iloc[:400].to_csv(customer_csv, index=False)
    out = tmp_path / "reference.json"

    code, printed, _ = run(
        capsys,
        "profile",
        str(customer_csv),
        "--holdout",
        str(held_csv),
        "--out",
        str(out),
        "--target",
        "label",
        "--predictions",
        "p0,p1",
    )

    held = frame.iloc[400:]
    python = Reference.from_data(
        frame.iloc[:400][["age", "income", "colour"]],
        holdout=(held[["age", "income", "colour"]], held["label"]),
        predictions=held[["p0", "p1"]].to_numpy(),
    )
    saved = Reference.load(out)
    assert code == 0
    assert saved.rows == 400
    assert saved.features == python.features
    assert saved.outputs == python.outputs
    assert saved.performance == python.performance
    assert saved.provenance == python.provenance
    assert saved.provenance.outputs == "holdout"
    assert "2 model outputs on the held-out rows" in printed


def test_profile_with_a_holdout_of_other_columns_names_both(
    customer_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held_csv = tmp_path / "held.csv"
    held_csv.write_text("age,colour,label,p0,p1\n30,red,1,0.2,0.8\n")

    code, _, err = run(
        capsys,
        "profile",
        str(customer_csv),
        "--holdout",
        str(held_csv),
        "--out",
        str(tmp_path / "r.json"),
        "--target",
        "label",
        "--predictions",
        "p0,p1",
    )

    assert code == 2
    assert "holdout: expected the feature columns of DATA, ['age', 'income', 'colour'], got \"columns ['age', 'colour']\"" in err
