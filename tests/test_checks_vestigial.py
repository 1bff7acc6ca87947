"""The checks of 10_vestigial: each exercise fails its typical wrong answers and accepts
correct answers written another way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from answers import ablation, change_step_right, is_vestigial_right, token_right
from vestige.course import plain
from vestige.course.checks import AnswerError, vestigial
from vestige.detect import judge
from vestige.metrics import contrast_selectivity


@pytest.fixture(scope="module")
def ctx(course_runs):
    return vestigial.context({"runs_dir": str(course_runs), "preset": "tiny", "seed": 0})


def verdict(exercise, answer, ctx):
    ex = {e.id: e for e in vestigial.EXERCISES}[exercise]
    return ex.judge(plain.roundtrip(ex.capture(answer, ctx)), ctx)


# --- ex1 --------------------------------------------------------------------------------------


def change_step_numpy(steps, probs):  # another method, numpy and an int64 result
    steps, probs = np.asarray(steps), np.asarray(probs)
    order = np.argsort(steps)
    steps, probs = steps[order][1:], probs[order][1:]
    peak = int(np.argmax(probs))
    below = np.nonzero(probs[peak:] < (probs[peak] + probs[-1]) / 2)[0]
    return steps[peak + below[0]]


def change_step_unsorted(steps, probs):  # assumes sorted input
    peak = int(np.argmax(probs[1:])) + 1
    middle = (probs[peak] + probs[-1]) / 2
    return next(s for s, p in zip(steps[peak:], probs[peak:]) if p < middle)


def change_step_with_step_zero(steps, probs):  # the untrained value can be the peak
    points = sorted(zip(steps, probs))
    peak = max(range(len(points)), key=lambda i: points[i][1])
    middle = (points[peak][1] + points[-1][1]) / 2
    return next((s for s, p in points[peak:] if p < middle), float("nan"))


def change_step_half_peak(steps, probs):  # half the peak, not the midpoint with the end
    points = sorted((int(s), float(p)) for s, p in zip(steps, probs) if s > 0)
    peak = max(range(len(points)), key=lambda i: points[i][1])
    return next((s for s, p in points[peak:] if p < points[peak][1] / 2), float("nan"))


def test_ex1_right_answers_pass(ctx):
    assert verdict("ex1", change_step_right, ctx).passed
    assert verdict("ex1", change_step_numpy, ctx).passed


@pytest.mark.parametrize(
    "wrong",
    [
        change_step_unsorted,
        change_step_with_step_zero,
        change_step_half_peak,
        lambda s, p: 140,
        lambda s, p: s[-1],
    ],
)
def test_ex1_wrong_answers_fail(ctx, wrong):
    assert not verdict("ex1", wrong, ctx).passed


# --- ex2 --------------------------------------------------------------------------------------


def token_numpy_float64(acts, focus, same):
    a = np.asarray(acts, dtype=np.float64)
    f, s = a[np.asarray(focus)].mean(0), a[np.asarray(same)].mean(0)
    return (f - s) / (f + s + 1e-7)


def test_ex2_right_answers_pass(ctx):
    for right in (token_right, token_numpy_float64, lambda a, f, s: token_right(a, f, s).tolist()):
        assert verdict("ex2", right, ctx).passed, right


@pytest.mark.parametrize(
    "wrong",
    [
        lambda a, f, s: (
            (a[f].mean(0) - a[s].mean(0)) / (a[f].mean(0) + a[s].mean(0))
        ),  # silent: nan
        lambda a, f, s: (
            (a[f].mean(0) - a[~f].mean(0)) / (a[f].mean(0) + a[~f].mean(0) + 1e-7)
        ),  # all others
        lambda a, f, s: a[f].mean(0) - a[s].mean(0),  # not normalised
        lambda a, f, s: torch.zeros(a.shape[1]),
    ],
)
def test_ex2_wrong_answers_fail(ctx, wrong):
    assert not verdict("ex2", wrong, ctx).passed


def test_ex2_refuses_the_kits_own_function(ctx):
    with pytest.raises(AnswerError, match="contrast_selectivity"):
        vestigial.capture_ex2(contrast_selectivity, ctx)
    with pytest.raises(AnswerError, match="contrast_selectivity"):
        vestigial.capture_ex2(lambda a, f, s: contrast_selectivity(a, f, s), ctx)


# --- ex3 --------------------------------------------------------------------------------------


def test_ex3_right_answer_passes(ctx):
    assert verdict("ex3", ablation(ctx.run), ctx).passed


@pytest.mark.parametrize("kind", ["zero", "everywhere", "constant"])
def test_ex3_wrong_answers_fail(ctx, kind):
    wrong = {
        "zero": ablation(ctx.run, mode="zero"),
        "everywhere": ablation(ctx.run, everywhere=True),
        "constant": lambda model, layer, neuron, where: 0.0,
    }[kind]
    assert not verdict("ex3", wrong, ctx).passed


# --- ex4 --------------------------------------------------------------------------------------


def drop(clause):
    """is_vestigial_right without one clause: the dropped-criterion wrong answer."""

    def answer(line, floor):
        line = line.sort_values("step")
        trained = line[line.step > 0]
        peak = trained.loc[trained.effect.idxmax()]
        needed = (trained.effect_low >= 0.15).astype(int).astype(str).str.cat()
        end = line.iloc[-1]
        clauses = {
            "needed": peak.effect_low >= 0.15,
            "above_init": peak.effect >= 2 * floor,
            "sustained": "11" in needed,
            "faded": end.effect_high < 0.1 * peak.effect,
            "selective": end.selectivity > end.untrained_p99,
            "prefers_focus": end.preferred_class == end.positions,
            "token_selective": end.matched_selectivity > end.untrained_matched_p99,
        }
        clauses.pop(clause)
        return bool(all(clauses.values()))

    return answer


def test_ex4_right_answer_passes(ctx):
    assert verdict("ex4", is_vestigial_right, ctx).passed
    assert verdict("ex4", lambda line, floor: np.bool_(is_vestigial_right(line, floor)), ctx).passed


@pytest.mark.parametrize(
    "clause",
    ["needed", "above_init", "sustained", "faded", "selective", "prefers_focus", "token_selective"],
)
def test_ex4_fails_when_any_clause_is_dropped(ctx, clause):
    assert not verdict("ex4", drop(clause), ctx).passed


def test_ex4_fails_a_rule_that_hard_codes_the_trigger_class(ctx):
    """The focus class is the line's own `positions` (one of many crutches' in the
    reference preset), not the string "trigger"."""

    def hard_coded(line, floor):
        return is_vestigial_right(line.assign(positions="trigger"), floor)

    result = verdict("ex4", hard_coded, ctx)
    assert not result.passed and "crutch 3" in result.got


def test_ex4_fails_constant_answers_and_non_booleans(ctx):
    assert not verdict("ex4", lambda line, floor: True, ctx).passed
    assert not verdict("ex4", lambda line, floor: False, ctx).passed
    assert not verdict("ex4", lambda line, floor: 1, ctx).passed  # an int is not a verdict


# --- ex5 --------------------------------------------------------------------------------------


def test_ex5_the_reference_agrees_with_the_detector_on_the_run(ctx):
    verdict_ = verdict("ex5", is_vestigial_right, ctx)
    assert verdict_.passed
    caught = sorted(ctx.detection.neurons.query("vestigial").unit)
    assert (", ".join(caught) if caught else "no neuron of this run is vestigial") in verdict_.note


def test_ex5_accepts_a_numpy_bool(ctx):
    assert verdict("ex5", lambda line, floor: np.bool_(is_vestigial_right(line, floor)), ctx).passed


@pytest.mark.parametrize(
    "wrong",
    [
        lambda line, floor: False,  # agrees with a run that has no catch, not with the made-up one
        lambda line, floor: True,
        lambda line, floor: 0,  # not a verdict
    ],
)
def test_ex5_constant_answers_fail(ctx, wrong):
    assert not verdict("ex5", wrong, ctx).passed


def test_ex5_names_the_neurons_it_disagrees_on(ctx):
    """A function that calls the run's best candidate vestigial (and the made-up timelines
    right) is told which neuron it got wrong."""
    best = ctx.detection.neurons.iloc[0]
    units = iter([u for u, _, _ in vestigial.run_lines(ctx.detection)])

    def wrong(line, floor):
        unit = next(units, None)  # None: the made-up timelines after the run's
        return is_vestigial_right(line, floor) or unit == best.unit

    result = verdict("ex5", wrong, ctx)
    if best.vestigial:  # already caught: calling it vestigial is right
        assert result.passed
    else:
        assert not result.passed and best.unit in result.got


def test_ex5_refuses_the_kits_judge(ctx):
    with pytest.raises(AnswerError, match="judge"):
        vestigial.capture_ex5(lambda line, floor: judge(line, None, floor, "trigger"), ctx)


# --- ex6 --------------------------------------------------------------------------------------


def test_ex6_right_answers_pass(ctx):
    from answers import my_effects

    params = {"runs_dir": str(ctx.runs_dir), "preset": ctx.preset, "seed": ctx.seed}
    effects = my_effects(params)
    assert verdict("ex6", effects, ctx).passed  # 0-d tensors
    assert verdict("ex6", {k: float(v) for k, v in effects.items()}, ctx).passed


def test_ex6_wrong_answers_fail(ctx):
    from answers import my_effects
    from vestige.detect import target_neuron

    params = {"runs_dir": str(ctx.runs_dir), "preset": ctx.preset, "seed": ctx.seed}
    right = {k: float(v) for k, v in my_effects(params).items()}
    target = target_neuron(ctx.detection)
    run, positions = ctx.run, vestige_positions(ctx.run)
    layer, neuron = int(target.layer), int(target.neuron)
    zero = ablation(run, mode="zero")
    everywhere = ablation(run, everywhere=True)
    where = positions.classes[target.positions]
    steps = (int(target.peak_step), run.steps[-1])
    wrongs = {
        "swapped": {"peak": right["end"], "end": right["peak"]},
        "zero ablation": dict(
            zip(
                ("peak", "end"), (float(zero(run.model_at(s), layer, neuron, where)) for s in steps)
            )
        ),
        "every position": dict(
            zip(
                ("peak", "end"),
                (float(everywhere(run.model_at(s), layer, neuron, where)) for s in steps),
            )
        ),
        "another neuron": dict(
            zip(
                ("peak", "end"),
                (
                    float(
                        ablation(run)(
                            run.model_at(s), layer, (neuron + 1) % run.config.model.d_mlp, where
                        )
                    )
                    for s in steps
                ),
            )
        ),
    }
    for name, wrong in wrongs.items():
        if all(abs(wrong[k] - right[k]) <= 2e-3 + 0.02 * abs(right[k]) for k in right):
            continue  # on this run that mistake gives the same numbers
        assert not verdict("ex6", wrong, ctx).passed, name
    assert "the other way round" in verdict("ex6", wrongs["swapped"], ctx).got or (
        abs(right["peak"] - right["end"]) < 0.05
    )
    with pytest.raises(AnswerError):
        vestigial.capture_ex6((right["peak"], right["end"]), ctx)  # a tuple, not the dict


def vestige_positions(run):
    from vestige.analysis import Positions

    return Positions.of(run)


# --- ex7 --------------------------------------------------------------------------------------


def test_ex7_is_judged_on_the_best_candidate_when_nothing_is_caught(ctx):
    """No free point: a run without a catch is judged on its best candidate."""
    from answers import margin_fraction
    from vestige.detect import target_neuron

    params = {"runs_dir": str(ctx.runs_dir), "preset": ctx.preset, "seed": ctx.seed}
    right = margin_fraction(params)
    assert verdict("ex7", right, ctx).passed
    assert verdict("ex7", np.float32(right), ctx).passed
    target = target_neuron(ctx.detection)
    loss_ratio = float(target.final_effect / target.peak_effect)
    for wrong in (right + 0.5, -1.0, 0.0 if abs(right) > 0.05 else 0.9):
        assert not verdict("ex7", wrong, ctx).passed, wrong
    if abs(loss_ratio - right) > 0.05:
        assert "loss effect" in verdict("ex7", loss_ratio, ctx).got
