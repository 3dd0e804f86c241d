"""The PostgreSQL backend's tables: the SQLite backend's, plus ``replicas`` (one heartbeat per serving process).

Every statement creates only what is missing: a database of an older schema version is brought up to
date by running them all again. Everything is keyed by (model, version), the version ``''`` for an
unversioned model (``requests`` too, so that one index serves every read). Times are ISO text in UTC with
milliseconds, as in a SQLite file, so that both backends answer alike; ``replicas.last_seen`` is the
server's own ``now()``, so that every replica judges staleness on one clock whatever its host's.
``window`` is a reserved word: always quoted.

Labels' change numbers (schema 3), as in a SQLite file: ``changes`` holds two counters the database keeps by
triggers, whatever writes to it: ``label``, the last number given to a label (each insert or update of a
feedback row takes a higher one into ``feedback.changed``; an upsert's attempted insert takes one too, so
numbers may skip) and ``deletion`` (a statement that deleted labels
or answered requests). A sequence would not do: its numbers are taken in the order transactions ask, not the
order they commit. The trigger's update of the counter row holds that row until its transaction ends, so
labels are numbered in commit order (label writers across the fleet take turns on it; they are few and
short). A database of schema 2 gains them as it is brought up to date (``changed`` 0 for its labels).

Several replicas start at once: one creates or migrates the tables while holding a transaction-level
advisory lock (:data:`SCHEMA_LOCK`); the others wait for it, then find the schema current and go on.
"""

from __future__ import annotations

import psycopg

__all__ = ["SCHEMA_LOCK", "SCHEMA_VERSION", "create_schema", "has_table"]

# this backend's own schema version, in guarded_serving_meta (2: the baselines table; 3: labels' change numbers;
# 4: the writers' transaction marks, see marks.py; 5: what the last prune kept, see retention.py)
SCHEMA_VERSION = 5
SCHEMA_LOCK = 0x6775_6172_6473  # "guards": the advisory lock one starting replica holds while creating the tables

