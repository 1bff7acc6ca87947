"""Counterfactual training: fork a run where its target neuron peaked, change what follows,
and compare the futures.

`standard_forks(run)` names the forks the course uses (and `vestige fork` / `make runs`
precomputes), so a notebook reopens them instead of training them:

* ``hold-target``: from the target neuron's peak, the neuron held at its mean until the
  copy transition (the checkpoint at or after it);
* ``hold-control``: the same window for a never-needed neuron of the same layer (what
  holding *any* neuron costs).

The target is the detector's vestigial neuron, else the neuron the crutch leaned on most
(`vestige.detect.target_neuron`). All forks keep the parent's history up to the fork. A run
whose target peaks at or after its copy transition has no crutch phase to hold the target
through: `standard_forks` refuses it (`ForkRefused`, saying why).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from vestige.config import Suppress
from vestige.runs import Run, seed_dir


@dataclass(frozen=True)
class Fork:
    """One counterfactual: continue the parent from checkpoint `at` with `interventions`."""

    name: str
    at: int
    interventions: tuple
    description: str


class ForkRefused(ValueError):
    """The run's target neuron peaks at or after the copy transition: holding it "from its
    peak until the transition" would hold it for no step of the crutch phase."""


def standard_forks(run: Run) -> dict[str, Fork]:
    """The course's forks of `run`, by name (see the module docstring)."""
    from vestige.analysis import transition_step, unit_name
    from vestige.detect import control_neuron, detect, target_neuron

    found = detect(run)
    target = target_neuron(found)
    layer, at = int(target["layer"]), int(target["peak_step"])
    transition = transition_step(run)
    if at >= transition:  # False when the run never learns to copy (NaN): held to the end
        raise ForkRefused(
            f"seed {run.seed}'s target {target['unit']} peaks at step {at}, at or after the "
            f"copy transition (step {transition:g}), so there is no crutch phase to hold it "
            "through; fork a seed whose target peaks earlier"
        )
    later = [s for s in run.steps if s > at and (math.isnan(transition) or s >= transition)]
    until = later[0] if later else run.steps[-1]
    control = control_neuron(found, target)
    forks = {
        "hold-target": Fork(
            "hold-target",
            at,
            (Suppress(layer, (int(target["neuron"]),), start=at, end=until),),
            f"{target['unit']} held at its mean from step {at} to {until}",
        )
    }
    if control is not None:
        forks["hold-control"] = Fork(
            "hold-control",
            at,
            (Suppress(layer, (control,), start=at, end=until),),
            f"the never-needed {unit_name(layer, control)} held the same way",
        )
    return forks


def fork_dir(root: str | os.PathLike, run: Run, name: str) -> Path:
    """Where the fork `name` of `run` lives under `root`: ROOT/<preset>/seed-K/<name>."""
    return seed_dir(Path(root) / run.config.name, run.seed) / name


def run_forks(
    run: Run, root: str | os.PathLike, progress: bool = True, device: str = "cpu"
) -> dict[str, Run]:
    """Every standard fork of `run` under `root`, trained (on `device`) if missing, reopened
    otherwise."""
    from vestige.training import fork

    return {
        name: fork(run, f.at, f.interventions, fork_dir(root, run, name), progress, device)
        for name, f in standard_forks(run).items()
    }
