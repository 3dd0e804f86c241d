"""Feature histograms: a window's values on the reference's bins, the data the dashboard draws.

Computed here, apart from the page (:mod:`guarded_serving.dashboard` renders them): a
:class:`FeatureHistogram` holds the reference's shares and the window's counts per bin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .drift.bins import bin_counts
from .drift.window import WindowData
from .profiles import FeatureProfile

__all__ = ["MAX_CATEGORIES", "FeatureHistogram", "feature_histograms", "number_text", "window_histograms"]

MAX_CATEGORIES = 12  # bars per categorical histogram: the most common categories, then "other" (what fits the chart)


@dataclass(frozen=True, slots=True)
class FeatureHistogram:
    """One feature (or model output) on the reference's bins: reference shares against window counts.

    ``labels`` name the bins; numeric features also carry the bin ``edges`` (one fewer than bins: the
    first and last bins are open-ended). Shares and counts are of present values; ``missing_*``
    are the reference's missing rate and the window's count of missing values.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    role: Literal["input", "output"]
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[int, ...]
    edges: tuple[float, ...] = ()
    missing_reference: float = 0.0
    missing_current: int = 0

    @property
    def current_shares(self) -> tuple[float, ...]:
        total = sum(self.current)
        return tuple(c / total for c in self.current) if total else tuple(0.0 for _ in self.current)


def feature_histograms(
    profiles: Sequence[FeatureProfile],
    matrix: np.ndarray | None,
    *,
    role: Literal["input", "output"] = "input",
    skip: Iterable[str] = (),
) -> tuple[FeatureHistogram, ...]:
    """Histograms of a window (rows x features, encoded as in :mod:`guarded_serving.drift.window`) on
    the bins of ``profiles``. Features named in ``skip`` (redacted ones) and features without
    reference bins are left out. Categorical features keep the ``MAX_CATEGORIES - 1`` most common
    reference categories, then "other", then "unseen"."""
    skipped = set(skip)
    out = []
    for j, profile in enumerate(profiles):
        if profile.name in skipped:
            continue
        column = matrix[:, j] if matrix is not None and matrix.ndim == 2 and j < matrix.shape[1] else np.empty(0)
        missing = int(np.isnan(column).sum())
        counts = bin_counts(profile, column)
        if profile.kind == "numeric":
            if not profile.proportions:
                continue
            edges = profile.edges
            labels = tuple(_bin_label(edges, i) for i in range(len(edges) + 1))
            reference = tuple(float(p) for p in profile.proportions)
            current = tuple(int(c) for c in counts)
        else:
            names = [_category(c) for c, _ in profile.categories]
            shares = [float(f) for _, f in profile.categories]
            cats = counts[:-1].tolist()
            if len(names) > MAX_CATEGORIES:
                head = MAX_CATEGORIES - 1
                names = [*names[:head], f"other ({len(names) - head})"]
                shares = [*shares[:head], float(sum(shares[head:]))]
                cats = [*cats[:head], int(sum(cats[head:]))]
            labels = (*names, "unseen")
            reference = (*shares, 0.0)
            current = (*(int(c) for c in cats), int(counts[-1]))
            edges = ()
        out.append(
            FeatureHistogram(
                name=profile.name,
                kind=profile.kind,
                role=role,
                labels=labels,
                reference=reference,
                current=current,
                edges=tuple(edges),
                missing_reference=profile.missing_rate,
                missing_current=missing,
            )
        )
    return tuple(out)


def _category(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _bin_label(edges: Sequence[float], i: int) -> str:
    if not edges:
        return "all values"
    if i == 0:
        return f"< {number_text(edges[0])}"
    if i == len(edges):
        return f">= {number_text(edges[-1])}"
    return f"{number_text(edges[i - 1])} to {number_text(edges[i])}"


def window_histograms(
    features: Sequence[FeatureProfile], outputs: Sequence[FeatureProfile], window: WindowData, skip: Iterable[str] = ()
) -> tuple[FeatureHistogram, ...]:
    """A window's inputs on the bins of ``features`` (those in ``skip``, redacted ones, left out), then its
    outputs on the bins of ``outputs`` (the profiles prediction drift judges against), when it has both."""
    out = feature_histograms(features, window.inputs, skip=skip)
    if outputs and window.outputs is not None:
        out += feature_histograms(outputs, window.outputs, role="output")
    return out


def number_text(x: Any) -> str:
    """A number as the dashboard shows it: thousands separated, 3-4 significant digits, n/a when not finite."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) >= 1 else f"{x:.3g}"
