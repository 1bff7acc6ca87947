"""The checks of 00_welcome against typical wrong answers and correct-but-different ones,
and its grading in the sandbox (an honest learner, and cheats that must get nothing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
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
    'evals = metrics[metrics.split == "eval"]\n'
    'final_eval_loss = float(evals.loc[evals.step.idxmax(), "loss"])'
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
    metrics = vestige.Run.open(runs / "welcome-tiny" / f"seed-{seed}").metrics
    rows = metrics[metrics.split == split].sort_values("step")
    return float(rows[column].iloc[position])


# --- ex1 ---------------------------------------------------------------------------------------


def test_ex1_accepts_the_loss_in_any_numeric_type_and_small_rounding(runs):
    want = final(runs)
    for value in (
        want,
        np.float32(want),
        np.float64(want),
        torch.tensor(want),
        torch.tensor(want, dtype=torch.float64),
        torch.tensor([want]),
        np.array(want),
        round(want, 3),
        round(want, 4),
        float(f"{want:.6g}"),
    ):
        assert judge_ex1(value, runs).passed, repr(value)


@pytest.mark.parametrize(
    "wrong, says",
    [
        (lambda runs: round(final(runs, split="train"), 4), "training loss"),
        (lambda runs: round(final(runs, position=-2), 4), "checkpoint before the last"),
        (lambda runs: round(final(runs, position=0), 3), "step 0"),
        (lambda runs: round(final(runs, column="accuracy"), 4), "accuracy"),
        (lambda runs: round(final(runs, seed=1), 4), ""),  # another seed's value
        (
            lambda runs: final(runs) + 0.003,
            "agrees to 2 decimals",
        ),  # a rounded-to-display wrong value
        (lambda runs: round(final(runs)) + 0.0, ""),
    ],
)
def test_ex1_refuses_typical_wrong_answers_and_says_what_they_are(runs, wrong, says):
    verdict = judge_ex1(wrong(runs), runs)
    assert not verdict.passed
    message = verdict.message()
    assert (
        says in message and "the evaluation loss (split 'eval') at the last checkpoint" in message
    )
    want = final(runs)
    assert f"{want:.3f}" not in message and f"{want:.4f}" not in message  # no answer given away


@pytest.mark.parametrize(
    "value", ["1.5", None, True, [1.5], pd.Series([1.5]), torch.tensor([1.0, 2.0]), lambda: 1.5]
)
def test_ex1_refuses_what_is_not_one_number(runs, value):
    with pytest.raises(AnswerError):
        welcome.capture_ex1(value, context(runs))


def test_ex1_refuses_always_equal_objects(runs):
    want = final(runs)

    class Sneaky(float):
        def __eq__(self, other):
            return True

        __hash__ = float.__hash__

    class AlwaysEqual:
        __eq__ = lambda self, other: True
        __float__ = lambda self: want
        __sub__ = __rsub__ = lambda self, other: 0.0

    for value in (Sneaky(0.0), AlwaysEqual()):
        with pytest.raises(AnswerError, match="expected a number"):
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
    own_seed = round(final(runs, seed=0), 4)
    cheats = {
        "ada": honest,
        # a constant copied from the learner's own run (seed 0): wrong for the grading seed
        "bea": submission({"cell-14": f"final_eval_loss = {own_seed}", "cell-17": SOLUTION_EX2}),
        # an object that compares equal to anything
        "cy": submission(
            {
                "cell-14": "class Loss(float):\n    __eq__ = lambda s, o: True\n"
                "    __hash__ = float.__hash__\nfinal_eval_loss = Loss(0)",
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
