"""How many rows per second the store's writer sustains, and that it loses none.

    .venv/bin/python bench/store.py                 # 8 and 64 features, 1- and 64-row requests, 5 s each
    .venv/bin/python bench/store.py --no-service    # the writer alone, without the guarded services' peaks

A producer thread queues requests shaped as the guard queues them (the rows as parsed from JSON, the
model's outputs, the encoded window chunk, stage timings) as fast as the store accepts them, with
``overflow="block"`` so that a full buffer makes it wait instead of dropping: the rate is then what
the writer thread sustains (the producer's own cost shares the GIL with it, as requests would). After
``--seconds``, the store is closed and the file is read back: every queued row must be there.

Side by side, for each width, the guarded service of bench/apps.py (the trivial numpy model, so the
fastest the guard can serve; BENCH_FEATURES sets its width) is driven by wrk with requests of the same
shape at 16 connections, twice for ``--seconds``: its best rows/s is the peak the writer is compared with.

    .venv/bin/python bench/store.py --load --seconds 20   # 4 clients, 1,000-row requests, counted

``--load`` drives the guarded service itself (8 features, the defaults: up to 1,000 rows per request,
a buffer of 100,000 rows and 64 MiB) with 4 clients each sending 1,000-row requests back to back, with
the store and, interleaved, without one (``db=":memory:"``), for two rounds. Every answered request
is looked up in the file after a clean stop: lost = answered but not logged (the goal is 0), and the
file's totals must count every answered request. The store check says whether requests had to wait
for the writer (back-pressure); the ratio of requests/s with and without the store is what logging
costs at this size.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from guarded_serving.drift.window import Chunk
from guarded_serving.monitor import new_request_id
from guarded_serving.store import RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SqliteStore

SHAPES = ((8, 1), (8, 64), (64, 1), (64, 64))  # (features, rows per request)


def records(features: int, rows: int, count: int) -> list[RequestRecord]:
    rng = np.random.default_rng(features * 1000 + rows)
    x = rng.normal(size=(rows, features))
    inputs = x.tolist()
    outputs = rng.random((rows, 2)).tolist()
    return [
        RequestRecord(
            request_id=new_request_id(),
            ts=time.time(),
            model="bench",
            version=None,
            status="ok",
            rows=rows,
            latency_ms=1.5,
            stages={"validate": 0.05, "predict": 0.4, "serialize": 0.02, "log": 0.01},
            inputs=inputs,
            outputs=outputs,
            window=Chunk(x.copy(), np.asarray(outputs)),
        )
        for _ in range(count)
    ]


def sustained(features: int, rows: int, seconds: float) -> dict[str, Any]:
    pool = records(features, rows, 2000)
    with tempfile.TemporaryDirectory(prefix="guarded-store-bench-") as tmp:
        path = os.path.join(tmp, "store.db")
        store = SqliteStore(path, StoreOptions(overflow="block", block_timeout=60.0, window=1000)).open()
        queued = [0, 0]  # requests, rows
        stop = threading.Event()

        def produce() -> None:
            i = 0
            while not stop.is_set():
                record = pool[i % len(pool)]
                if not store.put(record):
                    raise SystemExit("the store dropped a record with overflow='block'")
                queued[0] += 1
                queued[1] += rows
                i += 1

        producer = threading.Thread(target=produce)
        start = time.perf_counter()
        producer.start()
        time.sleep(seconds)
        stop.set()
        producer.join()
        closed = store.close(timeout=120)
        elapsed = time.perf_counter() - start
        stats = store.stats()
        with sqlite3.connect(path) as conn:
            (on_disk,) = conn.execute("SELECT coalesce(sum(rows), 0) FROM requests").fetchone()
            (requests,) = conn.execute("SELECT count(*) FROM requests").fetchone()
        size = os.path.getsize(path)
    return {
        "features": features,
        "rows_per_request": rows,
        "rows_per_s": on_disk / elapsed,
        "requests_per_s": requests / elapsed,
        "queued_rows": queued[1],
        "rows_on_disk": int(on_disk),
        "lost": queued[1] - int(on_disk),
        "dropped": stats.dropped,
        "closed_cleanly": closed,
        "bytes_per_row": size / max(on_disk, 1),
    }


def service_peak(features: int, rows: int, seconds: int) -> float:
    """The guarded numpy service's best rows/s over two wrk runs of ``rows``-row requests."""
    import overhead  # bench/overhead.py, next to this file

    with tempfile.TemporaryDirectory(prefix="guarded-store-peak-") as tmp:
        env = {
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "True",
            "BENCH_MODEL": "numpy",
            "BENCH_FEATURES": str(features),
            "GUARDED_SERVING_DB": os.path.join(tmp, "guarded.db"),
            "BENTOML_HOME": os.path.join(tmp, "bentoml"),
        }
        script = overhead.post_script(Path(tmp, "post.lua"), overhead.body(rows, features))
        with overhead.server("bench.apps:guarded", env) as (url, _):
            overhead.wrk(url, script, 2, 16)  # warm-up
            best = max(overhead.wrk(url, script, seconds, 16)[1] for _ in range(2))
    return best * rows


