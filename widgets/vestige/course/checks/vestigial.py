"""Checks of ``10_vestigial``: reading a stage curve, same-token selectivity, mean ablation
with a hook, the detector's clauses, and "not needed" against "not used".

* ``ex1`` (2): ``change_step(steps, probs)``, the first checkpoint after a falling stage
  curve's peak (after step 0) at which it is below the midpoint of that peak and its final
  value; run on hidden curves (noise, a late bump, a plateau, an unsorted copy).
* ``predict`` (1): which selectivity bar is harder to pass, shuffled labels or untrained
  neurons; any option passes, the feedback gives the run's two p99 bars.
* ``ex2`` (2): ``token_selectivity(acts, focus, same)``, (mu_focus - mu_same) /
  (mu_focus + mu_same + 1e-7) per neuron; hidden activations. Calling the kit's
  ``contrast_selectivity`` is refused: the exercise is to write it.
* ``ex3`` (3): ``ablation_effect(model, layer, neuron, where)``, the mean increase in loss
  on the ``where`` positions when the neuron is held at its mean over the batch; run on
  hidden (checkpoint, layer, neuron) choices of the learner's own run, each with an effect
  well away from 0 and where zero ablation or all positions give another number.
* ``ex4`` (3): ``is_vestigial(line, init_floor)``, the detector's clauses on one neuron's
  timeline; hidden timelines where each clause fails alone (dropping any clause fails one),
  on the line's own focus class (`positions`: trigger_copy's or one of many crutches', so a
  rule that hard-codes "trigger" fails).
* ``ex5`` (1): ``is_vestigial`` again, now on every neuron of the learner's run (and on ex4's
  made-up timelines, so a constant answer cannot agree with a run that has no catch): its
  verdicts must be the detector's.
* ``ex6`` (2): ``my_effects``, the learner's own ``ablation_effect`` of the detector's target
  (the caught neuron, else the best candidate) at its peak step and at the last checkpoint,
  on its own class's positions.
* ``ex7`` (1): ``margin_fraction``, the target's final logit-margin effect as a fraction of
  its largest, from the run's analysis (judged on the best candidate when nothing is caught:
  no free point).
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
    as_array,
    as_number,
    call_each,
    close,
    items,
    kit_call,
    precomputed_set,
    prediction,
)

NOTEBOOK = "10_vestigial"
#: what a submission is graded on (scripts/precompute.py runs the solution with each):
#: study seeds 3000 (caught in the study and where it was retrained) and 3003 (not caught:
#: its best candidate does not fade), never the notebook's 3006 (a verdict can differ across
#: CPUs; the notebook and its checks handle either)
GRADING_SETS = ({"seed": 3000}, {"seed": 3003})
KIT_FUNCTIONS = (
    "contrast_selectivity",
    "selectivity_index",
    "judge",
    "detect",
    "ablate_neurons",
    "stage_change_steps",
)
PRACTICE_SEED = 31337


class Context:
    """The learner's run (read-only), its detector verdict, and the hidden or practice inputs."""

    def __init__(self, params: dict, hidden=None):
        self.runs_dir = Path(str(params.get("runs_dir", "../runs")))
        self.preset = str(params.get("preset", COURSE_PRESET))
        self.seed = int(params.get("seed", 0))
        self.hidden = hidden if isinstance(hidden, dict) else None

    @cached_property
    def run(self):
        from vestige.runs import Run, seed_dir

        return Run.open(seed_dir(self.runs_dir / self.preset, self.seed))

    @cached_property
    def tables(self):
        from vestige.analysis import analyze

        return analyze(self.run)

    @cached_property
    def detection(self):
        from vestige.detect import detect

        return detect(self.run)

    def inputs(self, key: str, make):
        import numpy as np

        if self.hidden and key in self.hidden:
            return self.hidden[key]
        return make(np.random.default_rng(PRACTICE_SEED), self)


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def grading_parameters(runs_dir: Path, rng) -> dict:
    """One of `GRADING_SETS` whose run is analysed under ``runs_dir``."""
    from vestige.runs import manifest_path, seed_dir

    folder = Path(runs_dir) / COURSE_PRESET
    return precomputed_set(
        GRADING_SETS,
        lambda s: manifest_path(seed_dir(folder, s["seed"])).exists(),
        rng,
        f"no analysed {COURSE_PRESET} run of seed {' or '.join(str(s['seed']) for s in GRADING_SETS)}"
        f" under {folder}: make runs",
    )


