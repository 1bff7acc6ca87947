"""Checks of ``05_training``: a config, the log-spaced checkpoint schedule, and how much two
seeds of one config differ.

* ``predict`` (1): which training loss falls half way first, trigger or copy positions;
  any option passes, the feedback gives seed A's two steps.
* ``ex1`` (1): ``longer``, the preset with twice as many training steps and half the
  learning rate, everything else unchanged (a ``RunConfig``; its ``name`` may differ).
  Only a real ``RunConfig`` is accepted (converted with ``to_dict``); the judge names the
  first field that is off, and recognises the usual slips (only one change made, steps or
  learning rate scaled the wrong way, a fresh ``RunConfig()`` instead of the preset's).
* ``ex2`` (2): ``log_schedule(total, first, n_log)``, the checkpoint steps of
  ``CheckpointConfig`` written by hand, run on hidden (total, first, n_log) cases: the
  tiny and reference presets' own, ``first=1`` (rounding gives repeats), ``first >=
  total``, ``n_log=1``, long runs (a ``set`` turned into a list comes out unsorted). Any
  rounding to the nearest step passes (half-even, half-up, ``np.geomspace``); truncation,
  linear spacing, a missing 0 or end, repeats do not. Calling ``CheckpointConfig`` or
  ``checkpoint_steps`` is refused: the exercise is to write it.
* ``ex3`` (1): ``class_gaps``, per class of position, seed B's final evaluation loss minus
  seed A's (a dict or a pandas Series; keys ``trigger`` or ``loss_trigger``). Read from the
  two runs on disk, so when grading with another pair of seeds, numbers pasted from the
  learner's own output are wrong. Recognised: the reversed sign, absolute values (where a
  sign differs), the training split, step 0, the gaps of the notebook's default seeds.
* ``ex4`` (2): ``largest_gap_step(metrics_a, metrics_b)``, the checkpoint at which the two
  runs' evaluation losses differ most (in absolute value, on the steps both have); hidden
  table pairs: shuffled rows, seed B below seed A at the largest gap, training rows with
  bigger gaps elsewhere, an extra checkpoint in the middle of one run, one run stopped early.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path

from . import (
    AnswerError,
    Exercise,
    Pace,
    Verdict,
    _type_name,
    as_array,
    as_number,
    as_text,
    call_each,
    close,
    items,
    kit_call,
    prediction,
)

NOTEBOOK = "05_training"
RUN_FOLDER = "training-{preset}"
LEARNER_SEEDS = (0, 1)  # the notebook's defaults: grading uses two other seeds
PRACTICE_SEED = 5050
GAP_TOLERANCE = 5e-4  # nats: 3 decimals or better
KIT_FUNCTIONS = ("CheckpointConfig", "checkpoint_steps", "PRESETS", "preset", "RunConfig")


class Context:
    """The two runs of the learner's seeds (read-only) and the test inputs of ex2 and ex4."""

    def __init__(self, params: dict, hidden=None):
        self.runs_dir = Path(str(params.get("runs_dir", "../runs")))
        self.preset = str(params.get("preset", "tiny"))
        self.seed_a = int(params.get("seed_a", LEARNER_SEEDS[0]))
        self.seed_b = int(params.get("seed_b", LEARNER_SEEDS[1]))
        self.hidden = hidden if isinstance(hidden, dict) else None

    def run_dir(self, seed: int) -> Path:
        from vestige.runs import seed_dir

        return seed_dir(self.runs_dir / RUN_FOLDER.format(preset=self.preset), seed)

    def metrics(self, seed: int):
        from vestige.runs import Run

        if seed not in self._metrics:
            self._metrics[seed] = Run.open(self.run_dir(seed)).metrics
        return self._metrics[seed]

    @cached_property
    def _metrics(self) -> dict:
        return {}

    @cached_property
    def expected_config(self) -> dict:
        return expected_longer(self.preset)

    def inputs(self, key: str, make):
        import numpy as np

        if self.hidden and key in self.hidden:
            return self.hidden[key]
        return make(np.random.default_rng(PRACTICE_SEED))


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def grading_parameters(runs_dir: Path, rng) -> dict:
    """Two precomputed tiny seeds, neither of them the notebook's (0, 1), in random order."""
    from vestige.runs import metrics_path, seed_dirs

    folder = Path(runs_dir) / RUN_FOLDER.format(preset="tiny")
    seeds = [s for s in seed_dirs(folder, holding=metrics_path) if s not in LEARNER_SEEDS]
    if len(seeds) < 2:
        raise FileNotFoundError(
            f"05_training is graded against two precomputed tiny runs other than the "
            f"notebook's seeds {LEARNER_SEEDS} under {folder}: "
            f"vestige train --preset tiny --seeds 0-3 --out {folder}"
        )
    pairs = [(a, b) for a in seeds for b in seeds if a != b]
    a, b = pairs[int(rng.integers(len(pairs)))]
    return {"preset": "tiny", "seed_a": int(a), "seed_b": int(b)}


