"""Checks of ``40_many_seeds``: reading the study's per-seed results.

Every exercise is a function run on study records made up for the check (hidden ones,
generated per submission from the grader's salt, when grading), never on the course's
study itself. That is a choice: the study is being re-run and its numbers change, and a
value answer would have to be judged against the study's files, which the grader mounts
read-only for the notebook (``--data study=...``) but its judge, outside the sandbox, does
not get; and a number read off the study (or pasted from a printout) would pass. Made-up
records with the study's shape (nulls included) are what tells a method from a printout.

* ``ex1`` (1): ``peak_and_settle(timeline)``: the target neuron's peak effect (largest
  effect after step 0) and its settle step (the first checkpoint after the peak from which
  the effect stays below half the peak; ``None``/NaN if it never does). Test timelines: a
  maximum at step 0, a dip below half that comes back, no settling, rows out of order, a
  peak at the end.
* ``ex2`` (2): ``rank_correlation_ci(x, y, resamples)``: Spearman's rank correlation (ties
  get their average rank) and the 2.5th/97.5th percentiles of it over the given bootstrap
  resamples of seeds, leaving out resamples where it is undefined (a constant x or y). Any
  percentile convention passes (numpy's methods); Pearson, ordinal ranks, the tie-free
  formula, a mean of the resamples for the estimate, a NaN from an undefined resample, and
  another level do not.
* ``ex3`` (1): ``settled_with(result)``: the transitions (keys of
  ``mechanism["transitions"]``) whose checkpoint is within one checkpoint of the target's
  settle step, counted in checkpoints of the seed's timeline, not in steps. The test
  records carry no ``coincides_with`` field (that would be reading the answer): dense
  early checkpoints and sparse late ones separate "one checkpoint" from any fixed number of
  steps.
* ``ex4`` (1): ``paired_difference(results, condition, outcome)``: mean over seeds of the
  condition's outcome minus the same seed's unchanged run, with a 95% t-interval, over the
  seeds that have both values. Refused: unpaired differences, a normal (z) interval, the
  population standard deviation, seeds without the condition or with a null value kept,
  the kit's ``summarize``.
"""

from __future__ import annotations

import math
from functools import cache

from vestige.config import preset

from . import (
    AnswerError,
    Exercise,
    Pace,
    Verdict,
    as_array,
    as_number,
    as_text,
    call_each,
    close,
    items,
    kit_call,
    prediction,
)

NOTEBOOK = "40_many_seeds"
PRACTICE_SEED = 4040
N_BOOT = 1000  # resamples per test case of ex2 (a numpy array in the inputs)
PERCENTILE_METHODS = (
    "linear",
    "lower",
    "higher",
    "nearest",
    "midpoint",
    "weibull",
    "hazen",
    "median_unbiased",
    "normal_unbiased",
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
)
KIT_FUNCTIONS = ("summarize",)  # the study's own pairing of seeds


class Context:
    """The test records: hidden ones when grading, practice ones in a learner's kernel."""

    def __init__(self, params: dict, hidden=None):
        self.hidden = hidden if isinstance(hidden, dict) else None
        self.study_dir = params.get("study_dir")  # the prediction's outcome only

    def inputs(self, key: str):
        import numpy as np

        if self.hidden and key in self.hidden:
            return self.hidden[key]
        return MAKERS[key](np.random.default_rng(PRACTICE_SEED))


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def hidden_inputs(params: dict, rng) -> dict:
    return {key: make(rng) for key, make in MAKERS.items()}


@cache
def reference_steps() -> tuple[int, ...]:
    """The reference preset's checkpoints: dense early, sparse late."""
    return tuple(preset("reference").checkpoint_steps)


@cache
def reference_stages() -> tuple[str, ...]:
    """The reference task's stage names, in its order (the study's transitions besides
    "copy"); read off a one-sequence evaluation batch, so torch loads only when needed."""
    from vestige.task import make_task

    task = preset("reference").task
    task = make_task(task.name, task.params, seed=0)
    return tuple(task.stages(task.eval_batch(1)))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --- ex1: the target's peak and settle step -----------------------------------------------------


