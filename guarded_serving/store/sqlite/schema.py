"""The SQLite backend's tables, and the migrations that bring an older file to them.

Tables (browse them with ``sqlite-utils rows guarded_serving.db requests``). Everything but
``requests`` is keyed by (model, version), the version ``''`` for an unversioned model:

``requests``  one row per request: request_id, ts, model, version (NULL when unversioned), status
              (ok | rejected | error), rows, latency_ms, stages (JSON of per-stage milliseconds),
              failed_stage, error, worker, inputs and outputs (JSON arrays with one entry per row)
``rows``      a view with one row per input row of an answered request: request_id, row, inputs,
              outputs (JSON). Rows are stored per request, as one array each: one insert and one
              serializer call per request instead of per row, 2-3x the rows per second.
``totals``    running counts, so totals never need a full scan; requests whose record was dropped
              from the log are counted too (``dropped_requests``, ``dropped_rows``)
``warnings``  deprecation / future warnings raised while predicting, with counts (the newest
              ``WARNINGS_KEPT`` per model version)
``feedback``  labels that arrived later, keyed by (model, version, request_id, row); ``changed``: the
              label's change number (see ``changes``)
``changes``   two counters the database keeps itself, by triggers, whatever writes the file (this
              library, an older one, ``sqlite-utils``): ``label``, the last change number given to a
              label (each insert or update of a feedback row takes the next one, in commit order: SQLite
              has one writer at a time), and ``deletion``, counting every feedback row and answered request
              deleted. The label join reads only what changed since its last read (:mod:`.labels`).
``window``    the drift window: encoded rows of recent requests, as binary chunks
``models``    the reference (JSON) and monitoring settings, so that the file can be judged again
              offline (``guarded-serving report``)
``health_history``  one health snapshot per model version and ``history_interval`` slot (JSON)
``baselines`` per model version and reference: the output and performance baselines adopted from
              early served traffic (JSON), shared by every worker and kept over restarts

Schema 1 kept a table row per input row (folded into the requests' arrays); schema 2 keyed the other
tables by model alone (rebuilt keyed by model and version); schema 4 had no change numbers (a ``changed``
column added, 0 for the labels already stored: the first read of a label join reads them all anyway; the
counters start at 0). A writer migrates a file when it opens it; a reader reads an older file as it is,
through temporary views (:func:`schema_2_views`), and a schema-4 file without change numbers.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlite_utils

__all__ = ["SCHEMA_VERSION", "create_schema", "has_table", "schema_2_views"]

# 2: rows stored per request (inputs/outputs arrays), `rows` is a view; 3: every table keyed by (model, version);
# 4: a `baselines` table (created in a schema-3 file as it is opened); 5: labels' change numbers (feedback.changed,
# the `changes` counters and their triggers); 6: the (model, version, id) index of requests covers what a health
# check reads of the recent requests (status, latency_ms, failed_stage); 7: the window's (model, version, id) index
# holds each chunk's row count, all the window read asks of a chunk it decoded before; 8: the `request` counter of
# `changes`, which triggers move when a request is changed in place or deleted (SqliteReader.request_edits)
SCHEMA_VERSION = 8
# Pages of a new file. A logged wide request is tens of kB of JSON text: in 4 kB pages (SQLite's default) it is a
# chain of overflow pages, each written to the write-ahead log with its own header and checksum. 64 kB pages
# halve the writer's CPU per row stored (29 against 66 µs for a 64-row request of 20 features, inserted in
# batches). A file created earlier keeps its pages (they change only with a VACUUM).
PAGE_SIZE = 65536

# The tables keyed by model, as schema 3 has them: (columns, primary key, not-null columns).
_KEYED_TABLES: dict[str, tuple[dict[str, Any], tuple[str, ...] | str, set[str]]] = {
    "totals": (
        {
            "model": str,
            "version": str,
            "requests": int,
            "rows": int,
            "rejected": int,
            "errors": int,
            "labels": int,
            "relabels": int,
            "dropped_requests": int,
            "dropped_rows": int,
        },
        ("model", "version"),
        {"model", "version"},
    ),
    "window": (
        {"id": int, "model": str, "version": str, "rows": int, "inputs": bytes, "outputs": bytes, "meta": str},
        "id",
        {"model", "version", "rows", "inputs"},
    ),
    "warnings": (
        {
            "model": str,
            "version": str,
            "category": str,
            "message": str,
            "location": str,
            "count": int,
            "first_seen": str,
            "last_seen": str,
        },
        ("model", "version", "category", "message", "location"),
        {"model", "version"},
    ),
    "feedback": (
        {
            "model": str,
            "version": str,
            "request_id": str,
            "row": int,
            "label": str,
            "ts": str,
            "updates": int,
            "changed": int,
        },
        ("model", "version", "request_id", "row"),
        {"model", "version"},
    ),
    "health_history": (
        {"model": str, "version": str, "slot": int, "ts": str, "status": str, "snapshot": str, "worker": int},
        ("model", "version", "slot"),
        {"model", "version", "ts", "status", "snapshot"},
    ),
    "models": (
        {"model": str, "version": str, "saved_at": str, "reference": str, "settings": str},
        ("model", "version"),
        {"model", "version", "saved_at", "reference", "settings"},
    ),
    "baselines": (  # keyed by the reference's digest too: a new reference collects its own baselines
        {"model": str, "version": str, "reference": str, "kind": str, "since": str, "rows": int, "document": str},
        ("model", "version", "reference", "kind"),
        {"model", "version", "reference", "kind", "since", "rows", "document"},
    ),
}


def _schema_2_version(name: str, schema: str = "") -> str:
    """In a schema-2 file, the version a row ``t`` of a keyed table belonged to: the one its model saved
    last (the version that wrote it, as far as the file can tell); for a label, its request's version."""
    saved = f"coalesce((SELECT m.version FROM {schema}models m WHERE m.model = t.model), '')"
    if name == "models":
        return "coalesce(t.version, '')"
    if name == "feedback":
        return (
            f"coalesce((SELECT q.version FROM {schema}requests q WHERE q.request_id = t.request_id AND q.model = t.model"
            f" ORDER BY q.id DESC LIMIT 1), {saved})"
        )
    return saved


