"""Acceptance for images and embeddings: healthy streams stay quiet, and each breakage is flagged within one window
and named in the report.

The two examples' models are used as served (examples/digits, examples/embeddings), and rows go through the whole
request path in-process (``GuardedModel.handle_predict``: JSON body, parsing, the model, the monitor), 50 rows a
request, with health asked for every 250 rows; windows of 500 and 2,000.

- Digits: scikit-learn's 1,797 bundled 8x8 images, pixels 0-16. The model is fitted on the first 900, which are
  the reference; the stream draws (with replacement) from the 897 others, on which the outputs were profiled.
  Breakages: brightness +20 % (clipped to 16, as a sensor saturates), Gaussian noise of 1 grey level (clipped),
  every image rotated by 90 degrees.
- Embeddings: generated 64-dimensional vectors (examples/embeddings/world.py), fresh ones for the stream.
  Breakages: a mean shift of half a standard deviation along each of 5 random orthogonal directions (a
  5-dimensional subspace, so no coordinate moves by more than a fraction of that), every vector scaled by 1.15.

The bar: at most 1 % of healthy checks flagged by any drift check (data, prediction, quality, joint, estimated
performance); each breakage flagged by data drift within one window of broken rows, naming the summary it moved.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from examples.digits import service as digits
from examples.embeddings import service as vectors
from examples.embeddings.world import embeddings
from guarded_serving import GuardedModel

CHECK_EVERY = 250
BATCH = 50
HEALTHY_ROWS = 20_000
BROKEN_ROWS = 2_000
WINDOWS = (500, 2000)
FLAGGED = frozenset({"warn", "alert"})
DRIFT_CHECKS = ("data_drift", "prediction_drift", "data_quality", "joint_drift", "estimated_performance")


@dataclass(frozen=True)
class Check:
    rows: int
    status: dict[str, str]
    drifted: frozenset[str]  # features data drift names
    summary: str

    @property
    def flagged(self) -> bool:
        return any(self.status[c] in FLAGGED for c in DRIFT_CHECKS)


Source = Callable[[int, np.random.Generator], np.ndarray]


def digit_images(n: int, rng: np.random.Generator) -> np.ndarray:
    return digits.images[digits.held][rng.integers(0, len(digits.images[digits.held]), n)]


def guarded_model(kind: str, window: int) -> GuardedModel:
    if kind == "digits":
        holdout = (digits.images[digits.held], digits.labels[digits.held])
        return GuardedModel(digits.classify, reference=digits.images, holdout=holdout, name="digits",
                            db=":memory:", window=window)  # fmt: skip
    return GuardedModel(vectors.model.predict_proba, reference=vectors.train, holdout=(vectors.held, vectors.held_labels),
                        input_format="embedding", name="embeddings", db=":memory:", window=window)  # fmt: skip


SOURCES: dict[str, Source] = {"digits": digit_images, "embeddings": embeddings}


def stream(
    kind: str, window: int, rows: int, seed: int, corrupt: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None
) -> list[Check]:
    guarded = guarded_model(kind, window)
    monitor = guarded.start()
    rng = np.random.default_rng(seed)
    checks = []
    try:
        if corrupt is not None:  # one healthy window first
            feed(guarded, SOURCES[kind](window, rng))
        for start in range(0, rows, CHECK_EVERY):
            batch = SOURCES[kind](CHECK_EVERY, rng)
            feed(guarded, batch if corrupt is None else corrupt(batch, rng))
            checks.append(read(start + CHECK_EVERY, monitor.health().to_json()))
    finally:
        guarded.close()
    return checks


def feed(guarded: GuardedModel, rows: np.ndarray) -> None:
    for lo in range(0, len(rows), BATCH):
        reply = guarded.handle_predict(json.dumps({"rows": rows[lo : lo + BATCH].tolist()}).encode(), "application/json")
        assert reply.status == 200, reply.body


def read(rows: int, report: dict[str, Any]) -> Check:
    checks = report["checks"]
    drift = checks["data_drift"]
    drifted = frozenset(n for n, f in (drift.get("features") or {}).items() if f["drifted"])
    return Check(rows, {c: checks[c]["status"] for c in DRIFT_CHECKS}, drifted, drift["summary"])


# -- healthy ------------------------------------------------------------------------------------------------------


@functools.cache
def healthy(kind: str, window: int) -> list[Check]:
    return stream(kind, window, HEALTHY_ROWS, seed=window, corrupt=None)


@pytest.mark.parametrize("kind", ["digits", "embeddings"])
def test_healthy_streams_flag_at_most_1_percent_of_checks(kind: str) -> None:
    lines, flagged, total = [], 0, 0
    for window in WINDOWS:
        checks = healthy(kind, window)
        flagged += sum(c.flagged for c in checks)
        total += len(checks)
        per_check = {name: sum(c.status[name] in FLAGGED for c in checks) for name in DRIFT_CHECKS}
        lines.append(f"  window {window:>4}: {sum(c.flagged for c in checks)}/{len(checks)} {per_check}")
    table = "\n".join(lines)
    print(f"{kind}, healthy, {HEALTHY_ROWS} rows per window size, health every {CHECK_EVERY} rows:\n{table}")

    assert flagged <= 0.01 * total, f"{flagged} of {total} healthy checks flagged\n{table}"


def test_healthy_digits_are_judged_on_their_summaries() -> None:
    last = healthy("digits", 2000)[-1]

    assert last.status["data_drift"] == "ok"
    assert last.status["joint_drift"] == "ok"


# -- breakages ----------------------------------------------------------------------------------------------------

_basis = np.linalg.qr(np.random.default_rng(3).normal(size=(64, 5)))[0]  # 5 orthonormal directions
_spread = np.sqrt(np.einsum("dk,de,ek->k", _basis, np.cov(vectors.train, rowvar=False), _basis))
SUBSPACE_SHIFT = (_basis * (0.5 * _spread)).sum(axis=1)

BREAKAGES: dict[str, tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray], frozenset[str]]] = {
    "brightness-plus-20-percent": ("digits", lambda x, r: np.clip(x * 1.2, 0, 16), frozenset({"tensor.mean"})),
    "added-noise": ("digits", lambda x, r: np.clip(x + r.normal(0, 1, x.shape), 0, 16), frozenset({"tensor.saturated_low"})),
    "rotation-by-90-degrees": (
        "digits",
        lambda x, r: np.rot90(x, 1, axes=(1, 2)),
        frozenset({"tensor.edges_rows", "tensor.edges_columns"}),
    ),
    "mean-shift-in-a-5-dimensional-subspace": ("embeddings", lambda x, r: x + SUBSPACE_SHIFT, frozenset({"embedding.distance"})),
    "scale-times-1.15": ("embeddings", lambda x, r: x * 1.15, frozenset({"embedding.norm", "embedding.distance"})),
}


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"window{w}")
@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_breakage_is_flagged_within_one_window_and_named(name: str, window: int) -> None:
    kind, corrupt, named = BREAKAGES[name]

    checks = stream(kind, window, BROKEN_ROWS, seed=1, corrupt=corrupt)

    timeline = ", ".join(f"{c.rows}:{c.status['data_drift']}" for c in checks)
    full = next(c for c in checks if c.rows == window)
    print(f"{name}, window {window}: {timeline}\n  a window of broken rows: {full.summary}")
    first = next((c for c in checks if c.status["data_drift"] in FLAGGED), None)
    assert first is not None, timeline
    assert first.rows <= window, timeline
    later = [c for c in checks if c.rows >= window]  # the window holds only broken rows
    assert all(c.status["data_drift"] in FLAGGED for c in later), timeline
    assert named & later[0].drifted, f"{sorted(named)} not among {sorted(later[0].drifted)}"
