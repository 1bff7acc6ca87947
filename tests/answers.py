"""The reference answer to every exercise of the course's checks modules, written as a
learner's notebook would hand it to ``check(...)``.

``CASES[notebook]`` gives the Checker parameters of a learner's kernel on the test runs
(:func:`conftest.course_runs`) and, per exercise, a function of those parameters returning
the answer: a value exercise's ``lambda: value``, or a function exercise's function. The
shared suite (``test_checks.py``) runs every one; each module's own suite varies them
(right answers written another way, typical wrong answers).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import vestige
from scipy import stats


@dataclass(frozen=True)
class Case:
    """How to check one notebook: its Checker parameters on the test runs, and per exercise
    the reference answer for given parameters."""

    params: Callable[[Path], dict]
    answers: dict[str, Callable[[dict], Any]] = field(default_factory=dict)


def run_metrics(params: dict, folder: str, seed: int):
    return vestige.Run.open(Path(params["runs_dir"]) / folder / f"seed-{seed}").metrics


def last_eval(metrics):
    return metrics[metrics.split == "eval"].sort_values("step").iloc[-1]


# --- 00_welcome ----------------------------------------------------------------------------------


def untrained_p_true(params: dict) -> float:
    """The step-0 model's mean probability of the true next token at the scored positions."""
    run = vestige.Run.open(Path(params["runs_dir"]) / "welcome-tiny" / f"seed-{params['seed']}")
    batch = run.eval_batch
    with torch.no_grad():
        log_probs = run.model_at(0)(batch.tokens).log_softmax(-1)[:, :-1]
    picked = log_probs.gather(-1, batch.tokens[:, 1:, None])[..., 0].exp()
    return float(picked[batch.loss_mask[:, :-1]].mean())


def last_eval_loss(metrics):
    evals = metrics[metrics.split == "eval"]
    return float(evals.loc[evals.step.idxmax(), "loss"])


# --- 05_training ---------------------------------------------------------------------------------


def longer(config: vestige.RunConfig, steps=2, lr=0.5, **changes) -> vestige.RunConfig:
    """The preset trained `steps` times as long at `lr` times the learning rate."""
    train = dataclasses.replace(
        config.train, steps=int(config.train.steps * steps), lr=config.train.lr * lr
    )
    return config.replace(train=train, **changes)


def schedule_right(total, first, n_log):
    steps = {0, total}
    if first < total:
        ratio = (total / first) ** (1 / max(n_log - 1, 1))
        steps.update(round(first * ratio**i) for i in range(n_log))
    return sorted(steps)


def gaps(metrics_a, metrics_b):
    """Seed b's final per-class evaluation losses minus seed a's."""
    la, lb = last_eval(metrics_a), last_eval(metrics_b)
    cols = [c for c in la.index if c.startswith("loss_")]
    return (lb[cols] - la[cols]).astype(float)


def gap_merge(a, b):
    a, b = a[a.split == "eval"], b[b.split == "eval"]
    paired = a.merge(b, on="step")
    return int(paired.step[(paired.loss_x - paired.loss_y).abs().idxmax()])


def training_gaps(params: dict):
    folder = f"training-{params['preset']}"
    return gaps(
        run_metrics(params, folder, params["seed_a"]), run_metrics(params, folder, params["seed_b"])
    )


# --- 10_vestigial --------------------------------------------------------------------------------


def change_step_right(steps, probs):
    points = sorted((int(s), float(p)) for s, p in zip(steps, probs) if s > 0)
    peak = max(range(len(points)), key=lambda i: points[i][1])
    middle = (points[peak][1] + points[-1][1]) / 2
    return next((s for s, p in points[peak:] if p < middle), float("nan"))


def token_right(acts, focus, same):
    mu_f, mu_s = acts[focus].mean(0), acts[same].mean(0)
    return (mu_f - mu_s) / (mu_f + mu_s + 1e-7)


