"""Served baselines: outputs and performance profiled on training rows are replaced by early served traffic.

A seeded toy "model" whose outputs are far more confident on its training rows than on new ones stands
in for a forest: its reference outputs would call every healthy window drifted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Monitor, Reference, TrainingDataWarning
from guarded_serving.baselines import reference_digest, served_performance
from guarded_serving.monitor import ADOPT_ROWS
from guarded_serving.offline import offline_health
from guarded_serving.reference import Provenance
from tests.fixtures.data import gaussian

WINDOW = 200
FEATURES = ["a", "b"]


def served_probabilities(X: np.ndarray) -> np.ndarray:
    """What the model answers on new rows: soft probabilities of class 1."""
    p = 1 / (1 + np.exp(-X[:, 0]))
    return np.column_stack([1 - p, p])


def training_probabilities(X: np.ndarray) -> np.ndarray:
    """What it answered on its own training rows: nearly certain."""
    p = 1 / (1 + np.exp(-8 * X[:, 0]))
    return np.column_stack([1 - p, p])


def labels(X: np.ndarray, rng: np.random.Generator) -> list[int]:
    return (rng.random(len(X)) < served_probabilities(X)[:, 1]).astype(int).tolist()


@pytest.fixture(scope="module")
def gaussian_2000x2() -> np.ndarray:
    return gaussian(2000, 2, seed=1)


@pytest.fixture(scope="module")
def one_liner_reference(gaussian_2000x2: np.ndarray) -> Reference:
    """The one-liner's reference: inputs and outputs of the training rows, marked as such, and no profile of its
    confidences (guard() builds none from training rows: the model is overconfident there)."""
    built = Reference.from_data(gaussian_2000x2, predictions=training_probabilities(gaussian_2000x2), feature_names=FEATURES)
    return dataclasses.replace(built, provenance=Provenance(features="training", outputs="training"), confidence=None)


def serve(monitor: Monitor, rows: int, seed: int, shift: float = 0.0, feedback: bool = False) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2)) + np.array([0.0, shift])
    for start in range(0, rows, 50):
        part = X[start : start + 50]
        request_id = monitor.observe(part, served_probabilities(part))
        if feedback:
            monitor.feedback(request_id, labels(part, rng))


def check(monitor: Monitor, name: str) -> dict[str, Any]:
    result: dict[str, Any] = monitor.health().to_json()["checks"][name]
    return result


def test_outputs_of_training_rows_are_not_judged_until_a_window_of_served_outputs_is_collected(
    one_liner_reference: Reference,
) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        serve(monitor, 150, seed=2)
        prediction = check(monitor, "prediction_drift")

    assert prediction["status"] == "insufficient_data"
    assert prediction["summary"].startswith("Collecting a baseline of the model's outputs from served traffic (150 of 2000 rows)")


def test_2000_rows_of_healthy_inputs_become_the_output_baseline(one_liner_reference: Reference) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        serve(monitor, 1000, seed=3)
        collecting = check(monitor, "prediction_drift")
        serve(monitor, ADOPT_ROWS, seed=5)
        prediction = check(monitor, "prediction_drift")

    assert collecting["summary"].startswith(
        "Collecting a baseline of the model's outputs from served traffic (1000 of 2000 rows)"
    )
    assert prediction["status"] == "ok", prediction["summary"]
    assert prediction["baseline"]["source"] == "served traffic"
    assert prediction["baseline"]["rows"] == ADOPT_ROWS  # more than a window: every later check leans on it
    assert "baseline: 2000 rows served since" in prediction["summary"]


def test_the_same_outputs_judged_against_the_training_rows_would_drift(one_liner_reference: Reference) -> None:
    trusted = dataclasses.replace(one_liner_reference, provenance=Provenance())
    with Monitor(trusted, window=WINDOW) as monitor:
        serve(monitor, 400, seed=3)
        prediction = check(monitor, "prediction_drift")

    assert prediction["status"] == "alert"
    assert prediction["baseline"]["source"] == "reference rows"


def test_no_baseline_is_taken_while_the_inputs_drift(one_liner_reference: Reference) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        serve(monitor, ADOPT_ROWS, seed=4)
        serve(monitor, WINDOW, seed=5, shift=3.0)
        drifting = check(monitor, "prediction_drift")
        serve(monitor, WINDOW, seed=6)
        mixed = check(monitor, "prediction_drift")  # the window is healthy again, not the 2000 rows before it

    assert drifting["status"] == mixed["status"] == "insufficient_data"
    assert "waiting for 2000 rows whose inputs pass the data checks" in mixed["summary"]


def test_a_drop_after_the_baseline_was_taken_is_flagged(one_liner_reference: Reference) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        serve(monitor, ADOPT_ROWS, seed=5)
        assert check(monitor, "prediction_drift")["status"] == "ok"  # as the periodic evaluation would judge it
        rng = np.random.default_rng(6)
        for _ in range(4):
            X = rng.normal(size=(50, 2))
            monitor.observe(X, served_probabilities(X + np.array([1.5, 0.0])))  # outputs move, inputs do not
        prediction = check(monitor, "prediction_drift")

    assert prediction["status"] in ("warn", "alert"), prediction["summary"]


def test_the_baseline_is_kept_in_the_store_for_every_worker_and_restart(one_liner_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as first:
        serve(first, ADOPT_ROWS, seed=7)
        adopted = check(first, "prediction_drift")["baseline"]
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as restarted:
        serve(restarted, 50, seed=8)
        judged = check(restarted, "prediction_drift")

    assert judged["baseline"] == adopted
    assert judged["status"] == "ok"


def test_a_changed_reference_collects_a_new_baseline(
    one_liner_reference: Reference, tmp_path: Path, gaussian_2000x2: np.ndarray
) -> None:
    db = tmp_path / "shared.db"
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as first:
        serve(first, ADOPT_ROWS, seed=9)
        check(first, "prediction_drift")
    retrained = dataclasses.replace(
        Reference.from_data(
            gaussian_2000x2[:1000], predictions=training_probabilities(gaussian_2000x2[:1000]), feature_names=FEATURES
        ),
        provenance=Provenance(outputs="training"),
    )
    with Monitor(retrained, window=WINDOW, db=db, name="m") as second:
        check(second, "prediction_drift")

    kept = sqlite3.connect(db).execute("SELECT reference FROM baselines WHERE kind = 'outputs'").fetchall()
    assert sorted(kept) == sorted([(reference_digest(one_liner_reference),), (reference_digest(retrained),)])


def test_an_offline_report_judges_against_the_stored_baseline(one_liner_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as monitor:
        serve(monitor, ADOPT_ROWS, seed=10)
        live = check(monitor, "prediction_drift")

    offline = offline_health(db).report.to_json()["checks"]["prediction_drift"]

    assert offline["baseline"] == live["baseline"]
    assert offline["summary"] == live["summary"]


def test_without_a_reference_performance_labels_give_a_served_one(one_liner_reference: Reference) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        assert check(monitor, "concept_drift")["summary"].startswith("Not judged: no labels received yet")
        serve(monitor, 100, seed=11, feedback=True)
        collecting = check(monitor, "concept_drift")
        serve(monitor, ADOPT_ROWS, seed=12, feedback=True)
        judged = check(monitor, "concept_drift")

    assert collecting["status"] == "insufficient_data"
    assert collecting["summary"].startswith("Collecting a performance baseline from served traffic (100 of 2000 labelled rows)")
    assert judged["status"] == "ok", judged["summary"]
    assert judged["baseline"]["source"] == "served traffic"
    assert judged["baseline"]["rows"] == ADOPT_ROWS  # more than the window: every later check leans on it
    assert "(served" in judged["summary"]


def test_a_performance_from_training_rows_is_replaced_by_a_served_one(gaussian_2000x2: np.ndarray) -> None:
    perfect = training_probabilities(gaussian_2000x2)
    y = (perfect[:, 1] > 0.5).astype(int)  # right on every training row, as a memorising model is
    with pytest.warns(TrainingDataWarning):
        reference = Reference.from_data(gaussian_2000x2, y=y, predictions=perfect, feature_names=FEATURES)
    assert reference.provenance == Provenance(outputs="training", performance="training")
    with Monitor(reference, window=WINDOW) as monitor:
        serve(monitor, ADOPT_ROWS, seed=13, feedback=True)
        concept = check(monitor, "concept_drift")

    assert concept["status"] == "ok", concept["summary"]
    assert concept["reference"] < 0.9  # the served accuracy, not the training rows' 1.0


def test_a_served_performance_baseline_survives_json(one_liner_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as monitor:
        serve(monitor, ADOPT_ROWS, seed=14, feedback=True)
        first = check(monitor, "concept_drift")
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as restarted:
        again = check(restarted, "concept_drift")

    assert again["baseline"] == first["baseline"]
    assert again["reference"] == first["reference"]
    assert json.loads(json.dumps(again["baseline"])) == again["baseline"]


def _labelled_stream(
    monitor: Monitor,
    rows: int,
    seed: int,
    flipped_from: int | None = None,
    asked: bool = True,
    unscored: range = range(0),
    shifted_from: int | None = None,
) -> list[dict[str, Any]]:
    """Requests of 50 rows with their labels (30 % of them flipped from row ``flipped_from`` on), the concept
    check after each (unless not ``asked``); the rows ``unscored`` answered NaN, and from row ``shifted_from`` on
    feature b (which the model does not use) moved by 3 (the same draws as without them)."""
    rng = np.random.default_rng(seed)
    said = []
    for start in range(0, rows, 50):
        X = rng.normal(size=(50, 2))
        if shifted_from is not None and start >= shifted_from:
            X[:, 1] += 3.0
        truth = labels(X, rng)
        if flipped_from is not None and start >= flipped_from:
            truth = [1 - v if rng.random() < 0.3 else v for v in truth]
        outputs = served_probabilities(X)
        outputs[[row - start for row in unscored if start <= row < start + 50]] = np.nan
        monitor.feedback(monitor.observe(X, outputs), truth)
        if asked:
            said.append(check(monitor, "concept_drift"))
    return said


def test_labels_that_change_while_the_baseline_is_collected_are_flagged_and_kept_out_of_it(
    one_liner_reference: Reference,
) -> None:
    # flipped at row 500 of the 2,000 the baseline is collected from: adopted whole, it held the change (seen only
    # 1,500 rows later, and then judged against a baseline three quarters flipped); accuracy 0.73 -> 0.59
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        said = _labelled_stream(monitor, 3_000, seed=21, flipped_from=500)

    flagged = [c["status"] in ("warn", "alert") for c in said]
    first = flagged.index(True)
    assert 500 < 50 * (first + 1) <= 1_000, said[first]["summary"]
    # a window of 200 labelled rows: most, not all. 31 of 41 (76 %), each judged against the 300 rows before the
    # change (accuracy 0.73); the rule before adopted 325 (0.73) at row 750 and flagged 38 of 46 (83 %), a share
    # that rests on this seed's first rows: over seeds 21-60 it met this test's four assertions in 3 of 40
    assert sum(flagged[first:]) >= 0.75 * len(flagged[first:])
    assert said[-1]["baseline"]["source"] == "served traffic"
    assert said[-1]["baseline"]["rows"] <= 500  # the rows before the change


@pytest.mark.parametrize("seed", range(22, 27))
def test_healthy_labels_are_adopted_whole_and_never_flagged_while_collected(one_liner_reference: Reference, seed: int) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        said = _labelled_stream(monitor, ADOPT_ROWS, seed=seed)

    assert [c["summary"] for c in said if c["status"] in ("warn", "alert")] == []
    assert said[-1]["baseline"]["rows"] == ADOPT_ROWS


# Healthy streams whose newer half looked worse than their older half at one health check, by chance: judged so at
# every check (at 0.1 % a look), 300, 650 and 350 older rows of them were adopted, at 600, 1,300 and 700 labels (of
# such streams 1.7 %: 40 of seeds 0-2,399), and later windows were judged against a luckier accuracy than the model's
@pytest.mark.parametrize("seed", [14, 343, 466])
def test_healthy_labels_that_looked_worse_by_chance_at_one_check_are_adopted_whole(
    one_liner_reference: Reference, seed: int
) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        said = _labelled_stream(monitor, ADOPT_ROWS, seed=seed)

    assert [c["summary"] for c in said if c["status"] in ("warn", "alert")] == []
    assert said[-1]["baseline"]["rows"] == ADOPT_ROWS


def test_the_rows_adopted_do_not_depend_on_how_often_health_is_asked(one_liner_reference: Reference) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as often:
        _labelled_stream(often, ADOPT_ROWS, seed=21, flipped_from=500)
        every_request = check(often, "concept_drift")["baseline"]
    with Monitor(one_liner_reference, window=WINDOW) as seldom:
        _labelled_stream(seldom, ADOPT_ROWS, seed=21, flipped_from=500, asked=False)
        once = check(seldom, "concept_drift")["baseline"]

    assert every_request["rows"] == once["rows"] <= 500


# A model that answers NaN for some rows: those rows are not scored, and the split test counted positions among the
# scored rows while the rows adopted are counted among the labelled ones.
@pytest.mark.parametrize("seed", [22, 26])
def test_rows_answered_nan_do_not_move_where_the_adopted_rows_end(one_liner_reference: Reference, seed: int) -> None:
    # the first 100 rows unscored: the change at labelled row 500 is scored row 400, and 400 rows were adopted
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        _labelled_stream(monitor, ADOPT_ROWS, seed=seed, flipped_from=500, asked=False, unscored=range(100))
        adopted = check(monitor, "concept_drift")["baseline"]

    assert adopted["rows"] == 500


@pytest.mark.parametrize("seed", [21, 23, 30])
def test_rows_answered_nan_do_not_skip_the_last_checkpoint(one_liner_reference: Reference, seed: int) -> None:
    # 25 unscored rows of 2,000: 1,975 scored never reached the checkpoint at 2,000, and a change from row 1,500
    # (seen there alone) was adopted whole, in each of seeds 21-30
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        _labelled_stream(monitor, ADOPT_ROWS, seed=seed, flipped_from=1_500, asked=False, unscored=range(25))
        adopted = check(monitor, "concept_drift")["baseline"]

    assert adopted["rows"] == 1_500


def test_a_served_performance_counts_the_rows_it_scored_where_the_baseline_counts_those_adopted(
    one_liner_reference: Reference,
) -> None:
    # its standard errors are of the scored rows: 100 answered NaN of 400 adopted leave 300
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        _labelled_stream(monitor, ADOPT_ROWS, seed=22, flipped_from=500, asked=False, unscored=range(100))
        adopted = check(monitor, "concept_drift")["baseline"]
    outputs = [[math.nan, math.nan]] * 100 + [[0.8, 0.2], [0.3, 0.7]] * 150
    performance = served_performance(None, outputs, [0, 1] * 200)

    assert adopted["rows"] == 500
    assert performance is not None
    assert performance.rows == 300
    assert performance.error_mean == 0.0


# From row 1,000 of the first 2,000 the inputs drift (so the 2,000 rows are never adopted whole) and 30 % of the
# labels are flipped: the baseline waited for inputs that pass, and concept drift was never judged (all 3,000 rows
# `insufficient_data`, seeds 21-30). Now the rows before the change are adopted at the checkpoint of 1,500 or
# 2,000 labels in 9 of those 10 seeds (850-1,250 rows; seed 21's change is not found), each flagged later
# (accuracy ~0.68 -> ~0.58, judged on windows of 200 labelled rows: 1 to 20 of the 21-31 checks after it).
@pytest.mark.parametrize("seed", [22, 24, 26])
def test_a_change_that_moves_inputs_and_performance_together_is_kept_out_of_the_baseline_and_flagged(
    one_liner_reference: Reference, seed: int
) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        said = _labelled_stream(monitor, 3_000, seed=seed, flipped_from=1_000, shifted_from=1_000)
        drift = check(monitor, "data_drift")

    assert drift["status"] in ("warn", "alert"), drift["summary"]
    assert said[-1]["baseline"]["source"] == "served traffic", said[-1]["summary"]
    assert 500 <= said[-1]["baseline"]["rows"] <= 1_250  # the rows before the change, or a little past it
    judged = [c for c in said if c["status"] != "insufficient_data"]
    assert any(c["status"] in ("warn", "alert") for c in judged), judged[-1]["summary"]


def test_while_inputs_drift_the_labels_beyond_the_first_2000_are_not_split_again(one_liner_reference: Reference) -> None:
    # the inputs drift from row 0: no baseline is taken whole; once 2,000 labels are in, the newest 2,000 slide
    # with every request and are not judged for a change (judged at every check, a healthy stream would
    # eventually look worse by chance): the change from row 2,500 is beyond the first 2,000
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        said = _labelled_stream(monitor, 4_000, seed=21, flipped_from=2_500, shifted_from=0)

    assert {c["status"] for c in said} == {"insufficient_data"}
    assert "waiting for inputs that pass the data checks" in said[-1]["summary"]


def three_class_probabilities(X: np.ndarray) -> np.ndarray:
    """A three-class model's probabilities: softmax of (x0, -x0, 0)."""
    scores = np.column_stack([X[:, 0], -X[:, 0], np.zeros(len(X))])
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


