"""The log store under real faults, against a real `bentoml serve` and a real SQLite file.

Each test breaks the database under a running service (locked by another process, a full disk, an
unopenable path, the file deleted) and checks what the service promises: predictions keep answering
200, `/health/model` says what is wrong in its `store` check, and once the fault is gone the rows
that waited in memory are written and the check returns to ok by itself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import resource
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.servers import BENTOML, ROOT, Server, free_port, serving, start_server
from tests.fixtures.waiting import wait_for

# SQLite says "unable to open database file"; the writer, recreating the file, "Is a directory".
UNOPENABLE_MESSAGES = ("unable to open", "Is a directory")
TOY = "tests.apps.toy:one"


def unopenable_reported(text: str) -> bool:
    return any(message in text for message in UNOPENABLE_MESSAGES)


# A second process that takes the database's write lock and holds it until it reads a line on
# stdin or `max_seconds` pass (bounded either way). In WAL mode readers are not blocked.
HOLD_LOCK = """
import select, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
conn.execute("ROLLBACK")
conn.close()
print("released", flush=True)
"""


class LockHolder:
    """`BEGIN EXCLUSIVE` on the database from another process, released on demand or after max_seconds."""

    def __init__(self, db: Path, max_seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db), str(max_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()  # bounded: the holder exits if it cannot lock within 10 s
        assert first == "locked", f"the lock holder did not get the lock: {first!r}"

    def holding(self) -> bool:
        return self.process.poll() is None

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("release\n")
            self.process.stdin.flush()
        assert self.process.wait(15) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Traffic:
    """Predictions with our own request ids, remembering which were answered and with what status."""

    def __init__(self, server: Server, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.statuses: dict[str, int] = {}

    def send(self, rows: int = 1) -> int:
        request_id = f"{self.prefix}-{len(self.statuses)}"
        payload = {"rows": [[len(self.statuses) % 7, 1.0, 2.0]] * rows}
        response = self.server.client.post("/predict", json=payload, headers={"X-Request-ID": request_id})
        self.statuses[request_id] = response.status_code
        return response.status_code

    def answered(self) -> set[str]:
        return {rid for rid, status in self.statuses.items() if 200 <= status < 300}

    def failed(self) -> dict[str, int]:
        return {rid: status for rid, status in self.statuses.items() if not 200 <= status < 300}


def stop(server: Server) -> None:
    """SIGTERM the server (a no-op when already stopped); kill any worker that outlived it. BentoML starts
    each worker in a session of its own, which Server.stop's SIGKILL fallback would not reach."""
    workers = psutil.Process(server.process.pid).children(recursive=True) if server.process.poll() is None else []
    server.stop()
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def store_check(server: Server) -> dict[str, Any]:
    """The `store` check of /health/model (which must answer 200 whatever the store's state)."""
    response = server.client.get("/health/model")
    assert response.status_code == 200, f"/health/model answered {response.status_code}: {response.text[:500]}"
    check: dict[str, Any] = response.json()["checks"]["store"]
    return check


def logged_request_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {rid for (rid,) in conn.execute("SELECT request_id FROM requests")}


def logged_so_far(db: Path) -> set[str]:
    """What a file being (re)created holds so far: nothing until the writer has made it and its schema."""
    if not db.exists():
        return set()
    try:
        return logged_request_ids(db)
    except sqlite3.OperationalError:  # created a moment ago, its tables not yet
        return set()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def is_failing(check: dict[str, Any]) -> bool:
    return check["status"] in ("warn", "alert") and check["last_error"] is not None