def hidden_inputs(params: dict, rng) -> dict:
    ctx = Context(params)
    return {
        "curves": make_curves(rng, ctx),
        "acts": make_acts(rng, ctx),
        "ablations": make_ablations(rng, ctx),
        "lines": make_lines(rng, ctx),
    }


def _refuse_kit(function):
    kit = kit_call(function, KIT_FUNCTIONS)
    if kit is not None:
        raise AnswerError(f"your function uses the kit's `{kit}`: write the computation yourself")


# --- ex1: the step at which a stage curve falls -----------------------------------------------


def reference_change_step(steps, probs) -> float:
    pairs = sorted((int(s), float(p)) for s, p in zip(steps, probs))
    trained = [(s, p) for s, p in pairs if s > 0]
    peak_at = max(range(len(trained)), key=lambda i: trained[i][1])
    peak, final = trained[peak_at][1], trained[-1][1]
    middle = (peak + final) / 2
    return float(next((s for s, p in trained[peak_at:] if p < middle), math.nan))


def make_curves(rng, ctx) -> list[dict]:
    import numpy as np

    curves = []
    for case in (
        "smooth fall",
        "noisy fall",
        "a bump after the fall",
        "a plateau before the fall",
        "rows out of order",
        "a high value at step 0",
        "a fall to a raised floor",
    ):
        steps = sorted({0, *(int(s) for s in np.geomspace(10, 1500, 18).round())})
        fall = float(rng.uniform(150, 600))
        peak = float(rng.uniform(0.3, 0.5))
        floor = peak / 2 if case == "a fall to a raised floor" else 0.02
        probs = [
            floor + (peak - floor) * (1 - 1 / (1 + math.exp(-(s - fall) / 120))) * min(1, s / 40)
            for s in steps
        ]
        if case == "noisy fall":
            probs = [p + float(rng.normal(0, 0.01)) for p in probs]
        if case == "a bump after the fall":
            probs[-3] += 0.08
        if case == "a plateau before the fall":
            probs = [
                max(p, peak * 0.9) if s < fall * 0.8 and s > 20 else p for s, p in zip(steps, probs)
            ]
        if case == "a high value at step 0":
            probs[0] = 0.9
        if case == "rows out of order":
            order = rng.permutation(len(steps))
            steps, probs = [steps[i] for i in order], [probs[i] for i in order]
        curves.append({"case": case, "steps": steps, "probs": [round(p, 6) for p in probs]})
    return curves


def capture_ex1(function, ctx) -> list:
    _refuse_kit(function)
    curves = ctx.inputs("curves", make_curves)
    return call_each(
        function,
        [(list(c["steps"]), list(c["probs"])) for c in curves],
        lambda v: as_number(v, "a step"),
    )


def judge_ex1(got, ctx) -> Verdict:
    curves = ctx.inputs("curves", make_curves)
    wrong = [
        c["case"]
        for c, item in zip(curves, items(got, len(curves)))
        if not _equal(item, reference_change_step(c["steps"], c["probs"]), 0.5)
    ]
    if not wrong:
        return Verdict(True)
    return Verdict(
        False,
        "the first step after the peak (step 0 excluded) below the midpoint of "
        "the peak and the final value, on every test curve",
        f"another step on {len(wrong)} of {len(curves)} curves, e.g. one with {wrong[0]}",
    )


# --- ex2: same-token selectivity --------------------------------------------------------------


def reference_token_selectivity(acts, focus, same):
    import numpy as np

    acts, focus, same = np.asarray(acts, float), np.asarray(focus, bool), np.asarray(same, bool)
    mu_f, mu_s = acts[focus].mean(0), acts[same].mean(0)
    return (mu_f - mu_s) / (mu_f + mu_s + 1e-7)


