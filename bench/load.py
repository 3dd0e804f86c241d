"""HTTP load against the toy guarded service: throughput, latency, and rows lost on a clean stop.

    .venv/bin/python bench/load.py              # 1, 4, 16, 64 connections, ~10 s each (under 3 minutes)
    .venv/bin/python bench/load.py --seconds 3  # a quicker pass

Starts `bentoml serve tests.apps.toy:one` (one worker) on a free 127.0.0.1 port with a SQLite file in
a temporary directory, then, for each concurrency level, drives it from a pool of 4 client
processes (so that the client's GIL is not the bottleneck), each running its share of the
connections as threads with one httpx client apiece. Every request carries its own X-Request-ID and
3 rows; each connection stops at a request count or the level's time limit, whichever comes first.

Printed per level: answered requests/s, rows/s landed in the `rows` table during the level, client-side
p50/p99 latency, non-2xx answers, and the loss: requests answered 2xx whose id is not in the database
after the server was stopped with SIGTERM (the README promises 0). Client and server share the
machine's CPUs, so the numbers are lower bounds for the server alone.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENTOML = str(Path(sys.executable).parent / "bentoml")
TARGET = "tests.apps.toy:one"
LEVELS = (1, 4, 16, 64)
CLIENT_PROCESSES = 4
ROWS_PER_REQUEST = 3
MAX_REQUESTS_PER_CONNECTION = 20_000


@dataclass
class Shard:
    """One client process's part of a level: `connections` threads until `seconds` pass."""

    url: str
    level: int
    shard: int
    connections: int
    seconds: float


@dataclass
class ShardResult:
    answered: list[str]  # request ids answered 2xx
    latencies_ms: list[float]  # of the 2xx answers
    failures: int  # non-2xx answers and transport errors
    started: float  # wall-clock time the shard's connections started and ended
    ended: float


def run_shard(shard: Shard) -> ShardResult:
    answered: list[str] = []
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + shard.seconds

    def connection(index: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=shard.url, timeout=30, limits=limits) as client:
            for i in range(MAX_REQUESTS_PER_CONNECTION):
                if time.monotonic() >= deadline:
                    return
                request_id = f"c{shard.level}-p{shard.shard}-t{index}-{i}"
                body = {"rows": [[i % 50, index, 2.0]] * ROWS_PER_REQUEST}
                start = time.perf_counter()
                try:
                    response = client.post("/predict", json=body, headers={"X-Request-ID": request_id})
                except httpx.TransportError:
                    with lock:
                        failures[0] += 1
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    if 200 <= response.status_code < 300:
                        answered.append(request_id)
                        latencies.append(elapsed)
                    else:
                        failures[0] += 1

    threads = [threading.Thread(target=connection, args=(k,)) for k in range(shard.connections)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(shard.seconds + 60)
    return ShardResult(answered, latencies, failures[0], started, time.time())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path, log: Path, target: str = TARGET, within: float = 90.0) -> tuple[subprocess.Popen[bytes], str]:
    """`bentoml serve target` on a free 127.0.0.1 port with its store in ``db``, once it answers /readyz."""
    port = free_port()
    env = {**os.environ, "GUARDED_SERVING_DB": str(db), "BENTOML_DO_NOT_TRACK": "True"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bentoml serve {target} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    sys.exit(f"bentoml serve {target} was not ready within {within:g} s:\n{log.read_text()}")


def count_rows(db: Path, level: int) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute("SELECT count(*) FROM rows WHERE request_id LIKE ?", (f"c{level}-%",)).fetchone()[0])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrency level (default 10)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), 30.0)

    with tempfile.TemporaryDirectory(prefix="guarded-load-") as tmp:
        db, log = Path(tmp) / "load.db", Path(tmp) / "serve.log"
        process, url = start_server(db, log)
        print(f"bentoml serve {TARGET} on {url}, {os.cpu_count()} CPUs, {seconds:g} s per level, db {db}", flush=True)
        results: dict[int, tuple[list[str], list[float], int, float, int]] = {}
        try:
            with multiprocessing.get_context("spawn").Pool(CLIENT_PROCESSES) as pool:
                for level in LEVELS:
                    processes = min(CLIENT_PROCESSES, level)
                    shards = [
                        Shard(url, level, k, level // processes + (k < level % processes), seconds) for k in range(processes)
                    ]
                    parts = pool.map(run_shard, shards)
                    elapsed = max(p.ended for p in parts) - min(p.started for p in parts)  # without the pool's overhead
                    time.sleep(0.5)  # two flush intervals: the level's last rows land
                    answered = [rid for p in parts for rid in p.answered]
                    latencies = [ms for p in parts for ms in p.latencies_ms]
                    results[level] = (answered, latencies, sum(p.failures for p in parts), elapsed, count_rows(db, level))
                    print(f"  {level:>2} connections: {len(answered) / elapsed:,.0f} requests/s", flush=True)
        finally:
            workers = psutil.Process(process.pid).children(recursive=True)  # each in a session of its own
            os.killpg(process.pid, signal.SIGTERM)  # a clean stop: the shutdown hook flushes the store
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            for worker in workers:  # normally already gone
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()

        with sqlite3.connect(db) as conn:
            logged = {rid for (rid,) in conn.execute("SELECT request_id FROM requests WHERE status = 'ok'")}
        print()
        columns = (
            ("connections", 11),
            ("requests", 9),
            ("req/s", 8),
            ("rows/s", 8),
            ("p50 ms", 7),
            ("p99 ms", 7),
            ("non-2xx", 7),
            ("lost", 5),
        )
        header = " ".join(f"{name:>{width}}" for name, width in columns)
        print(header)
        print("-" * len(header))
        for level, (answered, latencies, failures, elapsed, rows) in results.items():
            lost = sum(rid not in logged for rid in answered)
            print(
                f"{level:>11} {len(answered):>9,} {len(answered) / elapsed:>8,.0f} {rows / elapsed:>8,.0f}"
                f" {statistics.median(latencies) if latencies else float('nan'):>7.1f} {percentile(latencies, 0.99):>7.1f}"
                f" {failures:>7} {lost:>5}"
            )
        print(f"\nserver exit code {process.returncode}; lost = answered 2xx minus request ids in the database after SIGTERM")


if __name__ == "__main__":
    main()
