"""Generated 64-dimensional embeddings: 8 latent factors seen through fixed loadings, plus noise; a label that
depends on a direction of them. Seeded: the same world in the service, the tests and the README."""

import numpy as np

DIMENSIONS, FACTORS = 64, 8
_world = np.random.default_rng(7)
LOADINGS = _world.normal(size=(FACTORS, DIMENSIONS)) / np.sqrt(FACTORS)
DIRECTION = _world.normal(size=DIMENSIONS) / np.sqrt(DIMENSIONS)


def embeddings(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` embeddings, rows x 64."""
    return rng.normal(size=(n, FACTORS)) @ LOADINGS + 0.5 * rng.normal(size=(n, DIMENSIONS))


def labels(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 label per embedding, right about 85 % of the time from the embedding alone."""
    return (vectors @ DIRECTION + 0.5 * rng.normal(size=len(vectors)) > 0).astype(int)
