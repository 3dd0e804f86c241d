"""Acceptance: text models and rows with a free-text field, wrapped in one line, quiet when healthy and
loud, in their own words, when the text changes.

Two models on generated text (examples/text/corpus.py): a TF-IDF + logistic regression topic classifier
taking a list of strings, and a DataFrame model (ColumnTransformer: TF-IDF on a free-text ``review`` beside
numeric and categorical columns), each wrapped as the examples do, ``guard(model.predict_proba,
reference=training_data)``, and driven through the framework-free request path (GuardedModel.handle_predict)
with a real SQLite file, every label fed back. Health is asked for every 250 rows.

The criteria asserted:

- healthy streams of 20,000 fresh rows: at most 1 % of health checks flagged (warn or alert in any of data
  drift, prediction drift, data quality, concept drift, joint drift, estimated performance), windows 500
  and 2,000;
- after 3,000 healthy rows, a breakage is flagged by data drift within one window, and the descriptor it
  moved is named in the report's words: a new topic's vocabulary, texts twice as long, upper-casing,
  another script (Cyrillic), a quarter of the texts empty;
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from examples.text.corpus import news, reviews
from guarded_serving import GuardedModel

ROWS = 20_000
REQUEST_ROWS = 250
WINDOWS = (500, 2000)
HEALTHY_ROWS = 3000
CHECKS = ("data_drift", "prediction_drift", "data_quality", "concept_drift", "joint_drift", "estimated_performance")
FLAGGED = frozenset({"warn", "alert"})


@dataclass(frozen=True)
class Case:
    """A model on one kind of data: its training rows, and rows (with labels) drawn as clients send them."""

    model: Any
    reference: Any
    draw: Callable[[int, int, str | None], tuple[list[Any], list[int]]]


@cache
def case(name: str) -> Case:
    if name == "news":
        texts, topics = news(4000, seed=1)
        pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(texts, topics)
        return Case(pipe, texts, lambda n, seed, breakage: news(n, seed, breakage))
    X, came_back = reviews(4000, seed=1)
    columns = ColumnTransformer(
        [
            ("review", TfidfVectorizer(), "review"),
            ("numbers", StandardScaler(), ["stars", "price"]),
            ("channel", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
        ]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(X, came_back)

    def draw(n: int, seed: int, breakage: str | None) -> tuple[list[Any], list[int]]:
        frame, labels = reviews(n, seed, breakage)
        return frame.to_dict("records"), labels

    return Case(model, X, draw)


def run(guarded: GuardedModel, rows: list[Any], labels: list[int]) -> list[dict[str, Any]]:
    """Send ``rows`` in requests, feed every label back, and return the health report after each request."""
    reports = []
    for start in range(0, len(rows), REQUEST_ROWS):
        reply = guarded.handle_predict(json.dumps({"rows": rows[start : start + REQUEST_ROWS]}).encode(), "application/json")
        assert reply.status == 200, reply.body[:500]
        feedback = {"request_id": json.loads(reply.body)["request_id"], "labels": labels[start : start + REQUEST_ROWS]}
        assert guarded.handle_feedback(json.dumps(feedback).encode(), "application/json").status == 200
        reports.append(json.loads(guarded.health_reply().body))
    return reports


def flagged(report: dict[str, Any]) -> dict[str, str]:
    return {c: report["checks"][c]["summary"] for c in CHECKS if report["checks"][c]["status"] in FLAGGED}


# -- healthy traffic -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["news", "reviews"])
def test_healthy_text_traffic_flags_at_most_1_percent_of_checks(name: str, tmp_path: Path) -> None:
    c = case(name)
    rows, labels = c.draw(ROWS, 2, None)
    results = {}
    for window in WINDOWS:
        guarded = GuardedModel(
            c.model.predict_proba, reference=c.reference, name=name, db=tmp_path / f"{window}.db", window=window
        )
        try:
            results[window] = [flagged(r) for r in run(guarded, rows, labels)]
        finally:
            guarded.close()

    counts = {window: sum(bool(f) for f in found) for window, found in results.items()}
    total = sum(len(found) for found in results.values())
    print(f"\n{name}: flagged {counts} of {ROWS // REQUEST_ROWS} checks per window")
    assert total == len(WINDOWS) * ROWS // REQUEST_ROWS
    assert sum(counts.values()) <= 0.01 * total, {w: [f for f in found if f] for w, found in results.items()}


# -- breakage ----------------------------------------------------------------------------------------------------------------

BREAKAGES = [
    pytest.param("news", "new_topic", "text.unknown", "share of unknown tokens", id="news-new-topic"),
    pytest.param("news", "longer", "text.chars", "x longer", id="news-longer"),
    pytest.param("news", "upper", "text.upper", "share of upper-case letters", id="news-upper"),
    pytest.param("news", "cyrillic", "text.non_ascii", "share of non-ASCII characters", id="news-cyrillic"),
    pytest.param("news", "empty", "text.empty", "share of empty texts", id="news-empty"),
    pytest.param("reviews", "new_topic", "review.unknown", "share of unknown tokens", id="reviews-new-topic"),
    pytest.param("reviews", "longer", "review.tokens", "x longer", id="reviews-longer"),
    pytest.param("reviews", "cyrillic", "review.non_ascii", "share of non-ASCII characters", id="reviews-cyrillic"),
]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize(("name", "breakage", "feature", "wording"), BREAKAGES)
def test_a_text_breakage_is_flagged_within_one_window_and_named(
    name: str, breakage: str, feature: str, wording: str, window: int
) -> None:
    c = case(name)
    healthy, healthy_labels = c.draw(HEALTHY_ROWS, 5, None)
    broken, broken_labels = c.draw(window, 6, breakage)
    guarded = GuardedModel(c.model.predict_proba, reference=c.reference, name=name, db=":memory:", window=window)
    try:
        before = run(guarded, healthy, healthy_labels)
        after = run(guarded, broken, broken_labels)
    finally:
        guarded.close()

    assert not any(flagged(r) for r in before), [flagged(r) for r in before if flagged(r)]
    first = next((k for k, r in enumerate(after) if r["checks"]["data_drift"]["status"] in FLAGGED), None)
    assert first is not None, after[-1]["checks"]["data_drift"]["summary"]
    found = after[first]["checks"]["data_drift"]["features"][feature]
    print(f"\n{name} {breakage}, window {window}: flagged after {(first + 1) * REQUEST_ROWS} rows: {feature}: {found['reason']}")
    assert found["drifted"], after[first]["checks"]["data_drift"]["summary"]
    assert wording in found["reason"]