def reference_peak_and_settle(timeline: list[dict]) -> tuple[float, int | None]:
    line = sorted((int(p["step"]), float(p["effect"])) for p in timeline)
    trained = [(s, e) for s, e in line if s > 0]
    at = max(range(len(trained)), key=lambda i: trained[i][1])
    peak = trained[at][1]
    settle = None
    for i in range(at, len(trained)):
        if all(e < peak / 2 for _, e in trained[i:]):
            settle = trained[i][0]
            break
    return peak, settle


TIMELINE_CASES = (
    "a rise and a fall",
    "the largest effect is at step 0",
    "the effect dips below half its peak and comes back before it settles",
    "the effect never falls below half its peak",
    "rows out of order",
    "it settles only at the last checkpoint",
    "the peak is at the last checkpoint",
)


def make_timelines(rng) -> list[dict]:
    return [{"case": case, "timeline": _timeline(rng, case)} for case in TIMELINE_CASES]


def _timeline(rng, case: str) -> list[dict]:
    steps = list(reference_steps())
    n = len(steps)
    peak = float(rng.uniform(0.2, 0.6))
    at = n - 1 if case == "the peak is at the last checkpoint" else int(rng.integers(3, 8))
    if case == "it settles only at the last checkpoint":
        settle = n - 1
    elif case in (
        "the effect never falls below half its peak",
        "the peak is at the last checkpoint",
    ):
        settle = None
    else:
        settle = int(rng.integers(at + 3, n - 3))
    effect = []
    for i in range(n):
        if i == 0:
            value = float(rng.uniform(0.0, 0.03))
        elif i < at:
            value = peak * (0.3 + 0.6 * i / at) * float(rng.uniform(0.9, 1.0))
        elif i == at:
            value = peak
        elif settle is None or i < settle:
            value = peak * float(rng.uniform(0.55, 0.95))
        else:
            value = peak * float(rng.uniform(0.02, 0.4))
        effect.append(value)
    if case == "the largest effect is at step 0":
        effect[0] = peak * float(rng.uniform(1.3, 2.0))
    if case == "the effect dips below half its peak and comes back before it settles":
        effect[at + 1] = peak * float(rng.uniform(0.2, 0.4))
    points = [
        {
            "step": s,
            "effect": round(e, 6),
            "effect_low": round(e - 0.02, 6),
            "effect_high": round(e + 0.02, 6),
            "margin_effect": round(2 * e, 6),
            "selectivity": round(float(rng.uniform(0.3, 0.9)), 6),
            "matched_selectivity": round(float(rng.uniform(0.0, 0.6)), 6),
        }
        for s, e in zip(steps, effect)
    ]
    if case == "rows out of order":
        points = [points[i] for i in rng.permutation(n)]
    return points


def _as_peak_settle(value):
    import numpy as np

    if type(value) in (list, tuple) or type(value) is np.ndarray and value.ndim == 1:
        items = list(value)
    else:
        raise AnswerError(f"expected a pair (peak effect, settle step), got {type(value).__name__}")
    if len(items) != 2:
        raise AnswerError(f"expected a pair (peak effect, settle step), got {len(items)} values")
    peak = as_number(items[0], "a peak effect")
    settle = None if items[1] is None else as_number(items[1], "a settle step (or None)")
    return [peak, None if settle is None or math.isnan(settle) else settle]


def capture_ex1(function, ctx) -> list:
    import copy

    cases = ctx.inputs("timelines")
    return call_each(function, [(copy.deepcopy(c["timeline"]),) for c in cases], _as_peak_settle)


