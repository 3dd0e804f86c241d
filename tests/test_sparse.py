"""A scipy.sparse matrix (a bag of words, one-hot codes) is monitored as the dense rows it stands for.

Before, a CSR matrix given as the reference or observed as rows was refused: "expected ... a 2-D numpy array,
... got <Compressed Sparse Row sparse matrix ...>", though the drift checks only need its values. It is now
made dense where it enters (reference, held-out rows, observed rows); one too large to hold dense is refused
with its shape and the fix.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from guarded_serving import GuardedModel, Monitor, Reference
from guarded_serving.errors import ConfigurationError


def _counts(rows: int, seed: int) -> sp.csr_matrix:
    """Word counts of 40 words, most of them rare: a mostly-zero matrix."""
    rates = 2.0 / np.arange(1, 41)
    return sp.csr_matrix(np.random.default_rng(seed).poisson(rates, size=(rows, 40)).astype(float))


def test_a_sparse_reference_is_profiled_as_its_dense_rows() -> None:
    words = _counts(500, seed=1)

    sparse, dense = Reference.from_data(words), Reference.from_data(words.toarray())

    assert sparse.features == dense.features
    assert sparse.feature_names == tuple(f"f{j}" for j in range(40))


@pytest.mark.parametrize("layout", ["csr", "csc", "coo"])
def test_a_monitor_takes_sparse_references_and_rows_of_any_layout(layout: str) -> None:
    monitor = Monitor(_counts(500, seed=2).asformat(layout), window=200)
    rows = _counts(200, seed=3).asformat(layout)

    monitor.observe(rows, np.zeros(200))
    report = monitor.health()

    assert report.requests == 1
    assert report.check("data_drift").status.value == "ok"
    assert report.check("data_drift").summary == "No drift in 40 features over the last 200 rows."


def test_a_guarded_model_calls_its_model_with_dense_rows_of_a_sparse_reference() -> None:
    seen: list[type] = []

    def predict(rows: np.ndarray) -> np.ndarray:
        seen.append(type(rows))
        return np.asarray(rows).sum(axis=1)

    guarded = GuardedModel(predict, reference=_counts(300, seed=4), name="bag", db=":memory:")
    reply = guarded.handle_predict(json.dumps({"rows": _counts(3, seed=5).toarray().tolist()}).encode(), "application/json")
    guarded.close()

    assert reply.status == 200
    assert set(seen) == {np.ndarray}  # on the training rows (the reference's outputs), then on the request


def test_a_sparse_matrix_too_large_to_make_dense_is_refused_with_its_shape_and_the_fix() -> None:
    from guarded_serving.tabular import MAX_SPARSE_CELLS

    rows = MAX_SPARSE_CELLS // 1000 + 1
    huge = sp.csr_matrix((rows, 1000))

    with pytest.raises(ConfigurationError) as raised:
        Monitor(huge)

    message = str(raised.value)
    assert message.startswith("reference: expected at most 50,000,000 values once dense (pass a sample of its rows")
    assert f"a sparse matrix of {rows:,} rows x 1,000 features" in message
