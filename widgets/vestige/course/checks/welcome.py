"""Checks of ``00_welcome``: the final evaluation loss, as a value and as a function.

* ``ex1`` (1 point): ``final_eval_loss``, the eval loss at the last checkpoint of the
  learner's run. The reference is read from the run on disk (``runs_dir``, ``preset``,
  ``seed``), so when grading, with another seed than the learner's, a constant pasted from
  the learner's own output is wrong. Accepted: any real-number type (float32, numpy,
  torch scalars) within 5e-4 nats, i.e. rounded to 3 decimals or better. Refused, with
  feedback naming what was given: the training loss, the loss at another checkpoint, the
  accuracy, a value that only agrees to 2 decimals.
* ``predict`` (1): the learner's guess of an untrained model's loss, among options; any
  option passes, the feedback gives the run's step-0 loss against ln(vocabulary size).
* ``ex2`` (2 points): ``last_eval_loss(metrics)`` for *any* metrics table, run on tables
  made up for the check (hidden ones, generated per submission, when grading): rows
  shuffled, loss rising at the end, training rows logged after the last checkpoint, a
  single checkpoint. That is what tells the right method (the eval row with the largest
  step) from the shortcuts (the last row, the smallest loss, the train split).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from . import AnswerError, Exercise, Pace, Verdict, as_number, call_each, close, prediction

NOTEBOOK = "00_welcome"
RUN_FOLDER = "welcome-{preset}"
LEARNER_SEED = 0  # the notebook's default: grading uses any other seed
EX1_TOLERANCE = 5e-4  # nats: a value rounded to 3 decimals passes, to 2 usually not
EX2_TOLERANCE = 1e-5  # the tables hold 6-decimal values; float32 keeps ~7 digits
PRACTICE_SEED = 20240


class Context:
    """What the checks need: the run's metrics (read-only) and the test tables of ex2."""

    def __init__(self, params: dict, hidden=None):
        self.runs_dir = Path(str(params.get("runs_dir", "../runs")))
        self.preset = str(params.get("preset", "tiny"))
        self.seed = int(params.get("seed", 0))
        self.hidden = hidden

    @property
    def run_dir(self) -> Path:
        from vestige.runs import seed_dir

        return seed_dir(self.runs_dir / RUN_FOLDER.format(preset=self.preset), self.seed)

    @cached_property
    def metrics(self):
        from vestige.runs import Run

        return Run.open(self.run_dir).metrics

    @cached_property
    def tables(self) -> list[tuple[str, object]]:
        """ex2's test tables: (description, DataFrame)."""
        import numpy as np

        specs = (self.hidden or {}).get("tables") if isinstance(self.hidden, dict) else None
        if not specs:
            specs = make_tables(np.random.default_rng(PRACTICE_SEED))
        return [(spec["description"], table_frame(spec)) for spec in specs]


def context(params: dict, hidden=None) -> Context:
    return Context(params, hidden)


def grading_parameters(runs_dir: Path, rng) -> dict:
    """Another seed than the learner's, among the precomputed tiny runs in ``runs_dir``."""
    from vestige.runs import metrics_path, seed_dirs

    folder = Path(runs_dir) / RUN_FOLDER.format(preset="tiny")
    others = [s for s in seed_dirs(folder, holding=metrics_path) if s != LEARNER_SEED]
    if not others:
        raise FileNotFoundError(
            f"no precomputed run of another seed than the notebook's ({LEARNER_SEED}) under "
            f"{folder}: vestige train --preset tiny --seeds 0-3 --out {folder}"
        )
    return {"preset": "tiny", "seed": int(others[int(rng.integers(len(others)))])}


def hidden_inputs(params: dict, rng) -> dict:
    return {"tables": make_tables(rng)}


# --- ex1: the final evaluation loss -----------------------------------------------------------


def capture_ex1(answer, ctx) -> float:
    return as_number(answer, "a number (the loss, in nats)")