def judge_ex1(got, ctx) -> Verdict:
    cases = ctx.inputs("timelines")
    wrong = []
    for case, item in zip(cases, items(got, len(cases))):
        peak, settle = reference_peak_and_settle(case["timeline"])
        if isinstance(item, dict):
            wrong.append((case["case"], f"an error ({item.get('error', '?')})"))
            continue
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (int, float))):
            raise AnswerError("captured data is not a list of pairs")
        if not close(float(item[0]), peak, 1e-6, 1e-6):
            wrong.append((case["case"], "another peak effect"))
        elif (settle is None) != (item[1] is None) or (settle is not None and item[1] != settle):
            shown = (
                "no settle step"
                if item[1] is None
                else "a settle step where there is none"
                if settle is None
                else "another settle step"
            )
            wrong.append((case["case"], shown))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        "the largest effect after step 0, and the first checkpoint after it from "
        f"which the effect stays below half of it (None if never); wrong on {len(wrong)} "
        f"of {len(cases)} test timelines, e.g. when {case}",
        shown,
    )


# --- ex2: a rank correlation with a bootstrap interval ------------------------------------------


def spearman(x, y) -> float:
    import numpy as np
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def reference_correlation(x, y, resamples) -> tuple[float, list[float], list[float]]:
    """(rho, the lows and the highs accepted: one per percentile convention)."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    boot = np.array([spearman(x[i], y[i]) for i in np.asarray(resamples, int)])
    boot = boot[~np.isnan(boot)]
    lows, highs = [], []
    for method in PERCENTILE_METHODS:
        low, high = np.percentile(boot, [2.5, 97.5], method=method)
        lows.append(float(low))
        highs.append(float(high))
    return spearman(x, y), lows, highs


CORRELATION_CASES = (
    "a rising relation that is not a straight line, with one extreme value",
    "tied values (steps at checkpoints)",
    "no relation",
    "a falling relation",
    "some resamples draw a single value of x",
)


def make_correlations(rng) -> list[dict]:
    import numpy as np

    cases = []
    for case in CORRELATION_CASES:
        n = int(rng.integers(9, 21))
        x = rng.uniform(0.1, 0.6, n)
        if case.startswith("a rising"):
            y = 300 + 400 * x**4 + rng.normal(0, 3, n)
            y[int(np.argmax(x))] += 2000
            x[int(np.argmin(x))] = -0.5
        elif case.startswith("tied"):
            x = rng.choice(np.array(reference_steps()[5:12], float), n)
            y = 400 + 0.5 * x + rng.normal(0, 40, n)
        elif case == "no relation":
            y = rng.normal(450, 50, n)
        elif case == "a falling relation":
            y = 600 - 300 * x + rng.normal(0, 30, n)
        else:
            n = int(rng.integers(6, 9))
            x = rng.choice(np.array([59.0, 73.0, 91.0]), n)
            x[:2] = [59.0, 91.0]
            y = 500 - x + rng.normal(0, 20, n)
        resamples = rng.integers(0, n, size=(N_BOOT, n)).astype(np.int64)
        if case == "some resamples draw a single value of x":
            resamples[:12] = int(rng.integers(0, n))  # one seed drawn n times: x is constant
        cases.append(
            {
                "case": case,
                "x": [round(float(v), 6) for v in x],
                "y": [round(float(v), 6) for v in y],
                "resamples": resamples,
            }
        )
    return cases


def _as_three(value, what: str = "(rho, low, high)"):
    array = as_array(value, f"three numbers {what}", ndim=1)
    if len(array) != 3:
        raise AnswerError(f"expected three numbers {what}, got {len(array)}")
    return [float(v) for v in array]


def capture_ex2(function, ctx) -> list:
    import numpy as np

    cases = ctx.inputs("correlations")
    args = [
        (np.array(c["x"], float), np.array(c["y"], float), np.array(c["resamples"], np.int64))
        for c in cases
    ]
    return call_each(function, args, _as_three)


def judge_ex2(got, ctx) -> Verdict:
    cases = ctx.inputs("correlations")
    wrong = []
    for case, item in zip(cases, items(got, len(cases))):
        if isinstance(item, dict):
            wrong.append((case["case"], f"an error ({item.get('error', '?')})"))
            continue
        if not (isinstance(item, list) and len(item) == 3):
            raise AnswerError("captured data is not a list of triples")
        rho, lows, highs = reference_correlation(case["x"], case["y"], case["resamples"])
        got_rho, low, high = item
        if not close(got_rho, rho, 1e-6):
            wrong.append((case["case"], "another correlation"))
        elif not (
            min(lows) - 1e-6 <= low <= max(lows) + 1e-6
            and min(highs) - 1e-6 <= high <= max(highs) + 1e-6
        ):
            shown = (
                "NaN bounds (a resample with no correlation left in?)"
                if math.isnan(low) or math.isnan(high)
                else "another interval"
            )
            wrong.append((case["case"], shown))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        "Spearman's rank correlation of x and y (ties get their average rank), "
        "and the 2.5th and 97.5th percentiles of it over the given resamples (leaving "
        f"out undefined ones); wrong on {len(wrong)} of {len(cases)} test cases, e.g. "
        f"with {case}",
        shown,
    )


# --- ex3: which transition the settling coincides with ------------------------------------------


def reference_settled_with(record: dict) -> list[str]:
    steps = sorted(int(p["step"]) for p in record["timeline"])
    settle = record["mechanism"]["settle_step"]
    if _missing(settle):
        return []
    at = steps.index(int(settle))
    return sorted(
        name
        for name, step in record["mechanism"]["transitions"].items()
        if not _missing(step) and abs(steps.index(int(step)) - at) <= 1
    )


#: (description, settle index, checkpoint index of each transition: "copy", then the stages
#: in `reference_stages()` order: first copy, second copy, lone B; None: it never happened)
RECORD_CASES = (
    (
        "it settles at the drop of P(C | lone B), the copy transition three checkpoints later",
        9,
        (12, 9, 12, 9),
    ),
    (
        "it settles one checkpoint after the copy transition, long after the drop of P(C | lone B)",
        13,
        (12, 6, 12, 6),
    ),
    ("both transitions are within one checkpoint of its settling", 11, (12, 10, 12, 10)),
    (
        "late checkpoints: one checkpoint apart is more than a hundred steps",
        16,
        (15, 14, 15, 14),
    ),
    ("early checkpoints: two checkpoints apart is a few steps", 4, (11, 6, 11, 2)),
    ("the copy transition never happened", 8, (None, 8, None, 8)),
    ("the neuron never settled", None, (12, 9, 12, 9)),
    ("it settles with no transition", 18, (12, 9, 12, 9)),
)


def make_records(rng) -> list[dict]:
    names = ("copy", *reference_stages())
    records = []
    for case, settle, at in RECORD_CASES:
        transitions = dict(zip(names, at, strict=True))
        record = make_record(
            rng, seed=int(rng.integers(1000, 9999)), settle=settle, transitions=transitions
        )
        records.append({"case": case, "record": record})
    order = rng.permutation(len(records))
    return [records[i] for i in order]


def make_record(
    rng,
    seed: int,
    settle: int | None,
    transitions: dict,
    caught: bool | None = None,
    conditions: tuple[str, ...] = ("neuron-whole", "alpha-1"),
) -> dict:
    """One seed's result with the shape `vestige.study` writes (no `coincides_with`): the
    target's timeline falls below half its peak for good at checkpoint index `settle`."""
    from vestige.analysis import unit_name

    steps = list(reference_steps())
    peak_at = int(rng.integers(2, 4)) if settle is None or settle > 4 else 1
    peak = float(rng.uniform(0.15, 0.6))
    effect = []
    for i, _ in enumerate(steps):
        if i == 0:
            value = float(rng.uniform(0.0, 0.03))
        elif i < peak_at:
            value = peak * float(rng.uniform(0.5, 0.9))
        elif i == peak_at:
            value = peak
        elif settle is None or i < settle:
            value = peak * float(rng.uniform(0.55, 0.95))
        else:
            value = peak * float(rng.uniform(0.02, 0.4))
        effect.append(round(value, 6))
    timeline = [
        {
            "step": s,
            "effect": e,
            "effect_low": round(e - 0.03, 6),
            "effect_high": round(e + 0.03, 6),
            "margin_effect": round(1.5 * e, 6),
            "selectivity": round(float(rng.uniform(0.3, 0.9)), 6),
            "matched_selectivity": round(float(rng.uniform(0.0, 0.6)), 6),
        }
        for s, e in zip(steps, effect)
    ]
    settle_step = None if settle is None else steps[settle]
    copy_at = transitions.get("copy")
    transition = None if copy_at is None else float(steps[copy_at] + int(rng.integers(-3, 4)))
    caught = bool(rng.random() < 0.6) if caught is None else caught
    layer, neuron = int(rng.integers(0, 2)), int(rng.integers(0, 32))
    base = _outcome(rng, transition)
    return {
        "preset": "reference",
        "seed": seed,
        "caught": caught,
        "target": {
            "unit": unit_name(layer, neuron),
            "layer": layer,
            "neuron": neuron,
            "caught": caught,
        },
        "timeline": timeline,
        "base": base,
        "mechanism": {
            "transitions": {
                name: (None if i is None else float(steps[i])) for name, i in transitions.items()
            },
            "settle_step": settle_step,
            "end_status": "unused" if rng.random() < 0.5 else "still used (outweighed)",
            "backup_at_end": bool(rng.random() < 0.3),
        },
        "conditions": {
            name: {**_outcome(rng, transition, base), "interventions": []} for name in conditions
        },
    }


