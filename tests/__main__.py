"""The whole check, as CI runs it: `python -m tests` (lint, format, types, then the test suite).

Extra arguments go to pytest, e.g. `python -m tests -k store -x`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> None:
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def main() -> None:
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    run(str(BIN / "ruff"), "check", ".")
    run(str(BIN / "ruff"), "format", "--check", ".")
    run(sys.executable, "-m", "mypy")
    run(sys.executable, "-m", "pytest", *sys.argv[1:])


if __name__ == "__main__":
    main()