def test_a_class_first_labelled_late_does_not_keep_the_collection_from_being_judged(gaussian_2000x2: np.ndarray) -> None:
    # Labels named by strings, mapped onto the three probability columns only once all three have been seen: class
    # "rare" is held back for the first 300 rows. Scored with the classes of the first 250 rows alone (two names for
    # three columns: no mapping), the collection was never judged, and labels drawn at random from row 500 (accuracy
    # ~0.6 -> 1/3) were adopted whole.
    X0 = gaussian_2000x2
    built = Reference.from_data(X0, predictions=three_class_probabilities(X0), feature_names=FEATURES)
    reference = dataclasses.replace(built, provenance=Provenance(features="training", outputs="training"))
    names = np.array(["down", "rare", "up"])  # sorted: column 0 is "down", 1 "rare", 2 "up"
    rng = np.random.default_rng(5)
    with Monitor(reference, window=WINDOW) as monitor:
        for start in range(0, ADOPT_ROWS, 50):
            X = rng.normal(size=(50, 2))
            P = three_class_probabilities(X)
            truth = np.array([rng.choice(3, p=p) for p in P])
            if start < 300:
                truth[truth == 1] = 0
            if start >= 500:
                truth = rng.integers(0, 3, 50)
            monitor.feedback(monitor.observe(X, P), names[truth].tolist())
        said = check(monitor, "concept_drift")

    assert said["baseline"]["source"] == "served traffic"
    assert said["baseline"]["rows"] <= 600


