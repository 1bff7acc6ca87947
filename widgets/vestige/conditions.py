"""The ways a study trains a seed again: its suppression conditions.

Each `Condition` turns a seed's unchanged run (its `vestige.study.study_base` record: the
target neuron, its control, the crutch's attention head, the copy transition T) into the
interventions of a new run of the same seed: the target neuron held at its mean for [0, t)
or the whole run, a never-needed control neuron held the same way, the crutch's head held
the same way, or Leavitt & Morcos's selectivity regulariser on every layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vestige.config import SelectivityPenalty, Suppress, SuppressHeads


@dataclass(frozen=True)
class Condition:
    """A way of training a seed again. `name` is an id for the command line and folders;
    `target` is "neuron" (the detector's target: `vestige.detect.target_neuron`), "control"
    (a never-needed neuron of the same layer), "head" (the crutch's attention head, see
    `vestige.study.crutch_head`) or "selectivity" (the regulariser on every layer, strength
    `alpha`); `until` ends the window at that fraction of the seed's copy transition step T
    (None: the whole run)."""

    name: str
    label: str
    target: str
    until: float | None = None
    alpha: float = 0.0

    def interventions(self, base: dict, total: int) -> tuple | None:
        """The run's interventions for the seed whose study record is `base`, or None when
        the seed has nothing to apply them to. `total` is the run's number of steps."""
        if self.target == "selectivity":
            return (SelectivityPenalty(alpha=self.alpha),)
        transition = base["base"]["transition"]
        end = None if self.until is None else max(1, round(self.until * _finite(transition, total)))
        if self.target == "head":
            head = base.get("crutch_head")
            if head is None:
                return None
            return (SuppressHeads(head["layer"], (head["head"],), mode="mean", end=end),)
        target = base["target"]
        if target is None:
            return None
        neuron = target["neuron"] if self.target == "neuron" else base["control_neuron"]
        if neuron is None:
            return None
        return (Suppress(target["layer"], (int(neuron),), mode="mean", end=end),)


def _finite(transition: float, total: int) -> float:
    """The transition step, or a quarter of training when the run never made the transition."""
    return total / 4 if transition is None or math.isnan(transition) else transition


CONDITIONS = (
    Condition("neuron-0.5T", "target neuron held at its mean, steps [0, T/2)", "neuron", 0.5),
    Condition("neuron-1T", "target neuron held at its mean, steps [0, T)", "neuron", 1.0),
    Condition("neuron-whole", "target neuron held at its mean, whole run", "neuron"),
    Condition("control-1T", "control neuron held at its mean, steps [0, T)", "control", 1.0),
    Condition("control-whole", "control neuron held at its mean, whole run", "control"),
    Condition("head-0.5T", "crutch head held at its mean, steps [0, T/2)", "head", 0.5),
    Condition("head-1T", "crutch head held at its mean, steps [0, T)", "head", 1.0),
    Condition("head-whole", "crutch head held at its mean, whole run", "head"),
    Condition("alpha-1", "selectivity regulariser, alpha = -1", "selectivity", alpha=-1.0),
    Condition("alpha-0.3", "selectivity regulariser, alpha = -0.3", "selectivity", alpha=-0.3),
    Condition("alpha+0.3", "selectivity regulariser, alpha = +0.3", "selectivity", alpha=0.3),
)
CONDITION_NAMES = {c.name: c for c in CONDITIONS}
# The paired contrasts: each target-neuron window against the control neuron held the same way.
CONTRASTS = {"neuron-1T": "control-1T", "neuron-whole": "control-whole"}
# On the finite training set (Leavitt & Morcos's setting: a generalisation gap exists).
POOL_CONDITIONS = ("alpha-1", "alpha-0.3", "alpha+0.3")
