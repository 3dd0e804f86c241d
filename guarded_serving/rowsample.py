"""A sample of the reference's rows, kept whole, so that relations between features can be judged.

The per-feature profiles (:class:`~guarded_serving.reference.FeatureProfile`) describe each column on
its own; a changed relation between columns (a join off by one row, a correlation that flipped) leaves
every one of them intact. :class:`RowSample` keeps up to :data:`ROWS` rows, encoded as the drift window
encodes served rows (numbers as they are, a category as its index in the feature's profile, missing
values as NaN), as float32, which is what the joint drift check resamples and compares against.

It is an optional part of the reference document (``"row_sample"``, with its own version): references
saved before it existed load without one, and the joint check then says it is not judged. Features a
monitor redacts are left out of it (:meth:`RowSample.without`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidReferenceError

__all__ = ["ROWS", "RowSample"]

ROWS = 2000  # rows kept: the joint check's reference; the check widens its null for this size
VERSION = 1
_SEED = 20261129


@dataclass(frozen=True, slots=True)
class RowSample:
    """``rows`` rows of the features ``names`` (a subset of the reference's, in its order), row-major
    little-endian float32 in ``data``."""

    names: tuple[str, ...]
    rows: int
    data: bytes

    @property
    def matrix(self) -> np.ndarray:
        """rows x features, float64 (a fresh array)."""
        return np.frombuffer(self.data, dtype="<f4").reshape(self.rows, len(self.names)).astype(np.float64)

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        values: Sequence[np.ndarray],
        codes: Sequence[Mapping[Any, int] | None],
        limit: int = ROWS,
    ) -> RowSample:
        """Sample up to ``limit`` rows (without replacement, seeded) of columns ``values``: numeric ones
        (``codes[j] is None``) as float with NaN for missing, categorical ones mapped through ``codes[j]``
        (the feature's categories to their index; None for missing)."""
        count = len(values[0]) if values else 0
        picked = np.arange(count)
        if count > limit:
            picked = np.sort(np.random.default_rng(_SEED).choice(count, size=limit, replace=False))
        matrix = np.full((len(picked), len(names)), np.nan, dtype="<f4")
        for j, (column, mapping) in enumerate(zip(values, codes, strict=True)):
            if mapping is None:
                matrix[:, j] = np.asarray(column, dtype=np.float64)[picked]
            else:
                matrix[:, j] = [np.nan if (v := column[i]) is None else mapping.get(v, np.nan) for i in picked]
        return cls(tuple(names), len(picked), matrix.tobytes())

    def without(self, names: Iterable[str]) -> RowSample:
        """The sample with the features ``names`` left out (redacted features: their values never leave)."""
        dropped = set(names)
        kept = [j for j, n in enumerate(self.names) if n not in dropped]
        if len(kept) == len(self.names):
            return self
        matrix = np.frombuffer(self.data, dtype="<f4").reshape(self.rows, len(self.names))[:, kept]
        return RowSample(tuple(self.names[j] for j in kept), self.rows, np.ascontiguousarray(matrix).tobytes())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "features": list(self.names),
            "rows": self.rows,
            "values_f32": base64.b64encode(self.data).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RowSample:
        version = data.get("version")
        if version != VERSION:
            raise InvalidReferenceError(f"row sample version {version!r} is not supported; this library reads version {VERSION}")
        names = tuple(str(n) for n in data["features"])
        rows = int(data["rows"])
        raw = base64.b64decode(data["values_f32"])
        if rows < 0 or len(raw) != 4 * rows * len(names):
            raise InvalidReferenceError(
                f"row sample: {len(raw)} bytes of values; expected {rows} rows x {len(names)} features x 4 bytes"
            )
        return cls(names, rows, raw)
