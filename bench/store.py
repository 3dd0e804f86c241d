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
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from guarded_serving.drift.window import Chunk
from guarded_serving.monitor import new_request_id
from guarded_serving.store import RequestRecord, Store

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
        store = Store(path, overflow="block", block_timeout=60.0, window_capacity=1000).open()
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


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-service", action="store_true", help="measure the writer only")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
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