def _outcome(rng, transition, base: dict | None = None) -> dict:
    """Made-up values of the study's outcomes (`vestige.study.OUTCOMES`, drawn in its order);
    with `base`, the same seed's values under a condition."""
    from vestige.study import OUTCOMES

    shift = float(rng.normal(0.01, 0.01)) if base else 0.0
    draw = {
        "final_loss": lambda: (
            float(rng.uniform(0.8, 1.0)) if base is None else base["final_loss"] + shift
        ),
        "final_accuracy": lambda: float(rng.uniform(0.78, 0.84)),
        "focus_loss": lambda: float(rng.uniform(0.05, 0.4)),
        "copy_loss": lambda: float(rng.uniform(0.1, 0.5)),
        "budget_loss": lambda: float(rng.uniform(1.0, 1.4)),
        "transition": lambda: (
            transition
            if base is None or transition is None
            else transition + float(rng.integers(-30, 31))
        ),
        "mean_selectivity": lambda: float(rng.uniform(0.2, 0.6)),
    }
    values = {name: draw[name]() for name in OUTCOMES}
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}


def _as_names(value):
    if type(value) not in (list, tuple, set, frozenset):
        raise AnswerError(f"expected a list of transition names, got {type(value).__name__}")
    return sorted(as_text(v, "transition names (strings)") for v in value)


