"""vestige: study how a toy language model was trained, across checkpoints and seeds.

Names are imported lazily, so `from vestige.course import Checker` does not load torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PRESETS": "vestige.config",
    "RunConfig": "vestige.config",
    "preset": "vestige.config",
    "CheckpointError": "vestige.runs",
    "Run": "vestige.runs",
    "RunError": "vestige.runs",
    "Runs": "vestige.runs",
    "ensure_run": "vestige.training",
    "fork": "vestige.training",
    "train": "vestige.training",
    "analyze": "vestige.analysis",
    "CheckpointExplorer": "vestige.explorer",
}

__all__ = list(_EXPORTS)  # noqa: PLE0605 (names resolved lazily by __getattr__)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vestige' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
