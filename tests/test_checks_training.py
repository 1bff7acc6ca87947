"""The checks of 05_training: each exercise fails its typical wrong answers and accepts
correct answers written another way."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import vestige
from answers import gap_merge, gaps, last_eval, schedule_right
from answers import longer as lengthened
from vestige.config import CheckpointConfig, RunConfig, TrainConfig
from vestige.course import Checker, grade, plain
from vestige.course.checks import AnswerError, training
from vestige.course.sandbox import Limits


@pytest.fixture
def runs(course_runs):
    """Tiny runs of seeds 0 and 1 (the notebook's defaults), 2 and 3 (grading seeds)."""
    return course_runs


def context(runs, a=0, b=1, hidden=None):
    return training.context(
        {"runs_dir": str(runs), "preset": "tiny", "seed_a": a, "seed_b": b}, hidden
    )


def verdict(exercise, answer, ctx):
    ex = {e.id: e for e in training.EXERCISES}[exercise]
    return ex.judge(plain.roundtrip(ex.capture(answer, ctx)), ctx)


def metrics(runs, seed):
    return vestige.Run.open(runs / "training-tiny" / f"seed-{seed}").metrics


# --- ex1: a config -----------------------------------------------------------------------------

TINY = vestige.preset("tiny")


def longer(**changes):
    return lengthened(TINY, **changes)


@pytest.mark.parametrize(
    "right",
    [
        longer(),
        longer(name="longer"),  # a new name is fine
        TINY.replace(
            train=TrainConfig(
                **{
                    **dataclasses.asdict(TINY.train),
                    "steps": 120,
                    "lr": 0.0015,
                    "betas": (0.9, 0.999),
                }
            )
        ),  # typed in
        RunConfig.from_json(longer().to_json()),  # a JSON round trip
    ],
)
def test_ex1_accepts_the_longer_config_however_it_is_made(runs, right):
    assert verdict("ex1", right, context(runs)).passed


@pytest.mark.parametrize(
    "wrong, says",
    [
        (longer(lr=1), "train.lr = 0.003 (the preset's own)"),
        (longer(steps=1), "train.steps = 60 (the preset's own)"),
        (longer(steps=0.5, lr=2), "half the preset's"),
        (longer(lr=2), "twice the preset's"),
        (longer(checkpoints=CheckpointConfig(first=5, n_log=8)), "checkpoints.n_log = 8"),
        (RunConfig(train=TrainConfig(steps=120, lr=0.0015)), "Start from the preset"),
    ],
)
def test_ex1_refuses_other_configs_and_names_the_field(runs, wrong, says):
    result = verdict("ex1", wrong, context(runs))
    assert not result.passed and says in result.message()


def test_ex1_refuses_what_is_not_a_config(runs):
    ctx = context(runs)
    for value in (longer().to_dict(), longer().to_json(), longer().train, None):
        with pytest.raises(AnswerError, match="expected a RunConfig"):
            training.capture_ex1(value, ctx)

    class Sneaky(RunConfig):
        __eq__ = lambda self, other: True
        __hash__ = object.__hash__

    with pytest.raises(AnswerError, match="expected a RunConfig"):
        training.capture_ex1(Sneaky(), ctx)
    with pytest.raises(AnswerError, match="the config is not valid"):  # an invalid config
        training.capture_ex1(
            dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, steps=0)), ctx
        )
    float_steps = dataclasses.replace(
        TINY, train=dataclasses.replace(TINY.train, steps=120.0, lr=0.0015)
    )
    assert "a float" in verdict("ex1", float_steps, ctx).message()


# --- ex2: the schedule --------------------------------------------------------------------------


def schedule_geomspace(total, first, n_log):  # numpy, half-even rounding, an int64 array
    if first >= total:
        return np.array([0, total])
    return np.unique(
        np.concatenate([[0, total], np.round(np.geomspace(first, total, n_log))]).astype(np.int64)
    )


def schedule_half_up_torch(total, first, n_log):  # half-up rounding, exp/log, a tensor
    steps = {0, total}
    if first < total:
        step = (math.log(total) - math.log(first)) / max(n_log - 1, 1)
        steps.update(math.floor(math.exp(math.log(first) + i * step) + 0.5) for i in range(n_log))
    return torch.tensor(sorted(steps))


def schedule_truncated(total, first, n_log):
    steps = {0, total}
    if first < total:
        ratio = (total / first) ** (1 / max(n_log - 1, 1))
        steps.update(int(first * ratio**i) for i in range(n_log))
    return sorted(steps)


def schedule_linear(total, first, n_log):
    return sorted({0, total, *np.linspace(first, total, n_log).round().astype(int).tolist()})


