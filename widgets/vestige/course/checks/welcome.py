"""Checks of ``00_welcome``: a checkpoint opened by hand, and the final evaluation loss of
any run.

* ``ex1`` (1 point): ``p_true``, the average probability the untrained model (checkpoint 0)
  gives to the true next token over the scored positions of the evaluation batch. The
  reference is computed from the run on disk (``runs_dir``, ``preset``, ``seed``), so when
  grading, with another seed than the learner's, a constant pasted from the learner's own
  output is wrong. Accepted: any real-number type within 0.2% (3 significant digits or
  better). Refused, with feedback naming what was given: the same mean over every position
  (mask ignored), without the shift (the token at t, not t + 1), at the last checkpoint,
  exp(-loss) (the geometric mean), 1 / vocabulary size, the accuracy at step 0.
* ``predict`` (1): the learner's guess of an untrained model's loss, among options; any
  option passes, the feedback gives the run's step-0 loss against ln(vocabulary size).
* ``ex2`` (2 points): ``last_eval_loss(metrics)`` for *any* metrics table, run on tables
  made up for the check (hidden ones, generated per submission, when grading): rows
  shuffled, loss rising at the end, training rows logged after the last checkpoint, a
  single checkpoint. That is what tells the right method (the eval row with the largest
  step) from the shortcuts (the last row, the smallest loss, the train split).
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

from . import AnswerError, Exercise, Pace, Verdict, as_number, call_each, close, prediction

NOTEBOOK = "00_welcome"
RUN_FOLDER = "welcome-{preset}"
LEARNER_SEED = 0  # the notebook's default: grading uses any other seed
EX1_RTOL = 2e-3  # a probability rounded to 3 significant digits passes, to 2 usually not
EX2_TOLERANCE = 1e-5  # the tables hold 6-decimal values; float32 keeps ~7 digits
PRACTICE_SEED = 20240


class Context:
    """What the checks need: the run (read-only) and the test tables of ex2."""

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
    def run(self):
        from vestige.runs import Run

        return Run.open(self.run_dir)

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


# --- ex1: the untrained model's probability of the true next token -----------------------------


def capture_ex1(answer, ctx) -> float:
    return as_number(answer, "a probability (a number from 0 to 1)")


def true_token_probabilities(model, batch):
    """P(true next token) at each position but the last, and the last position's row dropped
    from the loss mask: ([batch, seq - 1], [batch, seq - 1])."""
    import torch

    from vestige.metrics import per_position_loss

    with torch.no_grad():
        loss_at, _ = per_position_loss(model(batch.tokens), batch.tokens)
    return loss_at[:, :-1].neg().exp(), batch.loss_mask[:, :-1]


def judge_ex1(got, ctx) -> Verdict:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        raise AnswerError("captured data is not a number")
    run, batch = ctx.run, ctx.run.eval_batch
    p_next, scored = true_token_probabilities(run.model_at(0), batch)
    want = float(p_next[scored].mean())
    expected = (
        "the mean, over the scored positions of the evaluation batch, of the probability the "
        "model at step 0 gives to the true next token"
    )
    if close(got, want, 0.0, EX1_RTOL):
        trained, _ = true_token_probabilities(run.model_at(run.steps[-1]), batch)
        return Verdict(
            True,
            note=(
                f"1 / vocabulary size is {1 / run.task.vocab:.4f}: the untrained model spreads "
                f"its bet over every token. At the last checkpoint (step {run.steps[-1]}) the "
                f"same mean is {float(trained[scored].mean()):.3f}."
            ),
        )
    shown = f"{got:.5f}"
    for value, what in _wrong_ex1(run, batch, p_next, scored):
        if close(got, value, 0.0, EX1_RTOL) and not close(value, want, 0.0, EX1_RTOL):
            return Verdict(False, expected, f"{shown}, which is {what}")
    if close(got, want, 0.0, 0.02):
        return Verdict(
            False,
            expected,
            shown,
            "It agrees to 2 significant digits only: keep the full float, not a rounded "
            "printout (3 significant digits or more).",
        )
    return Verdict(False, expected, shown)


def _wrong_ex1(run, batch, p_next, scored):
    import torch

    yield float(p_next.mean()), "the mean over every position, scored or not (use `loss_mask`)"
    with torch.no_grad():
        probs = run.model_at(0)(batch.tokens).softmax(-1)
    unshifted = probs.gather(-1, batch.tokens[..., None])[..., 0]
    yield (
        float(unshifted[batch.loss_mask].mean()),
        "the probability of the token *at* each position: the logits at t bet on token t + 1",
    )
    trained, _ = true_token_probabilities(run.model_at(run.steps[-1]), batch)
    yield float(trained[scored].mean()), "the trained model's (the last checkpoint), not step 0's"
    evals = run.metrics.query("split == 'eval'").sort_values("step")
    yield (
        math.exp(-float(evals.loss.iloc[0])),
        "exp(-loss), the geometric mean of the probabilities; the exercise asks for their average",
    )
    yield 1 / run.task.vocab, "1 / vocabulary size, the chance level, not the model's measured bet"
    if "accuracy" in evals:
        yield float(evals.accuracy.iloc[0]), "the accuracy at step 0 (argmax), not a probability"


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
    run = ctx.run
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
        pace=Pace(2, 3, 8),
        capture=capture_ex1,
        judge=judge_ex1,
        hints=(
            (
                "Run the step-0 model on `batch.tokens` (inside `torch.no_grad()`) and apply "
                "`.softmax(-1)` to its logits: a probability for every token at every position."
            ),
            (
                "At position t the model bets on `tokens[:, t + 1]`: drop the last position of "
                "the probabilities, pick each true next token with `gather`, and keep the "
                "positions where `loss_mask[:, :-1]` is True."
            ),
            (
                "For example `probs[:, :-1].gather(-1, batch.tokens[:, 1:, None])[..., 0]`, then "
                "its entries at `batch.loss_mask[:, :-1]`, averaged, as a float."
            ),
        ),
        success="That is the untrained model's bet on the right answer, read from its checkpoint.",
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