# -- estimated_performance on the one-liner: the profile of the labelled rows adopted as the performance baseline --


def estimate(monitor: Monitor) -> dict[str, Any]:
    return check(monitor, "estimated_performance")


def adopted_without_labels_after(monitor: Monitor, seed: int) -> np.random.Generator:
    """Serve 2,000 labelled rows (the performance baseline, adopted at the health check after them); the generator
    goes on with the same stream, unlabelled."""
    rng = np.random.default_rng(seed)
    for _ in range(0, ADOPT_ROWS, 50):
        X = rng.normal(size=(50, 2))
        monitor.feedback(monitor.observe(X, served_probabilities(X)), labels(X, rng))
    return rng


def test_the_one_liners_estimate_is_judged_once_its_performance_baseline_is_adopted_and_says_served(
    one_liner_reference: Reference,
) -> None:
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        serve(monitor, 1_000, seed=31, feedback=True)
        before = estimate(monitor)
        serve(monitor, 1_000, seed=32, feedback=True)
        after = estimate(monitor)

    assert before["status"] == "ok"
    assert before["summary"].startswith("Not judged: the reference has no profile of the model's outputs with their errors;")
    assert after["status"] == "ok", after["summary"]
    assert after["basis"] == "from confidences calibrated on served labels"
    assert after["trusted"] is True
    assert after["baseline"]["source"] == "served traffic"
    assert after["baseline"]["rows"] == ADOPT_ROWS
    assert f"(served {after['reference']:.3f}); from confidences calibrated on served labels" in after["summary"]
    assert "baseline: 2000 rows served since" in after["summary"]
    assert "reference" not in after["summary"]
    assert after["reference"] == pytest.approx(after["reference_realized"])  # the adopted rows' accuracy


