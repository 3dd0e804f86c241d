"""What the Prometheus exporter adds to the request path, in-process.

    python bench/metrics_overhead.py

Side by side, interleaved rounds: ``Monitor.record`` of a one-row and a 64-row request (20 numeric
features, no store, so that only the monitor's own work is compared) without metrics and with the
exporter (prometheus_client in multiprocess mode, as under BentoML). Prints the per-request time of
each (the fastest of 15 rounds: other processes share the machine), the cost of the exporter's own
call on the request path alone, and the time the background flush spends per request (it runs once a
second, off the request path).
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="guarded-serving-bench-"))

import numpy as np
import prometheus_client

from guarded_serving import Monitor
from guarded_serving.store import RequestRecord

CALLS = 2000


def per_call(monitor: Monitor, record: RequestRecord) -> float:
    start = time.perf_counter()
    for _ in range(CALLS):
        monitor.record(record)
    return (time.perf_counter() - start) / CALLS


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    plain = Monitor(X, name="plain").start()
    exported = Monitor(X, name="exported", metrics=prometheus_client).start()
    assert exported.metrics is not None
    exported.metrics.interval = 3600.0  # flushed by hand below, to time the flush on its own
    for rows in (1, 64):
        stages = {"validate": 0.05, "predict": 0.2, "serialize": 0.01}
        inputs, outputs = X[:rows].tolist(), X[:rows].sum(axis=1).tolist()
        record = RequestRecord("r", time.time(), "m", None, "ok", rows, 0.3, stages, None, None, inputs, outputs)
        without, with_metrics, flush = [], [], []
        for _ in range(15):  # interleaved rounds
            without.append(per_call(plain, record))
            with_metrics.append(per_call(exported, record))
            start = time.perf_counter()
            exported.metrics.flush()
            flush.append((time.perf_counter() - start) / CALLS)
        start = time.perf_counter()
        for _ in range(CALLS):
            exported.metrics.add(record)
        add = (time.perf_counter() - start) / CALLS
        exported.metrics.flush()
        a, b, f = min(without), min(with_metrics), min(flush)
        print(
            f"{rows:>3} row(s): record {a * 1e6:7.2f} us | with metrics {b * 1e6:7.2f} us | "
            f"the exporter's add() {add * 1e6:5.2f} us | background flush {f * 1e6:5.2f} us per request"
        )
    plain.close()
    exported.close()


if __name__ == "__main__":
    main()
