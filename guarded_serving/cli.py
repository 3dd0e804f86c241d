"""The command line: ``guarded-serving profile | report | tail``, each a thin call into the Python API.

    guarded-serving profile train.csv --target label --out reference.json    # Reference.from_data(...).save(...)
    guarded-serving report --db guarded_serving.db [--since 1h] [--json]     # offline_health(...)
    guarded-serving tail --db guarded_serving.db -n 20 --follow              # open_reader(db).request_log(...)

Exit codes: 0 done, 1 the report's status is at or above ``--fail-on``, 2 a usage error (a bad option
value, a missing or unreadable file: the message names it and what was expected), 3 an internal error
(a bug: one line on stderr, the traceback with ``GUARDED_SERVING_DEBUG=1``). ``python -m
guarded_serving`` is the same program.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .dashboard import render_dashboard
from .datafile import read_table, split_columns
from .errors import ConfigurationError, GuardedServingError, short_repr
from .health import Status
from .offline import SINCE_EXPECTED, OfflineReport, offline_health
from .options import DEFAULT_DB, Environment
from .reference import Reference
from .store import StoreReader, open_reader
from .terminal import ProgressBar, print_requests, printable, profile_summary, render_table, tail_header

__all__ = ["build_parser", "main"]

PROG = "guarded-serving"
LOOKBACK = 1_000  # ids tail --follow looks back for requests committed after a newer one was shown
EXIT_OK, EXIT_FAIL_ON, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# Python API argument names -> the option that sets them, for error messages.
OPTIONS = {
    "data": "DATA",
    "db": "--db",
    "model": "--model",
    "version": "--model-version",
    "reference": "--reference",
    "since": "--since",
    "window": "--window",
    "feature_names": "--feature-names",
    "categorical": "--categorical",
    "target": "--target",
    "predictions": "--predictions",
    "task": "--task",
    "input_format": "--input-format",
}


class UsageError(GuardedServingError):
    """A command line that cannot be carried out (exit code 2)."""


# -- the parser ------------------------------------------------------------------------------------
def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names like a,b,c, got {text!r}")
    return names


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="FILE",
        default=Environment.read().db or DEFAULT_DB,
        help="the service's log store, a SQLite file or a postgresql:// URL (default: $GUARDED_SERVING_DB, else"
        " ./guarded_serving.db); only read",
    )


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="a progress bar on stderr for long runs: auto (when stderr is a terminal), always or never",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Profile training data into a reference, and judge or follow a guarded service's log store offline.",
        epilog="Exit codes: 0 done, 1 the report is at or above --fail-on, 2 a usage error.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    profile = commands.add_parser(
        "profile",
        help="profile training data into a reference JSON file",
        description="Profile training data into a reference (Reference.from_data), saved as JSON for guard(reference=...).",
    )
    profile.add_argument(
        "data", metavar="DATA", help="training data: .csv with a header row, .npy (a 2-D array), or .parquet (needs pyarrow)"
    )
    profile.add_argument("--out", metavar="FILE", required=True, help="where to write the reference JSON")
    profile.add_argument(
        "--feature-names",
        metavar="NAMES",
        type=_names,
        help="comma-separated names for every column of the file, in order (replaces a header; .npy columns are f0, f1...)",
    )
    profile.add_argument(
        "--categorical", metavar="NAMES", type=_names, help="comma-separated columns to treat as categories even if numeric"
    )
    profile.add_argument(
        "--holdout",
        metavar="FILE",
        help="held-out rows (same columns, same format as DATA): --target and --predictions are read from them, and"
        " the reference's outputs and performance describe them (holdout=)",
    )
    profile.add_argument("--target", metavar="COLUMN", help="the column holding the labels (y): profiled, not a feature")
    profile.add_argument(
        "--predictions",
        metavar="COLUMNS",
        type=_names,
        help="comma-separated columns holding the model's outputs on these rows (one per class probability):"
        " profiled for prediction drift, not features",
    )
    profile.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="the task, for the reference performance (with --target and --predictions; inferred by default)",
    )
    profile.add_argument(
        "--input-format",
        choices=("array", "records", "dataframe"),
        default="array",
        help="what the predict function receives when served with this reference (default: array)",
    )
    _progress_option(profile)
    profile.set_defaults(run=_profile)

    report = commands.add_parser(
        "report",
        help="recompute a model's health offline from a log store",
        description="Recompute a model's health from the log store with the code GET /health/model runs, and print it.",
    )
    _db_option(report)
    report.add_argument("--model", metavar="NAME", help="the model to judge (needed when the file holds several)")
    report.add_argument(
        "--model-version",
        metavar="VERSION",
        help="the version of the model to judge (needed when the file holds several; '' for the unversioned one)",
    )
    report.add_argument(
        "--reference", metavar="FILE", help="a reference JSON to judge against instead of the one the service saved"
    )
    report.add_argument(
        "--since",
        metavar="WHEN",
        help=f"judge only requests logged since then, re-encoding their rows: {SINCE_EXPECTED}",
    )
    report.add_argument(
        "--window",
        metavar="N",
        type=_count(1),
        help="judge the newest N logged rows, re-encoded (default: the live window; with --since, every row since then,"
        " up to 100,000)",
    )
    output = report.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print the report as JSON (the /health/model body) instead of a table"
    )
    output.add_argument("--html", metavar="FILE", help="also write the report as a self-contained HTML page")
    report.add_argument(
        "--fail-on", choices=("warn", "alert"), help="exit with 1 when the overall status is at or above this (for scripts)"
    )
    _progress_option(report)
    report.set_defaults(run=_report)

    tail = commands.add_parser(
        "tail",
        help="show the most recent requests of a log store",
        description="Show the most recent requests (newest last): time (UTC), id, status, rows, latency, failed stage and error.",
    )
    _db_option(tail)
    tail.add_argument("--model", metavar="NAME", help="only this model's requests (default: every model's)")
    tail.add_argument(
        "--model-version",
        metavar="VERSION",
        help="only this version's requests ('' for the unversioned model; default: every version's)",
    )
    tail.add_argument("-n", "--lines", metavar="N", type=_count(0), default=20, help="how many requests to show (default: 20)")
    tail.add_argument("--status", choices=("ok", "rejected", "error"), help="only requests with this status")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new requests as they are logged, until Ctrl-C")
    tail.add_argument(
        "--interval", metavar="SECONDS", type=_seconds, default=0.5, help="with --follow, how often to look (default: 0.5)"
    )
    tail.add_argument("--json", action="store_true", help="print one JSON object per request instead of a table row")
    tail.set_defaults(run=_tail)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (already printed)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.run(args)
        return code
    except ConfigurationError as exc:
        option = OPTIONS.get(exc.argument)
        message = f"{option}: expected {exc.expected}, got {short_repr(exc.got)}" if option else str(exc)
        return _fail(args.command, message)
    except GuardedServingError as exc:
        return _fail(args.command, str(exc))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `guarded-serving tail | head`: the reader went away, nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so that the interpreter's final flush does not fail
        return EXIT_OK
    except Exception as exc:  # a bug: say so in one line, with an exit code no script mistakes for a verdict
        print(f"{PROG} {args.command}: internal error: {printable(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        print("This is a bug in guarded-serving; set GUARDED_SERVING_DEBUG=1 to see where it happened.", file=sys.stderr)
        if Environment.read().debug:
            traceback.print_exc()
        return EXIT_INTERNAL


def _fail(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE


# -- profile ---------------------------------------------------------------------------------------
def _profile(args: argparse.Namespace) -> int:
    table = _read_features(args, args.data)
    held = _read_features(args, args.holdout) if args.holdout else None
    y, predictions, table = split_columns(table, args.target, args.predictions, present_only=held is not None)
    if held is not None:
        y, predictions, held = split_columns(held, args.target, args.predictions)
        if held.names != table.names:
            raise ConfigurationError(
                "holdout", f"columns {list(held.names)}", f"the feature columns of DATA, {list(table.names)}"
            )
    if not table.names:
        raise ConfigurationError("data", args.data, "at least one feature column besides --target and --predictions")
    unknown = [n for n in args.categorical or () if n not in table.names]
    if unknown:
        raise ConfigurationError("categorical", unknown, f"feature columns among {list(table.names)}")
    if args.task and (y is None or predictions is None):
        raise UsageError("--task needs --target and --predictions: the reference performance compares them")
    reference = Reference.from_data(
        table.matrix(),
        y=None if held is not None else y,
        predictions=predictions,
        feature_names=table.names,
        categorical=args.categorical,
        input_format=args.input_format,
        task=args.task,
        holdout=None if held is None else (held.matrix(), y),
    )
    try:
        saved = reference.save(args.out)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out!r}: {exc.strerror or exc}") from None
    print(profile_summary(reference, args.data, saved))
    return EXIT_OK


def _read_features(args: argparse.Namespace, path: str) -> Any:
    bar = ProgressBar(f"reading {Path(path).name}", args.progress, unit="bytes")
    try:
        table = read_table(path, progress=bar)
    finally:
        bar.close()
    if args.feature_names:
        table = table.renamed(args.feature_names)
    if args.categorical:
        table = table.as_categorical(args.categorical)
    return table


# -- report ----------------------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> int:
    bar = ProgressBar("re-encoding logged rows", args.progress)
    try:
        offline = offline_health(
            args.db,
            model=args.model,
            version=args.model_version,
            reference=args.reference,
            since=args.since,
            window=args.window,
            progress=bar,
        )
    finally:
        bar.close()
    if args.json:
        print(json.dumps(offline.to_json(), indent=2))
    else:
        print(render_table(offline, width=shutil.get_terminal_size().columns if sys.stdout.isatty() else None))
    if args.html:
        try:
            _write_html(offline, Path(args.html))
        except OSError as exc:
            raise UsageError(f"cannot write {args.html!r}: {exc.strerror or exc}") from None
        print(f"Wrote {args.html}.")
    if args.fail_on and offline.report.status.rank >= Status.parse(args.fail_on).rank:
        return EXIT_FAIL_ON
    return EXIT_OK


def _write_html(offline: OfflineReport, path: Path) -> None:
    """Write the report as the service's dashboard: one self-contained page (no script, no external URL)."""
    page = render_dashboard(offline.report, offline.histograms, offline.history)
    path.write_text(page, encoding="utf-8")


