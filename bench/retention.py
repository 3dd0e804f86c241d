"""What a ``max_rows`` prune costs a PostgreSQL store holding many requests, before and after counting what the
last prune kept, side by side in one run.

    .venv/bin/python bench/retention.py                      # a million requests, 5 rounds (~2 min)
    .venv/bin/python bench/retention.py --requests 200000    # a quick look

Starts a PostgreSQL server of its own (as tests/fixtures/postgres.py does) on a temporary directory and a loopback
port, fills a store's tables with ``--requests`` requests of 1 to 64 rows (``max_rows`` set to keep ~90 % of their
rows), and prunes once. Then each round logs 500 more requests and, alternately, times:

- *before*: what a prune's ``max_rows`` part did before (2026-12-03): a running sum over every request of the
  model version, newest first, for the newest one beyond ``max_rows``, then the deletion of it and those before
  it from the first id on, in a transaction rolled back (the prune after it has the same requests to delete);
- *now*: a whole prune (``Retention.prune``: the counts since the last prune, the walk over the requests it
  deletes, their deletion from the last cutoff on, and what it keeps stored).

Printed: the median milliseconds of each and their ratio (goal: the prune's cost does not grow with the requests
kept). Wall clock of the calls; the server does the work, on this machine's two cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from guarded_serving.store import StoreOptions
from guarded_serving.store.postgres.retention import Retention
from guarded_serving.store.postgres.schema import create_schema
from tests.fixtures.postgres import PostgresServer, ensure_installed

EVERY_REQUEST = (
    "SELECT max(id) FROM (SELECT id, sum(greatest(rows, 1)) OVER (ORDER BY id DESC) AS kept FROM requests"
    " WHERE model = %s AND version = %s) t WHERE kept > %s"
)
DELETE_BEFORE = (
    "WITH gone AS (DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE model = %s AND version = %s"
    " AND id <= %s ORDER BY id LIMIT 5000) RETURNING request_id)"
    " SELECT count(*), coalesce(array_agg(DISTINCT request_id), '{}') FROM gone"
)
FILL = (
    "INSERT INTO requests (request_id, ts, model, version, status, rows, outputs)"
    " SELECT md5(random()::text), '2026-12-03T00:00:00.000+00:00', 'm', '', 'ok', 1 + floor(random() * 64)::int, '[]'"
    " FROM generate_series(1, %s)"
)


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    ensure_installed()
    server = PostgresServer()
    server.start()
    try:
        with psycopg.connect(server.database("retention"), autocommit=True) as conn:
            create_schema(conn)
            conn.execute(FILL, (args.requests,))
            conn.execute("VACUUM ANALYZE requests")
            max_rows = int(args.requests * 32.5 * 0.9)
            retention = Retention(StoreOptions(max_rows=max_rows))
            retention.note({("m", "")})
            retention.prune(conn)  # the first prune counts every request
            before, after = [], []
            for _ in range(args.rounds):
                conn.execute(FILL, (500,))
                start = time.perf_counter()
                with conn.transaction(force_rollback=True):
                    (last,) = conn.execute(EVERY_REQUEST, ("m", "", max_rows)).fetchone() or (None,)
                    if last is not None:
                        conn.execute(DELETE_BEFORE, ("m", "", last)).fetchone()
                before.append(time.perf_counter() - start)
                start = time.perf_counter()
                retention.prune(conn)
                after.append(time.perf_counter() - start)
    finally:
        server.remove()
    old, new = statistics.median(before) * 1e3, statistics.median(after) * 1e3
    print(f"{args.requests:,} requests kept, a prune after 500 new ones (median of {args.rounds} rounds):")
    print(f"  before: {old:.1f} ms   now: {new:.1f} ms   before/now: {old / new:.0f}x")
    summary = {"requests": args.requests, "rounds": args.rounds, "before_ms": old, "now_ms": new}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
