"""The study across seeds: the detector on every seed, what its target neuron did, and
training without it.

Per seed (`study_base`): the unsuppressed run is judged by `vestige.detect` (the kit's one
definition of vestigial), under the default criteria and every step of the threshold sweep;
the mechanism tables give the transitions the target's settling may coincide with, whether
at the end it is unused or still used, and the crutch's attention head; then the seed is
trained again under each `vestige.conditions` entry. Perturbed copies of a seed (another
thread count, a 1e-6 perturbation of its initial weights) and control seeds are judged the
same way, without the mechanism pass (only their verdicts are compared). The
statistics across seeds are `vestige.summary`'s; `vestige.report` writes them up.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vestige.conditions import CONDITION_NAMES, POOL_CONDITIONS
from vestige.config import RunConfig, preset
from vestige.detect import Criteria, Detection, control_neuron, detect, target_neuron
from vestige.distributed import Job, run_dir
from vestige.mechanism import target_subject
from vestige.runs import Run
from vestige.stats import mean_ci
from vestige.summary import (
    OUTCOMES,
    SWEEP,
    catch_rates,
    coincidence_null,
    comparisons,
    failed_clauses,
    first_copy,
    numerics,
    one_clause_short,
    sweep_key,
    threshold_sweep,
)
from vestige.training import ensure_run

DEFAULT = Criteria()  # the kit's one definition of vestigial
# Perturbed copies of a report seed: (folder suffix, threads, init noise).
PERTURBATIONS = {"threads-2": (2, 0.0), "noise-1e-6": (1, 1e-6)}


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
        "focus_loss": float(final.get(task.focus_metric, math.nan)),
        "copy_loss": float(final.get(f"loss_{task.transition_class}", math.nan)),
        "budget_loss": float(evals.loc[budget, "loss"]),
        "transition": transition_step(run),
        "mean_selectivity": mean_selectivity(run),
        "pool_loss": float(final.get("pool_loss", math.nan)),  # a finite training set's
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
                acts[mlp_post(layer)].cpu(), batch.labels, len(run.task.class_names), positions
            )["selectivity"].numpy()
            for layer in range(n_layers)
        ]
    )
    return float(np.nanmean(values))


def study_base(
    config: RunConfig,
    seed: int,
    out: Path,
    threads: int = 1,
    device: str = "cpu",
    mechanism: bool = True,
    criteria: Criteria = DEFAULT,
) -> dict[str, Any]:
    """The seed's unchanged run: its outcome, the detector's verdict (and the verdicts of the
    threshold sweep), and (unless `mechanism` is False) the mechanism record of the neuron the
    conditions suppress and the crutch's head (runs in a worker process, with `threads` torch
    threads, on `device` as the worker resolves it)."""
    import torch

    torch.set_num_threads(threads)
    base = ensure_run(config, seed, run_dir(out, "base", seed), progress=False, device=device)
    found = detect(base, criteria)
    target = target_neuron(found)
    result: dict[str, Any] = {
        "seed": seed,
        "threads": threads,
        "steps": base.steps,
        "base": outcome(base),
        "summary": found.summary(),
        "init_floor": found.init_floor,
        **_detection_record(found),
    }
    result["target"] = {
        "unit": target["unit"],
        "layer": int(target["layer"]),
        "neuron": int(target["neuron"]),
        "positions": target["positions"],
        "caught": found.vestigial is not None,
    }
    result["sweep"] = sweep_record(found)
    result["faders"] = fader_settle_steps(found)
    result["timeline"] = timeline_record(found, target["unit"])
    result["first_copy"] = first_copy_record(base, target)
    result["control_neuron"] = control_neuron(found, target)
    if mechanism:
        result["mechanism"] = mechanism_record(base, found, target)
        result["crutch_head"] = result["mechanism"].pop("crutch_head")
    return result


def sweep_record(found: Detection) -> dict[str, bool]:
    """Whether the seed has a catch under each step of `vestige.summary.SWEEP`."""
    out = {}
    for parameter, values in SWEEP.items():
        for value in values:
            criteria = dataclasses.replace(found.criteria, **{parameter: value})
            out[sweep_key(parameter, value)] = bool(found.rejudge(criteria)["vestigial"].any())
    return out


def fader_settle_steps(found: Detection) -> list[int]:
    """The settle steps of every neuron that was needed, above the floor, sustained and then
    faded, selective or not: the early settlers a coincidence must beat (see
    `vestige.summary.coincidence_null`)."""
    n = found.neurons
    faded = n[n["needed"] & n["above_init"] & n["sustained"] & n["faded"]]
    return [int(s) for s in faded["settle_step"].dropna()]


def first_copy_record(run: Run, target: pd.Series) -> dict[str, float] | None:
    """The target's effect at its peak and at the end on its scored focus positions and on
    the unscored first-copy ones, where only the crutch can predict the next token."""
    from vestige.analysis import analyze, unscored_class

    positions = target["positions"]
    ablation = analyze(run)["ablation"]
    mine = ablation[
        (ablation["layer"] == target["layer"])
        & (ablation["neuron"] == target["neuron"])
        & (ablation["mode"] == ablation["mode"].iloc[0])
    ].set_index(["positions", "step"])["delta_loss"]
    unscored = unscored_class(positions)
    if unscored not in mine.index.get_level_values(0):
        return None
    peak, final = int(target["peak_step"]), max(run.steps)
    return {
        "scored_peak": float(mine[positions, peak]),
        "unscored_peak": float(mine[unscored, peak]),
        "scored_final": float(mine[positions, final]),
        "unscored_final": float(mine[unscored, final]),
    }


def condition_runs(
    config: RunConfig, seed: int, out: Path, conditions: tuple[str, ...], base: dict[str, Any]
) -> dict[str, tuple[RunConfig, Path, tuple]]:
    """{condition: (its config, its run directory, its interventions)} for the conditions that
    apply to the seed whose `study_base` result is `base`, in `conditions` order."""
    runs = {}
    for name in conditions:
        interventions = CONDITION_NAMES[name].interventions(base, config.train.steps)
        if interventions is not None:
            runs[name] = (
                config.replace(interventions=interventions),
                run_dir(out, name, seed),
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
    threads: int = 1,
    device: str = "cpu",
    mechanism: bool = True,
    criteria: Criteria = DEFAULT,
) -> dict[str, Any]:
    """Everything measured for one seed, conditions included (one process, on `device`)."""
    result = study_base(config, seed, out, threads, device, mechanism, criteria)
    result["conditions"] = {
        name: condition_record(
            outcome(ensure_run(run_config, seed, path, progress=False, device=device)),
            interventions,
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
    """What neuron `v` did: the transitions its settling may coincide with (see
    `vestige.summary.coincidence_null` for what that is worth), the heads whose cost grew
    while it settled (candidates, not a test), whether at the end it is unused or still used,
    whether it is a backup, and the crutch's attention head (`crutch_head`)."""
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
        "crutch_head": crutch_head(heads, steps, transitions["copy"], run.config.train.steps),
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