def test_an_estimate_made_before_adoption_is_not_handed_back_for_the_same_window_after_it(
    one_liner_reference: Reference,
) -> None:
    # the last request's labels arrive after the health check that saw its rows: the window is the same, and the
    # check that adopts the baseline must judge the estimate afresh, not reuse the "Not judged" kept for that window
    rng = np.random.default_rng(33)
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        for start in range(0, ADOPT_ROWS, 50):
            X = rng.normal(size=(50, 2))
            request_id, truth = monitor.observe(X, served_probabilities(X)), labels(X, rng)
            if start < ADOPT_ROWS - 50:
                monitor.feedback(request_id, truth)
        waiting = estimate(monitor)  # 1,950 labelled rows: not adopted yet
        monitor.feedback(request_id, truth)
        judged = estimate(monitor)

    assert waiting["summary"].startswith("Not judged")
    assert judged["baseline"]["source"] == "served traffic", judged["summary"]


def test_a_shift_into_low_confidence_after_adoption_moves_the_estimate_out_of_its_interval_without_labels(
    one_liner_reference: Reference,
) -> None:
    # feature a, the one the model reads, squeezed to a third of its spread: probabilities near 0.5, accuracy
    # 0.67 -> ~0.55; no label is sent after the baseline
    with Monitor(one_liner_reference, window=WINDOW) as monitor:
        rng = adopted_without_labels_after(monitor, seed=34)
        healthy = estimate(monitor)
        said = []
        for _ in range(8):
            X = rng.normal(size=(50, 2)) * np.array([0.3, 1.0])
            monitor.observe(X, served_probabilities(X))
            said.append(estimate(monitor))

    assert healthy["status"] == "ok", healthy["summary"]
    flagged = [c["status"] for c in said]
    assert flagged[1:] == ["alert"] * 7, said  # from 100 shifted rows of 200 on (0.623 against 0.649-0.701); trusted
    assert said[-1]["estimated"] < said[-1]["interval"][0] < said[-1]["reference"]
    assert "fell to" in said[-1]["summary"]
    assert "(served " in said[-1]["summary"]


