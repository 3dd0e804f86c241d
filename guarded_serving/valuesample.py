"""A numeric feature's sorted reference sample, kept as 4 bytes a value.

:class:`~guarded_serving.profiles.FeatureProfile` keeps up to 5,000 sorted values per numeric feature (rounded
to float32 when profiled, and saved so). As a tuple of Python floats that took 32 bytes a value (a float object
and a pointer), 160 kB a feature: a 1,000-feature reference held 161 MB, nearly all of it these tuples, in every
worker, and loading one from its file built 5 million float objects. A :class:`ValueSample` holds the same
values in one read-only float32 array and behaves as the tuple did (a sequence of floats, equal to the same
values, hashable), so that code reading ``profile.sample`` and profiles built by hand keep working;
``np.asarray(sample)`` is the array itself, without a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np

__all__ = ["ValueSample"]


class ValueSample(Sequence[float]):
    """Sorted sample values of one feature as float32, read-only: a sequence of Python floats."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[float] | np.ndarray = ()) -> None:
        array = np.array(values if isinstance(values, np.ndarray) else list(values), dtype=np.float32)
        if array.ndim != 1:
            raise ValueError(f"a feature's sample is one row of values, got an array of shape {array.shape}")
        array.flags.writeable = False  # shared by every reader of the profile: nobody may sort it in place
        self._values = array

    @property
    def values(self) -> np.ndarray:
        """The values as a read-only float32 array (no copy)."""
        return self._values

    def __len__(self) -> int:
        return int(self._values.shape[0])

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> ValueSample: ...
    def __getitem__(self, index: int | slice) -> float | ValueSample:
        if isinstance(index, slice):
            return ValueSample(self._values[index])
        return float(self._values[index])

    def __iter__(self) -> Iterator[float]:
        return iter(self._values.tolist())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self._values.dtype:
            return self._values.astype(dtype)
        return self._values.copy() if copy else self._values

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ValueSample):
            return bool(np.array_equal(self._values, other._values))
        if isinstance(other, (tuple, list)):  # as the tuple it was compared equal to the same floats
            return len(other) == len(self) and tuple(self._values.tolist()) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values.tolist()))  # as the equal tuple's

    def __reduce__(self) -> tuple[type[ValueSample], tuple[np.ndarray]]:
        return ValueSample, (self._values,)  # read-only again once unpickled

    def __repr__(self) -> str:
        shown = ", ".join(repr(v) for v in self._values[:3].tolist())
        more = f", ... ({len(self)} values)" if len(self) > 3 else ""
        return f"ValueSample([{shown}{more}])"
