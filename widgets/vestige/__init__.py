"""vestige: study how a toy language model was trained, across checkpoints and seeds."""

__version__ = "0.1.0"

from vestige.config import PRESETS, RunConfig, preset  # noqa: E402
from vestige.runs import CheckpointError, Run, RunError, Runs  # noqa: E402
from vestige.train import ensure_run, train  # noqa: E402

__all__ = [
    "PRESETS",
    "CheckpointError",
    "Run",
    "RunConfig",
    "RunError",
    "Runs",
    "ensure_run",
    "preset",
    "train",
]
