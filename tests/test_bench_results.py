"""bench/RESULTS.md is what bench/run.py renders from the figures it kept in bench/RESULTS.json.

Both are committed after a full run; a hand edit of RESULTS.md (or a change of run.py's rendering without a new
render) would make the page disagree with its own record. Hand-written measurements belong in bench/HISTORY.md.
"""

from __future__ import annotations

import json

from bench import run
from tests.fixtures.servers import ROOT


def test_results_md_is_the_render_of_the_committed_record() -> None:
    record = json.loads((ROOT / "bench" / "RESULTS.json").read_text())
    assert "partial" not in record, "RESULTS.json was left by an unfinished run: finish it with bench/run.py --resume"
    rendered = run.markdown(
        record["when"], record["machine"], record["load_after"], record["results"], record["quick"], record.get("reruns")
    )
    assert (ROOT / "bench" / "RESULTS.md").read_text() == rendered


def test_every_benchmark_of_the_plan_is_in_the_record() -> None:
    record = json.loads((ROOT / "bench" / "RESULTS.json").read_text())
    assert set(record["results"]) == set(run.plan(quick=False))