def hidden_inputs(params: dict, rng) -> dict:
    return {"schedules": make_schedules(rng), "pairs": make_pairs(rng)}


# --- ex1: a config ------------------------------------------------------------------------------


def expected_longer(preset: str) -> dict:
    import dataclasses

    from vestige.config import preset as named

    base = named(preset)
    train = dataclasses.replace(base.train, steps=2 * base.train.steps, lr=base.train.lr / 2)
    return json.loads(base.replace(train=train).to_json())  # lists, as in captured data


def capture_ex1(answer, ctx) -> dict:
    from vestige.config import RunConfig
    from vestige.course import plain

    if type(answer) is not RunConfig:
        raise AnswerError(
            f"expected a RunConfig (e.g. made with `config.replace(...)`), got {_type_name(answer)}"
        )
    try:
        answer.validate()
        data = answer.to_dict()
        plain.encode(data)
    except ValueError as exc:  # validation errors, and values that are not plain data
        raise AnswerError(f"the config is not valid: {exc}") from None
    return data


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return close(float(a), float(b), 0.0, 1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def judge_ex1(got, ctx) -> Verdict:
    if not isinstance(got, dict):
        raise AnswerError("captured data is not a config")
    want = _flatten(ctx.expected_config)
    have = _flatten(got)
    expected = (
        f"the `{ctx.preset}` preset with twice as many training steps and half its "
        "learning rate, every other field as in the preset"
    )
    base = _flatten(_preset_dict(ctx.preset))
    steps, lr = have.get("train.steps"), have.get("train.lr")
    if isinstance(steps, float) and float(steps).is_integer():
        return Verdict(
            False,
            expected,
            f"train.steps = {steps!r}, a float",
            "A number of steps is a whole number: use an int.",
        )
    wrong = sorted(
        k for k in set(want) | set(have) if k != "name" and not _same(want.get(k), have.get(k))
    )
    if not wrong:
        return Verdict(True)
    others = [k for k in wrong if k not in ("train.steps", "train.lr")]
    if others:
        got_text = (
            f"{others[0]} = {have.get(others[0])!r}, where the preset has {base.get(others[0])!r}"
        )
        note = (
            "Start from the preset (`vestige.preset(...)`), not from `RunConfig()`, and change "
            "only `train`."
            if len(others) > 2
            else "Change only the training steps and the learning rate."
        )
        return Verdict(False, expected, got_text, note)
    problems = []
    if "train.steps" in wrong:
        what = {
            base["train.steps"]: "the preset's own",
            base["train.steps"] // 2: "half the preset's",
        }
        problems.append(
            f"train.steps = {steps!r} ({what.get(steps, 'not twice the preset')})"
            if not isinstance(steps, bool)
            else "train.steps is not a number"
        )
    if "train.lr" in wrong:
        lr_base = base["train.lr"]
        what = (
            "the preset's own"
            if _same(lr, lr_base)
            else "twice the preset's"
            if _same(lr, 2 * lr_base)
            else "not half the preset's"
        )
        problems.append(f"train.lr = {lr!r} ({what})")
    return Verdict(False, expected, "; ".join(problems))


def _preset_dict(preset: str) -> dict:
    from vestige.config import preset as named

    return json.loads(named(preset).to_json())


# --- ex2: the checkpoint schedule ---------------------------------------------------------------


def reference_schedules(total: int, first: int, n_log: int) -> list[list[int]]:
    """The schedule with each accepted rounding (Python's half-even, half-up, np.geomspace)."""
    import numpy as np

    out = []
    for rounding in ("even", "up", "geomspace"):
        steps = {0, total}
        if first < total:
            if rounding == "geomspace":
                values = np.geomspace(first, total, n_log) if n_log > 1 else np.array([first])
                steps.update(int(v) for v in np.round(values))
            else:
                ratio = (total / first) ** (1 / max(n_log - 1, 1))
                values = [first * ratio**i for i in range(n_log)]
                steps.update(
                    round(v) if rounding == "even" else math.floor(v + 0.5) for v in values
                )
        out.append(sorted(steps))
    return out


SCHEDULE_CASES = (
    "the tiny preset's schedule",
    "the reference preset's schedule",
    "first = 1: rounding gives the same step more than once",
    "first is not below the total",
    "a single log-spaced step (n_log = 1)",
    "a long run",
    "a short run with many checkpoints",
)


def make_schedules(rng) -> list[dict]:
    cases = []
    for case in SCHEDULE_CASES:
        if case == "the tiny preset's schedule":
            total, first, n_log = 60, 5, 4
        elif case == "the reference preset's schedule":
            total, first, n_log = 1500, 25, 20
        elif case.startswith("first = 1"):
            total, first, n_log = int(rng.integers(40, 120)), 1, int(rng.integers(14, 24))
        elif case == "first is not below the total":
            total = int(rng.integers(20, 80))
            first, n_log = total + int(rng.integers(0, 10)), int(rng.integers(3, 8))
        elif case.startswith("a single"):
            total, first, n_log = int(rng.integers(100, 400)), int(rng.integers(3, 30)), 1
        elif case == "a long run":
            total, first, n_log = (
                int(rng.integers(3000, 20000)),
                int(rng.integers(8, 60)),
                int(rng.integers(10, 16)),
            )
        else:
            total, first, n_log = (
                int(rng.integers(30, 60)),
                int(rng.integers(2, 4)),
                int(rng.integers(12, 20)),
            )
        cases.append({"case": case, "total": total, "first": first, "n_log": n_log})
    return cases


def _as_steps(value):
    import numpy as np

    if isinstance(value, (set, frozenset)):
        raise AnswerError("expected a list of steps in ascending order, got a set (unordered)")
    array = as_array(value, "a list of steps", ndim=1)
    if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
        raise AnswerError("expected whole-number steps")
    return [int(v) for v in array]


def capture_ex2(function, ctx) -> list:
    kit = kit_call(function, KIT_FUNCTIONS)
    if kit is not None:
        raise AnswerError(f"your function uses the kit's `{kit}`: write the schedule yourself")
    cases = ctx.inputs("schedules", make_schedules)
    return call_each(function, [(c["total"], c["first"], c["n_log"]) for c in cases], _as_steps)


def judge_ex2(got, ctx) -> Verdict:
    cases = ctx.inputs("schedules", make_schedules)
    wrong = []
    for case, item in zip(cases, items(got, len(cases))):
        accepted = reference_schedules(case["total"], case["first"], case["n_log"])
        if isinstance(item, dict):
            wrong.append((case, f"an error ({item.get('error', '?')})"))
        elif not isinstance(item, list) or item not in accepted:
            wrong.append((case, _describe_schedule(item, accepted[0], case)))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        f"on every test case step 0, n_log log-spaced steps from `first` to `total` rounded to "
        f"whole steps, and `total`, each once, ascending; wrong on {len(wrong)} of {len(cases)}, "
        f"e.g. {case['case']} (total={case['total']}, first={case['first']}, n_log={case['n_log']})",
        shown,
    )


