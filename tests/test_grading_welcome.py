"""The checks of 00_welcome against typical wrong answers and correct-but-different ones,
and its grading in the sandbox (an honest learner, and cheats that must get nothing)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import vestige
from answers import last_eval_loss
from vestige.course import grade, plain
from vestige.course.checks import AnswerError, welcome
from vestige.course.sandbox import Limits

REPO = Path(__file__).resolve().parents[1]
LEARNER = REPO / "notebooks/00_welcome.ipynb"
MANIFEST = REPO / "course/solutions/manifest.json"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
SOLUTION_EX1 = (
    "with torch.no_grad():\n"
    "    probs = model(batch.tokens).softmax(-1)\n"
    "p_next = probs[:, :-1].gather(-1, batch.tokens[:, 1:, None])[..., 0]\n"
    "p_true = float(p_next[batch.loss_mask[:, :-1]].mean())"
)
SOLUTION_EX2 = (
    'evals = metrics[metrics.split == "eval"]\n    return evals.sort_values("step").loss.iloc[-1]'
)


@pytest.fixture
def runs(course_runs):
    """Precomputed welcome runs of seeds 0 (the learner's default), 1, 2 and 3."""
    return course_runs


def context(runs, seed=0, hidden=None):
    return welcome.context({"runs_dir": str(runs), "preset": "tiny", "seed": seed}, hidden)


def judge_ex1(value, runs, seed=0):
    ctx = context(runs, seed)
    return welcome.judge_ex1(plain.roundtrip(welcome.capture_ex1(value, ctx)), ctx)


def final(runs, seed=0, split="eval", position=-1, column="loss"):
    metrics = open_run(runs, seed).metrics
    rows = metrics[metrics.split == split].sort_values("step")
    return float(rows[column].iloc[position])


def open_run(runs, seed=0):
    return vestige.Run.open(runs / "welcome-tiny" / f"seed-{seed}")


def p_true(runs, seed=0, step=0, masked=True, shifted=True):
    """ex1's answer, and its usual mistakes, worked out here independently of the check."""
    run = open_run(runs, seed)
    batch = run.eval_batch
    with torch.no_grad():
        probs = run.model_at(step)(batch.tokens).softmax(-1)
    if shifted:
        picked = probs[:, :-1].gather(-1, batch.tokens[:, 1:, None])[..., 0]
        mask = batch.loss_mask[:, :-1]
    else:
        picked = probs.gather(-1, batch.tokens[..., None])[..., 0]
        mask = batch.loss_mask
    return float(picked[mask].mean() if masked else picked.mean())


# --- ex1 ---------------------------------------------------------------------------------------


def by_cross_entropy(runs):
    """The same mean from the loss per position: P(true token) = exp(-cross-entropy)."""
    run = open_run(runs)
    batch = run.eval_batch
    with torch.no_grad():
        logits = run.model_at(0)(batch.tokens)[:, :-1]
    ce = F.cross_entropy(logits.transpose(1, 2), batch.tokens[:, 1:], reduction="none")
    mask = batch.loss_mask[:, :-1].to(ce.dtype)
    return (ce.neg().exp() * mask).sum() / mask.sum()  # a 0-d tensor


def test_ex1_accepts_the_probability_in_any_numeric_type_method_and_small_rounding(runs):
    want = p_true(runs)
    for value in (
        want,
        np.float32(want),
        torch.tensor(want),
        torch.tensor([want], dtype=torch.float64),
        np.array(want),
        float(f"{want:.3g}"),
        float(f"{want:.4g}"),
        by_cross_entropy(runs),
    ):
        verdict = judge_ex1(value, runs)
        assert verdict.passed, repr(value)
    vocab = open_run(runs).task.vocab
    assert f"1 / vocabulary size is {1 / vocab:.4f}" in verdict.message()
    assert f"same mean is {p_true(runs, step=open_run(runs).steps[-1]):.3f}" in verdict.message()


@pytest.mark.parametrize(
    "wrong, says",
    [
        (lambda runs: p_true(runs, masked=False), "every position, scored or not"),
        (lambda runs: p_true(runs, shifted=False), "the token *at* each position"),
        (lambda runs: p_true(runs, step=open_run(runs).steps[-1]), "the last checkpoint"),
        (lambda runs: math.exp(-final(runs, position=0)), "geometric mean"),
        (lambda runs: 1 / open_run(runs).task.vocab, "the chance level"),
        (lambda runs: final(runs, position=0, column="accuracy"), "accuracy at step 0"),
        (lambda runs: p_true(runs, seed=1), ""),  # another seed's value
        (lambda runs: p_true(runs) * 1.008, "agrees to 2 significant digits"),
        (lambda runs: 0.0, ""),
    ],
)
def test_ex1_refuses_typical_wrong_answers_and_says_what_they_are(runs, wrong, says):
    verdict = judge_ex1(wrong(runs), runs)
    assert not verdict.passed
    message = verdict.message()
    assert says in message and "the model at step 0 gives to the true next token" in message
    want = p_true(runs)
    assert f"{want:.3g}" not in message and f"{want:.4f}" not in message  # no answer given away


def test_ex1_wrong_answers_are_far_enough_apart_to_be_told_apart(runs):
    """Each named mistake is more than the tolerance away from the answer, on every seed."""
    for seed in (0, 1, 2, 3):
        want = p_true(runs, seed)
        for value in (
            p_true(runs, seed, masked=False),
            p_true(runs, seed, shifted=False),
            1 / open_run(runs, seed).task.vocab,
        ):
            assert abs(value - want) > 2 * welcome.EX1_RTOL * want, seed


@pytest.mark.parametrize(
    "value", ["0.03", None, True, [0.03], pd.Series([0.03]), torch.tensor([0.1, 0.2]), lambda: 0.03]
)
def test_ex1_refuses_what_is_not_one_number(runs, value):
    with pytest.raises(AnswerError):
        welcome.capture_ex1(value, context(runs))


def test_ex1_refuses_always_equal_objects(runs):
    want = p_true(runs)

    class Sneaky(float):
        def __eq__(self, other):
            return True

        __hash__ = float.__hash__

    class AlwaysEqual:
        __eq__ = lambda self, other: True
        __float__ = lambda self: want
        __sub__ = __rsub__ = lambda self, other: 0.0

    for value in (Sneaky(0.0), AlwaysEqual()):
        with pytest.raises(AnswerError, match="expected a probability"):
            welcome.capture_ex1(value, context(runs))


# --- ex2 ---------------------------------------------------------------------------------------

RIGHT = {
    "idxmax": last_eval_loss,
    "sort": lambda m: m[m.split == "eval"].sort_values("step").loss.iloc[-1],
    "query": lambda m: m.query("split == 'eval'").set_index("step").loss.sort_index().values[-1],
    "float32": lambda m: np.float32(RIGHT["idxmax"](m)),
    "torch": lambda m: torch.tensor(RIGHT["idxmax"](m)),
    "groupby": lambda m: m[m.split == "eval"].groupby("step").loss.last().iloc[-1],
}
WRONG = {
    "last row": lambda m: m.loss.iloc[-1],
    "last eval row": lambda m: m[m.split == "eval"].loss.iloc[-1],
    "smallest loss": lambda m: m[m.split == "eval"].loss.min(),
    "train split": lambda m: m[m.split == "train"].sort_values("step").loss.iloc[-1],
    "largest step overall": lambda m: m.sort_values("step").loss.iloc[-1],
    "constant": lambda m: 1.5066,
    "a series": lambda m: m[m.split == "eval"].sort_values("step").loss.tail(1),
    "raises": lambda m: m["no such column"],
}


def judge_ex2(function, runs, hidden=None):
    ctx = context(runs, hidden=hidden)
    return welcome.judge_ex2(plain.roundtrip(welcome.capture_ex2(function, ctx)), ctx)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_ex2_accepts_other_valid_methods_and_types(runs, name):
    assert judge_ex2(RIGHT[name], runs).passed
    hidden = welcome.hidden_inputs({}, np.random.default_rng(7))
    assert judge_ex2(RIGHT[name], runs, plain.roundtrip(hidden)).passed


@pytest.mark.parametrize("name", sorted(WRONG))
def test_ex2_refuses_shortcuts_on_the_test_tables(runs, name):
    verdict = judge_ex2(WRONG[name], runs)
    assert not verdict.passed
    assert "tables, e.g. one where" in verdict.message()


def test_ex2_hidden_tables_cover_every_case():
    tables = welcome.hidden_inputs({}, np.random.default_rng(1))["tables"]
    assert [t["description"] for t in tables] == list(welcome.CASES)


def test_grading_parameters_never_pick_the_learners_seed(runs, tmp_path):
    chosen = [welcome.grading_parameters(runs, np.random.default_rng(s)) for s in range(20)]
    assert {c["preset"] for c in chosen} == {"tiny"}
    assert {c["seed"] for c in chosen} == {1, 2, 3}  # any precomputed seed but the learner's
    with pytest.raises(FileNotFoundError, match="vestige train --preset tiny"):
        welcome.grading_parameters(tmp_path, np.random.default_rng(0))
    only_own = tmp_path / "runs"  # the learner's seed alone is not enough
    (only_own / "welcome-tiny").mkdir(parents=True)
    (only_own / "welcome-tiny/seed-0").symlink_to(runs / "welcome-tiny/seed-0")
    with pytest.raises(FileNotFoundError, match="another seed than the notebook's"):
        welcome.grading_parameters(only_own, np.random.default_rng(0))


# --- grading in the sandbox ------------------------------------------------------------------


def submission(answers: dict[str, str], extra: list[tuple[str, str]] = ()) -> dict:
    nb = json.loads(LEARNER.read_text())
    for cell in nb["cells"]:
        if cell["id"] in answers:
            cell["source"] = "".join(cell["source"]).replace(STUB, answers[cell["id"]])
    for after, source in extra:
        index = next(i for i, c in enumerate(nb["cells"]) if c["id"] == after) + 1
        nb["cells"].insert(
            index,
            {
                "cell_type": "code",
                "id": f"extra-{index}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            },
        )
    return nb


@pytest.mark.slow
def test_welcome_submissions_are_graded_in_the_sandbox(runs, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    honest = submission(
        {"cell-9": 'predicted_loss = "about 1"', "cell-14": SOLUTION_EX1, "cell-17": SOLUTION_EX2}
    )
    own_seed = round(p_true(runs, seed=0), 5)
    cheats = {
        "ada": honest,
        # a constant copied from the learner's own run (seed 0): wrong for the grading seed
        "bea": submission({"cell-14": f"p_true = {own_seed}", "cell-17": SOLUTION_EX2}),
        # an object that compares equal to anything
        "cy": submission(
            {
                "cell-14": "class Loss(float):\n    __eq__ = lambda s, o: True\n"
                "    __hash__ = float.__hash__\np_true = Loss(0)",
                "cell-17": "return type('A', (), {'__eq__': lambda s, o: True})()",
            }
        ),
        # check rebound to a no-op, and forged check results pasted as outputs
        "dee": submission({}, [("check-setup", "check = lambda *args, **kwargs: None")]),
    }
    forged = copy.deepcopy(cheats["dee"])
    for cell in forged["cells"]:
        if cell["id"].startswith("check-ex"):
            cell["outputs"] = [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "application/vnd.vestige.check+json": {"status": "passed", "points": 2},
                        "text/plain": "✅ passed",
                    },
                }
            ]
    cheats["dee"] = forged
    for name, nb in cheats.items():
        (subs / f"{name}_00_welcome.ipynb").write_text(json.dumps(nb))
    gradebook = grade(
        subs,
        manifest=MANIFEST,
        runs=runs,
        salt="welcome",
        limits=Limits(wall_seconds=300, memory_bytes=2 << 30),
    )
    rows = {r["student"]: r for r in gradebook.to_dict("records")}
    assert [
        rows["ada"][k] for k in ("points", "max_points", "predict", "ex1", "ex2", "reason")
    ] == [4, 4, "passed", "passed", "passed", ""]
    grading = json.loads(rows["ada"]["grading"])
    assert grading == {"preset": "tiny", "runs_dir": "/runs", "seed": grading["seed"]}
    assert grading["seed"] != 0  # not the learner's: bea's pasted constant fails
    assert (rows["bea"]["points"], rows["bea"]["ex1"], rows["bea"]["ex2"]) == (
        2,
        "failed",
        "passed",
    )
    assert (rows["cy"]["points"], rows["cy"]["ex1"], rows["cy"]["ex2"]) == (0, "failed", "failed")
    assert rows["dee"]["points"] == 0 and "rebinds check" in rows["dee"]["flags"]
