"""Input kinds: a text per row, and rows with a free-text field, go through the request path like rows.

A kind is chosen from the training data (or ``input_format=``), parses a body into what the model gets,
refuses a bad row naming the row and field, logs its inputs cut to size and redacted, and describes each row
by numbers the drift engine judges; a saved reference brings its kind back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from examples.text.corpus import news, reviews
from guarded_serving import ConfigurationError, GuardedModel, Monitor, Reference
from guarded_serving.cli import main
from guarded_serving.inputs import KIND_KEY, kind_for, kind_of_reference
from guarded_serving.inputs.descriptors import OTHER, TextDescriptors
from guarded_serving.inputs.mixed import MixedKind
from guarded_serving.inputs.text import LOGGED_CHARS, MAX_CHARS, TextKind
from guarded_serving.profiles import FeatureProfile

TEXTS, TOPICS = news(600, seed=1)
REVIEWS, CAME_BACK = reviews(600, seed=1)
TEXT_FEATURES = (
    "text.chars", "text.tokens", "text.unknown", "text.empty", "text.non_ascii", "text.digits", "text.upper", "text.token"
)  # fmt: skip


class Recorder:
    """A predict function that keeps what it was called with, and answers one probability pair per row."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, inputs: Any) -> np.ndarray:
        self.calls.append(inputs)
        return np.tile([0.25, 0.75], (len(inputs), 1))


def body(rows: Any) -> bytes:
    return json.dumps({"rows": rows}).encode()


def post(guarded: GuardedModel, rows: Any) -> tuple[int, dict[str, Any]]:
    reply = guarded.handle_predict(body(rows), "application/json")
    return reply.status, json.loads(reply.body)


def logged_inputs(db: Path) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return [json.loads(i) if i is not None else None for (i,) in conn.execute("SELECT inputs FROM requests ORDER BY ts")]


@pytest.fixture
def model() -> Recorder:
    return Recorder()


@pytest.fixture
def text_model(model: Recorder, tmp_path: Path) -> Iterator[GuardedModel]:
    guarded = GuardedModel(model, reference=TEXTS, name="news", db=tmp_path / "log.db")
    yield guarded
    guarded.close()


# -- choosing a kind ---------------------------------------------------------------------------------------------------


def test_a_list_of_strings_is_a_text_reference_judged_by_its_descriptors() -> None:
    kind = kind_for(TEXTS)

    reference = Monitor(TEXTS).reference

    assert isinstance(kind, TextKind)
    assert reference.feature_names == TEXT_FEATURES
    assert reference.extra[KIND_KEY]["kind"] == "text"
    assert reference.provenance.features == "training"


def test_a_dataframe_with_a_free_text_column_is_a_mixed_reference() -> None:
    reference = Monitor(REVIEWS).reference

    assert isinstance(kind_for(REVIEWS), MixedKind)
    assert reference.feature_names == (*(f.replace("text.", "review.") for f in TEXT_FEATURES), "stars", "price", "channel")
    assert [f.kind for f in reference.features][-3:] == ["numeric", "numeric", "categorical"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([[1.0, "a"], [2.0, "b"]] * 20, id="rows-of-scalars"),
        pytest.param(pd.DataFrame({"city": ["Paris", "Rome"] * 50, "x": range(100)}), id="short-repeated-strings"),
        pytest.param(pd.DataFrame({"id": [f"C{i:05d}" for i in range(100)], "x": range(100)}), id="id-like-strings"),
    ],
)
def test_rows_without_free_text_stay_tabular(data: Any) -> None:
    assert kind_for(data) is None


def test_input_format_forces_a_kind_or_the_tabular_path() -> None:
    assert isinstance(kind_for(["ab cd"] * 3, "text"), TextKind)
    assert kind_for(REVIEWS, "dataframe") is None
    with pytest.raises(ConfigurationError, match="input_format: expected one of"):
        kind_for(TEXTS, "xml")


def test_a_text_reference_refuses_a_row_that_is_not_a_string() -> None:
    with pytest.raises(
        ConfigurationError, match=r"reference row 2: expected a string \(the reference is one text per row\), got 3"
    ):
        TextKind(TextDescriptors("text", ())).items(["a", "b", 3])


