"""Guarded serving for services already on BentoML: guard a class-based service in place, and keep the
reference with the model in BentoML's model store.

::

    from guarded_serving.bento import guarded_api, save_reference

``api.py`` the ``guarded_api`` decorator; ``typed.py`` a typed API's rows and answers as the guard sees them;
``routes.py`` what a guarded service gains (``/feedback``, ``/health/model``, its workers' lifecycle);
``modelstore.py`` the reference kept with a BentoML model. This package imports BentoML; the core does not.
"""

from .api import guarded_api
from .modelstore import load_reference, reference_path, save_reference
from .typed import ApiEnvelope

__all__ = ["ApiEnvelope", "guarded_api", "load_reference", "reference_path", "save_reference"]
