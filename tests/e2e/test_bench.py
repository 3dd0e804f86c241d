"""The benchmarks keep working: each script runs a short pass and its figures hold together.

The full runs (bench/run.py) take about half an hour and print ratios, not pass/fail; these
short passes check that the scripts run against the current code and report what they claim.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fixtures.servers import ROOT


def run(script: str, *args: str, tmp_path: Path) -> object:
    out = tmp_path / f"{Path(script).stem}.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)], cwd=ROOT, check=True, timeout=600)
    return json.loads(out.read_text())


def test_the_store_bench_loses_no_row(tmp_path: Path) -> None:
    results = run("store.py", "--no-service", "--seconds", "1", tmp_path=tmp_path)
    assert isinstance(results, list)
    assert [(r["features"], r["rows_per_request"]) for r in results] == [(8, 1), (8, 64), (64, 1), (64, 64)]
    for r in results:
        assert r["lost"] == 0
        assert r["dropped"] == 0
        assert r["rows_on_disk"] == r["queued_rows"] > 0


def test_the_store_load_bench_finds_every_answer_in_the_file(tmp_path: Path) -> None:
    results = run("store.py", "--load", "--seconds", "2", tmp_path=tmp_path)
    assert isinstance(results, dict)
    runs = results["runs"]
    assert [r["store"] for r in runs] == [True, False, True, False]
    for r in runs:
        assert r["answered"] > 0
        assert r["failures"] == 0
    for r in (r for r in runs if r["store"]):
        assert r["lost"] == 0
        assert r["totals_count_every_answer"]
        assert r["store_check"]["dropped"] == 0
    assert results["store_vs_none"] > 0


def test_the_memory_bench_serves_every_row(tmp_path: Path) -> None:
    result = run("memory.py", "--rows", "64000", tmp_path=tmp_path)
    assert isinstance(result, dict)
    assert result["rows"] == 64000
    assert result["rss_start_mb"] > 0
    assert set(result["marks"]) == {"after start-up", "after 1,024 rows", "after 50,000 rows", "after 64,000 rows"}


def test_the_guard_work_microbenchmark_measures_a_positive_cost() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "overhead.py"), "--micro", "numpy", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    whole, request_thread = json.loads(out.strip().splitlines()[-1])
    assert whole >= request_thread > 0


def test_the_health_breakdown_times_every_check_and_adds_up(tmp_path: Path) -> None:
    results = run("health.py", "--breakdown", "--clock", "cpu", tmp_path=tmp_path)
    assert isinstance(results, dict)
    for where in ("memory", "store"):
        for case in ("same window", "one new request"):
            parts = results["breakdown"][f"{where}, {case}"]
            assert {"data_drift", "joint_drift", "estimated_performance", "concept_drift (labels joined)"} <= set(parts)
            assert all(seconds >= 0 for seconds in parts.values())
            assert sum(v for k, v in parts.items() if k != "total") >= parts["total"] * 0.999
        moved = results["breakdown"][f"{where}, one new request"]
        assert moved["joint_drift"] > 0  # a window that moved is judged again, every check
        assert moved["estimated_performance"] > 0
        assert moved["concept_drift (labels joined)"] > 0
        same = results["breakdown"][f"{where}, same window"]
        assert same["data_drift"] == 0  # the same window: what was computed on it is reused
    assert results["breakdown"]["store, one new request"]["recent requests (from the store)"] > 0


def test_the_readme_names_the_benchmark_command_that_bench_run_documents() -> None:
    readme = (ROOT / "README.md").read_text()
    command = 'python3.11 -m venv .venv-bench && .venv-bench/bin/pip install -e ".[bench]" && .venv-bench/bin/python bench/run.py'
    assert command in readme
    assert command in (ROOT / "bench" / "run.py").read_text()
    assert "bench = [" in (ROOT / "pyproject.toml").read_text()


def test_the_handoff_bench_times_each_way_to_run_a_request(tmp_path: Path) -> None:
    results = run("handoff.py", "--rounds", "1", "--requests", "200", "--repeats", "2", tmp_path=tmp_path)
    assert isinstance(results, dict)
    assert set(results) == {"inline", "model-thread", "anyio"}
    assert all(r["cpu_us"] > 0 and r["wall_us"] > 0 for r in results.values())


def test_the_fleet_bench_compares_both_stores_and_counts_every_row_the_writer_took(tmp_path: Path) -> None:
    results = run("fleet.py", "--seconds", "1", "--rounds", "1", tmp_path=tmp_path)
    assert isinstance(results, dict)
    summary = results["summary"]
    assert [t["rows"] for t in summary] == [1, 64]
    for t in summary:
        assert t["sqlite_rps"] > 0
        assert t["postgresql_rps"] > 0
        assert t["errors"] == 0
        assert t["lost"] == 0
        assert t["dropped"] == 0
        assert t["writer_rows_per_s"] > 0
    assert [w["stored_rows"] == w["queued_rows"] > 0 for w in results["writers"]] == [True, True]


def test_the_batching_bench_serves_both_services_and_batches_one(tmp_path: Path) -> None:
    results = run("batching.py", "--seconds", "1", "--rounds", "1", tmp_path=tmp_path)
    assert isinstance(results, dict)
    rounds = results["rounds"]
    assert set(rounds) == {"unbatched", "batched"}
    assert [r["failed"] for rs in rounds.values() for r in rs] == [0, 0]
    assert rounds["unbatched"][0]["mean_batch"] == 1.0
    assert rounds["batched"][0]["mean_batch"] > 1.0
    assert results["ratio"] > 0


def test_the_paths_bench_times_every_path_beside_the_common_one(tmp_path: Path) -> None:
    result = run("paths.py", "--rounds", "1", tmp_path=tmp_path)
    assert isinstance(result, dict)
    paths = result["paths"]
    assert paths[0]["path"] == "numbers as lists (the common path)"
    assert paths[0]["vs_common"] == 1.0
    assert len(paths) == 7
    assert all(p["us"] >= p["thread_us"] > 0 for p in paths)