def test_a_saved_reference_brings_its_kind_back(model: Recorder, tmp_path: Path) -> None:
    path = Monitor(TEXTS).reference.save(tmp_path / "reference.json")

    guarded = GuardedModel(model, reference=path, name="news", db=":memory:")
    status, _ = post(guarded, ["The team wins the final."])

    assert isinstance(kind_of_reference(Reference.load(path)), TextKind)
    assert status == 200
    assert model.calls == [["The team wins the final."]]


# -- the request path ----------------------------------------------------------------------------------------------------


def test_the_text_model_gets_a_list_of_strings(text_model: GuardedModel, model: Recorder) -> None:
    status, answer = post(text_model, ["first text", "second text"])

    assert status == 200
    assert answer["predictions"] == [[0.25, 0.75], [0.25, 0.75]]
    assert model.calls[-1] == ["first text", "second text"]


@pytest.mark.parametrize(
    ("rows", "status", "detail"),
    [
        pytest.param(
            ["ok", 3, None], 422, "row 1, feature 'text': got 3; expected a string (and 1 more problem)", id="not-strings"
        ),
        pytest.param(
            ["ok", "x" * (MAX_CHARS + 1)], 413, f"row 1, feature 'text': a text of {MAX_CHARS + 1} characters", id="too-long"
        ),
        pytest.param([], 422, "'rows' is an empty list; expected a non-empty list of inputs", id="empty"),
        pytest.param("one text", 422, "'rows' is \"one text\"; expected a non-empty list of inputs", id="a-bare-string"),
    ],
)
def test_a_bad_text_row_is_refused_naming_the_row(text_model: GuardedModel, rows: Any, status: int, detail: str) -> None:
    got, answer = post(text_model, rows)

    assert got == status
    assert answer["detail"].startswith(detail)


def test_a_body_without_rows_is_refused(text_model: GuardedModel) -> None:
    reply = text_model.handle_predict(json.dumps({"texts": ["a"]}).encode(), "application/json")

    assert reply.status == 422
    assert 'expected a JSON object with the single field "rows"' in json.loads(reply.body)["detail"]


def test_texts_are_logged_cut_to_size(text_model: GuardedModel, tmp_path: Path) -> None:
    long = "word " * 1000

    post(text_model, ["short one", long])
    text_model.monitor.flush()  # type: ignore[union-attr]

    [logged] = logged_inputs(tmp_path / "log.db")
    assert logged[0] == "short one"
    assert logged[1].startswith(long[:LOGGED_CHARS])
    assert logged[1].endswith(f"[{len(long) - LOGGED_CHARS} more characters]")


def test_a_redacted_text_is_never_logged_nor_quoted(model: Recorder, tmp_path: Path) -> None:
    guarded = GuardedModel(model, reference=TEXTS, name="news", db=tmp_path / "log.db", redact=["text"])
    post(guarded, ["my secret text"])
    status, refused = post(guarded, ["ok", 12345678])
    guarded.monitor.flush()  # type: ignore[union-attr]
    guarded.close()

    assert status == 422
    assert "12345678" not in json.dumps(refused)
    assert refused["problems"][0]["row"] == 1
    assert logged_inputs(tmp_path / "log.db")[0] == [None]
    assert b"my secret text" not in (tmp_path / "log.db").read_bytes()


def test_a_redacted_text_is_judged_by_its_numbers_and_its_drawn_token_withheld(model: Recorder, tmp_path: Path) -> None:
    fresh, _ = news(200, seed=9)
    guarded = GuardedModel(model, reference=TEXTS, name="news", db=tmp_path / "log.db", redact=["text"], window=200)
    post(guarded, fresh)
    features = json.loads(guarded.health_reply().body)["checks"]["data_drift"]["features"]
    guarded.close()

    assert "text.token" not in features
    assert {"text.chars", "text.unknown", "text.upper"} <= set(features)
    with sqlite3.connect(tmp_path / "log.db") as conn:
        [(saved,)] = conn.execute("SELECT reference FROM models").fetchall()
    [token] = [f for f in json.loads(saved)["features"] if f["name"] == "text.token"]
    assert token["categories"] == []  # the reference's most frequent words are not written either
    assert json.loads(saved)["extra"]["input_kind"]["descriptors"]["vocabulary"] == []