def schedule_without(which):
    def answer(total, first, n_log):
        steps = schedule_right(total, first, n_log)
        return [s for s in steps if s != {"zero": 0, "end": total}[which]]

    return answer


def schedule_with_repeats(total, first, n_log):
    out = [0]
    if first < total:
        ratio = (total / first) ** (1 / max(n_log - 1, 1))
        out += [round(first * ratio**i) for i in range(n_log)]
    return sorted(out + ([total] if out[-1] != total else []))


def schedule_unsorted(total, first, n_log):
    return list(set(schedule_right(total, first, n_log)))


def schedule_no_guard(total, first, n_log):  # first >= total and n_log = 1 not handled
    ratio = (total / first) ** (1 / (n_log - 1))
    return sorted({0, total, *(round(first * ratio**i) for i in range(n_log))})


@pytest.mark.parametrize(
    "right",
    [
        schedule_right,
        schedule_geomspace,
        schedule_half_up_torch,
        lambda t, f, n: tuple(schedule_right(t, f, n)),
    ],
)
def test_ex2_accepts_other_roundings_and_types(runs, right):
    assert verdict("ex2", right, context(runs)).passed
    hidden = plain.roundtrip(training.hidden_inputs({}, np.random.default_rng(11)))
    assert verdict("ex2", right, context(runs, hidden=hidden)).passed


@pytest.mark.parametrize(
    "wrong",
    [
        schedule_truncated,
        schedule_linear,
        schedule_without("zero"),
        schedule_without("end"),
        schedule_with_repeats,
        schedule_unsorted,
        schedule_no_guard,
        lambda t, f, n: [0, 5, 11, 26, 60],  # the tiny schedule, pasted
        lambda t, f, n: set(schedule_right(t, f, n)),  # a set has no order
        lambda t, f, n: [0, t],
    ],
)
def test_ex2_refuses_wrong_schedules(runs, wrong):
    result = verdict("ex2", wrong, context(runs))
    assert not result.passed and "wrong on" in result.message()


def test_ex2_refuses_the_kits_own_schedule(runs):
    for shortcut in (
        lambda t, f, n: CheckpointConfig(first=f, n_log=n).steps(t),
        lambda t, f, n: (
            vestige.preset("tiny").replace(checkpoints=CheckpointConfig(f, n)).checkpoint_steps
        ),
    ):
        with pytest.raises(AnswerError, match="the kit's"):
            training.capture_ex2(shortcut, context(runs))


def test_ex2_says_what_is_wrong(runs):
    assert "without step 0" in verdict("ex2", schedule_without("zero"), context(runs)).message()
    assert "a step listed twice" in verdict("ex2", schedule_with_repeats, context(runs)).message()


# --- ex3: per-class gaps ------------------------------------------------------------------------


def gaps_series(runs, a=0, b=1):
    return gaps(metrics(runs, a), metrics(runs, b))


def test_ex3_accepts_series_dicts_rounding_and_number_types(runs):
    ctx = context(runs)
    series = gaps_series(runs)
    answers = [
        series,
        series.astype(object),  # a row difference
        {k[5:]: float(v) for k, v in series.items()},  # dict, short keys
        {k: np.float32(v) for k, v in series.items()},  # float32
        {k[5:]: torch.tensor(v) for k, v in series.items()},  # tensors
        {k: round(float(v), 3) for k, v in series.items()},  # rounded to 3 decimals
        last_eval(metrics(runs, 1)).drop(["split", "step"]).astype(float)  # a whole-row
        - last_eval(metrics(runs, 0)).drop(["split", "step"]).astype(float),  # difference
    ]
    for answer in answers:
        assert verdict("ex3", answer, ctx).passed, answer


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda s, runs: -s, "reversed"),
        (lambda s, runs: s.round(2), "agree to 2 decimals"),
        (lambda s, runs: s.drop("loss_copy"), "no value for copy"),
        (lambda s, runs: s * 0, ""),
        (lambda s, runs: {k: 1.0 for k in s.index}, ""),
    ],
)
def test_ex3_refuses_wrong_gaps(runs, make, says):
    result = verdict("ex3", make(gaps_series(runs), runs), context(runs))
    assert not result.passed and says in result.message()


def test_ex3_recognises_the_train_split_step_zero_and_absolute_values(runs):
    ctx = context(runs)
    assert (
        "training split"
        in verdict(
            "ex3", training.reference_gaps(metrics(runs, 0), metrics(runs, 1), split="train"), ctx
        ).message()
    )
    assert (
        "step 0"
        in verdict(
            "ex3", training.reference_gaps(metrics(runs, 0), metrics(runs, 1), position=0), ctx
        ).message()
    )
    series = gaps_series(runs)
    if (series < 0).any() and (series > 0).any():
        assert "absolute values" in verdict("ex3", series.abs(), ctx).message()


