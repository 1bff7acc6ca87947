"""Checks of ``20_explorer``: reading the explorer.

* ``ex1`` (1): ``peak_step``, the checkpoint (after step 0) at which the picked neuron (the
  detector's first-ranked neuron of the first seed) has its largest effect, as the explorer
  draws it. Graded on other precomputed seeds than the learner's.
* ``predict`` (1): whether the detector catches a vestigial neuron in the second seed too;
  any option passes, the feedback gives the second seed's verdict.
* ``ex2`` (1): ``transition_gap``, the second seed's copy transition minus the first's, in
  steps, as the explorer marks them.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from . import (
    COURSE_PRESET,
    AnswerError,
    Exercise,
    Pace,
    Verdict,
    as_number,
    precomputed_set,
    prediction,
)

NOTEBOOK = "20_explorer"
#: what a submission is graded on (scripts/precompute.py runs the solution with each): a
#: study seed with a catch (3000) and one without (3003), neither of them the notebook's 3006
#: and 3007 (10_vestigial grades on the same runs)
GRADING_SETS = ({"seeds": [3000, 3003]},)


class Context:
    """The explorer's tables of the learner's runs (read-only)."""

    def __init__(self, params: dict, hidden=None):
        self.runs_dir = Path(str(params.get("runs_dir", "../runs")))
        self.preset = str(params.get("preset", COURSE_PRESET))
        self.seeds = [int(s) for s in params.get("seeds", [0, 1])]

    @cached_property
    def tables(self):
        from vestige.runs import Run, Runs, seed_dir
        from vestige.tables import explorer_tables

        root = self.runs_dir / self.preset
        runs = Runs(root, {s: Run.open(seed_dir(root, s)) for s in self.seeds})
        return explorer_tables(runs)


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def grading_parameters(runs_dir: Path, rng) -> dict:
    """One of `GRADING_SETS` whose runs are analysed under ``runs_dir``, its seeds in a random
    order (so which seed comes first, as the notebook's exercises read it, varies too)."""
    from vestige.runs import manifest_path, seed_dir

    folder = Path(runs_dir) / COURSE_PRESET
    chosen = precomputed_set(
        GRADING_SETS,
        lambda s: all(manifest_path(seed_dir(folder, k)).exists() for k in s["seeds"]),
        rng,
        f"no analysed {COURSE_PRESET} runs of seeds {GRADING_SETS[0]['seeds']} under {folder}: "
        "make runs",
    )
    return {"seeds": [int(k) for k in rng.permutation(chosen["seeds"])]}


def capture_number(value, ctx) -> float:
    return as_number(value, "a step")


def reference_peak_step(ctx) -> int:
    tables, seed = ctx.tables, ctx.seeds[0]
    unit = tables.default_neuron(seed)  # noqa: F841 (read by the query string below)
    mine = tables.neurons.query("seed == @seed and unit == @unit and step > 0")
    return int(mine.loc[mine.effect.idxmax(), "step"])


def judge_ex1(got, ctx) -> Verdict:
    _number(got)
    want = reference_peak_step(ctx)
    if got == want:
        return Verdict(True)
    steps = ctx.tables.steps(ctx.seeds[0])
    if got not in steps:
        return Verdict(
            False, "one of the checkpoint steps (the slider only stops there)", f"{got:g}"
        )
    if got == 0:
        return Verdict(
            False,
            "a checkpoint after step 0",
            "step 0, where an untrained model's effects are noise",
        )
    return Verdict(
        False,
        "the checkpoint where the picked neuron's effect line is highest",
        f"step {got:g}",
        "Look at the black line in the effect timeline.",
    )


def judge_ex2(got, ctx) -> Verdict:
    _number(got)
    first, second = (ctx.tables.transition(s) for s in ctx.seeds[:2])
    want = second - first
    if abs(got - want) < 0.5:
        return Verdict(True)
    if abs(got + want) < 0.5:
        return Verdict(False, "the second seed's transition minus the first's", "the opposite sign")
    return Verdict(
        False,
        "the difference of the two seeds' copy transition steps (the dashed red lines)",
        f"{got:g}",
    )


def _number(got) -> None:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise AnswerError("captured data is not a number")


# --- predict: does the second seed have a catch? -------------------------------------------------

CATCH_OPTIONS = ("yes", "no")


def catch_outcome(ctx) -> tuple[str, str]:
    """Whether the second seed's first-ranked neuron is the detector's vestigial one."""
    seed = ctx.seeds[1]
    unit = ctx.tables.default_neuron(seed)
    verdict = ctx.tables.verdict(seed, unit)
    caught = verdict.verdict == "vestigial"
    why = f"in seed {seed} the detector's first-ranked neuron {unit} is {verdict.verdict}"
    if verdict.failed:
        why += f" (clauses failed: {verdict.failed})"
    return ("yes" if caught else "no"), why


EXERCISES = (
    prediction("predict", CATCH_OPTIONS, catch_outcome, pace=Pace(1, 3, 2)),
    Exercise(
        "ex1",
        points=1,
        pace=Pace(1, 4, 5),
        capture=capture_number,
        judge=judge_ex1,
        hints=(
            "Watch the lower timeline (effect over training) while you move the slider.",
            "Stop where the cursor sits on the highest point of the black line (not step 0).",
            "`explorer.step` holds the slider's step: set `peak_step = explorer.step` there.",
        ),
        success="At that checkpoint the model leaned on this neuron most.",
    ),
    Exercise(
        "ex2",
        points=1,
        pace=Pace(1, 3, 4),
        capture=capture_number,
        judge=judge_ex2,
        hints=(
            "Switch the seed picker and watch the dashed transition line in the training curves.",
            "`tables.transition(seed)` gives the step the explorer marks, for each seed.",
        ),
        success="Same config, same data rule, another seed: the transition moves.",
    ),
)