def _keyed_by_version(table: sqlite_utils.db.Table, name: str) -> bool:
    pk = _KEYED_TABLES[name][1]
    return "version" in table.columns_dict and (isinstance(pk, str) or table.pks == list(pk))


def create_schema(db: sqlite_utils.Database) -> None:
    """Create the tables and indexes if they do not exist, and migrate an older file (safe to run from
    several workers: a file whose schema is current is only read, so a lock held elsewhere delays nothing)."""
    db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only an empty file not yet in WAL mode takes it
    db.execute("PRAGMA journal_mode=WAL")
    if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")  # one worker creates or migrates; the others then find it done
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _create_tables(db)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _create_tables(db: sqlite_utils.Database) -> None:
    requests = db.table("requests")
    requests.create(
        {
            "id": int,
            "request_id": str,
            "ts": str,
            "model": str,
            "version": str,
            "status": str,
            "rows": int,
            "latency_ms": float,
            "stages": str,
            "failed_stage": str,
            "error": str,
            "problem_features": str,
            "worker": int,
            "inputs": str,
            "outputs": str,
        },
        pk="id",
        not_null={"request_id", "ts", "model", "status", "rows"},
        if_not_exists=True,
    )
    for column in ("problem_features", "inputs", "outputs"):  # files written before these columns existed
        if column not in requests.columns_dict:
            requests.add_column(column, str)
    if "rows" in db.table_names():  # schema 1 kept one table row per input row: fold them in
        _fold_rows_table(db.conn)
    for name in ("totals", "warnings", "feedback", "health_history", "window", "models"):  # models last: read by the others
        _migrate_keyed_table(db, name)
    for name, (columns, pk, not_null) in _KEYED_TABLES.items():
        db.table(name).create(columns, pk=pk, not_null=not_null, defaults=_zero_counts(columns), if_not_exists=True)
    requests.create_index(["request_id"], if_not_exists=True)
    requests.create_index(["model", "id"], if_not_exists=True)
    # The recent requests a health check reads (recent_request_marks) come from this index alone. Read from the
    # table, each wide request's row is a page of its own (64 kB pages, a small page cache): 100 logged 100-row
    # requests cost ~0.6 ms to read, 1,000 one-row requests ~2 ms, on every health check.
    db.execute("DROP INDEX IF EXISTS idx_requests_model_version_id")
    requests.create_index(
        ["model", "version", "id", "status", "latency_ms", "failed_stage"], index_name="idx_requests_recent", if_not_exists=True
    )
    db.execute("DROP INDEX IF EXISTS idx_window_model_version_id")  # schema 6's, without the rows (see chunks.py)
    db.table("window").create_index(["model", "version", "id", "rows"], index_name="idx_window_chunks", if_not_exists=True)
    db.table("health_history").create_index(["model", "version", "ts"], if_not_exists=True)
    _create_change_numbers(db)
    db.execute(_ROWS_VIEW)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