def test_a_locked_database_keeps_answering_reports_locked_and_recovers_without_loss(tmp_path: Path) -> None:
    server = start_server(TOY, tmp_path)
    holder: LockHolder | None = None
    try:
        traffic = Traffic(server, "locked")
        assert traffic.send() == 200
        assert wait_for(lambda: store_check(server)["written"] >= 1)

        # The store waits up to its 5 s busy timeout before a write fails: hold the lock ~7.5 s so
        # that writes fail for a while, then let the holder release it by itself.
        holder = LockHolder(server.db, max_seconds=7.5)
        checks_while_locked = []
        deadline = time.monotonic() + 20
        while holder.holding() and time.monotonic() < deadline:
            traffic.send()
            checks_while_locked.append(store_check(server))
            time.sleep(0.2)
        assert not holder.holding(), "the lock holder did not release within 20 s"
        holder.release()

        recovered = wait_for(lambda: traffic.send() == 200 and store_check(server)["status"] == "ok", timeout=15, interval=0.2)
        final = store_check(server)
        server.stop()  # SIGTERM: flushes what is pending

        assert traffic.failed() == {}
        failing = [c for c in checks_while_locked if is_failing(c)]
        assert failing, f"the store check never reported failing writes while locked: {checks_while_locked[-1]}"
        assert "locked" in failing[0]["summary"]
        assert "locked" in failing[0]["last_error"]
        assert recovered, f"the store check did not return to ok after the lock was released: {final}"
        assert final["status"] == "ok"
        assert final["last_error"] is None
        assert traffic.answered() <= logged_request_ids(server.db)
        assert integrity(server.db) == "ok"
    finally:
        if holder is not None:
            holder.kill()
        stop(server)


