"""A store on PostgreSQL against one on SQLite: the guarded service's throughput with each, and the PostgreSQL writer.

    .venv/bin/python bench/fleet.py                          # 5 interleaved rounds of 5 s per store (~5 min)
    .venv/bin/python bench/fleet.py --seconds 2 --rounds 1   # a quick look

Starts a PostgreSQL server of its own (Debian's, as tests/fixtures/postgres.py does) on a temporary directory and a
loopback port, with the server's defaults but for ``fsync = off`` (a benchmark of the client, not the disk;
SQLite runs as the store always runs it, WAL with ``synchronous=NORMAL``).

1. Two guarded services of bench/apps.py (the trivial numpy model, 20 features, one worker), one writing to a
   SQLite file and one to the PostgreSQL database, run at once; wrk drives one at a time (16 connections),
   1-row and 64-row requests, the order alternating every round. Printed: median requests/s of each, and
   PostgreSQL / SQLite (goal >= 0.95x: the request path never touches the network).
2. The PostgreSQL writer alone, in this process: requests shaped as the guard queues them (bench/store.py's)
   queued as fast as it accepts them, with ``overflow="block"``; after ``--seconds`` the store is closed and
   the database counted: rows/s written, and none lost. Compared with the peak rows/s of the PostgreSQL
   service in part 1 at the same shape (goal >= 2x: one writer keeps up with twice one replica's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import overhead  # bench/overhead.py and bench/store.py, next to this file
import psutil
import psycopg
import store as store_bench

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests/fixtures/postgres.py runs the server
from guarded_serving.store import StoreOptions
from guarded_serving.store.postgres import PostgresStore
from tests.fixtures.postgres import PostgresServer, ensure_installed

FEATURES = 20
STORES = ("sqlite", "postgresql")


def server_cpu(database: PostgresServer) -> float:
    """CPU seconds used so far by the PostgreSQL server's processes (the postmaster and its backends)."""
    postmaster = psutil.Process(int((database.data / "postmaster.pid").read_text().split()[0]))
    return overhead.cpu_seconds(postmaster)


def http_rounds(
    database: PostgresServer, url: str, rows_list: list[int], rounds: int, seconds: int, connections: int
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="guarded-fleet-bench-") as tmp:
        base = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENCH_MODEL": "numpy", "BENCH_FEATURES": str(FEATURES)}
        envs = {
            "sqlite": {**base, "GUARDED_SERVING_DB": os.path.join(tmp, "guarded.db"), "BENTOML_HOME": os.path.join(tmp, "b1")},
            "postgresql": {**base, "GUARDED_SERVING_DB": url, "BENTOML_HOME": os.path.join(tmp, "b2")},
        }
        scripts = {rows: overhead.post_script(Path(tmp, f"post{rows}.lua"), overhead.body(rows, FEATURES)) for rows in rows_list}
        with (
            overhead.server("bench.apps:guarded", envs["sqlite"]) as sqlite,
            overhead.server("bench.apps:guarded", envs["postgresql"]) as postgresql,
        ):
            services = {"sqlite": sqlite, "postgresql": postgresql}
            for rows in rows_list:  # warm up: imports, first-call caches, the guard's calibration
                for service, _ in services.values():
                    overhead.wrk(service, scripts[rows], 2, connections)
            for r in range(rounds):
                for rows in rows_list:
                    for name in STORES if r % 2 == 0 else STORES[::-1]:
                        runs.append(one_run(database, services[name], name, scripts[rows], seconds, connections))
                        runs[-1].update(rows=rows, round=r)
                        print(
                            f"  round {r + 1} {rows:>2} row(s) {name:>10}: {runs[-1]['rps']:7.0f} req/s"
                            f" cpu {runs[-1]['cpu_ms']:.2f} ms/req (+{runs[-1]['server_cpu_ms']:.2f} database)"
                            f" errors {runs[-1]['errors']}",
                            flush=True,
                        )
    return runs


def one_run(
    database: PostgresServer, service: tuple[str, psutil.Process], store: str, script: Path, seconds: int, connections: int
) -> dict[str, Any]:
    """One wrk run: requests/s, latency, errors, and CPU per request of the service and of the database server."""
    url, proc = service
    cpu, db_cpu = overhead.cpu_seconds(proc), server_cpu(database)
    requests, rps, p50, p99, errors = overhead.wrk(url, script, seconds, connections)
    time.sleep(0.5)  # the writer's last batch of the run
    per_request = 1e3 / max(requests, 1)
    return {
        "store": store,
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "errors": errors,
        "cpu_ms": (overhead.cpu_seconds(proc) - cpu) * per_request,
        "server_cpu_ms": (server_cpu(database) - db_cpu) * per_request if store == "postgresql" else 0.0,
    }


