"""A numeric feature's reference sample kept as float32 (guarded_serving/valuesample.py): the same values the
tuple of floats held, behaving as it did, at an eighth of its memory."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.profiles import SAMPLE_SIZE, FeatureProfile
from guarded_serving.valuesample import ValueSample

WIDE = 400  # features of the reference whose memory is measured


def test_a_wide_reference_keeps_its_samples_at_four_bytes_a_value() -> None:
    """400 numeric features, each with a full sample of 5,000 values: 8 MB of float32. Kept as tuples of Python
    floats, the samples alone took 64 MB (32 bytes a value) and the reference 65 MB in all."""
    X = np.random.default_rng(0).normal(size=(6_000, WIDE))
    tracemalloc.start()
    try:
        reference = Reference.from_data(X)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert all(len(f.sample) == SAMPLE_SIZE for f in reference.features)
    assert held < 20 * 2**20, f"the reference holds {held / 2**20:.1f} MB"


def test_the_sample_holds_the_sorted_values_rounded_to_float32() -> None:
    values = np.random.default_rng(1).lognormal(size=3_000)
    profile = FeatureProfile.from_column("x", values, categorical=False)

    expected = np.sort(values).astype(np.float32)
    assert np.asarray(profile.sample).dtype == np.float32
    assert np.array_equal(np.asarray(profile.sample), expected)
    assert profile.sample[0] == float(expected[0])
    assert isinstance(profile.sample[0], float)
    assert list(profile.sample) == expected.tolist()


def test_a_sample_is_read_only_and_shared_without_a_copy() -> None:
    sample = ValueSample([3.0, 1.5, 2.25])
    array = np.asarray(sample)

    assert np.asarray(sample) is array  # no copy per reader
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 0.0
    assert np.asarray(sample, dtype=float).dtype == np.float64
    assert not np.shares_memory(np.array(sample, copy=True), array)


def test_a_sample_compares_and_hashes_as_the_tuple_of_its_values() -> None:
    sample = ValueSample([0.5, 1.0, 2.0])

    assert sample == (0.5, 1.0, 2.0)
    assert sample == [0.5, 1.0, 2.0]
    assert sample == ValueSample((0.5, 1.0, 2.0))
    assert sample != (0.5, 1.0)
    assert sample != ValueSample([0.5, 1.0, 2.5])
    assert sample != "0.5 1.0 2.0"
    assert hash(sample) == hash((0.5, 1.0, 2.0))
    assert ValueSample() == ()
    assert not ValueSample()
    assert sample
    assert sample[1:] == (1.0, 2.0)
    assert isinstance(sample[1:], ValueSample)


def test_a_profile_given_a_tuple_keeps_a_value_sample() -> None:
    profile = FeatureProfile(name="x", kind="numeric", count=3, missing_rate=0.0, sample=(1.0, 2.0, 4.0))

    assert isinstance(profile.sample, ValueSample)
    assert profile.sample == (1.0, 2.0, 4.0)
    assert FeatureProfile(name="c", kind="categorical", count=3, missing_rate=0.0).sample == ()


def test_a_sample_stays_read_only_through_pickle(tmp_path: Path) -> None:
    profile = FeatureProfile.from_column("x", np.arange(100.0), categorical=False)

    again = pickle.loads(pickle.dumps(profile))

    assert again == profile
    assert not np.asarray(again.sample).flags.writeable


def test_a_saved_reference_loads_the_same_samples(tmp_path: Path) -> None:
    X = np.random.default_rng(2).normal(size=(800, 6))
    reference = Reference.from_data(X)
    reference.save(tmp_path / "reference.json")

    loaded = Reference.load(tmp_path / "reference.json")

    assert loaded == reference
    saved = [np.asarray(f.sample).tobytes() for f in reference.features]
    assert [np.asarray(f.sample).tobytes() for f in loaded.features] == saved


def test_a_sample_is_one_row_of_values() -> None:
    with pytest.raises(ValueError, match=r"one row of values, got an array of shape \(2, 2\)"):
        ValueSample(np.zeros((2, 2)))


def test_a_profile_holding_a_tuple_sample_still_saves() -> None:
    """A profile pickled before samples were arrays comes back holding its tuple (unpickling sets the attribute
    without __post_init__): it still saves, to the same text."""
    profile = FeatureProfile.from_column("x", np.linspace(0, 1, 50), categorical=False)
    old = FeatureProfile.from_column("x", np.linspace(0, 1, 50), categorical=False)
    object.__setattr__(old, "sample", tuple(profile.sample))

    assert old.to_json() == profile.to_json()
