"""The whole check, as CI runs it: `python -m tests` (lint, format, types, then the test suite).

`python -m tests --fast` is the loop to run while changing code: lint, format and the unit tests only (no
test marked `e2e` or `acceptance`, so no server, no statistical suite, no mypy), about a minute.
Extra arguments go to pytest, e.g. `python -m tests -k store -x` or `python -m tests --fast -x tests/drift`.

The Prometheus tests run Debian's `prometheus` and `promtool`: when they are missing, the package is
installed first (apt-get, as root or through passwordless sudo). The dashboard's end-to-end test renders
the page in headless Chromium: Debian's `chromium` package is installed first when missing. The fleet
tests run a real PostgreSQL server (tests/fixtures/postgres.py starts and stops it on a temporary
directory): Debian's `postgresql` is installed first when missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures import postgres

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> None:
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_prometheus() -> None:
    """Install Debian's prometheus package (the server and promtool) unless both are on the PATH."""
    if shutil.which("prometheus") and shutil.which("promtool"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]

    def apt_get(*args: str) -> bool:
        command = [*sudo, "apt-get", *args]
        print("+", " ".join(command), flush=True)
        try:
            return subprocess.run(command, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}).returncode == 0
        except FileNotFoundError as exc:
            sys.exit(f"cannot install prometheus ({exc}): install Prometheus and promtool, then run the tests again")

    install = ("install", "-y", "--no-install-recommends", "prometheus")
    if not apt_get(*install):  # a fresh machine may have no package lists yet
        apt_get("update")
        apt_get(*install)
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        sys.exit("prometheus and promtool are still missing: install Debian's prometheus package, then run the tests again")


def chromium() -> str | None:
    """The Chromium binary the dashboard test runs, if installed."""
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def ensure_chromium() -> None:
    """Install Debian's `chromium` (non-interactive, quiet) unless it is already there; fail loudly if that fails."""
    if chromium() is not None:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and shutil.which("sudo") is None:
        sys.exit("the dashboard test needs chromium: install it (apt-get install -y chromium) or run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [*sudo, "apt-get", "update", "-qq"],
        [*sudo, "apt-get", "install", "-y", "-qq", "-o", "Dpkg::Use-Pty=0", "chromium"],
    ):
        print("+", " ".join(command), flush=True)
        try:
            result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            sys.exit(f"installing chromium for the dashboard test failed ({' '.join(command)}): {exc}")
        if result.returncode != 0:
            sys.exit(f"installing chromium for the dashboard test failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    if chromium() is None:
        sys.exit("apt-get installed chromium, but no `chromium` binary is on PATH or at /usr/bin/chromium")


# The fast loop leaves out the directories of slow tests rather than only deselecting them, and schemathesis'
# plugin (only tests/e2e/test_hostile_input.py uses it): importing them costs seconds for tests that never run.
# Two workers (pytest-xdist), one per core of the machines it runs on: the unit tests share no state but
# their tmp_path, and each worker runs one BLAS thread (tests/conftest.py).
FAST = [
    "-m",
    "not e2e and not acceptance",
    "--ignore=tests/e2e",
    "--ignore=tests/acceptance",
    "-p",
    "no:schemathesis",
    "-n",
    "2",
    "-q",
]


def main() -> None:
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    arguments = sys.argv[1:]
    if "--fast" in arguments:
        arguments.remove("--fast")
        run(str(BIN / "ruff"), "check", ".")
        run(str(BIN / "ruff"), "format", "--check", ".")
        run(sys.executable, "-m", "pytest", *FAST, *arguments)
        return
    ensure_prometheus()
    run(str(BIN / "ruff"), "check", ".")
    run(str(BIN / "ruff"), "format", "--check", ".")
    run(sys.executable, "-m", "mypy")
    ensure_chromium()
    postgres.ensure_installed()
    run(sys.executable, "-m", "pytest", *arguments)


if __name__ == "__main__":
    main()
