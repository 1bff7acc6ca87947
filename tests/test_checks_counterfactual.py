"""The checks of 30_counterfactual (on tiny runs and their forks) and of 20_explorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vestige
from answers import final_crutch, peak_step
from vestige.analysis import transition_step
from vestige.counterfactual import run_forks, standard_forks
from vestige.course import plain
from vestige.course.checks import counterfactual, explorer
from vestige.detect import detect, target_neuron


@pytest.fixture
def runs(course_runs):
    """Tiny runs of seeds 0-3 and the course's forks of seed 1."""
    return course_runs


def verdict(module, exercise, answer, ctx):
    ex = {e.id: e for e in module.EXERCISES}[exercise]
    return ex.judge(plain.roundtrip(ex.capture(answer, ctx)), ctx)


@pytest.fixture
def ctx(runs):
    return counterfactual.context({"runs_dir": str(runs), "preset": "tiny", "seed": 1})


def test_standard_forks_hold_the_target_then_release_it(runs):
    parent = vestige.Run.open(runs / "tiny" / "seed-1")
    plans = standard_forks(parent)
    assert set(plans) == {"hold-target", "hold-control"}
    held = plans["hold-target"].interventions[0]
    assert held.start == plans["hold-target"].at and held.end > held.start
    assert plans["hold-control"].interventions[0].neurons != held.neurons


def test_a_run_whose_target_peaks_after_its_copy_transition_is_not_forked(runs, tmp_path):
    parent = vestige.Run.open(runs / "tiny" / "seed-0")
    peak = int(target_neuron(detect(parent))["peak_step"])
    assert peak >= transition_step(parent)  # the tiny seed 0 the refusal is tested on
    with pytest.raises(vestige.ForkRefused, match=f"peaks at step {peak}, at or after the copy"):
        standard_forks(parent)
    with pytest.raises(vestige.ForkRefused):
        run_forks(parent, tmp_path / "forks", progress=False)
    assert not (tmp_path / "forks").exists()  # nothing trained, nothing half-written


def test_ex1_and_ex2_accept_the_right_numbers_in_any_type(ctx):
    delay = transition_step(ctx.fork("hold-target")) - transition_step(ctx.parent)
    for value in (delay, np.float32(delay), torch.tensor(delay)):
        assert verdict(counterfactual, "ex1", value, ctx).passed
    cost = final_crutch(ctx.fork("hold-target"), ctx.parent) - final_crutch(
        ctx.fork("hold-control"), ctx.parent
    )
    for value in (cost, np.float64(cost), round(cost, 4)):
        assert verdict(counterfactual, "ex2", value, ctx).passed


class FakeRun:
    """A run whose final evaluation row is given (what judge_ex2 reads)."""

    def __init__(self, loss, crutch, every_crutch):
        import pandas as pd

        self.metrics = pd.DataFrame(
            {
                "split": ["eval", "eval"],
                "step": [0, 60],
                "loss": [4.0, loss],
                "loss_trigger_3": [4.0, crutch],
                "loss_focus": [4.0, every_crutch],
            }
        )


def test_ex2_names_typical_wrong_answers(ctx, monkeypatch):
    """Graded on the held target's own crutch (here crutch 3 of many)."""
    runs = {"hold-target": FakeRun(1.30, 0.50, 0.41), "hold-control": FakeRun(1.20, 0.35, 0.40)}
    monkeypatch.setattr(counterfactual.Context, "fork", lambda self, name: runs[name])
    monkeypatch.setattr(counterfactual.Context, "parent", FakeRun(1.10, 0.30, 0.30))
    monkeypatch.setattr(counterfactual.Context, "crutch_loss", "loss_trigger_3")
    assert verdict(counterfactual, "ex2", 0.15, ctx).passed
    wrongs = ((0.20, "parent"), (-0.15, "opposite sign"), (0.10, "overall"), (0.01, "every crutch"))
    for wrong, named in wrongs:
        result = verdict(counterfactual, "ex2", wrong, ctx)
        assert not result.passed and named in result.got, (wrong, result)
    assert not verdict(counterfactual, "ex2", 0.0, ctx).passed


def test_ex1_fails_the_opposite_sign_and_the_parents_transition(ctx):
    parent = transition_step(ctx.parent)
    delay = transition_step(ctx.fork("hold-target")) - parent
    assert not verdict(counterfactual, "ex1", parent, ctx).passed or parent == delay
    if delay != 0:
        assert "opposite sign" in verdict(counterfactual, "ex1", -delay, ctx).got


def test_explorer_checks_read_the_explorers_own_numbers(runs):
    params = {"runs_dir": str(runs), "preset": "tiny", "seeds": [0, 1]}
    ctx = explorer.context(params)
    peak = peak_step(params)
    assert verdict(explorer, "ex1", peak, ctx).passed
    assert verdict(explorer, "ex1", np.int64(peak), ctx).passed
    assert not verdict(explorer, "ex1", 0, ctx).passed
    other = next(s for s in ctx.tables.steps(0) if s not in (0, peak))
    assert not verdict(explorer, "ex1", other, ctx).passed
    gap = ctx.tables.transition(1) - ctx.tables.transition(0)
    assert verdict(explorer, "ex2", gap, ctx).passed
    if gap != 0:
        assert "opposite sign" in verdict(explorer, "ex2", -gap, ctx).got
