"""What handing a request from the event loop to another thread costs, side by side.

    .venv/bin/python bench/handoff.py                  # 3 interleaved rounds of 7 x 2,000 requests each

service.py never runs the model on the worker's event loop (a model that hangs there would freeze the
health probes with it). This times, on one asyncio loop, sequential requests of a fixed 100 µs of work
run three ways: ``inline`` on the loop itself (what the adapter did before), ``model-thread`` through the
adapter's own hand-off (a dedicated thread, and a wait on a plain lock while the request is quick), and
``anyio`` through ``anyio.to_thread.run_sync`` (BentoML's way for sync APIs). Printed per way: the median
process CPU and wall time per request, and the CPU each way adds to the work itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from guarded_serving.service import _ModelThread

WORK_S = 0.0001
WAYS = ("inline", "model-thread", "anyio")


def work() -> None:
    """A request's fixed cost: busy for WORK_S (a sleep would hand the CPU away and time the scheduler)."""
    started = time.perf_counter()
    while time.perf_counter() - started < WORK_S:
        pass


async def measure(way: str, requests: int, repeats: int) -> tuple[float, float]:
    """Median (CPU µs, wall µs) per request of ``requests`` sequential requests run ``way``."""
    thread = _ModelThread()
    thread.recent = 0.0  # as after a run of quick requests: the fast hand-off
    limiter = anyio.CapacityLimiter(1)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "inline": lambda: _done(work()),
        "model-thread": lambda: thread.call(work),  # type: ignore[arg-type]
        "anyio": lambda: anyio.to_thread.run_sync(work, limiter=limiter),
    }
    one = calls[way]
    for _ in range(200):  # warm up
        await one()
    samples = []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await one()
        samples.append(((time.process_time() - cpu) / requests * 1e6, (time.perf_counter() - wall) / requests * 1e6))
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


async def _done(value: Any) -> Any:
    return value


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    runs: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    for r in range(args.rounds):
        for way in WAYS[r % len(WAYS) :] + WAYS[: r % len(WAYS)]:
            cpu, wall = asyncio.run(measure(way, args.requests, args.repeats))
            runs[way].append((cpu, wall))
            print(f"  round {r + 1} {way:>12}: cpu {cpu:6.1f} µs/request, wall {wall:6.1f} µs/request", flush=True)
    summary = {}
    for way, found in runs.items():
        cpu = statistics.median(c for c, _ in found)
        summary[way] = {"cpu_us": cpu, "wall_us": statistics.median(w for _, w in found), "added_cpu_us": cpu - WORK_S * 1e6}
    print(f"\n{'way':>12} | {'cpu µs/req':>10} {'wall µs/req':>11} | added to {WORK_S * 1e6:.0f} µs of work")
    for way, s in summary.items():
        print(f"{way:>12} | {s['cpu_us']:10.1f} {s['wall_us']:11.1f} | {s['added_cpu_us']:6.1f} µs")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