def test_ex3_numbers_pasted_from_the_default_seeds_fail_for_the_grading_seeds(runs):
    pasted = {k: round(float(v), 4) for k, v in gaps_series(runs, 0, 1).items()}
    result = verdict("ex3", pasted, context(runs, 2, 0))
    assert not result.passed
    assert (
        "seed 1 minus seed 0 (the notebook's default seeds), not the seeds this check is for"
        in result.message()
    )
    assert verdict("ex3", gaps_series(runs, 2, 0), context(runs, 2, 0)).passed


def test_ex3_refuses_what_is_not_a_mapping(runs):
    ctx = context(runs)

    class AlwaysEqual(dict):
        __eq__ = lambda self, other: True

    for value in (
        gaps_series(runs).to_frame(),
        list(gaps_series(runs)),
        AlwaysEqual(),
        0.0,
        {"trigger": "0.1"},
        {"trigger": True},
    ):
        with pytest.raises(AnswerError):
            training.capture_ex3(value, ctx)


# --- ex4: the checkpoint with the largest gap ---------------------------------------------------


def gap_index(a, b):  # another method: align on a step index, numpy result
    la = a[a.split == "eval"].set_index("step").loss
    lb = b[b.split == "eval"].set_index("step").loss
    return (lb - la).dropna().abs().idxmax()


def gap_dicts(a, b):  # plain Python
    la = {s: v for s, v, sp in zip(a.step, a.loss, a.split) if sp == "eval"}
    lb = {s: v for s, v, sp in zip(b.step, b.loss, b.split) if sp == "eval"}
    return float(max(set(la) & set(lb), key=lambda s: abs(lb[s] - la[s])))


def gap_signed(a, b):
    a, b = a[a.split == "eval"], b[b.split == "eval"]
    paired = a.merge(b, on="step")
    return int(paired.step[(paired.loss_y - paired.loss_x).idxmax()])


def gap_positional(a, b):
    la = a[a.split == "eval"].sort_values("step")
    lb = b[b.split == "eval"].sort_values("step")
    n = min(len(la), len(lb))
    gaps = np.abs(lb.loss.to_numpy()[:n] - la.loss.to_numpy()[:n])
    return int(la.step.to_numpy()[int(np.argmax(gaps))])


def gap_train_split(a, b):
    a, b = a[a.split == "train"], b[b.split == "train"]
    paired = a.merge(b, on="step")
    return int(paired.step[(paired.loss_x - paired.loss_y).abs().idxmax()])


def gap_value(a, b):
    a, b = a[a.split == "eval"], b[b.split == "eval"]
    paired = a.merge(b, on="step")
    return float((paired.loss_x - paired.loss_y).abs().max())


def gap_all_rows(a, b):  # train and eval rows together
    paired = a.merge(b, on=["step", "split"])
    return int(paired.step[(paired.loss_x - paired.loss_y).abs().idxmax()])


@pytest.mark.parametrize("right", [gap_merge, gap_index, gap_dicts])
def test_ex4_accepts_other_methods(runs, right):
    assert verdict("ex4", right, context(runs)).passed
    hidden = plain.roundtrip(training.hidden_inputs({}, np.random.default_rng(3)))
    assert verdict("ex4", right, context(runs, hidden=hidden)).passed


@pytest.mark.parametrize(
    "wrong",
    [
        gap_signed,
        gap_positional,
        gap_train_split,
        gap_value,
        gap_all_rows,
        lambda a, b: 26,
        lambda a, b: int(a.step.max()),
    ],
)
def test_ex4_refuses_shortcuts(runs, wrong):
    for seed in (None, 5, 6):
        hidden = (
            None
            if seed is None
            else plain.roundtrip(training.hidden_inputs({}, np.random.default_rng(seed)))
        )
        result = verdict("ex4", wrong, context(runs, hidden=hidden))
        assert not result.passed and "wrong on" in result.message()


def test_ex4_names_a_loss_difference_returned_for_a_step(runs):
    assert (
        "a loss difference rather than a step" in verdict("ex4", gap_value, context(runs)).message()
    )


def test_ex4_on_the_real_runs(runs):
    want = training.reference_largest_gap_step(metrics(runs, 0), metrics(runs, 1))
    assert gap_index(metrics(runs, 0), metrics(runs, 1)) == want


# --- grading parameters, hidden inputs, the checker ---------------------------------------------


