"""guarded_serving: a deployed model that watches itself.

Wrap a predict function in one line, serve it with BentoML, and ask ``GET /health/model`` whether
the model can still be trusted::

    from guarded_serving import guard
    svc = guard(model.predict_proba, reference=X_train, name="churn")
"""

from .errors import (
    ConfigurationError,
    GuardedServingError,
    InputError,
    InvalidReferenceError,
    ModelError,
    Problem,
    StoreError,
    UnknownRequestError,
)
from .guard import GuardedModel, guard
from .health import CheckResult, HealthReport, Status
from .monitor import FeedbackResult, Monitor
from .operational import PipelineThresholds
from .profiles import FeatureProfile
from .reference import Reference, TrainingDataWarning
from .stages import stage

__all__ = [
    "CheckResult",
    "ConfigurationError",
    "FeatureProfile",
    "FeedbackResult",
    "GuardedModel",
    "GuardedServingError",
    "HealthReport",
    "InputError",
    "InvalidReferenceError",
    "ModelError",
    "Monitor",
    "PipelineThresholds",
    "Problem",
    "Reference",
    "Status",
    "StoreError",
    "TrainingDataWarning",
    "UnknownRequestError",
    "guard",
    "stage",
]

__version__ = "0.1.0"
