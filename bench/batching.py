"""Adaptive batching: throughput with and without it, side by side in one run.

    .venv/bin/python bench/batching.py                # 3 interleaved rounds of 8 s per mode
    .venv/bin/python bench/batching.py --seconds 2 --rounds 1

Serves `tests.apps.batched:unbatched` and `tests.apps.batched:batched` (one worker each, a SQLite file
each): the same model, whose every call costs a fixed ~1 ms of CPU (numeric Python, no sleep) whatever
its rows, as a small neural network's does at small batch sizes, guarded without and with
``batching={"max_batch_size": 64}``. Each round drives each service in turn from one client process
holding 32 keep-alive connections (a raw asyncio HTTP/1.1 client, far cheaper per request than the
service, so that the client is not what is measured), every request carrying one row. Printed per
round and mode: answered requests/s, mean batch size (the X-Batch-Size the answers carry) and non-200
answers; then the ratio batched / unbatched of the rounds' medians, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from load import start_server  # bench/load.py: benches run as scripts from bench/

MODES = {"unbatched": "tests.apps.batched:unbatched", "batched": "tests.apps.batched:batched"}
CLIENTS = 32


async def _connection(port: int, deadline: float, index: int, out: dict[str, list[int]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.monotonic() < deadline:
            payload = json.dumps({"rows": [[index % 7 * 0.1, i % 11 * 0.1, 0.5]]}).encode()
            writer.write(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
            )
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            status = int(lines[0].split()[1])
            if status == 200:
                out["ok"].append(int(headers.get("x-batch-size", "1")))
            else:
                out["failed"].append(status)
            i += 1
    finally:
        writer.close()


def drive(port: int, seconds: float) -> dict[str, float]:
    """32 connections sending 1-row requests for ``seconds``: requests/s, mean batch size, failures."""
    out: dict[str, list[int]] = {"ok": [], "failed": []}

    async def main() -> float:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(_connection(port, deadline, k, out) for k in range(CLIENTS)))
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    ok = out["ok"]
    return {"rps": len(ok) / elapsed, "mean_batch": statistics.fmean(ok) if ok else 0.0, "failed": float(len(out["failed"]))}


def _drive_in_child(args: tuple[int, float]) -> dict[str, float]:
    return drive(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        servers = {
            mode: start_server(folder / f"{mode}.db", folder / f"{mode}.log", target=target, within=120)
            for mode, target in MODES.items()
        }
        try:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(1) as pool:
                for _, url in servers.values():  # warm up: first calls, calibration threads
                    pool.apply(_drive_in_child, ((int(url.rsplit(":", 1)[1]), 1.0),))
                for round_ in range(args.rounds):
                    for mode, (_, url) in servers.items():
                        r = pool.apply(_drive_in_child, ((int(url.rsplit(":", 1)[1]), args.seconds),))
                        results[mode].append(r)
                        print(
                            f"round {round_ + 1} {mode:>9}: {r['rps']:7.0f} requests/s, mean batch {r['mean_batch']:5.1f},"
                            f" {int(r['failed'])} not 200",
                            flush=True,
                        )
        finally:
            for process, _ in servers.values():
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(60)
    median = {mode: statistics.median(r["rps"] for r in rs) for mode, rs in results.items()}
    ratio = median["batched"] / median["unbatched"]
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(
        f"batched / unbatched throughput: {ratio:.2f}x ({median['batched']:.0f} vs {median['unbatched']:.0f} requests/s,"
        f" {CLIENTS} clients, 1 row each); load average {' '.join(load)}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"rounds": results, "median_rps": median, "ratio": ratio, "loadavg": load}))


if __name__ == "__main__":
    main()
