"""Reference bins (guarded_serving.drift.bins): rows per bin, as the reference's own bins count them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from guarded_serving import Reference
from guarded_serving.drift.baseline import Baseline
from guarded_serving.drift.bins import OTHER, FeatureBins, by_feature
from guarded_serving.drift.window import UNSEEN
from tests.fixtures.data import gaussian

REFERENCE = Reference.from_data(np.arange(100, dtype=float).reshape(-1, 1), feature_names=["x"])
EDGES = np.asarray(REFERENCE.features[0].edges)


def test_a_value_on_an_edge_falls_in_the_bin_above_it_as_in_the_reference() -> None:
    bins = FeatureBins.of(Baseline.from_profiles(REFERENCE.features), "input")

    [(name, labels, counts, missing)] = bins.count(np.array([[EDGES[0], EDGES[0] - 0.5, np.nan, 1e9]]))

    assert (name, labels, missing) == ("x", tuple(str(k) for k in range(10)), 1)
    assert counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(-50, 150), st.just(float("nan"))), max_size=200))
def test_counts_are_the_reference_binning_of_the_present_values(values: list[float]) -> None:
    bins = FeatureBins.of(Baseline.from_profiles(REFERENCE.features), "input")
    column = np.array(values, dtype=float)

    [(_, _, counts, missing)] = bins.count(column.reshape(1, -1))

    present = column[~np.isnan(column)]
    assert counts.tolist() == np.bincount(np.searchsorted(EDGES, present, side="right"), minlength=10).tolist()
    assert missing == len(column) - len(present)


def test_categories_beyond_the_most_common_and_unseen_ones_share_the_other_bin() -> None:
    reference = Reference.from_data([[c] for c in "a" * 5 + "b" * 3 + "c" * 2], feature_names=["letter"])
    bins = FeatureBins.of(Baseline.from_profiles(reference.features), "input")
    bins.lookup[0][2] = bins.lookup[0][-1]  # as if only two categories had a bin of their own

    [(_, labels, counts, missing)] = bins.count(np.array([[0, 0, 1, 2, UNSEEN, np.nan]]))

    assert labels == ("a", "b", "c", OTHER)
    assert (counts.tolist(), missing) == ([2, 1, 0, 2], 1)


def test_redacted_features_get_no_bins() -> None:
    reference = Reference.from_data(gaussian(10, 2, seed=0), feature_names=["kept", "secret"])

    bins = FeatureBins.of(Baseline.from_profiles(reference.features), "input", skip=["secret"])

    assert [name for _, name, _, _ in bins.features] == ["kept"]


def test_by_feature_stacks_row_blocks_into_one_contiguous_row_per_feature() -> None:
    blocks = [np.arange(6.0).reshape(3, 2), np.arange(6.0, 10.0).reshape(2, 2)]

    stacked = by_feature(blocks)

    assert stacked.flags["C_CONTIGUOUS"]
    assert stacked.tolist() == np.concatenate(blocks).T.tolist()


def test_a_value_seen_once_counts_in_its_own_bin_though_float32_cannot_hold_it() -> None:
    """The kept sample is float32 (1.3 becomes 1.29999995, below the edge at 1.3): binned against float64 edges,
    a once-seen 1.3 was counted in the bin of 1.2, which the shares test then discounted."""
    rng = np.random.default_rng(2)
    tenths = np.round(np.arange(1.0, 2.0, 0.1), 1)
    column = rng.choice(np.delete(tenths, 3), 3000)
    column[5] = 1.3  # the only 1.3
    reference = Reference.from_data(column.reshape(-1, 1), feature_names=["x"])
    base = Baseline.from_profiles(reference.features)
    bin_of_13 = int(np.searchsorted(np.asarray(reference.features[0].edges), 1.3, side="right"))
    assert np.flatnonzero(base.lattice_once[0]).tolist() == [bin_of_13]
    assert base.bin_labels[0][bin_of_13] == "value 1.3"