def test_grading_parameters_pick_two_precomputed_seeds_neither_the_learners(runs, tmp_path):
    chosen = {
        tuple(training.grading_parameters(runs, np.random.default_rng(s)).values())
        for s in range(40)
    }
    assert {c[0] for c in chosen} == {"tiny"}
    assert {c[1:] for c in chosen} == {(2, 3), (3, 2)}  # seeds 0-3 precomputed, 0 and 1 its own
    with pytest.raises(FileNotFoundError, match="vestige train --preset tiny"):
        training.grading_parameters(tmp_path, np.random.default_rng(0))


def test_hidden_pairs_cover_every_case():
    pairs = training.hidden_inputs({}, np.random.default_rng(1))["pairs"]
    assert [p["case"] for p in pairs] == list(training.PAIR_CASES)


def test_ex3_feedback_never_shows_the_expected_gaps(runs):
    check = Checker(
        "05_training", strict=False, runs_dir=str(runs), preset="tiny", seed_a=0, seed_b=1
    )
    check("ex3", lambda: gaps_series(runs) * 0)
    assert check.results["ex3"]["status"] == "failed"
    reference = pd.Series(training.reference_gaps(metrics(runs, 0), metrics(runs, 1)))
    for value in reference:
        for shown in (f"{value:+.4f}", f"{value:.4f}", f"{value:.3f}"):
            assert shown not in check.results["ex3"]["message"]


# --- grading in the sandbox ----------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'


def submission(name: str, edits: dict[str, tuple[str, str]] = ()) -> dict:
    """The learner notebook with the reference solutions filled in, then `edits`: {a text in
    the solution cell: (old, new)}."""
    learner = json.loads((REPO / f"notebooks/{name}.ipynb").read_text())
    solution = {
        c["id"]: "".join(c["source"])
        for c in json.loads((REPO / f"course/solutions/{name}.ipynb").read_text())["cells"]
    }
    for cell in learner["cells"]:
        if STUB in "".join(cell["source"]):
            cell["source"] = solution[cell["id"]]
            for marker, (old, new) in dict(edits).items():
                if marker in cell["source"]:
                    assert old in cell["source"], (marker, old)
                    cell["source"] = cell["source"].replace(old, new)
    return learner


@pytest.mark.slow
def test_training_submissions_are_graded_in_the_sandbox(runs, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    pasted = {k: round(float(v), 4) for k, v in gaps_series(runs, 0, 1).items()}
    cheats = {
        "ada": submission("05_training"),
        # gaps pasted from the default seeds' printout, a constant step, the kit's schedule
        "bea": submission(
            "05_training",
            {
                "class_gaps =": ("(last_b[classes] - last_a[classes]).astype(float)", repr(pasted)),
                "def largest_gap_step": (
                    "    return int(paired.step[gap.idxmax()])",
                    "    return 0",
                ),
                "def log_schedule": (
                    "    return sorted(steps)",
                    "    return vestige.config.CheckpointConfig(first, n_log).steps(total)",
                ),
            },
        ),
        # objects that compare equal to anything
        "cy": submission(
            "05_training",
            {
                "longer =": (
                    "longer = config.replace(",
                    (
                        "class Any(type(config)):\n"
                        "    __eq__ = lambda self, other: True\n    __hash__ = object.__hash__\n"
                        "longer = Any()\n_ = config.replace("
                    ),
                ),
                "class_gaps =": (
                    "class_gaps = (",
                    (
                        "class Same(dict):\n    __eq__ = lambda s, o: True\n"
                        "class_gaps = Same()\n_ = ("
                    ),
                ),
            },
        ),
    }
    for name, nb in cheats.items():
        (subs / f"{name}_05_training.ipynb").write_text(json.dumps(nb))
    gradebook = grade(
        subs,
        manifest=REPO / "course/solutions/manifest.json",
        runs=runs,
        salt="training",
        limits=Limits(wall_seconds=300, memory_bytes=2 << 30),
    )
    rows = {r["student"]: r for r in gradebook.to_dict("records")}
    grading = json.loads(rows["ada"]["grading"])
    assert grading["preset"] == "tiny" and (grading["seed_a"], grading["seed_b"]) != (0, 1)
    assert [rows["ada"][k] for k in ("points", "max_points", "reason")] == [7, 7, ""]
    assert [rows["bea"][f"ex{i}"] for i in range(1, 5)] == ["passed", "failed", "failed", "failed"]
    assert rows["bea"]["points"] == 2  # ex1 and the prediction
    assert rows["cy"]["points"] == 5 and rows["cy"]["ex1"] == rows["cy"]["ex3"] == "failed"
