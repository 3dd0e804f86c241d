"""The store fixtures: ``backend`` (one per entry of tests.fixtures.backends.BACKENDS) and ``store``, opened on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from guarded_serving.store import Store
from tests.fixtures.backends import BACKENDS, Backend


@pytest.fixture(params=[pytest.param(name, marks=[pytest.mark.e2e] if name == "postgresql" else []) for name in sorted(BACKENDS)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    # The server starts only for the backends that need one (a run of -k sqlite starts none).
    server = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return BACKENDS[request.param](tmp_path, server)  # type: ignore[arg-type]


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    with backend.store() as opened:
        yield opened