LOAD_CLIENTS, LOAD_ROWS, LOAD_FEATURES = 4, 1000, 8


def post_back_to_back(host: str, port: int, body: bytes, prefix: str, deadline: float) -> tuple[list[str], int]:
    """One client: POST /predict on a kept-alive connection until ``deadline``; (ids answered 200, failures).
    A bare socket, so that the client spends next to no CPU of the machine the server runs on."""
    answered: list[str] = []
    failures = 0
    with socket.create_connection((host, port)) as conn, conn.makefile("rb") as reader:
        head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        i = 0
        while time.monotonic() < deadline:
            request_id = f"{prefix}-{i}"
            i += 1
            conn.sendall(f"{head}X-Request-ID: {request_id}\r\n\r\n".encode() + body)
            status = int(reader.readline().split()[1])
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            if status == 200:
                answered.append(request_id)
            else:
                failures += 1
    return answered, failures


def under_load(db: str, seconds: float) -> dict[str, Any]:
    """The guarded service with ``db`` (a file, or ":memory:" for none) under 4 clients of 1,000-row requests."""
    import overhead  # bench/overhead.py, next to this file

    body = overhead.body(LOAD_ROWS, LOAD_FEATURES)
    with tempfile.TemporaryDirectory(prefix="guarded-store-load-") as tmp:
        path = db if db == ":memory:" else os.path.join(tmp, db)
        env = {
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "True",
            "BENCH_MODEL": "numpy",
            "BENCH_FEATURES": str(LOAD_FEATURES),
            "GUARDED_SERVING_DB": path,
            "BENTOML_HOME": os.path.join(tmp, "bentoml"),
        }
        with overhead.server("bench.apps:guarded", env) as (url, _):
            host, port = url.removeprefix("http://").split(":")
            deadline = time.monotonic() + seconds
            results: list[tuple[list[str], int]] = [([], 0)] * LOAD_CLIENTS

            def client(k: int) -> None:
                results[k] = post_back_to_back(host, int(port), body, f"c{k}", deadline)

            started = time.monotonic()
            clients = [threading.Thread(target=client, args=(k,)) for k in range(LOAD_CLIENTS)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            elapsed = time.monotonic() - started
            health = httpx.get(f"{url}/health/model", timeout=60).json()
        answered = [rid for ids, _ in results for rid in ids]
        out: dict[str, Any] = {
            "store": db != ":memory:",
            "answered": len(answered),
            "failures": sum(f for _, f in results),
            "requests_per_s": len(answered) / elapsed,
            "rows_per_s": len(answered) * LOAD_ROWS / elapsed,
            "store_check": health["checks"]["store"],
        }
        if db != ":memory:":  # read after the clean stop (SIGTERM): everything answered must be in the file
            with sqlite3.connect(path) as conn:
                logged = {rid for (rid,) in conn.execute("SELECT request_id FROM requests WHERE status = 'ok'")}
                (requests, rows) = conn.execute("SELECT requests, rows FROM totals").fetchone()
            out["lost"] = len(set(answered) - logged)
            out["totals_requests"] = requests
            out["totals_count_every_answer"] = requests == len(answered) and rows == len(answered) * LOAD_ROWS
    return out


def load_main(seconds: float, rounds: int = 2) -> dict[str, Any]:
    print(f"{LOAD_CLIENTS} clients, {LOAD_ROWS}-row requests of {LOAD_FEATURES} features, {seconds:.0f} s per run")
    header = f"{'store':>6} | {'requests/s':>10} {'rows/s':>8} | {'lost':>4} {'totals':>6} | {'waits':>5} {'dropped':>7}"
    print(header + " | store check")
    runs = []
    for _ in range(rounds):
        for db in ("guarded.db", ":memory:"):
            r = under_load(db, seconds)
            check = r["store_check"]
            totals = ("ok" if r.get("totals_count_every_answer") else "SHORT") if r["store"] else "-"
            print(
                f"{'file' if r['store'] else 'none':>6} | {r['requests_per_s']:10.1f} {r['rows_per_s']:8.0f} | "
                f"{r.get('lost', '-'):>4} {totals:>6} | "
                f"{check.get('waits', '-'):>5} {check.get('dropped', '-'):>7} | {check['status']}: {check['summary'][:110]}",
                flush=True,
            )
            runs.append(r)
    with_store = [r["requests_per_s"] for r in runs if r["store"]]
    without = [r["requests_per_s"] for r in runs if not r["store"]]
    ratio = (sum(with_store) / len(with_store)) / (sum(without) / len(without))
    print(f"requests/s with the store / without: {ratio:.2f}")
    print("goal: 0 lost, totals count every answer, and any waiting said in the store check")
    lost = sum(r["lost"] for r in runs if r["store"])
    if lost or not all(r["totals_count_every_answer"] for r in runs if r["store"]):
        raise SystemExit(f"answered requests were lost or not counted: {runs}")
    return {"runs": runs, "store_vs_none": ratio}


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-service", action="store_true", help="measure the writer only")
    parser.add_argument("--load", action="store_true", help="the guarded service under 4 clients of 1,000-row requests")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.load:
        found = load_main(args.seconds)
        if args.json:
            args.json.write_text(json.dumps(found, indent=1))
        return found
    peaks = {} if args.no_service else {shape: service_peak(*shape, args.seconds) for shape in SHAPES}
    results = []
    print(f"{'features':>8} {'rows/request':>12} | {'rows/s':>9} {'requests/s':>10} | {'lost':>4} | {'bytes/row':>9}", end="")
    print(" | service peak rows/s | writer/peak" if peaks else "")
    for features, rows in SHAPES:
        r = sustained(features, rows, args.seconds)
        line = (
            f"{features:>8} {rows:>12} | {r['rows_per_s']:9.0f} {r['requests_per_s']:10.0f} | {r['lost']:>4} | "
            f"{r['bytes_per_row']:9.0f}"
        )
        if peaks:
            r["service_peak_rows_per_s"] = peaks[(features, rows)]
            r["vs_service_peak"] = r["rows_per_s"] / peaks[(features, rows)]
            line += f" | {peaks[(features, rows)]:19.0f} | {r['vs_service_peak']:10.1f}x"
        results.append(r)
        print(line, flush=True)
        if r["lost"] or r["dropped"] or not r["closed_cleanly"]:
            raise SystemExit(f"rows were lost: {r}")
    print("goal: at least twice the guarded service's peak row rate, zero loss")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