def writer_rate(url: str, rows: int, seconds: float) -> dict[str, Any]:
    """The PostgreSQL writer's sustained rows/s for ``rows``-row requests of FEATURES features; rows lost."""
    pool = store_bench.records(FEATURES, rows, 2000)
    with psycopg.connect(url, autocommit=True) as conn:
        if _has_tables(conn):  # the previous shape's rows
            conn.execute('TRUNCATE requests, totals, "window"')
    store = PostgresStore(url, StoreOptions(overflow="block", block_timeout=60.0, window=1000)).open()
    queued = [0]
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            if not store.put(pool[i % len(pool)]):
                raise SystemExit("the store dropped a record with overflow='block'")
            queued[0] += rows
            i += 1

    producer = threading.Thread(target=produce)
    start = time.perf_counter()
    producer.start()
    time.sleep(seconds)
    stop.set()
    producer.join()
    closed = store.close(timeout=120)
    elapsed = time.perf_counter() - start
    with psycopg.connect(url) as conn:
        (stored,) = conn.execute("SELECT coalesce(sum(rows), 0) FROM requests").fetchone() or (0,)
    return {
        "rows_per_request": rows,
        "rows_per_s": int(stored) / elapsed,
        "queued_rows": queued[0],
        "stored_rows": int(stored),
        "lost": queued[0] - int(stored),
        "dropped": store.stats().dropped,
        "closed_cleanly": closed,
    }


def _has_tables(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT to_regclass('requests') IS NOT NULL").fetchone() == (True,)


def summarise(runs: list[dict[str, Any]], writers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for rows in dict.fromkeys(r["rows"] for r in runs):
        picked = {s: [r for r in runs if r["rows"] == rows and r["store"] == s] for s in STORES}
        med = {s: statistics.median(r["rps"] for r in picked[s]) for s in STORES}
        # Each round's two runs were side by side: their ratio is the least disturbed by the machine's other work.
        paired = statistics.median(p["rps"] / q["rps"] for p, q in zip(picked["postgresql"], picked["sqlite"], strict=True))
        errors = sum(r["errors"] for r in runs if r["rows"] == rows)
        writer = next(w for w in writers if w["rows_per_request"] == rows)
        peak = max(r["rps"] for r in runs if r["rows"] == rows and r["store"] == "postgresql") * rows
        table.append(
            {
                "rows": rows,
                "sqlite_rps": med["sqlite"],
                "postgresql_rps": med["postgresql"],
                "ratio": paired,
                "ratio_of_medians": med["postgresql"] / med["sqlite"],
                "sqlite_cpu_ms": statistics.median(r["cpu_ms"] for r in picked["sqlite"]),
                "postgresql_cpu_ms": statistics.median(r["cpu_ms"] for r in picked["postgresql"]),
                "server_cpu_ms": statistics.median(r["server_cpu_ms"] for r in picked["postgresql"]),
                "errors": errors,
                "service_peak_rows_per_s": peak,
                "writer_rows_per_s": writer["rows_per_s"],
                "writer_vs_peak": writer["rows_per_s"] / peak,
                "lost": writer["lost"],
                "dropped": writer["dropped"],
            }
        )
    return table


def markdown(table: list[dict[str, Any]]) -> list[str]:
    """The section of bench/RESULTS.md (bench/run.py writes it)."""
    lines = [
        "## PostgreSQL store vs SQLite store (bench/fleet.py)",
        "",
        f"The guarded numpy service ({FEATURES} features, one worker) with each store, wrk with 16 connections, side by side in",
        "interleaved rounds: medians of requests/s, the median of each round's PostgreSQL/SQLite ratio, and CPU per request",
        "of the service's processes (and of the database server's, for PostgreSQL). Then the PostgreSQL writer alone (rows",
        "queued as fast as it takes them, every one counted back), against the PostgreSQL service's peak rows/s at the same",
        "request size. Server on loopback, `fsync=off`.",
        "",
        "| rows | SQLite req/s | PostgreSQL req/s | PostgreSQL/SQLite (goal 0.95x) | CPU ms/req SQLite / PostgreSQL + server"
        " | errors | service peak rows/s | writer rows/s | writer/peak (goal 2x) | lost |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        cpu = f"{t['sqlite_cpu_ms']:.2f} / {t['postgresql_cpu_ms']:.2f} + {t['server_cpu_ms']:.2f}"
        lines.append(
            f"| {t['rows']} | {t['sqlite_rps']:,.0f} | {t['postgresql_rps']:,.0f} | {t['ratio']:.2f}x | {cpu} | {t['errors']}"
            f" | {t['service_peak_rows_per_s']:,.0f} | {t['writer_rows_per_s']:,.0f} | {t['writer_vs_peak']:.1f}x | {t['lost']} |"
        )
    throughput = all(t["ratio"] >= 0.95 for t in table)
    writer = all(t["writer_vs_peak"] >= 2 and t["lost"] == 0 for t in table)
    lines += ["", f"Goals: PostgreSQL >= 0.95x SQLite: {'yes' if throughput else '**no**'}; writer >= 2x the peak, none lost:"
              f" {'yes' if writer else '**no**'}."]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rows", default="1,64")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    ensure_installed()
    rows_list = [int(r) for r in args.rows.split(",")]
    server = PostgresServer()
    server.start()
    try:
        runs = http_rounds(server, server.database("service"), rows_list, args.rounds, args.seconds, args.connections)
        writer_url = server.database("writer")
        writers = [writer_rate(writer_url, rows, args.seconds) for rows in rows_list]
    finally:
        server.remove()
    table = summarise(runs, writers)
    print("\n".join(markdown(table)))
    if args.json:
        args.json.write_text(json.dumps({"summary": table, "runs": runs, "writers": writers}, indent=1))
    return table


if __name__ == "__main__":
    main()