def judge_ex1(got, ctx) -> Verdict:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise AnswerError("captured data is not a number")
    metrics = ctx.metrics
    evals = metrics[metrics.split == "eval"].sort_values("step")
    final_step = int(evals.step.iloc[-1])
    want = float(evals.loss.iloc[-1])
    expected = f"the evaluation loss (split 'eval') at the last checkpoint, step {final_step}"
    if close(got, want, EX1_TOLERANCE):
        return Verdict(True)
    shown = f"{got:.4f}"
    for value, what in _wrong_answers(metrics, evals):
        if close(got, value, EX1_TOLERANCE) and not close(value, want, EX1_TOLERANCE):
            return Verdict(False, expected, f"{shown}, which is {what}")
    if close(got, want, 0.005):
        return Verdict(
            False,
            expected,
            shown,
            "It agrees to 2 decimals only: use the value in `metrics`, not a rounded "
            "printout (3 decimals or more).",
        )
    return Verdict(False, expected, shown)


def _wrong_answers(metrics, evals):
    train = metrics[metrics.split == "train"].sort_values("step")
    if len(train):
        yield (
            float(train.loss.iloc[-1]),
            "the training loss at the last logged step (split 'train')",
        )
    if len(evals) > 1:
        yield float(evals.loss.iloc[-2]), "the evaluation loss at the checkpoint before the last"
        yield float(evals.loss.iloc[0]), "the evaluation loss at step 0, before training"
        yield float(evals.loss.min()), "the smallest evaluation loss, not the last one"
    if "accuracy" in evals:
        yield float(evals.accuracy.iloc[-1]), "the final evaluation *accuracy*, not the loss"
    yield float(metrics.loss.iloc[-1]), "the loss in the table's last row"


# --- ex2: a function for any metrics table ----------------------------------------------------


def reference_last_eval_loss(table) -> float:
    evals = table[table.split == "eval"]
    return float(evals.loc[evals.step.idxmax(), "loss"])


def capture_ex2(function, ctx) -> list:
    return call_each(
        function,
        [(table.copy(),) for _, table in ctx.tables],
        lambda value: as_number(value, "a number"),
    )


def judge_ex2(got, ctx) -> Verdict:
    tables = ctx.tables
    if not isinstance(got, list) or len(got) != len(tables):
        raise AnswerError("captured data does not have one result per table")
    wrong = []
    for item, (description, table) in zip(got, tables):
        want = reference_last_eval_loss(table)
        if isinstance(item, dict):
            wrong.append((description, table, f"an error ({item.get('error', '?')})"))
        elif not isinstance(item, (int, float)) or isinstance(item, bool):
            wrong.append((description, table, "something that is not a number"))
        elif not close(float(item), want, EX2_TOLERANCE, EX2_TOLERANCE):
            wrong.append((description, table, f"{float(item):.4f}"))
    if not wrong:
        return Verdict(True)
    description, table, shown = wrong[0]
    last = int(table.loc[table.split == "eval", "step"].max())
    return Verdict(
        False,
        f"on every test table the eval loss at its largest step; wrong on {len(wrong)} of "
        f"{len(tables)} tables, e.g. one where {description} (the last checkpoint there is "
        f"step {last})",
        shown,
    )


# --- the test tables --------------------------------------------------------------------------

CASES = (
    "rows are in step order and the loss falls",
    "rows are shuffled",
    "the eval loss rises after its minimum",
    "training rows were logged after the last checkpoint",
    "there is a single checkpoint",
    "rows are sorted by loss",
)


def make_tables(rng) -> list[dict]:
    """One table per case in ``CASES``, as plain data (columns of lists)."""
    return [_table(rng, case) for case in CASES]


