"""Tensor and embedding inputs: per-row summaries, the random projection, parsing with errors that name the row
and the shape, logging, and the kinds' saved state."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from guarded_serving import ConfigurationError, GuardedModel, InputError, Monitor, Reference
from guarded_serving.inputs import kind_for, kind_of_reference, kind_reference
from guarded_serving.inputs.arrays import TensorSummary, spatial_axes
from guarded_serving.inputs.embeddings import EmbeddingSummary
from guarded_serving.inputs.projection import RandomProjection
from guarded_serving.inputs.shaped import LOGGED_VALUES, ArrayRows
from tests.fixtures.data import gaussian

IMAGES = load_digits().images  # 1,797 x 8 x 8, values 0-16


@pytest.fixture(scope="module")
def summary() -> TensorSummary:
    return TensorSummary.fit(IMAGES[:900])


def column(summary: TensorSummary, rows: np.ndarray, name: str) -> np.ndarray:
    return summary(rows)[:, summary.names.index(name)]


def test_digits_are_summarised_by_brightness_saturation_edges_and_a_projection(summary: TensorSummary) -> None:
    assert summary.names == (
        "mean", "spread", "saturated_low", "saturated_high", "edges_rows", "edges_columns",
        *(f"projection_{k}" for k in range(1, 9)),
    )  # fmt: skip
    assert (summary.low, summary.high) == (0.0, 16.0)
    assert summary(IMAGES[:3]).shape == (3, 14)


def test_a_reference_that_never_saturates_is_not_watched_for_saturation() -> None:
    smooth = np.random.default_rng(0).normal(size=(300, 6, 6))

    assert "saturated_low" not in TensorSummary.fit(smooth).names
    assert "saturated_high" not in TensorSummary.fit(smooth).names


def test_a_rotation_by_90_degrees_swaps_the_edges_along_rows_and_columns(summary: TensorSummary) -> None:
    rotated = np.rot90(IMAGES[900:], 1, axes=(1, 2))

    rows, columns = column(summary, IMAGES[900:], "edges_rows"), column(summary, IMAGES[900:], "edges_columns")
    assert column(summary, rotated, "edges_rows") == pytest.approx(columns)
    assert column(summary, rotated, "edges_columns") == pytest.approx(rows)
    assert abs(rows.mean() - columns.mean()) > 0.5  # digits change more across columns than across rows


def test_brightness_raises_the_mean_and_noise_lifts_the_dark_background(summary: TensorSummary) -> None:
    held = IMAGES[900:]
    noisy = np.clip(held + np.random.default_rng(1).normal(0, 1, held.shape), 0, 16)

    assert column(summary, held * 1.2, "mean").mean() == pytest.approx(1.2 * column(summary, held, "mean").mean())
    assert column(summary, noisy, "saturated_low").mean() < 0.8 * column(summary, held, "saturated_low").mean()


def test_the_random_projection_is_fixed_by_its_seed_and_the_row_size() -> None:
    flat = IMAGES[:5].reshape(5, 64)

    assert RandomProjection(64)(flat) == pytest.approx(RandomProjection(64)(flat))
    assert not np.allclose(RandomProjection(64, seed=1)(flat), RandomProjection(64)(flat))
    assert RandomProjection(64).names == tuple(f"projection_{k}" for k in range(1, 9))


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        pytest.param((8, 8), (0, 1), id="grey-image"),
        pytest.param((32, 32, 3), (0, 1), id="channels-last"),
        pytest.param((3, 32, 32), (1, 2), id="channels-first"),
        pytest.param((100,), (0,), id="one-axis"),
    ],
)
def test_spatial_axes_skip_the_channels(shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    assert spatial_axes(shape) == axes


def test_summaries_survive_saving(summary: TensorSummary) -> None:
    again = TensorSummary.from_json(json.loads(json.dumps(summary.to_json())))

    assert again(IMAGES[:10]) == pytest.approx(summary(IMAGES[:10]))


def test_an_embedding_is_watched_through_its_coordinates_norm_and_mahalanobis_distance() -> None:
    vectors = gaussian(1000, 16, seed=2) * np.arange(1, 17)
    summary = EmbeddingSummary.fit(vectors)

    described = summary(vectors)
    assert summary.names == (*(f"dim_{k}" for k in range(16)), "norm", "distance")
    assert described[:, 17].mean() ** 2 == pytest.approx(16, rel=0.05)  # whitened: squared distance ~ chi2(16)
    again = EmbeddingSummary.from_json(json.loads(json.dumps(summary.to_json())))
    assert again(vectors[:5]) == pytest.approx(described[:5])


def test_the_references_own_distances_are_taken_as_if_each_row_were_left_out_of_the_fit() -> None:
    vectors = gaussian(300, 8, seed=5) @ gaussian(8, 8, seed=6)
    summary = EmbeddingSummary.fit(vectors)
    others = np.delete(vectors, 7, axis=0)
    gap = vectors[7] - others.mean(axis=0)

    left_out = summary(vectors, reference=True)[7, -1] ** 2

    exact = gap @ np.linalg.solve(np.cov(others, rowvar=False), gap)
    assert left_out == pytest.approx(exact, rel=1e-2)  # up to the ridge that keeps a flat direction invertible
    assert summary(vectors, reference=True)[:, -1].mean() > summary(vectors)[:, -1].mean()


def test_a_wide_embedding_is_projected_to_64_coordinates() -> None:
    summary = EmbeddingSummary.fit(gaussian(500, 300, seed=3))

    assert summary.names[0] == "projection_1"
    assert len(summary.names) == 66


# -- rows of a fixed shape ----------------------------------------------------------------------------------------

ROWS = ArrayRows("tensor", (2, 2), "float64")


def problems(rows: ArrayRows, batch: list[Any]) -> list[str]:
    with pytest.raises(InputError) as raised:
        rows.parse(batch)
    assert raised.value.status == 422
    return [str(p) for p in raised.value.problems]


def test_rows_of_the_right_shape_are_parsed_in_one_go() -> None:
    parsed = ROWS.parse([[[1, 2], [3, 4]], [[0.5, 0], [0, 0]]])

    assert [p.dtype for p in parsed] == [np.float64, np.float64]
    assert parsed[1].tolist() == [[0.5, 0.0], [0.0, 0.0]]


def test_every_refused_row_is_named_with_the_shape_expected() -> None:
    rows = [[[1, 2], [3, 4]], [[1, 2, 3], [4, 5, 6]], "abc", [[1, 2], [3]], [["a", "b"], ["c", "d"]], None, [[1, 2], [3, None]]]
    found = problems(ROWS, [*rows, [[True, False], [True, True]]])

    expected = "expected an array of shape (2, 2) of numbers (float64)"
    assert found == [
        f"row 1, feature 'tensor': got an array of shape (2, 3); {expected}",
        f"row 2, feature 'tensor': got \"abc\"; {expected}",
        f"row 3, feature 'tensor': got nested lists of unequal lengths; {expected}",
        f"row 4, feature 'tensor': got an array of strings; {expected}",
        f"row 5, feature 'tensor': got null; {expected}",
        f"row 6, feature 'tensor': got null at position (1, 1); {expected}",
        f"row 7, feature 'tensor': got an array of true/false values; {expected}",
    ]


def test_an_integer_reference_takes_whole_numbers_within_its_range() -> None:
    pixels = ArrayRows("tensor", (2,), "uint8")

    assert pixels.parse([[0, 255]])[0].dtype == np.uint8
    expected = "expected an array of shape (2,) of whole numbers (uint8)"
    assert problems(pixels, [[0.5, 1], [0, 256]]) == [
        f"row 0, feature 'tensor': got 0.5 at position (0,); {expected}",
        f"row 1, feature 'tensor': got 256 at position (1,), outside 0..255; {expected}",
    ]


def test_a_float_reference_refuses_values_far_beyond_its_own_as_a_tabular_feature_does() -> None:
    rows, _ = ArrayRows.of_reference("tensor", np.array([[[0.0, 16.0], [1.0, 2.0]]]))

    expected = "expected an array of shape (2, 2) of numbers (float64)"
    beyond = "far beyond the reference's values (at most ±1.6e+10: 10^9 times its largest magnitude)"
    assert rows.parse([[[1e10, -1e10], [0, 0]]])[0].tolist() == [[1e10, -1e10], [0.0, 0.0]]
    assert problems(rows, [[[0, 1e300], [0, 0]], [[0, 0], [-1e12, 0]]]) == [
        f"row 0, feature 'tensor': got 1e+300 at position (0, 1), {beyond}; {expected}",
        f"row 1, feature 'tensor': got -1e+12 at position (1, 0), {beyond}; {expected}",
    ]


def test_an_integer_too_large_for_any_machine_type_is_named_not_a_crash() -> None:
    pixels = ArrayRows("tensor", (2,), "uint8")

    assert problems(ROWS, [[[1, 10**400], [3, 4]]]) == [
        f"row 0, feature 'tensor': got 1{'0' * 36}... at position (0, 1), beyond what float64 holds (at most"
        " ±1.8e+308); expected an array of shape (2, 2) of numbers (float64)"
    ]
    assert problems(pixels, [[0, 2**64]]) == [
        "row 0, feature 'tensor': got 18446744073709551616 at position (1,), outside 0..255; expected an array of shape"
        " (2,) of whole numbers (uint8)"
    ]


def test_a_reference_saved_before_the_magnitude_limit_loads_without_one() -> None:
    state = {"shape": [8, 8], "dtype": "float64", "summary": {}}
    rows = ArrayRows.from_state("tensor", (8, 8), state)

    assert rows.limit == float("inf")
    assert ArrayRows.from_state("tensor", (8, 8), {**state, "limit": 16e9}).limit == 16e9


def test_rows_are_logged_whole_or_as_a_summary_when_large_and_not_at_all_when_redacted() -> None:
    big = ArrayRows("tensor", (LOGGED_VALUES + 1,), "float64")

    assert ROWS.logged([np.eye(2)], ()) == [[[1.0, 0.0], [0.0, 1.0]]]
    assert ROWS.logged([np.eye(2)], ("tensor",)) == [None]
    assert big.logged([np.ones(LOGGED_VALUES + 1)], ())[0]["omitted"] == f"{LOGGED_VALUES + 1} values"


# -- the kinds ----------------------------------------------------------------------------------------------------


def test_a_3d_reference_is_a_tensor_and_a_2d_one_an_embedding_only_when_named() -> None:
    vectors = gaussian(400, 8, seed=4)

    assert kind_for(IMAGES[:200]).name == "tensor"  # type: ignore[union-attr]
    assert kind_for(vectors) is None
    assert kind_for(vectors, "embedding").name == "embedding"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["tensor", "embedding"])
def test_a_saved_reference_brings_its_kind_back(name: str, tmp_path: Any) -> None:
    data = IMAGES[:400] if name == "tensor" else IMAGES[:400].reshape(400, 64)
    kind = kind_for(data, name)
    assert kind is not None
    path = kind_reference(kind, data).save(tmp_path / "reference.json")

    again = kind_of_reference(Reference.load(path))

    assert again is not None
    assert again.name == name
    described, redescribed = kind.describe(kind.items(data[:5])), again.describe(again.items(data[:5]))
    assert described.names == redescribed.names
    assert np.column_stack(redescribed.values) == pytest.approx(np.column_stack(described.values))


def test_a_ragged_reference_is_refused_at_guard_time() -> None:
    with pytest.raises(ConfigurationError, match="reference: expected rows of one fixed shape"):
        kind_for([np.zeros((2, 2)), np.zeros((3, 3))])


def test_the_model_gets_the_stacked_images_and_drift_is_worded_as_brightness() -> None:
    seen: list[tuple[int, ...]] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return batch.reshape(len(batch), -1).mean(axis=1)

    guarded = GuardedModel(predict, reference=IMAGES[:900], name="digits", db=":memory:", window=500)
    guarded.start()
    try:
        for k in range(10):
            rows = (IMAGES[900 + 50 * k : 950 + 50 * k] * 1.2).tolist()
            assert guarded.handle_predict(json.dumps({"rows": rows}).encode(), "application/json").status == 200
        report = guarded.monitor.health().to_json()  # type: ignore[union-attr]
    finally:
        guarded.close()
    assert seen[-1] == (50, 8, 8)
    drift = report["checks"]["data_drift"]
    assert drift["status"] != "ok"
    assert drift["features"]["tensor.mean"]["reason"] == "mean value 1.18x higher (4.92 -> 5.79 on average)"


def test_a_redacted_embedding_is_not_logged_and_its_coordinates_are_withheld(tmp_path: Any) -> None:
    vectors = gaussian(1000, 8, seed=8)
    guarded = GuardedModel(lambda x: x[:, 0], reference=vectors, input_format="embedding", name="e",
                           db=str(tmp_path / "log.db"), redact=["embedding"], window=100)  # fmt: skip
    guarded.start()
    try:
        body = json.dumps({"rows": (vectors[:100] * 2).tolist()}).encode()
        assert guarded.handle_predict(body, "application/json").status == 200
        report = guarded.monitor.health().to_json()  # type: ignore[union-attr]
    finally:
        guarded.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        logged = [json.loads(text) for (text,) in db.execute("select inputs from requests")]
    assert logged == [[None] * 100]
    assert sorted(report["checks"]["data_drift"]["features"]) == ["embedding.distance", "embedding.norm"]
    assert report["checks"]["data_drift"]["status"] == "alert"


def test_a_monitor_without_bentoml_takes_images_and_named_embeddings() -> None:
    vectors = gaussian(2000, 16, seed=9)

    with Monitor(IMAGES, window=500) as images:
        images.observe(IMAGES[:500], IMAGES[:500].reshape(500, -1).mean(axis=1))
        image_features = images.reference.feature_names
    with Monitor(vectors, input_format="embedding", window=500) as embedded:
        embedded.observe(vectors[:500] * 1.5, vectors[:500, 0])
        drift = embedded.health().check("data_drift")

    assert image_features[:2] == ("tensor.mean", "tensor.spread")
    assert drift.details.features["embedding.norm"].reason == "embedding length (norm) 1.51x higher (3.94 -> 5.97 on average)"  # type: ignore[union-attr]
