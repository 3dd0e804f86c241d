"""A data drift check's findings in an input kind's own words ("texts 2.3x longer", not a quantile shift)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..health import CheckResult
from ..profiles import FeatureProfile
from .kind import InputKind

__all__ = ["worded"]


def worded(check: CheckResult, kind: InputKind, features: tuple[FeatureProfile, ...], inputs: np.ndarray) -> CheckResult:
    """``check`` (data drift over the window ``inputs``, one column per feature of ``features``) with each
    drifted descriptor's reason replaced by the kind's wording, in its details and its summary."""
    from ..drift.checks import DriftDetails

    details = check.details
    if not isinstance(details, DriftDetails) or not any(f.drifted for f in details.features.values()):
        return check
    index = {p.name: j for j, p in enumerate(features)}
    summary = check.summary
    changed = dict(details.features)
    for name, finding in details.features.items():
        if not finding.drifted or name not in index or inputs.shape[1] != len(features):
            continue
        reason = kind.explain(name, features[index[name]], inputs[:, index[name]])
        if reason is None:
            continue
        if finding.reason:
            summary = summary.replace(f"{name}: {finding.reason}", f"{name}: {reason}")
        changed[name] = dataclasses.replace(finding, reason=reason)
    return dataclasses.replace(check, summary=summary, details=dataclasses.replace(details, features=changed))