def capture_ex3(function, ctx) -> list:
    import copy

    cases = ctx.inputs("records")
    return call_each(function, [(copy.deepcopy(c["record"]),) for c in cases], _as_names)


def judge_ex3(got, ctx) -> Verdict:
    cases = ctx.inputs("records")
    wrong = []
    for case, item in zip(cases, items(got, len(cases))):
        want = reference_settled_with(case["record"])
        if isinstance(item, dict):
            error = item.get("error", "?")
            hint = (
                " (the test records have no `coincides_with`: compute it)"
                if "coincides_with" in error
                else ""
            )
            wrong.append((case["case"], f"an error ({error}){hint}"))
        elif not isinstance(item, list) or sorted(set(item)) != want:
            wrong.append((case["case"], "other transitions" if item else "none"))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        "the names of the transitions whose checkpoint is at most one checkpoint "
        "(in the timeline's list of steps) from the settle step, none if it never "
        f"settled; wrong on {len(wrong)} of {len(cases)} test records, e.g. when {case}",
        shown,
    )


# --- ex4: a paired difference over seeds --------------------------------------------------------


def reference_paired(results: list[dict], condition: str, outcome: str) -> dict:
    from vestige.stats import mean_ci

    deltas = []
    for r in results:
        changed = r.get("conditions", {}).get(condition, {}).get(outcome)
        base = r["base"].get(outcome)
        if not (_missing(changed) or _missing(base)):
            deltas.append(changed - base)
    return mean_ci(deltas)


