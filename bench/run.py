"""Run every benchmark and write bench/RESULTS.md (dated, with the machine described).

    python3.11 -m venv .venv-bench && .venv-bench/bin/pip install -e ".[bench]" && .venv-bench/bin/python bench/run.py

Installs wrk (Debian's package) when it is missing, then runs, each in its own process:
bench/overhead.py (bare vs tuned vs guarded BentoML over HTTP, and the guard's own work),
bench/health.py (a health computation vs a scipy KS loop, alibi-detect and Evidently when installed),
bench/store.py (the writer's sustained rows/s vs the guarded service's peak, and the service under 4
clients of 1,000-row requests, every answer counted), bench/fleet.py (the guarded service with a
PostgreSQL store vs a SQLite one, and the PostgreSQL writer's rows/s; it starts its own server),
bench/retention.py (a PostgreSQL prune at a million requests kept, before and after counting what the last one
kept), bench/batching.py, bench/memory.py (RSS growth over 1,000,000 rows) and bench/native.py (the class-based form vs
guard()). ``--quick`` shortens every run, for a look rather than a record. Each figure is kept in
bench/RESULTS.json as soon as its script ends; ``--resume`` runs only what an interrupted run left undone, and
``--only health`` (any parts) measures those again into the finished record, the page saying which and when.
Measurements taken by hand on branches (before/after a change) live in bench/HISTORY.md, never overwritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
RECORD = BENCH / "RESULTS.json"  # every figure of the last run, so that RESULTS.md can be written again (--render)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing wrk (apt-get install wrk)", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)


def run(script: str, args: list[str], out: Path) -> Any:
    print(f"\n=== bench/{script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)], check=True, cwd=BENCH.parent)
    return json.loads(out.read_text())


def processor() -> str:
    """The processors' count and name, with the family and model where /proc/cpuinfo gives them: a VM may name only
    the vendor ("AMD EPYC"), whose generations differ in speed (family 23 model 1 is Zen 1)."""
    found: dict[str, str] = {}
    with open("/proc/cpuinfo") as f:  # the first processor's lines
        for line in f:
            key, _, value = line.partition(":")
            if not key.strip() and found:
                break
            found.setdefault(key.strip(), value.strip())
    cpu = f"{os.cpu_count()} x {found.get('model name', 'unknown')}"
    if "cpu family" in found and "model" in found:
        cpu += f" (family {found['cpu family']}, model {found['model']})"
    return cpu


def machine() -> dict[str, str]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    versions = {name: metadata.version(name) for name in ("bentoml", "numpy", "scipy", "pydantic-core", "sqlite-utils")}
    for optional in ("evidently", "alibi-detect"):
        try:
            versions[optional] = metadata.version(optional)
        except metadata.PackageNotFoundError:
            versions[optional] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0] or "wrk"
    return {
        "cpu": processor(),
        "memory": f"{mem_kb / 2**20:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "wrk": wrk.strip(),
    }


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(
    when: str, box: dict[str, str], load_after: str, results: dict[str, Any], quick: bool, reruns: dict[str, Any] | None = None
) -> str:
    overhead, health, store, memory = results["overhead"], results["health"], results["store"], results["memory"]
    again = [
        f"- Measured again later (`bench/run.py --only {part}`): {part} on {r['when']}"
        + (f", on {r['cpu']}" if r.get("cpu", box["cpu"]) != box["cpu"] else "")
        + f", load before / after {r['load']} / {r['load_after']}; the other parts are the full run's"
        for part, r in (reruns or {}).items()
    ]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `bench/run.py{' --quick' if quick else ''}` on {when}. Regenerate with the command in the README;",
        "the figures are this machine's on that day, only the ratios travel. Measurements taken by hand on branches,",
        "before and after a change: [HISTORY.md](HISTORY.md).",
        "",
        f"- Machine: {box['cpu']}, {box['memory']}, {box['os']}, Python {box['python']}",
        f"- Packages: {box['packages']}; load generator: {box['wrk']}",
        f"- Load average before / after the run: {box['load']} / {load_after} (a shared machine: other work ran too)",
        *again,
        "",
        *overhead_section(overhead, 1),
        *overhead_section(results["overhead_2"], 2),
        "## The guard's own work per request (in-process, a stand-in model returning the real answer)",
        "",
        "| model | rows | guard's CPU per request (store writer included) | request thread only | share of tuned's CPU"
        " per request | goal <= 5% |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for t in overhead["summary"]:
        lines.append(
            f"| {t['model']} | {t['rows']} | {t['guard_work_us']:.0f} µs | {t['guard_work_thread_us']:.0f} µs | "
            f"{t['guard_work_share']:.1%} | {yes(t['guard_work_share'] <= 0.05)} |"
        )
    lines += [
        "",
        *paths_section(results.get("paths")),
        "## One health computation (bench/health.py)",
        "",
        "| features | window rows | health | scipy KS loop | vs scipy (goal 10x) | alibi-detect KSDrift | Evidently"
        " | vs Evidently (goal 50x) | first call (calibration) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def sec(v: Any) -> str:
        return f"{v * 1e3:.1f} ms" if isinstance(v, float) else str(v)

    def rat(v: Any) -> str:
        return "n/a" if v is None else f"{v:.0f}x"

    for h in health["health"]:
        lines.append(
            f"| {h['features']} | {h['window']:,} | {sec(h['health_s'])} | {sec(h['scipy_s'])} | {rat(h['vs_scipy'])} | "
            f"{sec(h['alibi_s'])} | {sec(h['evidently_s'])} | {rat(h['vs_evidently'])} | {sec(h['warm_up_s'])} |"
        )
    evidently = [h["vs_evidently"] for h in health["health"] if h["vs_evidently"] is not None]
    lines += [
        "",
        "Goals: >= 10x the scipy loop: "
        + yes(all(h["vs_scipy"] >= 10 for h in health["health"]))
        + "; >= 50x Evidently: "
        + (yes(all(v >= 50 for v in evidently)) if evidently else "not measured (Evidently not installed)")
        + ".",
        "",
        "Where one health computation goes with every check on (64 features, a 2,000-row window, a classifier's"
        " probabilities, a labelled reference, a label for every row; median of 30 calls per part, wall clock):"
        " asked again on the same window; after one new 100-row request, when everything is judged again; and, where"
        " a run has them, after one new request of a service answering one row per request (2,000 requests in the"
        ' window, 1,000 recent ones judged). Where a run has the part "the answer\'s JSON body", the total is what'
        " `GET /health/model` spends: `Monitor.health()` and the report rendered as the JSON it answers.",
        "",
        "| part | " + " | ".join(health["breakdown"]) + " |",
        "|---|" + "---:|" * len(health["breakdown"]),
        *(
            f"| {part} | " + " | ".join(sec(column[part]) for column in health["breakdown"].values()) + " |"
            for part in next(iter(health["breakdown"].values()))
        ),
        "",
        "Goal (issue 15): 5 ms in all, with a store after a new request: "
        + yes(health["breakdown"]["store, one new request"]["total"] <= 0.005)
        + ".",
        "",
        "## Store writer (bench/store.py)",
        "",
        "| features | rows/request | writer rows/s | lost | bytes/row on disk | guarded service peak rows/s | writer/peak"
        " (goal 2x) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in store:
        lines.append(
            f"| {s['features']} | {s['rows_per_request']} | {s['rows_per_s']:,.0f} | {s['lost']} | {s['bytes_per_row']:.0f} | "
            f"{s.get('service_peak_rows_per_s', 0):,.0f} | {s.get('vs_service_peak', 0):.1f}x |"
        )
    lines += [
        "",
        "Goal: at least twice the service's peak, zero loss: "
        + yes(all(s.get("vs_service_peak", 0) >= 2 and s["lost"] == 0 for s in store))
        + ".",
        "",
        "## Store under load (bench/store.py --load)",
        "",
        "4 clients, each sending 1,000-row requests of 8 features back to back (the default `max_request_rows`), to the"
        " guarded numpy service with a store and without one, interleaved; every answer looked up in the file after a"
        " clean stop.",
        "",
        "| store | requests/s | lost | totals count every answer | waited for the writer | dropped | store check |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    load = results["store_load"]
    for r in load["runs"]:
        check = r["store_check"]
        lines.append(
            f"| {'file' if r['store'] else 'none'} | {r['requests_per_s']:,.1f} | {r.get('lost', '-')} | "
            f"{yes(r['totals_count_every_answer']) if r['store'] else '-'} | {check.get('waits', '-')} | "
            f"{check.get('dropped', '-')} | {check['status']} |"
        )
    lines += [
        "",
        f"Requests/s with the store / without: {load['store_vs_none']:.2f}. Goal: zero lost, totals count every answer: "
        + yes(all(r["lost"] == 0 and r["totals_count_every_answer"] for r in load["runs"] if r["store"]))
        + ".",
        "",
        *fleet_section(results),
        *retention_section(results["retention"]),
        *batching_section(results["batching"]),
        *native_section(results["native"]),
        "## Memory (bench/memory.py)",
        "",
        f"RSS after start-up {memory['rss_start_mb']:.1f} MB; after {memory['rows']:,} rows served in 64-row requests:"
        f" +{memory['growth_mb']:.1f} MB from start-up, +{memory['steady_growth_mb']:.1f} MB after the first 50,000 rows"
        f" (goal < 10 MB: {yes(memory['growth_mb'] < 10)})"
        + (
            f"; over the second half of the rows: {memory['second_half_growth_mb']:+.1f} MB ("
            + ("flat: every bound reached, nothing leaking" if memory["second_half_growth_mb"] < 0.5 else "**still growing**")
            + ")."
            if "second_half_growth_mb" in memory
            else "."
        ),
        "",
    ]
    return "\n".join(lines)


def overhead_section(overhead: dict[str, Any], workers: int) -> list[str]:
    """bench/overhead.py's table for one number of workers per service, followed by a blank line."""
    each = "One worker each" if workers == 1 else f"{workers} workers each (sharing one log store)"
    lines = [
        f"## Guarded vs bare BentoML over HTTP, {each} (bench/overhead.py --workers {workers})",
        "",
        f"wrk with {16 * workers} connections, medians of interleaved rounds. *bare*: BentoML as its docs show it;",
        "*tuned*: object body, typed response, access log off, route excluded from tracing; *guarded*: `guard()` over",
        "the same predict function with a SQLite store and every check. CPU is the servers', per request.",
        *(
            [
                "With two workers, two wrk processes a quarter second apart, and a run counts only when each worker holds",
                "at least half its share of the connections (BentoML's workers race to accept them; see bench/overhead.py).",
            ]
            if workers > 1
            else []
        ),
        "",
        "| model | rows | bare req/s | tuned req/s | guarded req/s | guarded/bare | guarded/tuned | p50 ms b/t/g | p99 ms b/t/g"
        " | CPU ms/req b/t/g |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for t in overhead["summary"]:
        lines.append(
            f"| {t['model']} | {t['rows']} | {t['bare_rps']:.0f} | {t['tuned_rps']:.0f} | {t['guarded_rps']:.0f} | "
            f"{t['vs_bare']:.2f}x | {t['vs_tuned']:.2f}x | {t['bare_p50']:.1f}/{t['tuned_p50']:.1f}/{t['guarded_p50']:.1f} | "
            f"{t['bare_p99']:.0f}/{t['tuned_p99']:.0f}/{t['guarded_p99']:.0f} | "
            f"{t['bare_cpu']:.2f}/{t['tuned_cpu']:.2f}/{t['guarded_cpu']:.2f} |"
        )
    return [
        *lines,
        "",
        "Goals: guarded >= 1.00x bare: "
        + yes(all(t["vs_bare"] >= 1.0 for t in overhead["summary"]))
        + "; guarded >= 1.00x tuned (issue 19): "
        + yes(all(t["vs_tuned"] >= 1.0 for t in overhead["summary"]))
        + ".",
        "",
    ]


def paths_section(paths: dict[str, Any] | None) -> list[str]:
    """bench/paths.py's table (the guard's own work on other paths than the common one), followed by a blank line;
    nothing for a record from before it was measured."""
    if paths is None:
        return []
    lines = [
        f"## The guard's own work on other paths (bench/paths.py, {paths['rows']}-row requests)",
        "",
        "In-process, as above: a stand-in model, a SQLite store, the writer's CPU included; the paths take turns"
        f" round by round (median of {paths['rounds']} rounds), each compared with the common path of the same round.",
        "",
        "| path | guard's CPU per request | request thread only | x the common path |",
        "|---|---:|---:|---:|",
    ]
    for p in paths["paths"]:
        lines.append(f"| {p['path']} | {p['us']:.0f} µs | {p['thread_us']:.0f} µs | {p['vs_common']:.2f}x |")
    return [*lines, ""]


def batching_section(batching: dict[str, Any]) -> list[str]:
    """bench/batching.py's section, followed by a blank line."""
    median, rounds = batching["median_rps"], batching["rounds"]
    mean_batch = max(r["mean_batch"] for r in rounds["batched"])
    return [
        "## Adaptive batching (bench/batching.py)",
        "",
        "32 clients sending 1-row requests to one worker whose model costs ~1 ms of CPU per call, with and without",
        f"`batching=`, medians of interleaved rounds: {median['batched']:.0f} vs {median['unbatched']:.0f} requests/s,"
        f" {batching['ratio']:.2f}x (goal 2x: {yes(batching['ratio'] >= 2.0)}), largest mean batch {mean_batch:.1f}.",
        "",
    ]


def native_section(native: list[dict[str, Any]]) -> list[str]:
    """bench/native.py's section, followed by a blank line."""
    lines = [
        "## Class-based form vs guard() (bench/native.py)",
        "",
        "The same logistic regression on the iris features served as `guard(model.predict, ...)` and as a class-based",
        "service whose API carries `@guarded_api(...)`, each app driven in a process of its own by Starlette's",
        "TestClient, taking turns round by round; CPU time of the serving process per request (medians of rounds).",
        "",
        "| rows | guard() µs/req | class µs/req | class/guard() (goal ≥ 0.95) |",
        "|---:|---:|---:|---:|",
    ]
    for r in native:
        cpu = r["cpu_us_per_request"]
        lines.append(f"| {r['rows']} | {cpu['guard()']:,.0f} | {cpu['class']:,.0f} | {r['class_over_guard']:.2f} |")
    return [*lines, "", "Goal: " + yes(all(r["class_over_guard"] >= 0.95 for r in native)) + ".", ""]


def fleet_section(results: dict[str, Any]) -> list[str]:
    """bench/fleet.py's section (its own markdown), followed by a blank line."""
    sys.path.insert(0, str(BENCH))
    import fleet  # bench/fleet.py

    return [*fleet.markdown(results["fleet"]["summary"]), ""]


def retention_section(retention: dict[str, Any]) -> list[str]:
    """bench/retention.py's section, followed by a blank line."""
    ratio = retention["before_ms"] / retention["now_ms"]
    return [
        "## PostgreSQL retention (bench/retention.py)",
        "",
        f"A `max_rows` prune of a store keeping {retention['requests']:,} requests, after 500 new ones (median of"
        f" {retention['rounds']} rounds, wall clock): counting every request kept and deleting from the first id, as"
        f" before, {retention['before_ms']:,.1f} ms; from what the last prune kept, {retention['now_ms']:,.1f} ms"
        f" ({ratio:,.0f}x).",
        "",
    ]


def plan(quick: bool) -> dict[str, tuple[str, list[str]]]:
    """What each part of the record is: the script and its arguments, in the order they run."""
    short = ["--rounds", "2", "--seconds", "3"] if quick else []
    return {
        "overhead": ("overhead.py", short),
        "overhead_2": ("overhead.py", ["--workers", "2", *short]),
        "paths": ("paths.py", ["--rounds", "1"] if quick else []),
        "health": ("health.py", []),
        "store": ("store.py", ["--seconds", "2"] if quick else []),
        "store_load": ("store.py", ["--load", "--seconds", "5" if quick else "20"]),
        "fleet": ("fleet.py", ["--rounds", "1", "--seconds", "2"] if quick else []),
        "retention": ("retention.py", ["--requests", "200000", "--rounds", "3"] if quick else []),
        "batching": ("batching.py", ["--rounds", "1", "--seconds", "3"] if quick else []),
        "memory": ("memory.py", ["--rows", "200000"] if quick else []),
        "native": ("native.py", ["--rounds", "1", "--requests", "300"] if quick else ["--rounds", "3", "--requests", "1000"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a look, not a record")
    parser.add_argument("--render", action="store_true", help=f"only write {RESULTS.name} again from {RECORD.name}")
    parser.add_argument(
        "--resume", action="store_true", help=f"keep the parts an unfinished run left in {RECORD.name}, run the rest"
    )
    parser.add_argument(
        "--only",
        help=f"measure again only these parts of the finished record in {RECORD.name} (comma-separated: "
        + ", ".join(plan(False))
        + "); the page says which, and when",
    )
    args = parser.parse_args(argv)
    if args.render:
        write_results(json.loads(RECORD.read_text()))
        print(f"wrote {RESULTS}")
        return
    ensure_wrk()
    if args.only:
        measure_again(args.only.split(","))
        return
    record: dict[str, Any] = {}
    if args.resume and RECORD.exists():
        record = json.loads(RECORD.read_text())
        if record.get("quick") != args.quick:
            raise SystemExit(f"{RECORD} was written by a run with quick={record.get('quick')}; resume it the same way")
    if not record.get("partial"):
        record = {
            "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "quick": args.quick,
            "results": {},
        }
    record["partial"] = True
    with tempfile.TemporaryDirectory(prefix="guarded-bench-run-") as tmp:
        for part, (script, script_args) in plan(args.quick).items():
            if part in record["results"]:
                print(f"\n=== {part}: kept from the unfinished run", flush=True)
                continue
            record["results"][part] = run(script, script_args, Path(tmp) / f"{part}.json")
            RECORD.write_text(json.dumps(record, indent=1) + "\n")  # a failure later loses nothing: --resume
    record["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    del record["partial"]
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    write_results(record)
    print(f"\nwrote {RESULTS}")


def write_results(record: dict[str, Any]) -> None:
    RESULTS.write_text(
        markdown(
            record["when"], record["machine"], record["load_after"], record["results"], record["quick"], record.get("reruns")
        )
    )


def measure_again(parts: list[str]) -> None:
    """Run ``parts`` of the plan again into the finished record, noting when (a change measured by its own benchmark
    without the two hours of a full run)."""
    record = json.loads(RECORD.read_text())
    if record.get("partial"):
        raise SystemExit(f"{RECORD} is an unfinished run: finish it with --resume first")
    steps = plan(record["quick"])
    unknown = [p for p in parts if p not in steps]
    if unknown:
        raise SystemExit(f"no such part: {', '.join(unknown)}; the parts are {', '.join(steps)}")
    with tempfile.TemporaryDirectory(prefix="guarded-bench-run-") as tmp:
        for part in parts:
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            script, script_args = steps[part]
            record["results"][part] = run(script, script_args, Path(tmp) / f"{part}.json")
            after = " ".join(f"{x:.2f}" for x in os.getloadavg())
            record.setdefault("reruns", {})[part] = {"when": when, "load": load, "load_after": after, "cpu": processor()}
            RECORD.write_text(json.dumps(record, indent=1) + "\n")
    write_results(record)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
