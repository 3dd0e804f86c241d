"""What the guard costs in front of a model, side by side with bare BentoML, over real HTTP.

    .venv/bin/python bench/overhead.py                 # 5 interleaved rounds of 5 s per service (~10 min)
    .venv/bin/python bench/overhead.py --seconds 2 --rounds 2 --models numpy   # a quick look

For each model (a 20-feature logistic regression, and a trivial numpy model) three services from
bench/apps.py run at once on 127.0.0.1, one worker each (``--workers 2``: two each, the guarded ones sharing
one store): (a) ``bare``, BentoML as its docs show it; (b) ``tuned``, the same tuned by hand; (c) ``guarded``,
``guard()`` over the same predict function with a real SQLite store. wrk drives one service at a time (16
connections per worker, 1 thread), single-row and 64-row requests, the services' order rotating every round,
so that a slower stretch of this shared machine falls on each of them alike. With several workers, one wrk
process per worker, started a quarter second apart, and a run counts only when every worker holds at least
half its share of the connections (it is run again otherwise, up to six times; the split is printed):
BentoML's workers race to accept on one socket, and a worker that takes every connection leaves the service
at one worker's speed whatever the service is. Printed per service: median requests/s, p50 and p99 latency
(wrk's), the server's CPU time per request (all its processes, from psutil), and the ratios of
throughput guarded/bare and guarded/tuned.

Then an in-process microbenchmark isolates the guard's own work per request: GuardedModel.handle_predict
on the same JSON body with a stand-in model that returns the real model's precomputed answer, so
that what is timed is parsing, validation, stage timing, the window update and the store's work
(the writer thread's CPU included: the process's CPU time is measured until the store has flushed).
It is printed as a share of the tuned service's CPU per request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENTOML = str(Path(sys.executable).parent / "bentoml")
VARIANTS = {"bare": "Bare", "tuned": "Tuned", "guarded": "guarded"}
FEATURES = 20


@dataclass
class Run:
    model: str
    rows: int
    variant: str
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int
    split: tuple[int, ...] = ()  # connections each worker held, with more than one worker
    attempts: int = 1  # wrk runs it took to get a split that counts (see balanced)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(rows: int, features: int = FEATURES) -> bytes:
    x = np.random.default_rng(1).normal(size=(rows, features)).round(6)
    return json.dumps({"rows": x.tolist()}).encode()


@contextlib.contextmanager
def server(target: str, env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    proc = subprocess.Popen(
        [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{target} exited with {proc.returncode} before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{target} was not ready after 120 s")
            time.sleep(0.2)
        yield url, psutil.Process(proc.pid)
    finally:
        family = [proc.pid]
        with contextlib.suppress(psutil.Error):
            family += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for pid in family:  # BentoML workers sit in process groups of their own
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def post_script(path: Path, payload: bytes) -> Path:
    """A wrk script that POSTs ``payload`` as JSON (a long bracket level that JSON text cannot close)."""
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{payload.decode()}]==]\n'
    )
    return path


def connection_split(proc: psutil.Process, port: int, workers: int) -> tuple[int, ...]:
    """How many established connections to ``port`` each of the server's processes holds, most first, with a 0
    for each of the ``workers`` serving processes that holds none."""
    held = []
    for p in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            n = sum(1 for c in p.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == "ESTABLISHED")
            if n:
                held.append(n)
    return tuple(sorted(held, reverse=True) + [0] * (workers - len(held)))


def balanced(split: tuple[int, ...], connections: int) -> bool:
    """Whether a wrk run over several workers measures them all: each holds at least half its fair share.

    wrk opens its connections at once and keeps them; the workers of a BentoML service race to accept on one
    socket, and one of them often takes all or most (32 of 32 in two of six runs here). The service then
    serves at one worker's speed, 2-3x slower, whichever service it is: a lottery that decides the two-worker
    comparison rather than the services do. A run whose split fails this is run again."""
    return all(n * len(split) * 2 >= connections for n in split)


def wrk(
    url: str,
    script: Path,
    seconds: int,
    connections: int,
    during: Callable[[], None] | None = None,
    clients: int = 1,
) -> tuple[int, float, float, float, int]:
    """(requests, requests/s, p50 ms, p99 ms, non-2xx) of a wrk run against POST /predict.

    ``clients`` wrk processes share the connections, started a quarter second apart, so that each batch of
    connections arrives while the workers that took the earlier ones are busy: with one batch, one worker of a
    BentoML service often accepts them all (see balanced). Their throughputs add up; p50 is their mean weighted
    by requests, p99 the highest. ``during``, if given, is called a second after the last one started."""
    cmd = ["wrk", "-t1", f"-c{connections // clients}", f"-d{seconds}s", "--latency", "-s", str(script), f"{url}/predict"]
    procs = []
    for k in range(clients):
        if k:
            time.sleep(0.25)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    if during is not None:
        time.sleep(min(1.0, seconds / 2))
        during()
    parsed = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd, out)
        parsed.append(_parse_wrk(out))
    requests = sum(r[0] for r in parsed)
    p50 = sum(r[0] * r[2] for r in parsed) / max(requests, 1)
    return requests, sum(r[1] for r in parsed), p50, max(r[3] for r in parsed), sum(r[4] for r in parsed)


def _parse_wrk(out: str) -> tuple[int, float, float, float, int]:
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return requests, rps, p50, p99, errors


def http_rounds(model: str, rows_list: list[int], rounds: int, seconds: int, connections: int, workers: int = 1) -> list[Run]:
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="guarded-bench-") as tmp:
        env = {
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "True",
            "BENCH_MODEL": model,
            "BENCH_WORKERS": str(workers),
            "GUARDED_SERVING_DB": os.path.join(tmp, "guarded.db"),
            "BENTOML_HOME": os.path.join(tmp, "bentoml"),
        }
        scripts = {rows: post_script(Path(tmp, f"post{rows}.lua"), body(rows)) for rows in rows_list}
        with contextlib.ExitStack() as stack:
            services = {name: stack.enter_context(server(f"bench.apps:{target}", env)) for name, target in VARIANTS.items()}
            for rows in rows_list:  # warm up: imports, first-call caches, the guard's calibration
                for url, _ in services.values():
                    wrk(url, scripts[rows], 2, connections, clients=workers)
            names = list(VARIANTS)
            for r in range(rounds):
                for rows in rows_list:
                    order = names[r % len(names) :] + names[: r % len(names)]
                    for name in order:
                        run = measured_run(services[name], scripts[rows], seconds, connections, workers)
                        runs.append(Run(model, rows, name, r, *run))
                        rps, p50, p99, cpu, errors, split, attempts = run
                        print(
                            f"  round {r + 1} {model:>6} {rows:>2} row(s) {name:>7}: {rps:7.0f} req/s "
                            f"p50 {p50:6.1f} ms p99 {p99:6.1f} ms cpu {cpu:5.2f} ms/req errors {errors}"
                            + (f" split {'/'.join(map(str, split))} after {attempts} run(s)" if workers > 1 else ""),
                            flush=True,
                        )
    return runs


def measured_run(
    service: tuple[str, psutil.Process], script: Path, seconds: int, connections: int, workers: int, tries: int = 6
) -> tuple[float, float, float, float, int, tuple[int, ...], int]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per request, errors, split, attempts) of one wrk run; with
    several workers, run again (up to ``tries`` times) until the connections split so that it measures them all."""
    url, proc = service
    port = int(url.rsplit(":", 1)[1])
    seen: list[tuple[int, ...]] = []

    def watch() -> None:
        seen.append(connection_split(proc, port, workers))

    attempts = 0
    while True:
        attempts += 1
        before = cpu_seconds(proc)
        requests, rps, p50, p99, errors = wrk(url, script, seconds, connections, watch if workers > 1 else None, workers)
        cpu = (cpu_seconds(proc) - before) / max(requests, 1) * 1e3
        split = seen[-1] if seen else ()
        if workers == 1 or balanced(split, connections) or attempts == tries:
            return rps, p50, p99, cpu, errors, split, attempts