PAIRING_CASES = (
    "seeds differ a lot, the change is small and the same in each",
    "some seeds were not trained under the condition",
    "a missing value (null) in one seed",
    "three seeds",
)


def make_pairings(rng) -> list[dict]:
    cases = []
    for case in PAIRING_CASES:
        n = 3 if case == "three seeds" else int(rng.integers(8, 14))
        results = []
        for seed in range(n):
            transition = float(rng.integers(350, 600))
            base = _outcome(rng, transition)
            changed = _outcome(rng, transition, base)
            if case.startswith("seeds differ"):
                base["final_loss"] = round(float(rng.uniform(0.5, 1.5)), 6)
                changed["final_loss"] = round(
                    base["final_loss"] + float(rng.normal(0.02, 0.004)), 6
                )
            results.append(
                {
                    "seed": 100 + seed,
                    "base": base,
                    "conditions": {
                        "neuron-whole": {**changed, "interventions": []},
                        "alpha-1": {**_outcome(rng, transition, base), "interventions": []},
                    },
                }
            )
        outcome = "final_loss"
        if case.startswith("some seeds"):
            for r in results[:3]:
                del r["conditions"]["neuron-whole"]
        if case.startswith("a missing value"):
            outcome = "transition"
            results[1]["conditions"]["neuron-whole"]["transition"] = None
            results[4]["base"]["transition"] = None
        cases.append(
            {"case": case, "results": results, "condition": "neuron-whole", "outcome": outcome}
        )
    return cases


def _as_interval(value):
    if type(value) is dict:  # e.g. vestige.stats.mean_ci's {"n", "mean", "low", "high"}
        try:
            return [as_number(value[k], f"the {k}") for k in ("mean", "low", "high")]
        except KeyError as exc:
            raise AnswerError(f"expected (mean, low, high); the dict has no {exc}") from None
    return _as_three(value, "(mean, low, high)")


def capture_ex4(function, ctx) -> list:
    import copy

    kit = kit_call(function, KIT_FUNCTIONS)
    if kit is not None:
        raise AnswerError(f"your function uses the kit's `{kit}`: pair the seeds yourself")
    cases = ctx.inputs("pairings")
    return call_each(
        function,
        [(copy.deepcopy(c["results"]), c["condition"], c["outcome"]) for c in cases],
        _as_interval,
    )


def judge_ex4(got, ctx) -> Verdict:
    cases = ctx.inputs("pairings")
    wrong = []
    for case, item in zip(cases, items(got, len(cases))):
        want = reference_paired(case["results"], case["condition"], case["outcome"])
        if isinstance(item, dict):
            wrong.append((case["case"], f"an error ({item.get('error', '?')})"))
            continue
        if not (isinstance(item, list) and len(item) == 3):
            raise AnswerError("captured data is not a list of triples")
        mean, low, high = item
        if not close(mean, want["mean"], 1e-6, 1e-6):
            wrong.append((case["case"], "another mean difference"))
        elif not (close(low, want["low"], 1e-6, 1e-5) and close(high, want["high"], 1e-6, 1e-5)):
            half, want_half = (high - low) / 2, (want["high"] - want["low"]) / 2
            shown = "another interval"
            if want_half > 0 and math.isfinite(half):
                shown += f" ({half / want_half:.2f} times as wide as the paired t-interval)"
            wrong.append((case["case"], shown))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        "the mean over seeds of (condition minus the same seed's unchanged run), "
        "with a 95% t-interval, over the seeds that have both values; wrong on "
        f"{len(wrong)} of {len(cases)} test cases, e.g. when {case}",
        shown,
    )