def _describe_schedule(item, want: list[int], case: dict) -> str:
    if not isinstance(item, list) or not all(isinstance(v, int) for v in item):
        return "something that is not a list of steps"
    if item != sorted(item):
        return "steps that are not in ascending order"
    if len(set(item)) < len(item):
        return "a step listed twice"
    if 0 not in item:
        return "a schedule without step 0"
    if case["total"] not in item:
        return "a schedule without the last step"
    if set(item) > set(want):
        return f"{len(item)} steps, with some the schedule does not have"
    if set(item) < set(want):
        return f"{len(item)} steps, {len(want) - len(item)} fewer than the schedule"
    return f"{len(item)} steps, not all of them the schedule's"


# --- ex3: per-class gaps between two seeds ------------------------------------------------------


def _class_names(metrics) -> list[str]:
    return [c[5:] for c in metrics.columns if c.startswith("loss_")]


def final_eval(metrics, position: int = -1, split: str = "eval"):
    rows = metrics[metrics.split == split].sort_values("step")
    return rows.iloc[position]


def reference_gaps(ma, mb, position: int = -1, split: str = "eval") -> dict[str, float]:
    a, b = final_eval(ma, position, split), final_eval(mb, position, split)
    out = {}
    for name in sorted(set(_class_names(ma)) & set(_class_names(mb))):
        va, vb = float(a[f"loss_{name}"]), float(b[f"loss_{name}"])
        if math.isfinite(va) and math.isfinite(vb):
            out[name] = vb - va
    return out


