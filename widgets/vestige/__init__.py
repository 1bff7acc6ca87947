"""vestige: study how a toy language model was trained, across checkpoints and seeds.

The one import surface for notebooks and scripts: `from vestige import analyze, charts, ...`.
Names are imported lazily, so `from vestige import Checker` does not load torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> "module" (the name is an attribute of it) or "module:attribute" (a different name),
# or "module:" (the module itself). A function named like a submodule (`detect`, `mechanism`)
# cannot be exported here: once the submodule is imported, the package's attribute of that name
# is the module. Import those from their modules (`from vestige.detect import detect`).
_EXPORTS = {
    "PRESETS": "vestige.config",
    "RunConfig": "vestige.config",
    "preset": "vestige.config",
    "CheckpointError": "vestige.runs",
    "Run": "vestige.runs",
    "RunError": "vestige.runs",
    "Runs": "vestige.runs",
    "RunProtocol": "vestige.runs",
    "seed_dir": "vestige.runs",
    "ensure_run": "vestige.training",
    "fork": "vestige.training",
    "train": "vestige.training",
    "train_seeds": "vestige.batched",
    "resolve_device": "vestige.device",
    "analyze": "vestige.analysis",
    "Positions": "vestige.analysis",
    "transition_step": "vestige.analysis",
    "suites": "vestige.suites:",
    "tiny_suite": "vestige.tiny_suite:",
    "Criteria": "vestige.detect",
    "cache_activations": "vestige.hooks",
    "mlp_post": "vestige.hooks",
    "set_neurons": "vestige.hooks",
    "per_position_loss": "vestige.metrics",
    "ForkRefused": "vestige.counterfactual",
    "run_forks": "vestige.counterfactual",
    "standard_forks": "vestige.counterfactual",
    "CONDITION_NAMES": "vestige.conditions",
    "target_neuron": "vestige.detect",
    "target_subject": "vestige.mechanism",
    "TrainingMap": "vestige.maps",
    "training_map": "vestige.maps",
    "detours": "vestige.maps",
    "save_map_charts": "vestige.map_charts",
    "load_study": "vestige.report:load",
    "explorer_tables": "vestige.tables",
    "charts": "vestige.charts:",
    "CheckpointExplorer": "vestige.explorer",
    "setup": "vestige.notebook",
    "Checker": "vestige.course",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vestige' has no attribute {name!r}")
    module, colon, attribute = _EXPORTS[name].partition(":")
    if colon and not attribute:
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), attribute or name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