# --- ex5: detours in a training map ---------------------------------------------------------


def reference_detours(paths: list[dict]) -> list[int]:
    """The states some seeds' paths pass through and others' never do (`vestige.maps`'s
    `detour_states`: Hu et al.'s detours), sorted."""
    from collections import Counter

    visits = Counter(state for path in paths for state in set(path["states"]))
    return sorted(int(state) for state, n in visits.items() if n < len(paths))


#: (description, each seed's path as its run of states, before the states are renamed and
#: each state held for a random number of checkpoints)
MAP_CASES = (
    ("every seed takes the same road", ((0, 1, 2),) * 4),
    ("one seed of five passes through a state no other visits", ((0, 1, 2),) * 4 + ((0, 3, 2),)),
    ("every seed but one visits a state", ((0, 1, 2),) * 3 + ((0, 2),)),
    (
        "one seed stays in its detour for many checkpoints",
        ((0, 1, 3, 3, 3, 3, 2),) + ((0, 1, 2),) * 3,
    ),
    ("two seeds take two different detours", ((0, 3, 2), (0, 4, 2), (0, 1, 2), (0, 1, 2))),
    ("a seed comes back to a state it left", ((0, 1, 0, 1, 2),) + ((0, 1, 2),) * 2),
)


def make_maps(rng) -> list[dict]:
    cases = []
    for case, runs in MAP_CASES:
        names = rng.permutation(6)  # state numbers carry no order
        seeds = 1000 + rng.choice(9000, len(runs), replace=False)
        paths = [
            {
                "seed": int(seed),
                "states": [int(names[s]) for s in run for _ in range(int(rng.integers(1, 4)))],
            }
            for seed, run in zip(seeds, runs, strict=True)
        ]
        cases.append({"case": case, "paths": paths})
    return [cases[i] for i in rng.permutation(len(cases))]


def _as_states(value):
    import numpy as np

    if type(value) is np.ndarray and value.ndim == 1:
        value = value.tolist()
    if type(value) not in (list, tuple, set, frozenset):
        raise AnswerError(f"expected a list of state numbers, got {type(value).__name__}")
    states = [as_number(v, "state numbers") for v in value]
    if not all(float(v).is_integer() for v in states):
        raise AnswerError("state numbers are whole numbers")
    return sorted({int(v) for v in states})


def capture_ex5(function, ctx) -> list:
    import copy

    cases = ctx.inputs("maps")
    return call_each(function, [(copy.deepcopy(c["paths"]),) for c in cases], _as_states)


def judge_ex5(got, ctx) -> Verdict:
    cases = ctx.inputs("maps")
    wrong = []
    for case, item in zip(cases, items(got, len(cases))):
        want = reference_detours(case["paths"])
        if isinstance(item, dict):
            wrong.append((case["case"], f"an error ({item.get('error', '?')})"))
        elif item != want:
            wrong.append((case["case"], f"{len(item)} state(s)" if item else "none"))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        "the states that at least one seed's path passes through and at least one other "
        f"seed's never does; wrong on {len(wrong)} of {len(cases)} test maps, e.g. when {case}",
        shown,
    )


MAKERS = {
    "timelines": make_timelines,
    "correlations": make_correlations,
    "records": make_records,
    "pairings": make_pairings,
    "maps": make_maps,
}


# --- predict: how often the study catches ----------------------------------------------------

RATE_OPTIONS = ("under a third", "a third to two thirds", "over two thirds")


