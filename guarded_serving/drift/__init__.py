"""The drift engine: reference baseline, bounded window, pure statistics, calibrated checks.

Nothing here knows about BentoML or the store; :class:`~guarded_serving.monitor.Monitor` wires it up.
"""

from .baseline import Baseline
from .calibration import Calibration
from .checks import drift_check
from .encoder import Encoder
from .quality import quality_check
from .window import Chunk, MemoryWindow, WindowData, assemble

__all__ = [
    "Baseline",
    "Calibration",
    "Chunk",
    "Encoder",
    "MemoryWindow",
    "WindowData",
    "assemble",
    "drift_check",
    "quality_check",
]