def make_acts(rng, ctx) -> list[dict]:
    import numpy as np

    cases = []
    for positions in (60, 200):
        acts = np.maximum(rng.normal(0.3, 1.0, size=(positions, 5)), 0)
        focus = rng.random(positions) < 0.3
        same = ~focus & (rng.random(positions) < 0.5)
        acts[focus, 0] += 2.0  # a neuron that prefers the focus positions
        acts[same, 1] += 2.0  # one that prefers the others
        acts[:, 2] = 0.0  # a silent neuron: 0, not a division by zero
        cases.append(
            {"acts": acts.round(4).tolist(), "focus": focus.tolist(), "same": same.tolist()}
        )
    return cases


def capture_ex2(function, ctx) -> list:
    import numpy as np
    import torch

    _refuse_kit(function)
    cases = ctx.inputs("acts", make_acts)
    args = [
        (torch.tensor(c["acts"]), torch.tensor(c["focus"]), torch.tensor(c["same"])) for c in cases
    ]
    return [
        item if isinstance(item, dict) else np.asarray(item).tolist()
        for item in call_each(function, args, lambda v: as_array(v, "one value per neuron", ndim=1))
    ]


def judge_ex2(got, ctx) -> Verdict:
    import numpy as np

    cases = ctx.inputs("acts", make_acts)
    for case, item in zip(cases, items(got, len(cases))):
        want = reference_token_selectivity(case["acts"], case["focus"], case["same"])
        if not (isinstance(item, dict) or _numbers(item)):
            raise AnswerError("captured data is not one list of numbers per test case")
        if isinstance(item, dict) or len(item) != len(want):
            return Verdict(
                False,
                f"{len(want)} values, one per neuron",
                item.get("error", "?") if isinstance(item, dict) else f"{len(item)} values",
            )
        if not np.allclose(item, want, atol=1e-4):
            silent = abs(item[2]) > 1e-4 or not math.isfinite(item[2])
            return Verdict(
                False,
                "(mean on focus - mean on same-token) / (sum + 1e-7) per neuron",
                "other values" + (" (a silent neuron should give 0)" if silent else ""),
            )
    return Verdict(True)


# --- ex3: mean ablation with a hook -----------------------------------------------------------


def make_ablations(rng, ctx) -> list[dict]:
    """(step, layer, neuron) of the learner's run with effects on the focus positions far from
    0 and different under zero ablation or over all positions."""
    table = ctx.tables["neurons"]
    trained = table[(table.step > 0) & (table.effect.abs() > 0.05)]
    picks = trained.sort_values("effect", ascending=False).head(12)
    chosen = picks.iloc[rng.permutation(len(picks))[:2]] if len(picks) >= 2 else picks
    return [
        {
            "step": int(r.step),
            "layer": int(r.layer),
            "neuron": int(r.neuron),
            "positions": str(r.positions),  # the neuron's own crutch: its effect's positions
        }
        for r in chosen.itertuples()
    ]


def capture_ex3(function, ctx) -> list:
    _refuse_kit(function)
    choices = ctx.inputs("ablations", make_ablations)
    args = [
        (ctx.run.model_at(c["step"]), c["layer"], c["neuron"], _focus_mask(ctx.run, c["positions"]))
        for c in choices
    ]
    return call_each(function, args, lambda v: as_number(v, "a loss increase in nats"))


def _focus_mask(run, positions: str):
    batch = run.eval_batch
    return batch.loss_mask & (batch.labels == run.task.class_names.index(positions))


