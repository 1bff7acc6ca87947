"""Checks of ``30_counterfactual``: a prediction, then reading forks (the interval over
seeds is `40_many_seeds`'s exercise 4).

* ``predict`` (1): whether holding the target makes the copy transition earlier, about the
  same or later; any option passes, the feedback gives the two transition steps.
* ``ex1`` (1): ``delay``, the copy transition of the ``hold-target`` fork minus the
  parent's, in steps (`vestige.analysis.transition_step`).
* ``ex2`` (2): ``held_cost``, the final evaluation loss on the target's crutch of the
  ``hold-target`` fork minus that of the ``hold-control`` fork: what holding *this* neuron
  cost beyond holding any neuron.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

from . import (
    COURSE_PRESET,
    AnswerError,
    Exercise,
    Pace,
    Verdict,
    as_number,
    close,
    precomputed_set,
    prediction,
)

NOTEBOOK = "30_counterfactual"
#: what a submission is graded on (scripts/precompute.py runs the solution with each): study
#: seed 3003 (not caught; its best candidate peaks long before the copy transition, so its
#: fork is not refused), not the notebook's 3006
GRADING_SETS = ({"seed": 3003},)


class Context:
    def __init__(self, params: dict, hidden=None):
        self.runs_dir = Path(str(params.get("runs_dir", "../runs")))
        self.preset = str(params.get("preset", COURSE_PRESET))
        self.seed = int(params.get("seed", 0))
        self.hidden = hidden if isinstance(hidden, dict) else None

    @cached_property
    def parent(self):
        from vestige.runs import Run, seed_dir

        return Run.open(seed_dir(self.runs_dir / self.preset, self.seed))

    def fork(self, name: str):
        from vestige.counterfactual import fork_dir
        from vestige.runs import Run

        return Run.open(fork_dir(self.runs_dir / "forks", self.parent, name))

    @cached_property
    def crutch_loss(self) -> str:
        """The metrics column of the loss on the held target's crutch (its focus positions)."""
        from vestige.detect import detect, target_neuron

        return f"loss_{target_neuron(detect(self.parent)).positions}"


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def grading_parameters(runs_dir: Path, rng) -> dict:
    """One of `GRADING_SETS` whose run and forks are precomputed under ``runs_dir``."""
    from vestige.runs import config_path, seed_dir

    forks = Path(runs_dir) / "forks" / COURSE_PRESET
    return precomputed_set(
        GRADING_SETS,
        lambda s: config_path(seed_dir(forks, s["seed"]) / "hold-control").exists(),
        rng,
        f"no precomputed forks of seed {GRADING_SETS[0]['seed']} under {forks}: make runs",
    )


# --- ex1, ex2 --------------------------------------------------------------------------------


def capture_number(value, ctx) -> float:
    return as_number(value, "a number")


def judge_ex1(got, ctx) -> Verdict:
    from vestige.analysis import transition_step

    _number(got)
    parent = transition_step(ctx.parent)
    want = transition_step(ctx.fork("hold-target")) - parent
    if close(got, want, 0.5):
        return Verdict(True)
    if close(got, -want, 0.5):
        return Verdict(False, "the fork's transition minus the parent's", "the opposite sign")
    if close(got, parent, 0.5):
        return Verdict(False, "a difference of two transition steps", "the parent's transition")
    return Verdict(False, "transition_step(fork) - transition_step(parent)", f"{got:g}")


def judge_ex2(got, ctx) -> Verdict:
    _number(got)
    target, control = ctx.fork("hold-target"), ctx.fork("hold-control")

    def final(run, column=ctx.crutch_loss) -> float:
        return float(run.metrics.query("split == 'eval'").sort_values("step")[column].iloc[-1])

    want = final(target) - final(control)
    if close(got, want, 1e-3):
        return Verdict(True)
    wrong = {
        "the target fork against the parent, not against the control fork": final(target)
        - final(ctx.parent),
        "the opposite sign": -want,
        "the difference of the overall evaluation losses, not of the crutch's": final(
            target, "loss"
        )
        - final(control, "loss"),
    }
    if ctx.crutch_loss != "loss_focus" and "loss_focus" in target.metrics:
        wrong["the loss on every crutch's focus positions, not on the target's crutch"] = final(
            target, "loss_focus"
        ) - final(control, "loss_focus")
    expected = f"hold-target minus hold-control, final {ctx.crutch_loss}"
    for what, value in wrong.items():
        if close(got, value, 1e-3):
            return Verdict(False, expected, f"{got:.4f}, {what}")
    return Verdict(False, expected, f"{got:.4f}")


def _number(got) -> None:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise AnswerError("captured data is not a number")


# --- predict: the held fork's copy transition --------------------------------------------------

TRANSITION_OPTIONS = ("earlier", "about the same", "later")


def transition_outcome(ctx) -> tuple[str, str]:
    """The hold-target fork's copy transition against the parent's (the same: within 5% of
    the parent's; a run that never makes it counts as later)."""

    from vestige.analysis import transition_step

    parent, fork = transition_step(ctx.parent), transition_step(ctx.fork("hold-target"))
    if math.isnan(parent) and math.isnan(fork):
        return "about the same", "neither the parent nor the fork learns to copy within its steps"
    if math.isnan(fork) or math.isnan(parent):
        shown = "later" if math.isnan(fork) else "earlier"
    elif abs(fork - parent) <= 0.05 * parent:
        shown = "about the same"
    else:
        shown = "later" if fork > parent else "earlier"
    return shown, f"the parent's copy transition is at step {parent:.0f}, the fork's at {fork:.0f}"


EXERCISES = (
    prediction("predict", TRANSITION_OPTIONS, transition_outcome, pace=Pace(1, 5, 2)),
    Exercise(
        "ex1",
        points=1,
        pace=Pace(1, 4, 4),
        capture=capture_number,
        judge=judge_ex1,
        hints=(
            "`transition_step(run)` dates the copy transition of any run, forks included.",
            "Subtract the parent's transition from the hold-target fork's.",
        ),
        success="How much later the model learned to copy without the neuron.",
    ),
    Exercise(
        "ex2",
        points=2,
        pace=Pace(2, 4, 6),
        capture=capture_number,
        judge=judge_ex2,
        hints=(
            "Read the last evaluation row of each fork's metrics, in the column `crutch_loss` "
            "names (the loss on the target's crutch).",
            "Compare the two forks with each other, not with the parent: the control fork says "
            "what holding any neuron costs.",
        ),
        success="The neuron's own cost, with the cost of the intervention itself removed.",
    ),
)