def test_without_logged_inputs_no_text_reaches_disk(model: Recorder, tmp_path: Path) -> None:
    guarded = GuardedModel(model, reference=TEXTS, name="news", db=tmp_path / "log.db", log_inputs=False)
    post(guarded, ["my private text"])
    guarded.monitor.flush()  # type: ignore[union-attr]
    guarded.close()

    assert logged_inputs(tmp_path / "log.db") == [None]


def test_the_text_request_path_is_timed_in_stages(text_model: GuardedModel) -> None:
    for _ in range(3):
        post(text_model, TEXTS[:20])

    stages = json.loads(text_model.health_reply().body)["checks"]["pipeline"]["stages"]

    assert {"validate", "predict", "serialize", "log"} <= set(stages)


def test_feedback_labels_text_predictions(text_model: GuardedModel) -> None:
    _, answer = post(text_model, TEXTS[:2])

    reply = text_model.handle_feedback(
        json.dumps({"request_id": answer["request_id"], "labels": [0, 1]}).encode(), "application/json"
    )

    assert reply.status == 200, reply.body


def test_the_mixed_model_gets_a_dataframe_of_its_columns(model: Recorder) -> None:
    guarded = GuardedModel(model, reference=REVIEWS, name="reviews", db=":memory:")
    row = {"review": "Fast delivery, lovely staff.", "stars": 5, "price": 19.9, "channel": "web"}

    status, _ = post(guarded, [row, [*row.values()]])

    assert status == 200
    frame = model.calls[-1]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["review", "stars", "price", "channel"]
    assert frame["review"].tolist() == [row["review"]] * 2


@pytest.mark.parametrize(
    ("row", "detail"),
    [
        pytest.param(
            {"review": 5, "stars": 5, "price": 1.0, "channel": "web"},
            "row 0, feature 'review': got 5; expected a string (free text)",
            id="number-as-text",
        ),
        pytest.param(
            {"review": "ok", "stars": "five", "price": 1.0, "channel": "web"}, "row 0, feature 'stars'", id="text-as-number"
        ),
        pytest.param({"review": "ok", "stars": 5, "price": 1.0}, "row 0, feature 'channel'", id="missing-field"),
    ],
)
def test_a_bad_mixed_row_is_refused_naming_the_row_and_field(model: Recorder, row: dict[str, Any], detail: str) -> None:
    guarded = GuardedModel(model, reference=REVIEWS, name="reviews", db=":memory:")

    status, answer = post(guarded, [row])

    assert status == 422
    assert answer["detail"].startswith(detail), answer["detail"]


def test_a_redacted_numeric_field_of_a_mixed_row_is_blanked_in_the_log(model: Recorder, tmp_path: Path) -> None:
    guarded = GuardedModel(model, reference=REVIEWS, name="reviews", db=tmp_path / "log.db", redact=["price"])
    post(guarded, [{"review": "Fast delivery.", "stars": 5, "price": 19.9, "channel": "web"}])
    guarded.monitor.flush()  # type: ignore[union-attr]
    guarded.close()

    assert logged_inputs(tmp_path / "log.db") == [[["Fast delivery.", 5, None, "web"]]]


# -- descriptors -----------------------------------------------------------------------------------------------------------


def test_text_descriptors_count_what_each_text_is_made_of() -> None:
    descriptors = TextDescriptors.fit("text", ["the cat sat", "the dog ran"])

    columns = {name: values for name, values, _ in descriptors.columns(["The CAT sat 42 мир", ""])}

    assert columns["text.chars"].tolist() == [18.0, 0.0]
    assert columns["text.tokens"].tolist() == [5.0, 0.0]
    assert columns["text.unknown"].tolist() == [pytest.approx(2 / 5), 0.0]  # "42" and "мир"
    assert columns["text.empty"].tolist() == [0.0, 1.0]
    assert columns["text.non_ascii"].tolist() == [pytest.approx(3 / 18), 0.0]
    assert columns["text.digits"].tolist() == [pytest.approx(2 / 18), 0.0]
    assert columns["text.upper"].tolist() == [pytest.approx(4 / 12), 0.0]
    assert columns["text.token"].tolist()[1] == "(none)"