def ablation(run, mode="mean", everywhere=False):
    """ex3's function for `run`: the loss change where `where` is True when a neuron is held
    at its mean (or zero)."""
    from vestige.hooks import cache_activations, mlp_post, set_neurons
    from vestige.metrics import per_position_loss

    batch = run.eval_batch

    @torch.no_grad()
    def effect(model, layer, neuron, where):
        logits, cache = cache_activations(model, batch.tokens, [mlp_post(layer)])
        value = cache[mlp_post(layer)][..., neuron].mean() if mode == "mean" else 0.0
        clean, _ = per_position_loss(logits, batch.tokens)
        ablated, _ = per_position_loss(
            model.run_with_hooks(
                batch.tokens, fwd_hooks=[(mlp_post(layer), set_neurons([neuron], value))]
            ),
            batch.tokens,
        )
        mask = batch.loss_mask if everywhere else where
        return (ablated - clean)[mask].mean()  # a 0-d tensor: accepted too

    return effect


def is_vestigial_right(line, floor):
    line = line.sort_values("step")
    trained = line[line.step > 0]
    peak = trained.loc[trained.effect.idxmax()]
    needed = (trained.effect_low >= 0.15).astype(int).astype(str).str.cat()
    end = line.iloc[-1]
    return bool(
        peak.effect_low >= 0.15
        and peak.effect >= 2 * floor
        and "11" in needed
        and end.effect_high < 0.1 * peak.effect
        and end.selectivity > end.untrained_p99
        and end.preferred_class == end.positions
        and end.matched_selectivity > end.untrained_matched_p99
    )


def target_of(params: dict):
    """The detector's target in the notebook's run: the caught neuron, else the best candidate."""
    from vestige.detect import detect, target_neuron

    return target_neuron(detect(vestigial_run(params)))


def margin_fraction(params: dict) -> float:
    """The target's final logit-margin effect over its largest, from the analysis tables."""
    from vestige.analysis import analyze

    target = target_of(params)
    line = analyze(vestigial_run(params))["neurons"].query("unit == @target.unit")
    line = line[line.positions == target.positions].sort_values("step")
    return float(line.margin_effect.iloc[-1] / line[line.step > 0].margin_effect.max())


def my_effects(params: dict) -> dict:
    """ex6: the notebook's ablation_effect of the target at its peak step and at the end."""
    run, target = vestigial_run(params), target_of(params)
    effect = ablation(run)
    positions = vestige.Positions.of(run)
    where = positions.classes[target.positions]
    layer, neuron = int(target.layer), int(target.neuron)
    return {
        "peak": effect(run.model_at(int(target.peak_step)), layer, neuron, where),
        "end": effect(run.model_at(run.steps[-1]), layer, neuron, where),
    }


def vestigial_run(params: dict):
    return vestige.Run.open(Path(params["runs_dir"]) / params["preset"] / f"seed-{params['seed']}")


# --- 20_explorer ---------------------------------------------------------------------------------


def explorer_tables(params: dict):
    from vestige.tables import explorer_tables as tables

    root = Path(params["runs_dir"]) / params["preset"]
    return tables(
        vestige.Runs(root, {s: vestige.Run.open(root / f"seed-{s}") for s in params["seeds"]})
    )


def peak_step(params: dict) -> int:
    """Where the first seed's default neuron's effect is largest (after step 0)."""
    tables, seed = explorer_tables(params), params["seeds"][0]
    unit = tables.default_neuron(seed)
    mine = tables.neurons[(tables.neurons.seed == seed) & (tables.neurons.unit == unit)]
    mine = mine[mine.step > 0]
    return int(mine.loc[mine.effect.idxmax(), "step"])


def transition_gap(params: dict) -> float:
    tables, (first, second) = explorer_tables(params), params["seeds"][:2]
    return tables.transition(second) - tables.transition(first)


# --- 30_counterfactual ---------------------------------------------------------------------------


def counterfactual_runs(params: dict):
    """(the parent, {fork name: fork}) of the learner's run."""
    from vestige.counterfactual import fork_dir

    parent = vestigial_run(params)
    forks = {
        name: vestige.Run.open(fork_dir(Path(params["runs_dir"]) / "forks", parent, name))
        for name in ("hold-target", "hold-control")
    }
    return parent, forks


def final_crutch(run, parent) -> float:
    """The final evaluation loss on the crutch of `parent`'s target (the neuron a fork holds)."""
    from vestige.detect import detect, target_neuron

    column = f"loss_{target_neuron(detect(parent)).positions}"
    return float(run.metrics.query("split == 'eval'").sort_values("step")[column].iloc[-1])


def delay(params: dict) -> float:
    from vestige.analysis import transition_step

    parent, forks = counterfactual_runs(params)
    return transition_step(forks["hold-target"]) - transition_step(parent)