def judge_ex3(got, ctx) -> Verdict:
    from vestige.analysis import unit_name

    table = ctx.tables["neurons"].set_index(["step", "layer", "neuron"])
    choices = ctx.inputs("ablations", make_ablations)
    for choice, item in zip(choices, items(got, len(choices))):
        want = float(table.loc[(choice["step"], choice["layer"], choice["neuron"]), "effect"])
        where = f"{unit_name(choice['layer'], choice['neuron'])} at step {choice['step']}"
        if isinstance(item, dict):
            return Verdict(False, f"a number for {where}", item.get("error", "an error"))
        if not close(float(item), want, 2e-3, 0.02):
            return Verdict(
                False,
                f"the mean loss increase on the `where` positions for {where}",
                f"{float(item):.4f}"
                + (" (zero is what an untouched model gives)" if abs(float(item)) < 1e-6 else ""),
            )
    return Verdict(True)


# --- ex4: the clauses ------------------------------------------------------------------------

LINE_COLUMNS = (
    "step",
    "effect",
    "effect_low",
    "effect_high",
    "selectivity",
    "untrained_p99",
    "matched_selectivity",
    "untrained_matched_p99",
    "preferred_class",
    "positions",
)
#: the focus classes of the made-up timelines (a neuron's own: its `positions`): trigger_copy's
#: one crutch and two of many_crutches', so a rule that hard-codes "trigger" is caught
LINE_FOCUS = ("trigger", "trigger_3", "trigger_6")


def make_lines(rng, ctx) -> list[dict]:
    """Two passing timelines (on trigger_copy's focus class and on one of many crutches'), and
    one per clause failing alone (and one with a step-0 peak), each on its `positions`."""
    steps = [0, 25, 48, 91, 174, 332, 633, 1209, 1500]
    base = {
        "effect": [0.02, 0.2, 0.35, 0.4, 0.3, 0.08, 0.02, 0.01, 0.002],
        "half": 0.03,
        "selectivity": 0.9,
        "matched": 0.7,
    }
    cases = {
        "every clause holds": {"focus": "trigger"},
        "every clause holds, on crutch 3's positions": {"focus": "trigger_3"},
        "the peak's lower bound is under 0.15": {
            "effect": [0.02, 0.1, 0.12, 0.4, 0.2, 0.19, 0.02, 0.01, 0.002],
            "wide_at": 3,
        },
        "the peak is under twice the init floor": {"floor": 0.25},
        "needed at one checkpoint only": {
            "effect": [0.02, 0.05, 0.1, 0.4, 0.1, 0.05, 0.02, 0.01, 0.002]
        },
        "the final effect is 12% of the peak": {"final_high": 0.048},
        "selectivity under the untrained p99": {"selectivity": 0.6},
        "prefers another class at the end": {"preferred": "live"},
        "same-token selectivity under its p99": {"matched": 0.2},
        "a large effect at step 0 only": {
            "effect": [0.9, 0.05, 0.1, 0.12, 0.1, 0.05, 0.02, 0.01, 0.002]
        },
    }
    lines = []
    focus = rng.choice(LINE_FOCUS, size=len(cases))
    for (case, change), drawn in zip(cases.items(), focus):
        own = change.get("focus", str(drawn))
        effect = change.get("effect", base["effect"])
        half = [base["half"]] * len(steps)
        if "wide_at" in change:
            half[change["wide_at"]] = 0.3
        high = [e + h for e, h in zip(effect, half)]
        if "final_high" in change:
            high[-1] = change["final_high"]
        lines.append(
            {
                "case": case,
                "floor": change.get("floor", 0.05),
                "step": steps,
                "effect": effect,
                "effect_low": [e - h for e, h in zip(effect, half)],
                "effect_high": high,
                "selectivity": [0.5] * (len(steps) - 1)
                + [change.get("selectivity", base["selectivity"])],
                "untrained_p99": [0.65] * len(steps),
                "matched_selectivity": [0.1] * (len(steps) - 1)
                + [change.get("matched", base["matched"])],
                "untrained_matched_p99": [0.3] * len(steps),
                "preferred_class": [own] * (len(steps) - 1) + [change.get("preferred", own)],
                "positions": [own] * len(steps),
            }
        )
    order = rng.permutation(len(lines))
    return [lines[i] for i in order]


def reference_is_vestigial(line: dict, floor: float) -> bool:
    from vestige.detect import Criteria, judge

    focus = line["positions"][-1]
    return bool(judge(_frame(line), Criteria(), init_floor=floor, focus=focus)["vestigial"])