def _table(rng, case: str) -> dict:
    import numpy as np

    n_checkpoints = 1 if case == "there is a single checkpoint" else int(rng.integers(4, 8))
    last = int(rng.integers(40, 400))
    eval_steps = sorted(
        {0, last, *(int(s) for s in rng.integers(1, last, n_checkpoints - 2))}
        if n_checkpoints > 1
        else {last}
    )
    start = float(rng.uniform(3.0, 4.0))
    floor = float(rng.uniform(0.8, 1.6))
    eval_loss = [floor + (start - floor) * float(np.exp(-4.0 * s / last)) for s in eval_steps]
    if case == "the eval loss rises after its minimum" and len(eval_loss) > 2:
        eval_loss[-1] = eval_loss[-2] + float(rng.uniform(0.05, 0.3))
    train_end = last
    if case == "training rows were logged after the last checkpoint":
        train_end += int(rng.integers(5, 40))
    train_steps = list(range(0, train_end + 1, max(1, last // 12)))
    train_loss = [
        floor + (start - floor) * float(np.exp(-4.0 * s / last)) + float(rng.uniform(0.02, 0.2))
        for s in train_steps
    ]
    rows = [("train", s, loss) for s, loss in zip(train_steps, train_loss)] + [
        ("eval", s, loss) for s, loss in zip(eval_steps, eval_loss)
    ]
    rows.sort(key=lambda r: (r[1], r[0] == "eval"))
    if case == "rows are shuffled":
        order = rng.permutation(len(rows))
        rows = [rows[i] for i in order]
    elif case == "rows are sorted by loss":
        rows.sort(key=lambda r: r[2])
    return {
        "description": case,
        "split": [r[0] for r in rows],
        "step": [int(r[1]) for r in rows],
        "loss": [round(float(r[2]), 6) for r in rows],
        "accuracy": [round(float(1.0 / (1.0 + r[2])), 6) for r in rows],
    }


def table_frame(spec: dict):
    import pandas as pd

    return pd.DataFrame({k: spec[k] for k in ("split", "step", "loss", "accuracy")})


# --- predict: an untrained model's loss -------------------------------------------------------

UNTRAINED_OPTIONS = ("about 0", "about 1", "about ln(vocabulary size)")


def untrained_outcome(ctx) -> tuple[str, str]:
    """The option nearest the run's evaluation loss at step 0."""
    import math

    from vestige.runs import Run

    run = Run.open(ctx.run_dir)
    evals = run.metrics.query("split == 'eval'")
    loss = float(evals.loc[evals.step.idxmin(), "loss"])
    chance = math.log(run.task.vocab)
    values = dict(zip(UNTRAINED_OPTIONS, (0.0, 1.0, chance)))
    shown = min(values, key=lambda option: abs(values[option] - loss))
    return shown, (
        f"its evaluation loss at step 0 is {loss:.2f} nats, and ln {run.task.vocab} = "
        f"{chance:.2f}: an untrained model spreads its bet over every token"
    )


EXERCISES = (
    prediction("predict", UNTRAINED_OPTIONS, untrained_outcome, pace=Pace(1, 2, 2)),
    Exercise(
        "ex1",
        points=1,
        pace=Pace(1, 3, 3),
        capture=capture_ex1,
        judge=judge_ex1,
        hints=(
            (
                'Keep the rows of `metrics` whose `split` is "eval": they are measured on the '
                "evaluation batch, at the checkpoints."
            ),
            (
                "The last checkpoint is the eval row with the largest `step`; take its `loss` "
                "(not the last row of the table, not the smallest loss)."
            ),
            (
                'For example `evals = metrics[metrics.split == "eval"]`, then the `loss` in the '
                "row `evals.step.idxmax()`, as a float."
            ),
        ),
        success="That is the loss the model ends with on data it never trained on.",
    ),
    Exercise(
        "ex2",
        points=2,
        pace=Pace(2, 3, 8),
        kind="function",
        capture=capture_ex2,
        judge=judge_ex2,
        hints=(
            "Your function gets a whole metrics table: keep its eval rows first.",
            (
                "Do not rely on the order of the rows: the test tables include shuffled ones, and "
                "ones where the loss goes up at the end."
            ),
            (
                "Pick the eval row with the largest `step` (e.g. with `idxmax`) and return its "
                "`loss` as a float."
            ),
        ),
        success="It works on any run's table, whatever the order of its rows.",
    ),
)