def guard_work(model: str, rows: int, requests: int = 3000) -> tuple[float, float]:
    """The guard's own CPU per request, in µs: (whole process incl. the store writer, request thread only)."""
    os.environ["BENCH_MODEL"] = model
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    sys.path.insert(0, str(ROOT))
    import bench.apps as apps  # the same model, reference and data as the services
    from guarded_serving import GuardedModel

    payload = body(rows)
    x = np.array(json.loads(payload)["rows"])
    answer = apps.predict(x)
    with tempfile.TemporaryDirectory(prefix="guarded-micro-") as tmp:
        os.environ["GUARDED_SERVING_DB"] = os.path.join(tmp, "unused.db")
        guarded = GuardedModel(apps.predict, reference=apps.X_TRAIN, name="micro", db=os.path.join(tmp, "m.db"))
        guarded.call = lambda _x: answer  # the model's cost is not the guard's: a stand-in returns its answer
        guarded.start()
        for _ in range(300):
            guarded.handle_predict(payload, "application/json")
        assert guarded.monitor is not None
        # Once per worker, in threads of their own at start: not a request's work, and not to be timed with one.
        guarded.monitor.calibration()
        guarded.monitor.joint_baseline()
        assert guarded.monitor.flush(30)
        samples_all, samples_thread = [], []
        for _ in range(5):
            cpu0, thread0 = time.process_time(), time.thread_time()
            for _ in range(requests // 5):
                guarded.handle_predict(payload, "application/json")
            thread = time.thread_time() - thread0
            assert guarded.monitor.flush(60)
            samples_all.append((time.process_time() - cpu0) / (requests // 5) * 1e6)
            samples_thread.append(thread / (requests // 5) * 1e6)
        stats = guarded.monitor.store.stats() if guarded.monitor.store is not None else None
        guarded.close()
        if stats is not None and stats.dropped:
            raise SystemExit(f"the store dropped {stats.dropped} rows during the microbenchmark")
    return statistics.median(samples_all), statistics.median(samples_thread)


def summarise(runs: list[Run], micro: dict[tuple[str, int], tuple[float, float]]) -> list[dict[str, Any]]:
    table = []
    for model in dict.fromkeys(r.model for r in runs):
        for rows in dict.fromkeys(r.rows for r in runs):
            med = {}
            for v in VARIANTS:
                sel = [r for r in runs if r.model == model and r.rows == rows and r.variant == v]
                med[v] = {
                    "rps": statistics.median(r.requests_per_s for r in sel),
                    "p50": statistics.median(r.p50_ms for r in sel),
                    "p99": statistics.median(r.p99_ms for r in sel),
                    "cpu": statistics.median(r.cpu_ms_per_request for r in sel),
                    "errors": sum(r.errors for r in sel),
                }
            work, work_thread = micro[(model, rows)]
            table.append(
                {
                    "model": model,
                    "rows": rows,
                    **{f"{v}_{k}": val for v, m in med.items() for k, val in m.items()},
                    "vs_bare": med["guarded"]["rps"] / med["bare"]["rps"],
                    "vs_tuned": med["guarded"]["rps"] / med["tuned"]["rps"],
                    "guard_work_us": work,
                    "guard_work_thread_us": work_thread,
                    "guard_work_share": work / (med["tuned"]["cpu"] * 1e3),
                }
            )
    return table


def print_table(table: list[dict[str, Any]]) -> None:
    print(
        f"\n{'model':>6} {'rows':>4} | {'bare req/s':>10} {'tuned req/s':>11} {'guarded req/s':>13} | "
        f"{'vs bare':>7} {'vs tuned':>8} | {'p99 bare/tuned/guarded ms':>26} | {'cpu ms/req b/t/g':>17} | guard work"
    )
    for t in table:
        p99 = f"{t['bare_p99']:.0f}/{t['tuned_p99']:.0f}/{t['guarded_p99']:.0f}"
        cpu = f"{t['bare_cpu']:.2f}/{t['tuned_cpu']:.2f}/{t['guarded_cpu']:.2f}"
        print(
            f"{t['model']:>6} {t['rows']:>4} | {t['bare_rps']:10.0f} {t['tuned_rps']:11.0f} {t['guarded_rps']:13.0f} | "
            f"{t['vs_bare']:6.2f}x {t['vs_tuned']:7.2f}x | {p99:>26} | {cpu:>17} | "
            f"{t['guard_work_us']:.0f} µs = {t['guard_work_share']:.1%} of tuned's CPU/request"
        )
    print("goals: guarded >= 1.00x bare and >= 1.00x tuned in throughput; guard work <= 5% of tuned's CPU per request")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, help="wrk's connections (default: 16 per worker)")
    parser.add_argument("--workers", type=int, default=1, help="serving processes of each service (they share one store)")
    parser.add_argument("--models", default="logreg,numpy")
    parser.add_argument("--rows", default="1,64")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--micro", nargs=2, metavar=("MODEL", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.micro:
        print(json.dumps(guard_work(args.micro[0], int(args.micro[1]))))
        return []
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (bench/run.py does it)")
    models = args.models.split(",")
    rows_list = [int(r) for r in args.rows.split(",")]
    runs: list[Run] = []
    for model in models:
        connections = args.connections or 16 * args.workers
        runs += http_rounds(model, rows_list, args.rounds, args.seconds, connections, args.workers)
    micro = {}
    for model in models:  # one process per model: bench.apps fits the model named by BENCH_MODEL at import
        for rows in rows_list:
            out = subprocess.run(
                [sys.executable, __file__, "--micro", model, str(rows)], capture_output=True, text=True, check=True
            ).stdout
            micro[(model, rows)] = tuple(json.loads(out.strip().splitlines()[-1]))
    table = summarise(runs, micro)
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps({"summary": table, "runs": [asdict(r) for r in runs]}, indent=1))
    return table


if __name__ == "__main__":
    main()