def _frame(line: dict):
    import pandas as pd

    table = pd.DataFrame({k: line[k] for k in LINE_COLUMNS})
    table["unit"] = "L0N0"
    for column in ("margin_effect", "margin_effect_low", "margin_effect_high", "effect_own"):
        table[column] = table["effect"]
    return table


def capture_ex4(function, ctx) -> list:
    _refuse_kit(function)
    lines = ctx.inputs("lines", make_lines)
    args = [
        (_frame(line)[list(LINE_COLUMNS)].sample(frac=1, random_state=0), line["floor"])
        for line in lines
    ]
    return call_each(function, args, _as_bool)


def _as_bool(value):
    import numpy as np

    if type(value) is bool or type(value) is np.bool_:
        return bool(value)
    raise AnswerError(f"expected True or False, got {type(value).__name__}")


def judge_ex4(got, ctx) -> Verdict:
    lines = ctx.inputs("lines", make_lines)
    wrong = [
        line["case"]
        for line, item in zip(lines, items(got, len(lines)))
        if isinstance(item, dict) or item != reference_is_vestigial(line, line["floor"])
    ]
    if not wrong:
        return Verdict(True)
    return Verdict(
        False,
        "True only when every clause holds, on every test timeline",
        f"a wrong verdict on {len(wrong)} of {len(lines)}, e.g. when {wrong[0]}",
    )


# --- ex5: the learner's detector on the whole run --------------------------------------------


def run_lines(detection) -> list[tuple[str, object, float]]:
    """(unit, timeline, init floor) for every neuron of the run, each timeline in the columns
    ex4's function reads (shuffled rows) and judged against the floor of its own positions."""
    lines = []
    for unit, line in detection.timelines.groupby("unit"):
        floor = detection.floor_for(line["positions"].iloc[-1])
        table = line[list(LINE_COLUMNS)].sample(frac=1, random_state=0).reset_index(drop=True)
        lines.append((unit, table, float(floor)))
    return lines


def _sanity_lines(ctx) -> list[dict]:
    """ex4's made-up timelines (two pass every clause, each other fails one), in the hidden
    inputs' order, so that a function that always answers the same cannot agree with a run
    that has no catch."""
    return ctx.inputs("lines", make_lines)


def capture_ex5(function, ctx) -> dict:
    _refuse_kit(function)
    units, args = [], []
    for unit, table, floor in run_lines(ctx.detection):
        units.append(unit)
        args.append((table, floor))
    for line in _sanity_lines(ctx):
        args.append(
            (_frame(line)[list(LINE_COLUMNS)].sample(frac=1, random_state=0), line["floor"])
        )
    return {"units": units, "verdicts": call_each(function, args, _as_bool)}


def judge_ex5(got, ctx) -> Verdict:
    found = ctx.detection.neurons
    kit = {r.unit: bool(r.vestigial) for r in found.itertuples()}
    sanity = [reference_is_vestigial(line, line["floor"]) for line in _sanity_lines(ctx)]
    if not isinstance(got, dict) or set(got) != {"units", "verdicts"}:
        raise AnswerError("captured data is not the verdicts of the run's neurons")
    units, verdicts = got["units"], items(got["verdicts"], len(kit) + len(sanity))
    if not isinstance(units, list) or sorted(map(str, units)) != sorted(kit):
        raise AnswerError("captured data does not name the run's neurons")
    errors = [v for v in verdicts if isinstance(v, dict)]
    if errors:
        return Verdict(
            False,
            "True or False for every neuron",
            f"an error on {len(errors)} timelines, e.g. {errors[0].get('error', '?')}",
        )
    if verdicts[len(units) :] != sanity:
        return Verdict(
            False,
            "True for the made-up timelines where every clause holds, False for the others",
            "another verdict on at least one of them (ex4's timelines)",
        )
    mine = dict(zip(units, verdicts))
    missed = sorted(u for u in units if kit[u] and not mine[u])
    extra = sorted(u for u in units if mine[u] and not kit[u])
    if not missed and not extra:
        caught = sorted(u for u in units if kit[u])
        return Verdict(
            True,
            note=f"(you and the detector both catch: {', '.join(caught)})"
            if caught
            else "(you and the detector agree: no neuron of this run is vestigial)",
        )
    said = []
    if missed:
        said.append(f"not vestigial for {', '.join(missed[:3])}, which the detector catches")
    if extra:
        said.append(f"vestigial for {', '.join(extra[:3])}, which fails a clause")
    return Verdict(False, "the detector's verdict on every neuron of the run", "; ".join(said))


