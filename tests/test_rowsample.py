"""The reference's row sample: rows kept whole, encoded as the window encodes them, and saved with the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.errors import InvalidReferenceError
from guarded_serving.rowsample import ROWS, RowSample
from tests.fixtures.data import gaussian


def table(rows: int) -> list[list[object]]:
    rng = np.random.default_rng(0)
    return [
        [float(a), str(c) if c != "none" else None]
        for a, c in zip(rng.normal(size=rows), rng.choice(["x", "y", "none"], rows), strict=True)
    ]


def test_a_large_reference_keeps_2000_rows_in_their_original_order() -> None:
    reference = Reference.from_data(np.arange(10_000.0).reshape(5_000, 2))

    sample = reference.row_sample

    assert sample is not None
    assert sample.rows == ROWS == 2000
    first = sample.matrix[:, 0]
    assert (np.diff(first) > 0).all()
    np.testing.assert_array_equal(sample.matrix[:, 1], first + 1)  # rows kept whole


def test_sampling_is_deterministic() -> None:
    X = gaussian(5_000, 3, seed=1)

    assert Reference.from_data(X).row_sample == Reference.from_data(X).row_sample


def test_categories_are_coded_as_in_their_profile_and_missing_values_are_nan() -> None:
    rows = table(300)
    reference = Reference.from_data(rows, feature_names=["a", "colour"])
    assert reference.row_sample is not None

    codes = reference.row_sample.matrix[:, 1]

    order = [c for c, _ in reference.features[1].categories]
    expected = [np.nan if c is None else order.index(c) for _, c in rows]
    np.testing.assert_array_equal(codes, expected)


def test_features_can_be_left_out() -> None:
    reference = Reference.from_data(gaussian(500, 3, seed=2), feature_names=["a", "b", "c"])
    assert reference.row_sample is not None

    without = reference.row_sample.without(["b"])

    assert without.names == ("a", "c")
    np.testing.assert_array_equal(without.matrix, reference.row_sample.matrix[:, [0, 2]])
    assert reference.row_sample.without([]) is reference.row_sample


def test_the_sample_survives_json() -> None:
    reference = Reference.from_data(table(800), feature_names=["a", "colour"])

    loaded = Reference.from_json(json.loads(json.dumps(reference.to_json())))

    assert loaded == reference
    assert loaded.row_sample == reference.row_sample


def test_a_reference_saved_before_row_samples_loads_without_one() -> None:
    document = Reference.from_data(gaussian(500, 2, seed=3)).to_json()
    del document["row_sample"], document["confidence"]

    loaded = Reference.from_json(document)

    assert loaded.row_sample is None
    assert loaded.confidence is None


def test_a_sample_whose_values_do_not_fill_its_shape_is_refused() -> None:
    sample = RowSample(("a", "b"), 3, np.zeros((3, 2), dtype="<f4").tobytes()).to_json()

    with pytest.raises(InvalidReferenceError, match="expected 4 rows x 2 features x 4 bytes"):
        RowSample.from_json({**sample, "rows": 4})


def test_a_sample_of_another_version_is_refused() -> None:
    sample = RowSample(("a",), 1, np.zeros(1, dtype="<f4").tobytes()).to_json()

    with pytest.raises(InvalidReferenceError, match="row sample version 2 is not supported"):
        RowSample.from_json({**sample, "version": 2})