def crutch_head(heads: pd.DataFrame, steps: list[int], transition: float, total: int) -> dict:
    """The crutch's attention head: the one whose mean ablation costs most on the focus
    positions at the last checkpoint before half the copy transition (a quarter of training
    when there is none), long before copying can do the crutch's job."""
    half = (total / 4 if _isnan(transition) else transition) / 2
    at = max([s for s in steps if 0 < s <= half] or [steps[1]])
    rows = heads[heads["step"] == at]
    best = rows.loc[rows["effect_focus"].idxmax()]
    return {
        "unit": best["unit"],
        "layer": int(best["layer"]),
        "head": int(best["head"]),
        "step": int(at),
        "effect": float(best["effect_focus"]),
        "attn_previous": float(best["attn_previous"]),
    }


def _heads_that_grew(heads, peak_step: int, settle: int | None) -> list[dict[str, Any]]:
    """Heads whose ablation cost on focus positions grew most from the neuron's peak to its
    settling (candidates for what changed with it, not proof of a takeover), largest first."""
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
    perturbed_seeds: list[int] | None = None,
    pool: tuple[int, list[int]] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run (or reuse) every seed, then write report.md, summary.json and figures to `report`
    (default: OUT) and return the summary. `control` = (preset, seeds) is judged by the
    detector only, as the negative control; `search` is the search log for the appendix.
    `scheduler` (a Dask scheduler address or `distributed.Client`) runs the seeds on that
    cluster instead of `workers` local processes (see `vestige.distributed`).
    `condition_seeds` (default: every seed) are the seeds the conditions are trained on;
    `perturbed_seeds` are retrained as each of `PERTURBATIONS` and judged again; `pool` =
    (size, seeds) trains those seeds on a finite training set of `size` sequences, unchanged
    and under each of `POOL_CONDITIONS`. `device` ("auto", "cpu", "cuda") is resolved by each
    worker: every run is trained and analysed there."""
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
        ("study", seed): Job(
            config,
            seed,
            out / config.name,
            conditions if seed in with_conditions else (),
            1,
            device,
        )
        for seed in seeds
    }
    for kind, (threads, noise) in PERTURBATIONS.items():
        perturbed = config.replace(model=dataclasses.replace(config.model, init_noise=noise))
        for seed in perturbed_seeds or ():
            jobs[(kind, seed)] = Job(
                perturbed, seed, out / f"{config.name}-{kind}", (), threads, device, mechanism=False
            )
    if pool is not None:
        size, pool_seeds = pool
        pooled = config.replace(task=dataclasses.replace(config.task, train_pool=size))
        for seed in pool_seeds:
            jobs[("pool", seed)] = Job(
                pooled, seed, out / f"{config.name}-pool", POOL_CONDITIONS, 1, device
            )
    if control is not None:
        control_config = preset(control[0])
        for seed in control[1]:
            jobs[("control", seed)] = Job(
                control_config, seed, out / control_config.name, (), 1, device, mechanism=False
            )
    results = run_jobs(jobs, workers, progress, scheduler)

    def part(name: str) -> list[dict]:
        return [results[key] for key in sorted(jobs) if key[0] == name]

    summary = summarize(config, part("study"), conditions, time.perf_counter() - started)
    summary["numerics"] = numerics(part("study"), {kind: part(kind) for kind in PERTURBATIONS})
    if control is not None:
        summary["control"] = summarize_control(control[0], part("control"))
        summary["rates"] = catch_rates(part("study"), part("control"))
    if pool is not None:
        summary["pool"] = summarize_pool(pool[0], part("pool"))
    folder = Path(report) if report else out
    summary["map"] = {"reference": study_map(part("study"), out / config.name, folder, "map")}
    if control is not None:
        summary["map"]["control"] = study_map(
            part("control"), out / preset(control[0]).name, folder, "map_control"
        )
    write_report(summary, part("study"), folder, search)
    return summary


def study_map(results: list[dict], out: Path, folder: Path, prefix: str) -> dict[str, Any]:
    """The training map (Hu et al. 2023) of the unchanged runs of `results`, z-scored per run
    as they do and, as a check on that choice, on one scale for every seed; its detours
    against the copy transition and the detector's catches; its figures in `folder`."""
    from vestige.map_charts import save_map_charts
    from vestige.maps import detours, training_map

    if len(results) < 3:
        return {"skipped": f"{len(results)} seeds: a map needs at least 3"}
    runs = [Run.open(run_dir(out, "base", r["seed"])) for r in results]
    caught = {r["seed"]: bool(r["caught"]) for r in results}
    out_map = {}
    for normalize in ("run", "pooled"):
        fitted = training_map(runs, seed=0, normalize=normalize)
        out_map[normalize] = {
            "map": fitted.summary(),
            "detours": detours(fitted, caught=caught).summary(),
        }
        if normalize == "run":
            out_map["figures"] = save_map_charts(fitted, folder, fitted.transitions, prefix)
    return out_map