def test_the_references_unknown_share_counts_words_no_other_reference_text_has() -> None:
    texts = ["common words here", "common words there", "common words rare"]
    descriptors = TextDescriptors.fit("text", texts)

    as_reference = {n: v for n, v, _ in descriptors.columns(texts, reference=True)}["text.unknown"]
    as_served = {n: v for n, v, _ in descriptors.columns(texts)}["text.unknown"]

    assert as_reference.tolist() == [pytest.approx(1 / 3)] * 3
    assert as_served.tolist() == [0.0] * 3


def test_the_token_draw_names_only_the_references_most_frequent_tokens() -> None:
    descriptors = TextDescriptors.fit("text", [f"alpha beta w{i}" for i in range(100)])

    [(_, drawn, categorical)] = [c for c in descriptors.columns(["alpha beta", "zeta omega"]) if c[0] == "text.token"]

    assert categorical
    assert drawn[0] in {"alpha", "beta"}
    assert drawn[1] == OTHER


@pytest.mark.parametrize(
    ("feature", "mean", "values", "wording"),
    [
        pytest.param("text.chars", 100.0, [230.0, 230.0], "texts 2.3x longer (100 -> 230 characters on average)", id="longer"),
        pytest.param("text.tokens", 20.0, [10.0, 10.0], "texts 2x shorter (20 -> 10 tokens on average)", id="shorter"),
        pytest.param("text.unknown", 0.03, [0.41, 0.41], "share of unknown tokens 3% -> 41%", id="unknown"),
        pytest.param("text.upper", 0.021, [0.024, 0.024], "share of upper-case letters 2.1% -> 2.4%", id="close-shares"),
        pytest.param("text.token", None, ["a"], None, id="categorical-keeps-the-engines-words"),
    ],
)
def test_drift_of_a_descriptor_is_worded_for_texts(
    feature: str, mean: float | None, values: list[Any], wording: str | None
) -> None:
    profile = FeatureProfile(name=feature, kind="numeric", count=10, missing_rate=0.0, mean=mean)
    column = np.array(values, dtype=np.float64) if mean is not None else np.array([0.0])

    assert TextDescriptors("text", ()).explain(feature, profile, column) == wording


def test_a_monitor_observes_texts_as_the_model_got_them(tmp_path: Path) -> None:
    fresh, _ = news(200, seed=9)  # not the reference's own texts, every token of which it knows

    with Monitor(TEXTS, db=tmp_path / "log.db", window=200) as monitor:
        monitor.observe(fresh, [[0.5, 0.5]] * 200)
        monitor.flush()
        report = monitor.health()

    assert report.window_rows == 200
    assert report.check("data_drift").status.value == "ok", report.check("data_drift").summary
    assert logged_inputs(tmp_path / "log.db") == [fresh]


def test_the_offline_report_of_a_text_model_words_drift_as_the_service_does(
    model: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shouted, _ = news(600, seed=3, breakage="upper")
    guarded = GuardedModel(model, reference=TEXTS, name="news", db=tmp_path / "log.db", window=500, redact=["text"])
    for start in range(0, 600, 200):
        post(guarded, shouted[start : start + 200])
    guarded.close()
    capsys.readouterr()

    code = main(["report", "--db", str(tmp_path / "log.db"), "--json"])

    drift = json.loads(capsys.readouterr().out)["checks"]["data_drift"]
    assert code == 0
    assert drift["features"]["text.upper"]["reason"] == "share of upper-case letters 2% -> 100%"
    assert "text.token" not in drift["features"]


def test_held_out_texts_and_labels_give_outputs_and_performance_from_the_start() -> None:
    held, topics = news(300, seed=4)
    predict = Recorder()

    labels = [topic % 2 for topic in topics]  # the two classes the recorder answers

    guarded = GuardedModel(predict, reference=TEXTS, holdout=(held, labels), name="news", db=":memory:")

    assert predict.calls[0] == held
    assert guarded.reference.provenance.outputs == "holdout"
    assert guarded.reference.performance is not None
    assert guarded.reference.feature_names == TEXT_FEATURES