def capture_ex3(answer, ctx) -> dict:
    import pandas as pd

    if type(answer) is dict or type(answer) is pd.Series:
        entries = list(answer.items())
    else:
        raise AnswerError(
            f"expected a dict or a pandas Series (class -> loss gap), got {_type_name(answer)}"
        )
    out = {}
    for key, value in entries:
        name = as_text(key, "class names as keys")
        if name in ("step", "split", "lr", "accuracy", "loss"):
            continue  # a whole-row difference: only the per-class entries count
        out[name.removeprefix("loss_")] = as_number(value, f"a loss gap for {name!r}")
    return out


def judge_ex3(got, ctx) -> Verdict:
    if not isinstance(got, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in got.values()
    ):
        raise AnswerError("captured data is not a mapping of numbers")
    ma, mb = ctx.metrics(ctx.seed_a), ctx.metrics(ctx.seed_b)
    want = reference_gaps(ma, mb)
    expected = (
        f"for each class of position, seed {ctx.seed_b}'s evaluation loss at the last "
        f"checkpoint minus seed {ctx.seed_a}'s"
    )
    missing = sorted(set(want) - set(got))
    if missing:
        return Verdict(False, expected, f"no value for {', '.join(missing)}")
    if all(close(got[k], w, GAP_TOLERANCE) for k, w in want.items()):
        return Verdict(True)
    shown = f"other values (e.g. {_first_off(got, want)})"
    for values, what in _wrong_gaps(ctx, ma, mb, want):
        if all(close(got[k], v, GAP_TOLERANCE) for k, v in values.items() if k in want) and values:
            return Verdict(False, expected, f"{shown}, which are {what}")
    if all(close(got[k], w, 0.005) for k, w in want.items()):
        return Verdict(
            False,
            expected,
            shown,
            "They agree to 2 decimals only: use the values in "
            "the metrics tables, not a rounded printout.",
        )
    return Verdict(False, expected, shown)


def _first_off(got: dict, want: dict) -> str:
    for key, value in want.items():
        if not close(got[key], value, GAP_TOLERANCE):
            return f"{key}: {got[key]:+.4f}"
    return "?"


def _wrong_gaps(ctx, ma, mb, want):
    yield {k: -v for k, v in want.items()}, f"seed {ctx.seed_a} minus seed {ctx.seed_b} (reversed)"
    yield {k: abs(v) for k, v in want.items()}, "absolute values: the sign says which seed is ahead"
    yield reference_gaps(ma, mb, split="train"), "the gaps on the training split's last logged step"
    yield reference_gaps(ma, mb, position=0), "the gaps at step 0, before training"
    if len(ma[ma.split == "eval"]) > 2:
        yield reference_gaps(ma, mb, position=-2), "the gaps at the checkpoint before the last"
    if (ctx.seed_a, ctx.seed_b) != LEARNER_SEEDS:
        try:
            other = reference_gaps(ctx.metrics(LEARNER_SEEDS[0]), ctx.metrics(LEARNER_SEEDS[1]))
        except Exception:
            other = {}
        if other:
            yield (
                other,
                (
                    f"seed {LEARNER_SEEDS[1]} minus seed {LEARNER_SEEDS[0]} (the notebook's "
                    f"default seeds), not the seeds this check is for"
                ),
            )


# --- ex4: the checkpoint with the largest gap ---------------------------------------------------


def reference_largest_gap_step(ma, mb) -> int:
    a = ma[ma.split == "eval"][["step", "loss"]]
    b = mb[mb.split == "eval"][["step", "loss"]]
    both = a.merge(b, on="step", suffixes=("_a", "_b"))
    gap = (both.loss_b - both.loss_a).abs()
    return int(both.step[gap.idxmax()])


PAIR_CASES = (
    "rows in step order, seed B above seed A at the largest gap",
    "seed B below seed A at the largest gap",
    "rows shuffled",
    "training rows differ more at other steps",
    "run A has an extra checkpoint in the middle",
    "run B stopped early: its last checkpoints are missing",
)