# The change numbers: a label inserted or updated takes a new ``label`` number; a label or an answered request
# deleted counts one ``deletion``. Triggers, so that every writer of the file keeps them (the label join trusts
# them to know what changed); the update trigger names the columns a change of the join reads, so that its own
# update of ``changed`` does not fire it again.
_NEXT_LABEL = (
    "UPDATE changes SET value = value + 1 WHERE name = 'label';"
    " UPDATE feedback SET changed = (SELECT value FROM changes WHERE name = 'label') WHERE rowid = new.rowid;"
)
_DELETION = "UPDATE changes SET value = value + 1 WHERE name = 'deletion';"
_REQUEST_EDIT = "UPDATE changes SET value = value + 1 WHERE name = 'request';"
# The library's own label writes number their rows themselves, one number per transaction (a trigger's two
# updates per row made storing 100 labels 4x as costly: 5.6 against 1.3 ms of CPU); the triggers number what
# any other writer inserts without a number or changes without a new one. Their conditions read only the row
# (a subquery of the counter in them cost another 1 ms per 100 labels).
_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS feedback_inserted AFTER INSERT ON feedback"
    f" WHEN new.changed IS NULL OR new.changed <= 0 BEGIN {_NEXT_LABEL} END",
    "CREATE TRIGGER IF NOT EXISTS feedback_updated AFTER UPDATE OF model, version, request_id, row, label, ts"
    f" ON feedback WHEN new.changed IS NULL OR old.changed IS NULL OR new.changed <= old.changed BEGIN {_NEXT_LABEL} END",
    f"CREATE TRIGGER IF NOT EXISTS feedback_deleted AFTER DELETE ON feedback BEGIN {_DELETION} END",
    f"CREATE TRIGGER IF NOT EXISTS requests_deleted AFTER DELETE ON requests WHEN old.status = 'ok' BEGIN {_DELETION} END",
    # Any request changed or deleted (the library's writer only inserts them): what a reader of the recent
    # requests read before may no longer be so.
    f"CREATE TRIGGER IF NOT EXISTS requests_edited AFTER UPDATE ON requests BEGIN {_REQUEST_EDIT} END",
    f"CREATE TRIGGER IF NOT EXISTS requests_removed AFTER DELETE ON requests BEGIN {_REQUEST_EDIT} END",
)


def _create_change_numbers(db: sqlite_utils.Database) -> None:
    """The ``changes`` counters, their triggers and the index the label join reads changes by (a schema-4 file's
    feedback gains its ``changed`` column, 0 for every label stored)."""
    feedback = db.table("feedback")
    if "changed" not in feedback.columns_dict:
        db.execute("ALTER TABLE feedback ADD COLUMN changed INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE TABLE IF NOT EXISTS changes (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.execute("INSERT OR IGNORE INTO changes (name, value) VALUES ('label', 0), ('deletion', 0), ('request', 0)")
    feedback.create_index(["model", "version", "changed"], if_not_exists=True)
    for trigger in _TRIGGERS:
        db.execute(trigger)


def _zero_counts(columns: dict[str, Any]) -> dict[str, Any]:
    return {name: 0 for name in ("labels", "relabels", "dropped_requests", "dropped_rows", "changed") if name in columns}


def _migrate_keyed_table(db: sqlite_utils.Database, name: str) -> None:
    """Rebuild a schema-2 table keyed by model alone into its schema-3 shape, keyed by (model, version)."""
    if name not in db.table_names() or _keyed_by_version(db.table(name), name):
        return
    columns, pk, not_null = _KEYED_TABLES[name]
    old = db.table(name).columns_dict
    db.table(f"{name}_v3").create(columns, pk=pk, not_null=not_null, defaults=_zero_counts(columns))
    listed = ", ".join(f'"{c}"' for c in columns if c in old and c != "version")
    db.execute(f'INSERT INTO "{name}_v3" ({listed}, version) SELECT {listed}, {_schema_2_version(name)} FROM "{name}" AS t')
    db.execute(f'DROP TABLE "{name}"')
    db.execute(f'ALTER TABLE "{name}_v3" RENAME TO "{name}"')


def _fold_rows_table(conn: sqlite3.Connection) -> None:
    """Move a schema-1 file's ``rows`` table into the requests' inputs/outputs arrays."""
    for column in ("inputs", "outputs"):
        conn.execute(
            f"UPDATE requests SET {column} = (SELECT '[' || group_concat(coalesce(v, 'null'), ',') || ']' FROM"
            f" (SELECT r.{column} AS v FROM rows r WHERE r.request_id = requests.request_id ORDER BY r.row))"
            f" WHERE {column} IS NULL AND EXISTS"
            f" (SELECT 1 FROM rows r WHERE r.request_id = requests.request_id AND r.{column} IS NOT NULL)"
        )
    conn.execute("DROP TABLE rows")


def schema_2_views(db: sqlite_utils.Database) -> None:
    """On a read-only connection to a schema-2 file, temporary views that show its keyed tables as schema 3
    has them (with a ``version``), so that the same queries read both; the file itself is not touched."""
    tables = set(db.table_names())
    for name, (columns, _, _) in _KEYED_TABLES.items():
        if name not in tables or _keyed_by_version(db.table(name), name):
            continue
        present = db.table(name).columns_dict
        listed = [f't."{c}"' if c in present else f'0 AS "{c}"' for c in columns if c != "version"]
        db.execute(
            f'CREATE TEMP VIEW "{name}" AS SELECT {", ".join(listed)}, {_schema_2_version(name, "main.")} AS version'
            f' FROM main."{name}" AS t'
        )


# One row per input row, read from the per-request arrays (outputs drive it: inputs may be withheld).
_ROWS_VIEW = (
    "CREATE VIEW IF NOT EXISTS rows AS SELECT q.request_id AS request_id, j.key AS row,"
    " q.inputs -> j.key AS inputs, q.outputs -> j.key AS outputs FROM requests q, json_each(q.outputs) j"
)


def has_table(db: sqlite_utils.Database, name: str) -> bool:
    """Whether the file has this table (a file written before it existed has not)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() is not None
