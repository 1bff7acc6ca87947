"""The study across seeds: the detector on every seed, what took the caught neuron's job
over, and training without it.

Per seed: the unsuppressed run is judged by `vestige.detect` (the kit's one definition of
vestigial); for a caught neuron the mechanism tables say which transition its settling
coincides with and whether it is unused or a backup at the end; then the same seed is trained
again under each `CONDITIONS` entry (the neuron held at its mean for windows [0, t) and the
whole run, a matched control neuron held the same way, Leavitt & Morcos's selectivity
regulariser at several strengths). `summarize` pairs every condition with the unsuppressed
run of the same seed and gives 95% intervals over seeds; `vestige.report` writes it up.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vestige.config import RunConfig, SelectivityPenalty, Suppress, preset
from vestige.detect import Criteria, Detection, detect
from vestige.runs import Run
from vestige.stats import mean_ci
from vestige.training import ensure_run

DEFAULT = Criteria()  # the kit's one definition of vestigial


@dataclass(frozen=True)
class Condition:
    """A way of training a seed again. `name` is an id for the command line and folders;
    `target` is "neuron" (the caught one, else the crutch's main neuron: `target_neuron`),
    "control" (a never-needed neuron of the same layer) or "selectivity" (the regulariser on
    every layer); `until` ends the window at that
    fraction of the seed's transition step T (None: the whole run)."""

    name: str
    label: str
    target: str
    until: float | None = None
    alpha: float = 0.0

    def interventions(
        self, target: dict | None, control: int | None, transition: float, total: int
    ) -> tuple | None:
        """The run's interventions, or None when the seed has nothing to apply them to.
        `target` is the suppressed neuron (`layer`, `neuron`), `control` its control neuron."""
        if self.target == "selectivity":
            return (SelectivityPenalty(alpha=self.alpha),)
        if target is None or (self.target == "control" and control is None):
            return None
        neuron = target["neuron"] if self.target == "neuron" else control
        end = None if self.until is None else max(1, round(self.until * _finite(transition, total)))
        return (Suppress(target["layer"], (int(neuron),), mode="mean", end=end),)


CONDITIONS = (
    Condition("neuron-0.25T", "target neuron held at its mean, steps [0, T/4)", "neuron", 0.25),
    Condition("neuron-0.5T", "target neuron held at its mean, steps [0, T/2)", "neuron", 0.5),
    Condition("neuron-1T", "target neuron held at its mean, steps [0, T)", "neuron", 1.0),
    Condition("neuron-whole", "target neuron held at its mean, whole run", "neuron"),
    Condition("control-1T", "control neuron held at its mean, steps [0, T)", "control", 1.0),
    Condition("control-whole", "control neuron held at its mean, whole run", "control"),
    Condition("alpha-1", "selectivity regulariser, alpha = -1", "selectivity", alpha=-1.0),
    Condition("alpha-0.3", "selectivity regulariser, alpha = -0.3", "selectivity", alpha=-0.3),
    Condition("alpha+0.3", "selectivity regulariser, alpha = +0.3", "selectivity", alpha=0.3),
)
CONDITION_NAMES = {c.name: c for c in CONDITIONS}


def _finite(transition: float, total: int) -> float:
    """The transition step, or a quarter of training when the run never made the transition."""
    return total / 4 if math.isnan(transition) else transition


# ----------------------------------------------------------------------------- one seed


def outcome(run: Run) -> dict[str, float]:
    """What a run ended with: evaluation loss and accuracy, loss on the focus and transition
    positions, loss at the budget checkpoint (a third of training), and the transition step."""
    from vestige.analysis import transition_step

    evals = run.metrics.query("split == 'eval'").set_index("step").sort_index()
    task = run.task
    budget = budget_step(run.config)
    final = evals.iloc[-1]
    return {
        "final_loss": float(final["loss"]),
        "final_accuracy": float(final["accuracy"]),
        "focus_loss": float(final.get(f"loss_{task.focus_class}", math.nan)),
        "copy_loss": float(final.get(f"loss_{task.transition_class}", math.nan)),
        "budget_loss": float(evals.loc[budget, "loss"]),
        "transition": transition_step(run),
        "mean_selectivity": mean_selectivity(run),
    }


def budget_step(config: RunConfig) -> int:
    """The fixed-budget checkpoint: the first at or after a third of training."""
    steps = config.checkpoint_steps
    return next(s for s in steps if s >= config.train.steps / 3)


def mean_selectivity(run: Run) -> float:
    """Mean selectivity index of every active MLP neuron at the final checkpoint."""
    from vestige.analysis import Positions, selectivities
    from vestige.hooks import cache_activations, mlp_post

    n_layers, batch = run.config.model.n_layers, run.eval_batch
    _, acts = cache_activations(
        run.model_at(run.steps[-1]), batch.tokens, [mlp_post(layer) for layer in range(n_layers)]
    )
    positions = Positions.of(run)
    values = np.concatenate(
        [
            selectivities(
                acts[mlp_post(layer)], batch.labels, len(run.task.class_names), positions
            )["selectivity"].numpy()
            for layer in range(n_layers)
        ]
    )
    return float(np.nanmean(values))


def target_neuron(found: Detection) -> pd.Series:
    """The neuron the study suppresses: the caught one, else the one the crutch leaned on most
    (the largest peak effect on the focus positions)."""
    if found.vestigial is not None:
        return found.vestigial
    return found.neurons.loc[found.neurons["peak_effect"].idxmax()]


def target_subject(found: Detection, target: pd.Series | None = None):
    """The mechanism tables' subject for `target` (default: `target_neuron`): the neuron, and
    the three neurons of its layer with the largest peaks for the joint ablation."""
    from vestige.mechanism import Subject

    target = target_neuron(found) if target is None else target
    layer_rows = found.neurons[found.neurons["layer"] == target["layer"]]
    joint = tuple(int(n) for n in layer_rows.nlargest(3, "peak_effect")["neuron"])
    return Subject(int(target["layer"]), int(target["neuron"]), joint)


def control_neuron(found: Detection, target: pd.Series) -> int | None:
    """The control for suppressing `target`: a neuron of the same layer that was never needed
    (the smallest peak effect; not the contrast), held at its mean the same way."""
    others = found.neurons[
        (found.neurons["layer"] == target["layer"]) & (found.neurons["unit"] != target["unit"])
    ]
    if found.contrast is not None:
        others = others[others["unit"] != found.contrast["unit"]]
    if others.empty:
        return None
    return int(others.loc[others["peak_effect"].idxmin(), "neuron"])


def study_base(
    config: RunConfig, seed: int, out: Path, criteria: Criteria = DEFAULT
) -> dict[str, Any]:
    """The seed's unchanged run: its outcome, the detector's verdict, and the mechanism record
    of the neuron the conditions suppress (runs in a worker process)."""
    import torch

    torch.set_num_threads(1)
    base = ensure_run(config, seed, out / "base" / f"seed-{seed}", progress=False)
    found = detect(base, criteria)
    target = target_neuron(found)
    result: dict[str, Any] = {
        "seed": seed,
        "base": outcome(base),
        "summary": found.summary(),
        "init_floor": found.init_floor,
        **_detection_record(found),
    }
    result["target"] = {
        "unit": target["unit"],
        "layer": int(target["layer"]),
        "neuron": int(target["neuron"]),
        "caught": found.vestigial is not None,
    }
    result["timeline"] = timeline_record(found, target["unit"])
    result["control_neuron"] = control_neuron(found, target)
    result["mechanism"] = mechanism_record(base, found, target)
    return result


def condition_runs(
    config: RunConfig, seed: int, out: Path, conditions: tuple[str, ...], base: dict[str, Any]
) -> dict[str, tuple[RunConfig, Path, tuple]]:
    """{condition: (its config, its run directory, its interventions)} for the conditions that
    apply to the seed whose `study_base` result is `base`, in `conditions` order."""
    runs = {}
    for name in conditions:
        interventions = CONDITION_NAMES[name].interventions(
            base["target"], base["control_neuron"], base["base"]["transition"], config.train.steps
        )
        if interventions is not None:
            runs[name] = (
                config.replace(interventions=interventions),
                Path(out) / name / f"seed-{seed}",
                interventions,
            )
    return runs


def condition_record(measured: dict[str, float], interventions: tuple) -> dict[str, Any]:
    """A condition's entry in the seed's result: its outcome and the interventions it used."""
    return {
        **measured,
        "interventions": [{"kind": type(i).kind, **dataclasses.asdict(i)} for i in interventions],
    }


def study_seed(
    config: RunConfig,
    seed: int,
    out: Path,
    conditions: tuple[str, ...],
    criteria: Criteria = DEFAULT,
) -> dict[str, Any]:
    """Everything measured for one seed, conditions included (one process)."""
    result = study_base(config, seed, out, criteria)
    result["conditions"] = {
        name: condition_record(
            outcome(ensure_run(run_config, seed, path, progress=False)), interventions
        )
        for name, (run_config, path, interventions) in condition_runs(
            config, seed, out, conditions, result
        ).items()
    }
    return result


def _detection_record(found: Detection) -> dict[str, Any]:
    v, c = found.vestigial, found.contrast
    best = found.neurons.iloc[0]
    record = {
        "caught": v is not None,
        "neuron": None if v is None else _plain_row(v),
        "best_candidate": _plain_row(best),
        "contrast": None if c is None else _plain_row(c),
    }
    return record


def timeline_record(found: Detection, unit: str) -> list[dict[str, Any]]:
    line = found.timelines[found.timelines["unit"] == unit]
    return line[
        [
            "step",
            "effect",
            "effect_low",
            "effect_high",
            "margin_effect",
            "selectivity",
            "matched_selectivity",
        ]
    ].to_dict("records")


def _plain_row(row) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def mechanism_record(run: Run, found: Detection, v: pd.Series) -> dict[str, Any]:
    """What took neuron `v`'s job over: the transitions its settling coincides with, whether
    at the end it is unused or still used, and whether it is a backup."""
    from vestige.analysis import transition_step
    from vestige.mechanism import mechanism, stage_change_steps

    subject = target_subject(found, v)
    tables = mechanism(run, subject)
    steps = run.steps
    transitions = {
        "copy": _nearest(steps, transition_step(run)),
        **{name: s for name, s in stage_change_steps(tables["stages"]).items()},
    }
    settle = None if _isnan(v["settle_step"]) else int(v["settle_step"])
    coincides = [
        name
        for name, step in transitions.items()
        if settle is not None
        and not _isnan(step)
        and abs(steps.index(int(step)) - steps.index(int(settle))) <= 1
    ]
    neuron = tables["neuron"].set_index("step")
    final = neuron.iloc[-1]
    heads = tables["heads"]
    took_over = _heads_that_grew(heads, v["peak_step"], settle)
    criteria = found.criteria
    return {
        "transitions": transitions,
        "settle_step": settle,
        "coincides_with": coincides,
        "end_status": "unused"
        if v["final_margin_high"] < criteria.max_final_fraction * v["peak_margin"]
        else "still used (outweighed)",
        "backup_at_end": None
        if "effect_later_attn_ablated" not in final
        else bool(final["effect_later_attn_ablated"] >= criteria.min_peak),
        "effect_later_attn_ablated": _series(neuron, "effect_later_attn_ablated"),
        "effect_joint": _series(neuron, "effect_joint"),
        "effect_all_others": _series(neuron, "effect_all_others"),
        "joint_neurons": list(subject.joint),
        "heads_that_grew": took_over,
        "stages": tables["stages"]
        .pivot(index="step", columns="stage", values="probability")
        .reset_index()
        .to_dict("records"),
        "neuron_margin": tables["attribution"]
        .query("component == @v.unit")[["step", "margin"]]
        .to_dict("records"),
    }


def _heads_that_grew(heads, peak_step: int, settle: int | None) -> list[dict[str, Any]]:
    """Heads whose ablation cost on focus positions grew most from the neuron's peak to its
    settling (the candidates for what took its job over), largest first."""
    if settle is None:
        return []
    at = heads.set_index(["step", "unit"])["effect_focus"]
    grew = (at.loc[settle] - at.loc[peak_step]).sort_values(ascending=False).head(2)
    rows = heads[heads["step"] == settle].set_index("unit")
    return [
        {
            "head": unit,
            "growth": float(g),
            "effect_at_settle": float(rows.loc[unit, "effect_focus"]),
            "attn_previous": float(rows.loc[unit, "attn_previous"]),
            "attn_induction": float(rows.loc[unit, "attn_induction"]),
        }
        for unit, g in grew.items()
    ]


def _series(table, column: str) -> list[list[float]]:
    if column not in table:
        return []
    return [[int(step), float(value)] for step, value in table[column].items()]


def _nearest(steps: list[int], step: float) -> float:
    return math.nan if _isnan(step) else float(min(steps, key=lambda s: abs(s - step)))


def _isnan(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


# ----------------------------------------------------------------------------- many seeds


def run_study(
    preset_name: str,
    seeds: list[int],
    out: str | os.PathLike,
    report: str | os.PathLike | None = None,
    workers: int = 2,
    progress: bool = True,
    conditions: tuple[str, ...] = tuple(CONDITION_NAMES),
    control: tuple[str, list[int]] | None = None,
    search: str | os.PathLike | None = None,
    scheduler: Any = None,
    condition_seeds: list[int] | None = None,
) -> dict[str, Any]:
    """Run (or reuse) every seed, then write report.md, summary.json and figures to `report`
    (default: OUT) and return the summary. `control` = (preset, seeds) is judged by the
    detector only, as the negative control; `search` is the search log for the appendix.
    `scheduler` (a Dask scheduler address or `distributed.Client`) runs the seeds on that
    cluster instead of `workers` local processes (see `vestige.distributed`).
    `condition_seeds` (default: every seed) are the seeds the conditions are trained on."""
    from vestige.report import write_report

    unknown = set(conditions) - set(CONDITION_NAMES)
    if unknown:
        raise ValueError(
            f"unknown conditions {sorted(unknown)}; known: {', '.join(CONDITION_NAMES)}"
        )
    config = preset(preset_name)
    out = Path(out)
    started = time.perf_counter()
    with_conditions = set(seeds if condition_seeds is None else condition_seeds)
    jobs = {
        ("study", seed): (
            config,
            seed,
            out / config.name,
            conditions if seed in with_conditions else (),
        )
        for seed in seeds
    }
    if control is not None:
        control_config = preset(control[0])
        jobs.update(
            {
                ("control", seed): (control_config, seed, out / control_config.name, ())
                for seed in control[1]
            }
        )
    results = run_jobs(jobs, workers, progress, scheduler)
    main = [results[key] for key in sorted(jobs) if key[0] == "study"]
    negative = [results[key] for key in sorted(jobs) if key[0] == "control"]
    summary = summarize(config, main, conditions, time.perf_counter() - started)
    if control is not None:
        summary["control"] = summarize_control(control[0], negative)
    write_report(summary, main, Path(report) if report else out, search)
    return summary


def run_jobs(
    jobs: dict[tuple, tuple], workers: int, progress: bool, scheduler: Any = None
) -> dict[tuple, dict]:
    """`study_seed(*args)` for every job {key: args}, cut into one task per seed and one per
    seed and condition, on `workers` local processes or on the Dask cluster `scheduler`."""
    from vestige.distributed import Steps, run_tasks

    steps = Steps(base=study_base, plan=condition_runs, record=condition_record, measure=outcome)
    results = run_tasks(jobs, steps, workers, progress, scheduler)
    return {key: {"preset": jobs[key][0].name, **results[key]} for key in jobs}


OUTCOMES = (
    "final_loss",
    "final_accuracy",
    "focus_loss",
    "copy_loss",
    "budget_loss",
    "transition",
    "mean_selectivity",
)


def summarize(
    config: RunConfig, results: list[dict], conditions: tuple[str, ...], seconds: float
) -> dict[str, Any]:
    """Counts, per-seed verdicts and paired condition effects, all machine-readable."""
    caught = [r for r in results if r["caught"]]
    mechanisms = [r["mechanism"] for r in caught]
    comparisons = {}
    for name in conditions:
        pairs = [r for r in results if name in r["conditions"]]
        comparisons[name] = {
            "seeds": [r["seed"] for r in pairs],
            **{
                f"delta_{m}": mean_ci([r["conditions"][name][m] - r["base"][m] for r in pairs])
                for m in OUTCOMES
            },
        }
        comparisons[name]["verdict"] = verdict(comparisons[name]["delta_final_loss"])
        comparisons[name]["label"] = CONDITION_NAMES[name].label
    failed = {}
    for r in results:
        if not r["caught"]:
            for clause in r["best_candidate"]["failed"]:
                failed[clause] = failed.get(clause, 0) + 1
    return {
        "preset": config.name,
        "seeds": [r["seed"] for r in results],
        "n_seeds": len(results),
        "criteria": {**vars_of(DEFAULT), "clauses": DEFAULT.clauses()},
        "caught": len(caught),
        "caught_seeds": [r["seed"] for r in caught],
        "failed_clauses_when_not_caught": failed,
        "coincides_with": _count(name for m in mechanisms for name in m["coincides_with"]),
        "coincides_with_none": sum(not m["coincides_with"] for m in mechanisms),
        "end_status": _count(m["end_status"] for m in mechanisms),
        "backup_at_end": sum(bool(m["backup_at_end"]) for m in mechanisms),
        "base": {m: mean_ci([r["base"][m] for r in results]) for m in OUTCOMES},
        "comparisons": comparisons,
        "budget_step": budget_step(config),
        "seconds": round(seconds, 1),
    }


def summarize_control(preset_name: str, results: list[dict]) -> dict[str, Any]:
    return {
        "preset": preset_name,
        "seeds": [r["seed"] for r in results],
        "caught": sum(r["caught"] for r in results),
        "best_candidates": {r["seed"]: r["best_candidate"] for r in results},
    }


def vars_of(criteria: Criteria) -> dict[str, Any]:
    return {k: getattr(criteria, k) for k in criteria.__dataclass_fields__}


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def verdict(delta: dict[str, float]) -> str:
    """Condition minus unsuppressed final loss: "better", "worse", "no clear difference" or
    "too few seeds" (a machine-readable word; the interval is beside it in the summary)."""
    if delta["n"] < 2:
        return "too few seeds"
    if delta["high"] < 0:
        return "better"
    if delta["low"] > 0:
        return "worse"
    return "no clear difference"