def cost(params: dict) -> float:
    parent, forks = counterfactual_runs(params)
    return final_crutch(forks["hold-target"], parent) - final_crutch(forks["hold-control"], parent)


# --- 40_many_seeds -------------------------------------------------------------------------------


def peak_settle_right(timeline):
    points = sorted((p["step"], p["effect"]) for p in timeline if p["step"] > 0)
    at = max(range(len(points)), key=lambda i: points[i][1])
    peak = points[at][1]
    for i in range(at, len(points)):
        if all(effect < peak / 2 for _, effect in points[i:]):
            return peak, points[i][0]
    return peak, None


def spearman(a, b):
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return np.nan
    return np.corrcoef(ra, rb)[0, 1]


def correlation_right(x, y, resamples):
    boot = np.array([spearman(x[row], y[row]) for row in resamples])
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return spearman(x, y), low, high


def settled_right(result):
    steps = sorted(p["step"] for p in result["timeline"])
    settle = result["mechanism"]["settle_step"]
    if settle is None:
        return []
    at = steps.index(settle)
    return sorted(
        name
        for name, step in result["mechanism"]["transitions"].items()
        if step is not None and abs(steps.index(step) - at) <= 1
    )


def paired_right(results, condition, outcome):
    deltas = []
    for r in results:
        changed = r["conditions"].get(condition, {}).get(outcome)
        base = r["base"].get(outcome)
        if changed is not None and base is not None:
            deltas.append(changed - base)
    d = np.array(deltas, dtype=float)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def detours_right(paths):
    visits = Counter(s for p in paths for s in set(p["states"]))
    return sorted(s for s, n in visits.items() if n < len(paths))


# --- the table -----------------------------------------------------------------------------------

CASES = {
    "00_welcome": Case(
        params=lambda runs: {"runs_dir": str(runs), "preset": "tiny", "seed": 0},
        answers={
            "predict": lambda p: lambda: "about 0",  # any option passes
            "ex1": lambda p: lambda: untrained_p_true(p),
            "ex2": lambda p: last_eval_loss,
        },
    ),
    "05_training": Case(
        params=lambda runs: {"runs_dir": str(runs), "preset": "tiny", "seed_a": 0, "seed_b": 1},
        answers={
            "predict": lambda p: lambda: "copy",  # any option passes
            "ex1": lambda p: lambda: longer(vestige.preset(p["preset"])),
            "ex2": lambda p: schedule_right,
            "ex3": lambda p: lambda: training_gaps(p),
            "ex4": lambda p: gap_merge,
        },
    ),
    "10_vestigial": Case(
        params=lambda runs: {"runs_dir": str(runs), "preset": "tiny", "seed": 0},
        answers={
            "predict": lambda p: lambda: "shuffled labels",  # any option passes
            "ex1": lambda p: change_step_right,
            "ex2": lambda p: token_right,
            "ex3": lambda p: ablation(vestigial_run(p)),
            "ex4": lambda p: is_vestigial_right,
            "ex5": lambda p: is_vestigial_right,
            "ex6": lambda p: lambda: my_effects(p),
            "ex7": lambda p: lambda: margin_fraction(p),
        },
    ),
    "20_explorer": Case(
        params=lambda runs: {"runs_dir": str(runs), "preset": "tiny", "seeds": [0, 1]},
        answers={
            "predict": lambda p: lambda: "no",  # any option passes
            "ex1": lambda p: lambda: peak_step(p),
            "ex2": lambda p: lambda: transition_gap(p),
        },
    ),
    "30_counterfactual": Case(
        params=lambda runs: {"runs_dir": str(runs), "preset": "tiny", "seed": 1},
        answers={
            "predict": lambda p: lambda: "later",  # any option passes
            "ex1": lambda p: lambda: delay(p),
            "ex2": lambda p: lambda: cost(p),
        },
    ),
    "40_many_seeds": Case(
        params=lambda runs: {"study_dir": str(Path(__file__).parents[1] / "course/study")},
        answers={
            "predict": lambda p: lambda: "over two thirds",  # any option passes
            "ex1": lambda p: peak_settle_right,
            "ex2": lambda p: correlation_right,
            "ex3": lambda p: settled_right,
            "ex4": lambda p: paired_right,
            "ex5": lambda p: detours_right,
        },
    ),
}