def rate_outcome(ctx) -> tuple[str | None, str]:
    """The study's catch rate on its reference seeds, as one of `RATE_OPTIONS`."""
    from vestige.report import load

    try:
        summary, _ = load(str(ctx.study_dir))
        caught, n = int(summary["caught"]), int(summary["n_seeds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, "the study's files are not at hand to compare with"
    rate = caught / n
    shown = (
        RATE_OPTIONS[0] if rate < 1 / 3 else RATE_OPTIONS[1] if rate <= 2 / 3 else RATE_OPTIONS[2]
    )
    return shown, f"the study caught a vestigial neuron in {caught} of its {n} reference seeds"


EXERCISES = (
    prediction("predict", RATE_OPTIONS, rate_outcome, pace=Pace(1, 4, 2)),
    Exercise(
        "ex1",
        points=1,
        pace=Pace(2, 3, 10),
        kind="function",
        capture=capture_ex1,
        judge=judge_ex1,
        hints=(
            "Sort the points by step and leave out step 0 before looking for the largest effect.",
            (
                "'For good' means every later checkpoint is below half the peak too, not only the first "
                "one that dips."
            ),
            (
                "Walk from the peak onwards; return the first step from which all the remaining effects "
                "are below peak / 2, or None if there is none."
            ),
        ),
        success="The same settle step the detector records.",
    ),
    Exercise(
        "ex2",
        points=2,
        pace=Pace(3, 3, 15),
        kind="function",
        capture=capture_ex2,
        judge=judge_ex2,
        hints=(
            (
                "Spearman's correlation is Pearson's correlation of the ranks; tied values share their "
                "average rank (`scipy.stats.rankdata` does that)."
            ),
            (
                "Each row of `resamples` is a list of seed positions: use x[row] and y[row] together, so "
                "pairs stay pairs."
            ),
            (
                "A resample whose x (or y) is constant has no correlation: leave it out "
                "(`np.nanpercentile`), and take the 2.5th and 97.5th percentiles of the rest. The "
                "estimate itself is the correlation on all seeds."
            ),
        ),
        success="An interval over seeds: the seed is the unit that was replicated.",
    ),
    Exercise(
        "ex3",
        points=1,
        pace=Pace(3, 3, 12),
        kind="function",
        capture=capture_ex3,
        judge=judge_ex3,
        hints=(
            (
                "The checkpoints are the steps of the seed's `timeline`, sorted; compare positions in "
                "that list, not step numbers."
            ),
            (
                "A transition counts when |position of its step - position of the settle step| <= 1; "
                "a transition that never happened is None."
            ),
            "A neuron that never settled (settle_step None) coincides with nothing: return [].",
        ),
        success="The study's `coincides_with`, recomputed.",
    ),
    Exercise(
        "ex4",
        points=1,
        pace=Pace(3, 4, 12),
        kind="function",
        capture=capture_ex4,
        judge=judge_ex4,
        hints=(
            (
                "Pair by seed: for each result with the condition, its outcome minus the same result's "
                "`base` outcome; skip seeds where either is None."
            ),
            (
                "The interval is a t-interval over those differences: "
                "mean +- t(0.975, n - 1) * sd(ddof=1) / sqrt(n)."
            ),
            (
                "`scipy.stats.t.ppf(0.975, n - 1)` gives t; `vestige.stats.mean_ci(differences)` does it "
                "all."
            ),
        ),
        success="Pairing removes what the seeds differ in, and keeps what the condition changed.",
    ),
    Exercise(
        "ex5",
        points=1,
        pace=Pace(3, 3, 12),
        kind="function",
        capture=capture_ex5,
        judge=judge_ex5,
        hints=(
            "Count seeds, not checkpoints: a seed that stays in a state for ten checkpoints "
            "visits it once.",
            "A state is a detour when the number of seeds that visit it is above zero and below "
            "the number of seeds.",
            "`collections.Counter(s for p in paths for s in set(p['states']))` counts the seeds "
            "per state.",
        ),
        success="A detour is a road some seeds take and others never do; the map's test asks "
        "whether the seeds that take it differ in anything else.",
    ),
)
