"""bench/native.py keeps working: a short pass races both forms and reports what it claims."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.servers import ROOT


def test_the_native_bench_measures_both_forms_for_one_and_64_rows(tmp_path: Path) -> None:
    out = tmp_path / "native.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "native.py"), "--requests", "60", "--rounds", "1", "--json", str(out)],
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    results = json.loads(out.read_text())

    assert [r["rows"] for r in results] == [1, 64]
    for r in results:
        cpu = r["cpu_us_per_request"]
        assert set(cpu) == {"guard()", "class"}
        assert min(cpu.values()) > 0
        assert r["class_over_guard"] == pytest.approx(cpu["guard()"] / cpu["class"], abs=0.01)