# --- ex6: the caught neuron's effect at its peak and at the end -------------------------------


def capture_ex6(value, ctx) -> dict:
    if not isinstance(value, dict) or set(value) != {"peak", "end"}:
        raise AnswerError('expected a dict {"peak": effect, "end": effect}')
    return {key: as_number(value[key], f"the effect at the {key}") for key in ("peak", "end")}


def judge_ex6(got, ctx) -> Verdict:
    if not isinstance(got, dict) or set(got) != {"peak", "end"} or not _numbers(list(got.values())):
        raise AnswerError("captured data is not two effects")
    from vestige.detect import target_neuron

    target = target_neuron(ctx.detection)
    want = {"peak": float(target["peak_effect"]), "end": float(target["final_effect"])}
    if all(close(got[k], want[k], 2e-3, 0.02) for k in want):
        return Verdict(True)
    if close(got["peak"], want["end"], 2e-3, 0.02) and close(got["end"], want["peak"], 2e-3, 0.02):
        return Verdict(False, "the effect at the peak step first", "the two the other way round")
    wrong = "peak" if not close(got["peak"], want["peak"], 2e-3, 0.02) else "end"
    step = int(target["peak_step"]) if wrong == "peak" else max(ctx.run.steps)
    return Verdict(
        False,
        f"your ablation_effect of {target['unit']} at step {step} on the positions of its "
        f"class ({target['positions']})",
        f"{got[wrong]:.4f} at the {wrong}",
    )


# --- ex7: not needed, or not used -------------------------------------------------------------


def capture_ex7(value, ctx) -> float:
    return as_number(value, "a fraction")


def judge_ex7(got, ctx) -> Verdict:
    """Judged on the detector's target: the caught neuron, else the best candidate (a run
    with no catch still has an answer; there is no free point)."""
    from vestige.detect import target_neuron

    if not _numbers([got]):
        raise AnswerError("captured data is not a number")
    v = target_neuron(ctx.detection)
    want = float(v["margin_fraction"])
    if close(got, want, 0.01, 0.02) or close(got * 100, want * 100, 1.0):
        return Verdict(True)
    loss_fraction = float(v["final_effect"] / v["peak_effect"])
    if close(got, loss_fraction, 0.01, 0.02):
        return Verdict(
            False,
            "the *logit-margin* effect at the end over its largest value",
            f"{got:.3f}, the same ratio for the loss effect",
        )
    return Verdict(
        False,
        f"the final margin_effect of {v['unit']} divided by its largest margin_effect over "
        "trained checkpoints",
        f"{got:.3f}",
    )


# --- helpers --------------------------------------------------------------------------------


def _numbers(values) -> bool:
    """True for a list of real numbers (what the captures of ex2 and ex5 hold)."""
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )


def _equal(item, want: float, tol: float) -> bool:
    if isinstance(item, dict) or not isinstance(item, (int, float)):
        return False
    if math.isnan(want):
        return math.isnan(item)
    return abs(item - want) <= tol


# --- predict: which baseline is the harder bar -------------------------------------------------

BAR_OPTIONS = ("shuffled labels", "untrained neurons", "about the same")