def start_server_with_file_size_limit(tmp_path: Path, db: Path, limit: int) -> Server:
    """`bentoml serve` (like tests.fixtures.servers.start_server) with RLIMIT_FSIZE set, so that no file it writes can
    grow past `limit` bytes: a write beyond it fails with EFBIG, as on a full disk (CPython ignores
    SIGXFSZ, so the process is not killed). Its output goes through a pipe, which the limit does not
    apply to, into a log file written by this process."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    env = {**os.environ, "GUARDED_SERVING_DB": str(db), "BENTOML_DO_NOT_TRACK": "True"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    started = time.perf_counter()
    process = subprocess.Popen(
        [BENTOML, "serve", TOY, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=limit_file_size,
    )

    def copy_output() -> None:
        assert process.stdout is not None
        with log.open("wb") as out:
            for line in process.stdout:  # ends when the server's group exits
                out.write(line)
                out.flush()

    copier = threading.Thread(target=copy_output, name="serve-output", daemon=True)
    copier.start()

    def log_text() -> str:
        copier.join(10)  # the copy ends with the server's output
        return log.read_text()

    return serving(process, f"http://127.0.0.1:{port}", db, log, TOY, started, log_text)


def test_a_full_disk_keeps_answering_reports_failing_writes_and_keeps_rows_in_memory(tmp_path: Path) -> None:
    db = tmp_path / "guarded.db"
    SqliteStore(db).open().close()  # create the file and schema first, to size the limit just above it
    limit = db.stat().st_size + 64 * 1024  # a few flushes of WAL frames, then EFBIG
    server = start_server_with_file_size_limit(tmp_path, db, limit)
    try:
        traffic = Traffic(server, "full")
        first_failure: dict[str, Any] | None = None
        deadline = time.monotonic() + 30
        for _ in range(100):  # bounded: 100 rounds of 10 requests of 10 rows, or 30 s
            for _ in range(10):
                traffic.send(rows=10)
            check = store_check(server)
            if is_failing(check):
                first_failure = check
                break
            if time.monotonic() > deadline:
                break
        assert first_failure is not None, f"writes never failed under a {limit} byte file size limit: {store_check(server)}"

        for _ in range(30):  # the disk stays full: predictions still answer, rows wait in memory
            traffic.send(rows=10)
        later = store_check(server)

        assert traffic.failed() == {}
        reason = first_failure["summary"].lower()
        assert any(word in reason for word in ("full", "disk", "efbig", "too large")), reason
        assert is_failing(later)
        assert later["pending"] >= first_failure["pending"] + 300
        assert later["dropped"] == 0
        assert later["written"] == first_failure["written"]
        assert all(p.stat().st_size <= limit for p in tmp_path.glob("guarded.db*"))
        assert "store_write_failed" in server.logs()
        # Recovery is not tested here: an rlimit cannot be lifted from outside the process, so this
        # disk stays full until the server stops. Rows pending in memory being written once the
        # fault is gone is what test_an_unopenable_database_path_... below checks.
    finally:
        stop(server)


def test_an_unopenable_database_path_keeps_answering_warns_then_writes_everything_pending(tmp_path: Path) -> None:
    """The file is made unwritable, then restored.

    chmod 0o400 cannot make this fault here: the tests run as root, which ignores file permissions
    (CAP_DAC_OVERRIDE), and even for another user a mode change does not affect the descriptors the
    writer already holds open. So the database path is replaced by a directory of the same name
    (which nobody, root included, can open as a database), and restored afterwards. The writer only
    reopens the path after a failed write, so a lock held by another process forces that failure
    first; the directory is swapped in while the lock is still held, so the writer's next attempt
    finds it.
    """
    server = start_server(TOY, tmp_path)
    aside = tmp_path / "guarded.db.aside"
    holder: LockHolder | None = None
    swapped = False
    try:
        traffic = Traffic(server, "unopenable")
        assert traffic.send() == 200
        assert wait_for(lambda: store_check(server)["written"] >= 1)

        holder = LockHolder(server.db, max_seconds=40)
        assert wait_for(lambda: traffic.send() == 200 and is_failing(store_check(server)), timeout=15, interval=0.2)
        os.rename(server.db, aside)
        os.mkdir(server.db)
        swapped = True
        unopenable = wait_for(
            lambda: traffic.send() == 200 and unopenable_reported(str(store_check(server)["last_error"])),
            timeout=20,
            interval=0.2,
        )
        failed_at = store_check(server)["last_error_at"]
        holder.release()
        for _ in range(10):
            traffic.send()
        # The writer keeps retrying: wait for a failure after the lock was released, on the directory alone.
        assert wait_for(lambda: store_check(server)["last_error_at"] != failed_at, timeout=10, interval=0.1)
        while_unopenable = store_check(server)

        os.rmdir(server.db)
        os.rename(aside, server.db)
        swapped = False
        recovered = wait_for(lambda: traffic.send() == 200 and store_check(server)["status"] == "ok", timeout=15, interval=0.2)
        final = store_check(server)
        server.stop()

        assert unopenable, f"the store check never reported the unopenable path: {while_unopenable}"
        assert traffic.failed() == {}
        assert is_failing(while_unopenable)
        assert unopenable_reported(while_unopenable["summary"])
        assert while_unopenable["pending"] >= 10
        assert recovered, f"the store check did not return to ok after the path was restored: {final}"
        assert final["pending"] == 0
        assert final["dropped"] == 0
        assert integrity(server.db) == "ok"
        missing = traffic.answered() - logged_request_ids(server.db)
        assert missing == set()
    finally:
        if holder is not None:
            holder.kill()
        if swapped:
            os.rmdir(server.db)
            os.rename(aside, server.db)
        stop(server)


def test_a_deleted_database_file_is_noticed_and_a_new_one_is_started(tmp_path: Path) -> None:
    """The database file deleted under a running service.

    SQLite keeps its descriptors on the unlinked inode and would go on "succeeding" into the deleted
    file, losing every row with the process. The writer compares the path's inode before each flush:
    it notices, starts a new file (owner-only, with the schema), writes there, and the store check
    warns that the file was deleted or replaced. What the deleted file held is gone with it.
    """
    server = start_server(TOY, tmp_path)
    try:
        traffic = Traffic(server, "before")
        for _ in range(5):
            assert traffic.send() == 200
        assert wait_for(lambda: store_check(server)["written"] >= 5)
        before_ids = traffic.answered()

        server.db.unlink()
        after = Traffic(server, "after")
        for _ in range(10):
            after.send()
        assert wait_for(lambda: after.answered() <= logged_so_far(server.db))
        check_after_delete = store_check(server)
        server.stop()

        assert after.failed() == {}
        assert check_after_delete["status"] == "warn"
        assert "deleted or replaced" in check_after_delete["summary"]
        assert stat.S_IMODE(server.db.stat().st_mode) == 0o600
        assert integrity(server.db) == "ok"
        logged = logged_request_ids(server.db)
        assert after.answered() <= logged  # everything answered after the deletion is in the new file
        assert logged.isdisjoint(before_ids)  # what the deleted file held went with it

        restarted = start_server(TOY, tmp_path, db=server.db)
        try:
            again = Traffic(restarted, "restarted")
            for _ in range(3):
                again.send()
        finally:
            stop(restarted)
        assert again.answered() <= logged_request_ids(server.db)
    finally:
        stop(server)


def test_health_answers_200_while_the_database_file_is_deleted(tmp_path: Path) -> None:
    """/health/model promises 200 whatever the model's state (so that a probe never kills the pod).

    Each thread serving /health/model reads through its own SQLite connection. After the file is
    deleted, a thread that opens its first connection creates an empty file at the path and finds
    no tables there; concurrent calls make the server start such threads.
    """
    server = start_server(TOY, tmp_path)
    try:
        traffic = Traffic(server, "health")
        for _ in range(5):
            assert traffic.send() == 200
        assert wait_for(lambda: store_check(server)["written"] >= 5)
        server.db.unlink()

        def health_status(_: int) -> int:
            return httpx.get(server.url + "/health/model", timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(health_status, range(48)))
        for _ in range(5):
            traffic.send()

        assert traffic.failed() == {}
        assert {s for s in statuses if s != 200} == set(), f"statuses: {statuses}"
    finally:
        stop(server)


def clear_fault(path: Path) -> None:
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink()


@pytest.mark.parametrize("fault", ["a-directory", "under-a-regular-file"])
def test_a_store_that_cannot_be_opened_at_start_up_keeps_answering_alerts_and_retries(tmp_path: Path, fault: str) -> None:
    """The worker starts, answers, and says in its store check that the file could not be opened; the
    writer keeps trying, and once the path is usable everything that waited in memory is written."""
    if fault == "a-directory":
        db = tmp_path / "guarded.db"
        db.mkdir()
        blocking = db
    else:
        blocking = tmp_path / "data"
        blocking.write_text("a regular file where a directory should be")
        db = blocking / "guarded.db"
    server = start_server(TOY, tmp_path, db=db)  # a crash-looping worker would never be ready
    try:
        traffic = Traffic(server, "startup")
        for _ in range(5):
            traffic.send()
        while_unopenable = store_check(server)
        clear_fault(blocking)
        recovered = wait_for(lambda: traffic.send() == 200 and store_check(server)["status"] == "ok", timeout=20, interval=0.2)
        final = store_check(server)
        server.stop()

        assert traffic.failed() == {}
        assert while_unopenable["status"] == "alert"
        assert "could not be opened" in while_unopenable["summary"]
        assert while_unopenable["pending"] >= 5
        assert recovered, f"the store check did not return to ok once the path was usable: {final}"
        assert traffic.answered() <= logged_request_ids(db)
        assert integrity(db) == "ok"
    finally:
        stop(server)


def test_a_database_locked_at_start_up_does_not_hold_up_readiness(tmp_path: Path) -> None:
    db = tmp_path / "guarded.db"
    SqliteStore(db).open().close()
    holder = LockHolder(db, max_seconds=60)
    server: Server | None = None
    try:
        server = start_server(TOY, tmp_path, db=db)
        ready_while_locked = holder.holding()
        traffic = Traffic(server, "locked-at-start")
        failing = wait_for(lambda: traffic.send() == 200 and is_failing(store_check(server)), timeout=20, interval=0.2)
        holder.release()
        recovered = wait_for(lambda: traffic.send() == 200 and store_check(server)["status"] == "ok", timeout=20, interval=0.2)
        server.stop()

        assert ready_while_locked, "the service was not ready until the lock was released"
        assert traffic.failed() == {}
        assert failing
        assert recovered
        assert traffic.answered() <= logged_request_ids(db)
    finally:
        holder.kill()
        if server is not None:
            stop(server)


def test_a_deleted_wal_file_is_noticed_and_a_kill_9_later_keeps_what_was_answered(tmp_path: Path) -> None:
    """SQLite would keep committing into the unlinked write-ahead log, and a kill -9 would take every
    row since the deletion with it. The writer notices before its next flush, moves what the deleted
    log held into the database file, and starts a new log."""
    from .test_kill9 import kill_9

    server = start_server(TOY, tmp_path)
    try:
        before = Traffic(server, "before")
        for _ in range(5):
            assert before.send() == 200
        assert wait_for(lambda: store_check(server)["written"] >= 5)
        wal = Path(f"{server.db}-wal")
        wal.unlink()
        after = Traffic(server, "after")
        for _ in range(300):
            after.send(rows=3)
        assert wait_for(lambda: store_check(server)["pending"] == 0 and store_check(server)["written"] >= 905)
        check = store_check(server)
        kill_9(server)

        assert after.failed() == {}
        assert integrity(server.db) == "ok"
        assert (before.answered() | after.answered()) <= logged_request_ids(server.db)
        assert check["status"] == "warn"
        assert "write-ahead log" in check["summary"]
    finally:
        stop(server)