def test_healthy_traffic_after_adoption_stays_inside_the_estimates_interval(one_liner_reference: Reference) -> None:
    # 20 seeds x 40 checks (every 50 rows of 2,000 unlabelled ones): at the check's 0.05 % a check, 0.4 expected;
    # seed 8 is flagged once (0.658 against 0.660-0.717). Over seeds 20-419, 10 of 16,000 checks (0.06 %)
    judged, flagged = 0, []
    for seed in range(20):
        with Monitor(one_liner_reference, window=WINDOW) as monitor:
            rng = adopted_without_labels_after(monitor, seed=seed)
            for _ in range(0, ADOPT_ROWS, 50):
                X = rng.normal(size=(50, 2))
                monitor.observe(X, served_probabilities(X))
                said = estimate(monitor)
                judged += said.get("baseline", {}).get("source") == "served traffic"
                if said["status"] in ("warn", "alert"):
                    flagged.append((seed, said["summary"]))

    assert judged == 20 * 40
    assert len(flagged) <= 1, flagged


def test_the_served_profile_is_kept_in_the_store_with_the_performance_for_every_worker_and_restart(
    one_liner_reference: Reference, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as first:
        adopted_without_labels_after(first, seed=35)
        adopted = estimate(first)
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as restarted:  # no label of its own
        again = estimate(restarted)  # the same stored window, judged with the stored profile
    document = json.loads(sqlite3.connect(db).execute("SELECT document FROM baselines WHERE kind = 'performance'").fetchone()[0])

    assert adopted["baseline"]["source"] == "served traffic", adopted["summary"]
    assert again == adopted
    assert document["confidence"]["rows"] == ADOPT_ROWS
    assert document["confidence"]["labelled"] is True


def test_a_performance_baseline_stored_without_a_profile_gives_none(one_liner_reference: Reference, tmp_path: Path) -> None:
    # stored by a version that kept the performance alone: the estimate is not judged, and concept drift still is
    db = tmp_path / "shared.db"
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as first:
        adopted_without_labels_after(first, seed=36)
        check(first, "concept_drift")
    with sqlite3.connect(db) as connection:
        stored = json.loads(connection.execute("SELECT document FROM baselines WHERE kind = 'performance'").fetchone()[0])
        del stored["confidence"]
        connection.execute("UPDATE baselines SET document = ? WHERE kind = 'performance'", (json.dumps(stored),))
    with Monitor(one_liner_reference, window=WINDOW, db=db, name="m") as older:
        said = older.health().to_json()["checks"]

    assert said["estimated_performance"]["summary"].startswith(
        "Not judged: the reference has no profile of the model's outputs with their errors"
    )
    assert said["concept_drift"]["baseline"]["source"] == "served traffic"
    assert said["store"]["status"] == "ok", said["store"]["summary"]  # read, not failed
