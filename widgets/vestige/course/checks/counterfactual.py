"""Checks of ``30_counterfactual``: reading forks, and an interval over seeds.

* ``predict`` (1): whether holding the target makes the copy transition earlier, about the
  same or later; any option passes, the feedback gives the two transition steps.
* ``ex1`` (1): ``delay``, the copy transition of the ``hold-target`` fork minus the
  parent's, in steps (`vestige.analysis.transition_step`).
* ``ex2`` (2): ``held_cost``, the final evaluation loss on trigger positions of the
  ``hold-target`` fork minus that of the ``hold-control`` fork: what holding *this* neuron
  cost beyond holding any neuron.
* ``ex3`` (2): ``paired_interval(deltas)``, the 95% t-interval of the mean of paired
  differences over seeds; run on hidden lists. The kit's `mean_ci` is refused.

The forks are read from ``runs_dir/forks`` (precomputed by ``make runs``), where the
notebook reopens them; grading uses another precomputed seed.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

from . import (
    COURSE_PRESET,
    AnswerError,
    Exercise,
    Verdict,
    as_array,
    as_number,
    call_each,
    close,
    prediction,
)

NOTEBOOK = "30_counterfactual"
PRACTICE_SEED = 4242


class Context:
    def __init__(self, params: dict, hidden=None):
        self.runs_dir = Path(str(params.get("runs_dir", "../runs")))
        self.preset = str(params.get("preset", COURSE_PRESET))
        self.seed = int(params.get("seed", 0))
        self.hidden = hidden if isinstance(hidden, dict) else None

    @cached_property
    def parent(self):
        from vestige.runs import Run

        return Run.open(self.runs_dir / self.preset / f"seed-{self.seed}")

    def fork(self, name: str):
        from vestige.counterfactual import fork_dir
        from vestige.runs import Run

        return Run.open(fork_dir(self.runs_dir / "forks", self.parent, name))

    @property
    def deltas(self) -> list[list[float]]:
        import numpy as np

        if self.hidden and "deltas" in self.hidden:
            return self.hidden["deltas"]
        return make_deltas(np.random.default_rng(PRACTICE_SEED))


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def grading_parameters(runs_dir: Path, rng) -> dict:
    """A precomputed reference seed whose forks are precomputed too."""
    forks = Path(runs_dir) / "forks" / COURSE_PRESET
    seeds = sorted(
        int(p.name[5:])
        for p in forks.glob("seed-*")
        if p.name[5:].isdigit() and (p / "hold-control" / "config.json").is_file()
    )
    if not seeds:
        raise FileNotFoundError(f"no precomputed forks under {forks}: make runs")
    return {"seed": int(seeds[int(rng.integers(len(seeds)))])}


def hidden_inputs(params: dict, rng) -> dict:
    return {"deltas": make_deltas(rng)}


def make_deltas(rng) -> list[list[float]]:
    """Lists of paired differences: small and large samples, one sign or mixed."""
    out = []
    for n, centre in ((3, 0.02), (5, -0.01), (10, 0.0), (20, 0.005), (25, 0.1)):
        out.append([round(float(x), 6) for x in rng.normal(centre, 0.03, size=n)])
    return out


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


def _final_trigger_loss(run) -> float:
    evals = run.metrics.query("split == 'eval'").sort_values("step")
    return float(evals["loss_trigger"].iloc[-1])


def judge_ex2(got, ctx) -> Verdict:
    _number(got)
    target, control = ctx.fork("hold-target"), ctx.fork("hold-control")
    want = _final_trigger_loss(target) - _final_trigger_loss(control)
    if close(got, want, 1e-3):
        return Verdict(True)
    wrong = {
        "the target fork against the parent, not against the control fork": _final_trigger_loss(
            target
        )
        - _final_trigger_loss(ctx.parent),
        "the opposite sign": -want,
        "the difference of the overall evaluation losses, not of the trigger-position losses": _final_eval(
            target
        )
        - _final_eval(control),
    }
    for what, value in wrong.items():
        if close(got, value, 1e-3):
            return Verdict(
                False,
                "hold-target minus hold-control, final loss on trigger positions",
                f"{got:.4f}, {what}",
            )
    return Verdict(
        False, "hold-target minus hold-control, final loss on trigger positions", f"{got:.4f}"
    )


def _final_eval(run) -> float:
    return float(run.metrics.query("split == 'eval'").sort_values("step")["loss"].iloc[-1])


# --- ex3 -------------------------------------------------------------------------------------


def reference_interval(deltas) -> tuple[float, float]:
    import numpy as np
    from scipy import stats

    x = np.asarray(deltas, dtype=float)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def capture_ex3(function, ctx) -> list:
    names = set(getattr(getattr(function, "__code__", None), "co_names", ()))
    if "mean_ci" in names or getattr(function, "__name__", "") == "mean_ci":
        raise AnswerError("your function uses the kit's `mean_ci`: write the interval yourself")
    return [
        item if isinstance(item, dict) else item.tolist()
        for item in call_each(
            function, [(list(d),) for d in ctx.deltas], lambda v: as_array(v, "(low, high)", ndim=1)
        )
    ]


def judge_ex3(got, ctx) -> Verdict:
    deltas = ctx.deltas
    if not isinstance(got, list) or len(got) != len(deltas):
        raise AnswerError("captured data does not have one interval per list")
    for sample, item in zip(deltas, got):
        want = reference_interval(sample)
        if isinstance(item, dict) or len(item) != 2:
            return Verdict(
                False,
                "two numbers, (low, high)",
                item.get("error", "?") if isinstance(item, dict) else f"{len(item)} numbers",
            )
        if not (close(item[0], want[0], 1e-4, 1e-3) and close(item[1], want[1], 1e-4, 1e-3)):
            normal = 1.96 * _std(sample) / math.sqrt(len(sample))
            mean = sum(sample) / len(sample)
            if close(item[1] - mean, normal, 1e-4, 1e-3):
                return Verdict(
                    False,
                    "a t-interval (Student's t with n - 1 degrees of freedom)",
                    f"1.96 standard errors, too narrow with {len(sample)} seeds",
                )
            return Verdict(
                False,
                "mean +/- t(0.975, n - 1) * std(ddof=1) / sqrt(n)",
                f"another interval for a list of {len(sample)} differences",
            )
    return Verdict(True)


def _std(sample) -> float:
    mean = sum(sample) / len(sample)
    return math.sqrt(sum((x - mean) ** 2 for x in sample) / (len(sample) - 1))


def _number(got) -> None:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise AnswerError("captured data is not a number")


# --- predict: the held fork's copy transition --------------------------------------------------

TRANSITION_OPTIONS = ("earlier", "about the same", "later")


def transition_outcome(ctx) -> tuple[str, str]:
    """The hold-target fork's copy transition against the parent's (the same: within 5% of
    the parent's; a run that never makes it counts as later)."""
    import math

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
    prediction("predict", TRANSITION_OPTIONS, transition_outcome),
    Exercise(
        "ex1",
        points=1,
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
        capture=capture_number,
        judge=judge_ex2,
        hints=(
            "Read the last evaluation row of each fork's metrics, column loss_trigger.",
            "Compare the two forks with each other, not with the parent: the control fork says "
            "what holding any neuron costs.",
        ),
        success="The neuron's own cost, with the cost of the intervention itself removed.",
    ),
    Exercise(
        "ex3",
        points=2,
        kind="function",
        capture=capture_ex3,
        judge=judge_ex3,
        hints=(
            "The interval is mean +/- t * standard error, the standard error std / sqrt(n).",
            "Use the sample standard deviation (ddof=1) and Student's t with n - 1 degrees of "
            "freedom (scipy.stats.t.ppf(0.975, n - 1)), not 1.96.",
            "Return two numbers: (low, high).",
        ),
        success="With few seeds, t is much wider than 1.96: that is the honest width.",
    ),
)