_TABLES = (
    """CREATE TABLE IF NOT EXISTS requests (
        id bigserial PRIMARY KEY, request_id text NOT NULL, ts text NOT NULL, model text NOT NULL,
        version text NOT NULL DEFAULT '', status text NOT NULL, rows integer NOT NULL, latency_ms double precision,
        stages text, failed_stage text, error text, problem_features text, worker integer, replica text,
        inputs text, outputs text)""",
    # Rows are stored as written, uncompressed: TOAST's default compression (pglz) of the JSON arrays cost the
    # server more CPU than the whole guarded request (64-row requests: 0.58x SQLite's throughput with it).
    "ALTER TABLE requests ALTER COLUMN inputs SET STORAGE EXTERNAL, ALTER COLUMN outputs SET STORAGE EXTERNAL",
    "CREATE INDEX IF NOT EXISTS requests_model_version_id ON requests (model, version, id)",
    "CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id)",
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)",
    """CREATE TABLE IF NOT EXISTS totals (
        model text NOT NULL, version text NOT NULL, requests bigint NOT NULL DEFAULT 0, rows bigint NOT NULL DEFAULT 0,
        rejected bigint NOT NULL DEFAULT 0, errors bigint NOT NULL DEFAULT 0, labels bigint NOT NULL DEFAULT 0,
        relabels bigint NOT NULL DEFAULT 0, dropped_requests bigint NOT NULL DEFAULT 0,
        dropped_rows bigint NOT NULL DEFAULT 0, PRIMARY KEY (model, version))""",
    """CREATE TABLE IF NOT EXISTS warnings (
        model text NOT NULL, version text NOT NULL, category text NOT NULL, message text NOT NULL,
        location text NOT NULL, count bigint NOT NULL, first_seen text NOT NULL, last_seen text NOT NULL,
        PRIMARY KEY (model, version, category, message, location))""",
    """CREATE TABLE IF NOT EXISTS feedback (
        model text NOT NULL, version text NOT NULL, request_id text NOT NULL, row integer NOT NULL,
        label text NOT NULL, ts text NOT NULL, updates integer NOT NULL DEFAULT 0,
        PRIMARY KEY (model, version, request_id, row))""",
    """CREATE TABLE IF NOT EXISTS "window" (
        id bigserial PRIMARY KEY, model text NOT NULL, version text NOT NULL, rows integer NOT NULL,
        inputs bytea NOT NULL, outputs bytea, meta text NOT NULL)""",
    'CREATE INDEX IF NOT EXISTS window_model_version_id ON "window" (model, version, id)',
    """CREATE TABLE IF NOT EXISTS models (
        model text NOT NULL, version text NOT NULL, saved_at text NOT NULL, reference text NOT NULL,
        settings text NOT NULL, PRIMARY KEY (model, version))""",
    """CREATE TABLE IF NOT EXISTS health_history (
        model text NOT NULL, version text NOT NULL, slot bigint NOT NULL, ts text NOT NULL, status text NOT NULL,
        snapshot text NOT NULL, worker integer, replica text, PRIMARY KEY (model, version, slot))""",
    "CREATE INDEX IF NOT EXISTS health_history_ts ON health_history (model, version, ts)",
    # Keyed by the reference's digest too: a new reference collects its own baselines.
    """CREATE TABLE IF NOT EXISTS baselines (
        model text NOT NULL, version text NOT NULL, reference text NOT NULL, kind text NOT NULL, since text NOT NULL,
        rows integer NOT NULL, document text NOT NULL, PRIMARY KEY (model, version, reference, kind))""",
    """CREATE TABLE IF NOT EXISTS replicas (
        model text NOT NULL, version text NOT NULL, replica text NOT NULL, host text NOT NULL, pid integer NOT NULL,
        library text NOT NULL, fingerprint text NOT NULL, started_at timestamptz NOT NULL,
        last_seen timestamptz NOT NULL, pending bigint NOT NULL, written bigint NOT NULL, dropped bigint NOT NULL,
        capacity bigint NOT NULL, last_error text, last_error_at text, warnings integer NOT NULL,
        PRIMARY KEY (model, version, replica))""",
    # Each writer's last transaction number (marks.py): whether a write whose answer was lost committed.
    "CREATE TABLE IF NOT EXISTS writer_marks (writer text PRIMARY KEY, seq bigint NOT NULL, at timestamptz NOT NULL)",
    # One row per input row of an answered request, as the SQLite file's view has it.
    """CREATE OR REPLACE VIEW rows AS SELECT q.request_id, (j.n - 1)::integer AS row, q.inputs::jsonb -> (j.n - 1)::integer
        AS inputs, j.output AS outputs FROM requests q, jsonb_array_elements(q.outputs::jsonb) WITH ORDINALITY j(output, n)""",
    # A row's output of a stored outputs array, or NULL when the text is not a JSON array holding it.
    """CREATE OR REPLACE FUNCTION guarded_output(outputs text, at integer) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN RETURN (outputs::jsonb -> at)::text; EXCEPTION WHEN others THEN RETURN NULL; END $$""",
    "CREATE TABLE IF NOT EXISTS guarded_serving_meta (key text PRIMARY KEY, value text NOT NULL)",
    # Labels' change numbers (see above).
    "CREATE TABLE IF NOT EXISTS changes (name text PRIMARY KEY, value bigint NOT NULL)",
    "INSERT INTO changes (name, value) VALUES ('label', 0), ('deletion', 0) ON CONFLICT (name) DO NOTHING",
    "ALTER TABLE feedback ADD COLUMN IF NOT EXISTS changed bigint NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS feedback_changed ON feedback (model, version, changed)",
    """CREATE OR REPLACE FUNCTION guarded_label_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE changes SET value = value + 1 WHERE name = 'label' RETURNING value INTO NEW.changed;
        RETURN NEW; END $$""",
    """CREATE OR REPLACE FUNCTION guarded_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF EXISTS (SELECT 1 FROM gone) THEN UPDATE changes SET value = value + 1 WHERE name = 'deletion';
        END IF; RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS feedback_changed ON feedback",
    "CREATE TRIGGER feedback_changed BEFORE INSERT OR UPDATE OF model, version, request_id, row, label, ts ON feedback"
    " FOR EACH ROW EXECUTE FUNCTION guarded_label_changed()",
    "DROP TRIGGER IF EXISTS feedback_deleted ON feedback",
    "CREATE TRIGGER feedback_deleted AFTER DELETE ON feedback REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
    " EXECUTE FUNCTION guarded_deleted()",
    "DROP TRIGGER IF EXISTS requests_deleted ON requests",
    "CREATE TRIGGER requests_deleted AFTER DELETE ON requests REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
    " EXECUTE FUNCTION guarded_deleted()",
    # What the last prune of a model version kept (retention.py), true while the deletion counter is where it
    # left it: an edit of a request's rows, model or version by hand moves that counter too (the library never
    # edits a request).
    """CREATE TABLE IF NOT EXISTS retention_kept (
        model text NOT NULL, version text NOT NULL, deletion bigint NOT NULL, cutoff bigint NOT NULL,
        counted bigint NOT NULL, rows bigint NOT NULL, prunes bigint NOT NULL, PRIMARY KEY (model, version))""",
    """CREATE OR REPLACE FUNCTION guarded_edited() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE changes SET value = value + 1 WHERE name = 'deletion'; RETURN NULL; END $$""",
    "DROP TRIGGER IF EXISTS requests_edited ON requests",
    "CREATE TRIGGER requests_edited AFTER UPDATE OF id, model, version, rows ON requests FOR EACH STATEMENT"
    " EXECUTE FUNCTION guarded_edited()",
)


def create_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create what is missing, once across every replica starting at the same time (an advisory lock held for
    the transaction); a database whose schema is current is only read."""
    if _current(conn):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        if _current(conn):  # another replica created it while this one waited
            return
        for statement in _TABLES:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO guarded_serving_meta (key, value) VALUES ('schema_version', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )


def _current(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    if not has_table(conn, "guarded_serving_meta"):
        return False
    found = conn.execute("SELECT value FROM guarded_serving_meta WHERE key = 'schema_version'").fetchone()
    return found is not None and found[0] == str(SCHEMA_VERSION)


def has_table(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    """Whether the database has this table in its search path."""
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)