# -- tail ------------------------------------------------------------------------------------------
def _tail(args: argparse.Namespace) -> int:
    reader = open_reader(args.db)
    try:
        names = reader.model_names()
        if args.model is not None and not args.follow and args.model not in names:
            raise ConfigurationError("model", args.model, f"one of the models in {reader.path}: {names}")
        show_model = args.model is None and len(names) > 1
        # the version column when the requests shown may be of several versions
        versions = {v for m, v in reader.model_versions() if args.model is None or m == args.model}
        show_version = args.model_version is None and len(versions) > 1
        version, shown_as = args.model_version, (show_model, show_version)
        found = reader.request_log(args.model, args.status, limit=args.lines, version=version) if args.lines else []
        if not args.json and (found or args.follow):
            print(tail_header(*shown_as), flush=True)
        print_requests(found, args.json, *shown_as)
        if not args.follow:
            if not found:
                print(f"No requests logged in {reader.path}" + (f" with status {args.status}" if args.status else "") + ".")
            return EXIT_OK
        last = found[-1]["id"] if found else _newest_id(reader)
        back = max(last - LOOKBACK, 0)
        shown = _ids(reader.request_log(args.model, args.status, after_id=back, limit=LOOKBACK, version=version))
        while True:
            time.sleep(args.interval)
            # Ids are taken before the commit: on PostgreSQL a replica's batch can commit after a newer id was shown,
            # below it. Each look goes back LOOKBACK ids and prints those not shown yet (a batch held uncommitted
            # while more than LOOKBACK newer requests were logged is still missed).
            back = max(last - LOOKBACK, 0)
            new = [
                r
                for r in reader.request_log(args.model, args.status, after_id=back, limit=10_000, version=version)
                if int(r["id"]) not in shown
            ]
            if new:
                last = max(last, *_ids(new))
                shown = {i for i in shown if i > last - LOOKBACK} | _ids(new)
                print_requests(new, args.json, *shown_as)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        reader.close()


def _ids(requests: list[dict[str, Any]]) -> set[int]:
    return {int(r["id"]) for r in requests}


def _newest_id(reader: StoreReader) -> int:
    newest = reader.request_log(limit=1)
    return int(newest[-1]["id"]) if newest else 0