def make_pairs(rng) -> list[dict]:
    return [_pair(rng, case) for case in PAIR_CASES]


def _pair(rng, case: str) -> dict:
    import numpy as np

    from vestige.config import CheckpointConfig

    total = int(rng.integers(60, 600))
    steps = CheckpointConfig(first=int(rng.integers(3, 10)), n_log=int(rng.integers(6, 10))).steps(
        total
    )
    while True:
        start, floor = float(rng.uniform(3.0, 3.6)), float(rng.uniform(1.0, 1.6))
        rate_a, rate_b = float(rng.uniform(3, 6)), float(rng.uniform(3, 6))
        curve_a = [floor + (start - floor) * math.exp(-rate_a * s / total) for s in steps]
        curve_b = [floor + 0.03 + (start - floor) * math.exp(-rate_b * s / total) for s in steps]
        # a bump in one run: the largest gap, at a checkpoint in the middle
        at = int(rng.integers(2, len(steps) - 2))
        bump = float(rng.uniform(0.3, 0.6))
        if case == "seed B below seed A at the largest gap":
            curve_a[at] += bump
        else:
            curve_b[at] += bump
        gaps = np.abs(np.array(curve_b) - np.array(curve_a))
        order = np.sort(gaps)
        if order[-1] - order[-2] > 0.05:
            break
    eval_a = list(zip(steps, curve_a))
    eval_b = list(zip(steps, curve_b))
    if case == "run A has an extra checkpoint in the middle":
        # between two checkpoints at least 2 steps apart, before the largest gap
        j = next(j for j in range(at, 0, -1) if steps[j] - steps[j - 1] >= 2)
        extra = (steps[j - 1] + steps[j]) // 2
        eval_a.append((extra, (curve_a[j - 1] + curve_a[j]) / 2 + 0.7))
        eval_a.sort()
    if case == "run B stopped early: its last checkpoints are missing":
        eval_b = [(s, v) for s, v in eval_b if s <= steps[at + 1]]
        eval_a[-1] = (eval_a[-1][0], eval_a[-1][1] - 0.9)  # a big gap B never reached
    train_end = max(s for s, _ in eval_b)
    train_steps = list(range(0, train_end + 1, max(1, total // 20)))
    noise = 0.35 if case == "training rows differ more at other steps" else 0.05
    train_a = [(s, _interp(eval_a, s) + float(rng.uniform(0, 0.05))) for s in train_steps]
    train_b = [(s, _interp(eval_b, s) + float(rng.uniform(0, noise))) for s in train_steps]
    if case == "training rows differ more at other steps":
        far = max(train_steps, key=lambda s: abs(s - steps[at]))
        train_b = [(s, v + (1.5 if s == far else 0.0)) for s, v in train_b]
    tables = []
    for evals, train in ((eval_a, train_a), (eval_b, train_b)):
        rows = [("train", s, v) for s, v in train] + [("eval", s, v) for s, v in evals]
        rows.sort(key=lambda r: (r[1], r[0] == "eval"))
        if case == "rows shuffled":
            rows = [rows[i] for i in rng.permutation(len(rows))]
        tables.append(
            {
                "split": [r[0] for r in rows],
                "step": [int(r[1]) for r in rows],
                "loss": [round(float(r[2]), 6) for r in rows],
                "accuracy": [round(1 / (1 + float(r[2])), 6) for r in rows],
            }
        )
    return {"case": case, "a": tables[0], "b": tables[1]}


def _interp(points: list[tuple[int, float]], step: int) -> float:
    import numpy as np

    points = sorted(points)
    return float(np.interp(step, [p[0] for p in points], [p[1] for p in points]))


def pair_frames(pair: dict):
    import pandas as pd

    return tuple(
        pd.DataFrame({k: pair[key][k] for k in ("split", "step", "loss", "accuracy")})
        for key in ("a", "b")
    )


def capture_ex4(function, ctx) -> list:
    pairs = ctx.inputs("pairs", make_pairs)
    args = [tuple(frame.copy() for frame in pair_frames(p)) for p in pairs]
    return call_each(function, args, lambda v: as_number(v, "a step"))


def judge_ex4(got, ctx) -> Verdict:
    pairs = ctx.inputs("pairs", make_pairs)
    wrong = []
    for pair, item in zip(pairs, items(got, len(pairs))):
        ma, mb = pair_frames(pair)
        want = reference_largest_gap_step(ma, mb)
        if isinstance(item, dict):
            wrong.append((pair["case"], f"an error ({item.get('error', '?')})"))
        elif not isinstance(item, (int, float)) or isinstance(item, bool) or item != want:
            shown = "another step"
            if isinstance(item, (int, float)) and not float(item).is_integer():
                shown = f"{item:.4f}, a loss difference rather than a step"
            wrong.append((pair["case"], shown))
    if not wrong:
        return Verdict(True)
    case, shown = wrong[0]
    return Verdict(
        False,
        "on every test pair the step of the checkpoint (eval rows) where the two "
        f"losses differ most in absolute value, among the steps both runs have; wrong "
        f"on {len(wrong)} of {len(pairs)}, e.g. when {case}",
        shown,
    )


# --- predict: which loss falls first ----------------------------------------------------------

FIRST_OPTIONS = ("trigger", "copy", "together")


def first_outcome(ctx) -> tuple[str, str]:
    """Which of seed A's trigger and copy losses falls first, each dated by the kit's
    `transition_step` (together: within a tenth of the run's steps, or either never falls)."""
    from vestige.analysis import transition_step
    from vestige.runs import Run

    run = Run.open(ctx.run_dir(ctx.seed_a))
    trigger, copy = (transition_step(run, f"loss_{name}") for name in ("trigger", "copy"))
    if (
        math.isnan(trigger)
        or math.isnan(copy)
        or abs(trigger - copy) <= run.config.train.steps / 10
    ):
        shown = "together"
    else:
        shown = "trigger" if trigger < copy else "copy"
    return shown, (
        f"seed {ctx.seed_a}'s training loss falls half way at step {trigger:.0f} on trigger "
        f"positions and at step {copy:.0f} on copy positions (NaN: it never falls by a quarter)"
    )


EXERCISES = (
    prediction("predict", FIRST_OPTIONS, first_outcome, pace=Pace(1, 3, 2)),
    Exercise(
        "ex1",
        points=1,
        pace=Pace(1, 3, 5),
        capture=capture_ex1,
        judge=judge_ex1,
        hints=(
            "The config is frozen: make a changed copy. The training settings live in `config.train`.",
            (
                "`dataclasses.replace(config.train, steps=..., lr=...)` gives a new TrainConfig; hand it "
                "to `config.replace(train=...)`."
            ),
            (
                "Twice the steps: `2 * config.train.steps` (an int); half the learning rate: "
                "`config.train.lr / 2`. Nothing else changes."
            ),
        ),
        success="A config is plain data: `longer.to_json()` is all it takes to retrain it.",
    ),
    Exercise(
        "ex2",
        points=2,
        pace=Pace(3, 3, 12),
        kind="function",
        capture=capture_ex2,
        judge=judge_ex2,
        hints=(
            (
                "Log-spaced: each step is the previous one times the same ratio, "
                "ratio = (total / first) ** (1 / (n_log - 1))."
            ),
            (
                "Round each value to the nearest whole step (`round`, not `int`), add 0 and `total`, drop "
                "repeats and sort. When `first >= total` there are only 0 and `total`."
            ),
            "With n_log = 1 the only log-spaced step is `first` itself (divide by max(n_log - 1, 1)).",
        ),
        success="The same schedule `CheckpointConfig.steps` gives.",
    ),
    Exercise(
        "ex3",
        points=1,
        pace=Pace(2, 2, 6),
        capture=capture_ex3,
        judge=judge_ex3,
        hints=(
            "Take each run's evaluation row (split 'eval') at its last checkpoint, the largest step.",
            "The per-class losses are the columns `loss_<class>`; subtract seed A's from seed B's.",
            "For example `(last_b[cols] - last_a[cols])` with `cols` the `loss_` columns, a Series.",
        ),
        success="Same config, same data, another seed: the gaps are what chance alone does.",
    ),
    Exercise(
        "ex4",
        points=2,
        pace=Pace(3, 2, 10),
        kind="function",
        capture=capture_ex4,
        judge=judge_ex4,
        hints=(
            "Keep the eval rows of each table, and pair them by `step` (not by row position).",
            (
                '`a.merge(b, on="step")` keeps the steps both runs have; the gap is the absolute '
                "difference of the two losses."
            ),
            "Return the step of the largest absolute gap (e.g. with `idxmax`), not the gap itself.",
        ),
        success="Now you know where in training two seeds part ways the most.",
    ),
)