def bar_outcome(ctx) -> tuple[str, str]:
    """Which p99 bar is higher at the last checkpoint, averaged over layers (the same: within
    0.02)."""
    table = ctx.tables["baseline"]
    final = table[table.step == table.step.max()]
    shuffled, untrained = float(final["p99"].mean()), float(final["untrained_p99"].mean())
    if abs(shuffled - untrained) < 0.02:
        shown = "about the same"
    else:
        shown = "untrained neurons" if untrained > shuffled else "shuffled labels"
    return shown, (
        f"at the last checkpoint the untrained neurons' 99th percentile of selectivity is "
        f"{untrained:.2f} and the shuffled labels' {shuffled:.2f} (mean over layers)"
    )


EXERCISES = (
    prediction("predict", BAR_OPTIONS, bar_outcome, pace=Pace(1, 4, 2)),
    Exercise(
        "ex1",
        points=2,
        pace=Pace(2, 3, 10),
        kind="function",
        capture=capture_ex1,
        judge=judge_ex1,
        hints=(
            "Sort the points by step and leave out step 0: an untrained model's value is noise.",
            "Find the peak among the trained steps; the midpoint is (peak + final value) / 2.",
            "Return the first step *after the peak* whose value is below the midpoint.",
        ),
        success="That is how the report dates each stage.",
    ),
    Exercise(
        "ex2",
        points=2,
        pace=Pace(2, 4, 8),
        kind="function",
        capture=capture_ex2,
        judge=judge_ex2,
        hints=(
            "Average each neuron's activation over the focus positions, and over the same-token ones.",
            "acts[focus].mean(0) gives one mean per neuron; do the same with `same`.",
            "Add 1e-7 to the denominator, so that a silent neuron gives 0.",
        ),
        success="A neuron that only tracks the current token scores about 0 here.",
    ),
    Exercise(
        "ex3",
        points=3,
        pace=Pace(3, 5, 15),
        kind="function",
        capture=capture_ex3,
        judge=judge_ex3,
        hints=(
            "Hold the neuron at its mean over every position of the batch (mean ablation, not zero).",
            "Compare per-position losses with and without the hook, then average over `where` only.",
            "cache_activations gives the activations for the mean; set_neurons([neuron], mean) the hook.",
        ),
        success="The same number the kit's batched analysis computes.",
    ),
    Exercise(
        "ex4",
        points=3,
        pace=Pace(4, 5, 20),
        kind="function",
        capture=capture_ex4,
        judge=judge_ex4,
        hints=(
            "Go through the clauses in `Criteria().clauses()` one by one; all must hold.",
            "The peak is over trained checkpoints only; 'sustained' means two consecutive checkpoints "
            "whose lower bound is at least 0.15; the final effect is the last checkpoint's.",
            "Rows may come in any order: sort by step first.",
            "The class a neuron must prefer is its own focus class, the `positions` column.",
        ),
        success="Every clause matters: each failing test timeline fails exactly one.",
    ),
    Exercise(
        "ex5",
        points=1,
        pace=Pace(1, 5, 3),
        kind="function",
        capture=capture_ex5,
        judge=judge_ex5,
        hints=(
            'Pass the function itself: check("ex5", is_vestigial).',
            "It must give the detector's verdict on the run's own timelines, whose rows come "
            "in any order; if it fails here but passed ex4, look at the neurons named above.",
        ),
        success="Your clauses and the detector's give the same verdict on every neuron.",
    ),
    Exercise(
        "ex6",
        points=2,
        pace=Pace(2, 5, 6),
        capture=capture_ex6,
        judge=judge_ex6,
        hints=(
            "Call your ablation_effect twice: on run.model_at(peak_step) and run.model_at(end_step).",
            "Use the neuron's layer and index from `target`, and the mask of its own class's "
            "positions, positions.classes[target.positions].",
        ),
        success="Needed at its peak, about nothing at the end: your numbers, the kit's.",
    ),
    Exercise(
        "ex7",
        points=1,
        pace=Pace(2, 4, 6),
        capture=capture_ex7,
        judge=judge_ex7,
        hints=(
            "Use the target neuron's rows of tables['neurons'] and its margin_effect column.",
            "Divide the value at the last checkpoint by the largest value after step 0.",
        ),
        success="Compare it with the loss ratio: that difference is 'outweighed' versus 'unused'.",
    ),
)