def run_jobs(
    jobs: dict[tuple, Job], workers: int, progress: bool, scheduler: Any = None
) -> dict[tuple, dict]:
    """`study_seed(*job)` for every job {key: Job}, cut into one task per seed and one per
    seed and condition, on `workers` local processes or on the Dask cluster `scheduler`.
    Locally, jobs of T torch threads run after the others, on workers // T processes: two
    threads beside another job on two cores would oversubscribe them; each phase has its own
    progress bar ("runs", then "runs on T threads")."""
    from vestige.distributed import Steps, run_tasks

    steps = Steps(base=study_base, plan=condition_runs, record=condition_record, measure=outcome)
    if scheduler is not None:
        phases = [(jobs, workers, "runs")]
    else:
        threads = sorted({job.threads for job in jobs.values()})
        phases = [
            (
                {key: job for key, job in jobs.items() if job.threads == t},
                max(1, workers // t),
                "runs" if t == threads[0] else f"runs on {t} threads",
            )
            for t in threads
        ]
    results: dict[tuple, dict] = {}
    for group, processes, desc in phases:
        results.update(run_tasks(group, steps, processes, progress, scheduler, desc=desc))
    return {key: {"preset": jobs[key].config.name, **results[key]} for key in jobs}


def summarize(
    config: RunConfig, results: list[dict], conditions: tuple[str, ...], seconds: float
) -> dict[str, Any]:
    """Counts, per-seed verdicts, the sweep, the null model and the paired condition effects,
    all machine-readable (see `vestige.summary`)."""
    caught = [r for r in results if r["caught"]]
    mechanisms = [r["mechanism"] for r in caught]
    labels = {name: CONDITION_NAMES[name].label for name in conditions}
    return {
        "preset": config.name,
        "seeds": [r["seed"] for r in results],
        "n_seeds": len(results),
        "criteria": {**DEFAULT.as_dict(), "clauses": DEFAULT.clauses()},
        "caught": len(caught),
        "caught_seeds": [r["seed"] for r in caught],
        "rates": catch_rates(results, None),
        "failed_clauses_when_not_caught": failed_clauses(results),
        "one_clause_short": one_clause_short(results),
        "threshold_sweep": threshold_sweep(results),
        "coincides_with": dict(
            sorted(_count(name for m in mechanisms for name in m["coincides_with"]).items())
        ),
        "coincides_with_none": sum(not m["coincides_with"] for m in mechanisms),
        "coincidence_null": coincidence_null(results),
        "end_status": _count(m["end_status"] for m in mechanisms),
        "backup_at_end": sum(bool(m["backup_at_end"]) for m in mechanisms),
        "first_copy": first_copy(results),
        "base": {m: mean_ci([r["base"][m] for r in results]) for m in OUTCOMES},
        **comparisons(results, conditions, labels),
        "budget_step": budget_step(config),
        "seconds": round(seconds, 1),
    }


def summarize_control(preset_name: str, results: list[dict]) -> dict[str, Any]:
    return {
        "preset": preset_name,
        "seeds": [r["seed"] for r in results],
        "caught": sum(r["caught"] for r in results),
        "caught_seeds": [r["seed"] for r in results if r["caught"]],
        "threshold_sweep": threshold_sweep(results),
        "best_candidates": {r["seed"]: r["best_candidate"] for r in results},
    }


def summarize_pool(size: int, results: list[dict]) -> dict[str, Any]:
    """The finite training set: the generalisation gap of the unchanged runs (held-out minus
    training-set loss at the end) and each regulariser strength against them."""
    labels = {name: CONDITION_NAMES[name].label for name in POOL_CONDITIONS}
    return {
        "size": size,
        "seeds": [r["seed"] for r in results],
        "caught": sum(r["caught"] for r in results),
        "gap": mean_ci([r["base"]["final_loss"] - r["base"]["pool_loss"] for r in results]),
        "base": {m: mean_ci([r["base"][m] for r in results]) for m in (*OUTCOMES, "pool_loss")},
        **comparisons(results, POOL_CONDITIONS, labels),
    }


def _count(items) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(items))
