"""The study across seeds: catch the vestigial neuron, then train without it.

For every seed: train (or reuse) the unsuppressed run, detect the vestigial neuron, then
train the same seed three more times: the neuron held at its mean for the whole run, for an
early window only (until the unsuppressed run's transition), and with the selectivity
regulariser pushing selectivity down (alpha < 0). Each is compared with the unsuppressed run
of the same seed. Writes report.md, summary.json and PNG figures.

    runs layout:  OUT/<condition>/seed-<k>/   condition in base, suppress-whole,
                                              suppress-early, selectivity-down
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vestige.analysis import transition_step
from vestige.config import RunConfig, SelectivityPenalty, Suppress, preset
from vestige.detect import detect
from vestige.runs import Run
from vestige.training import ensure_run

CONDITIONS = ("suppress-whole", "suppress-early", "selectivity-down")
ALPHA = -1.0
# Two-sided 95% Student t quantiles by degrees of freedom (normal beyond 30).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and 95% t-interval of `values` (NaNs dropped)."""
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return {"n": 0, "mean": float("nan"), "low": float("nan"), "high": float("nan")}
    if len(x) == 1:
        return {"n": 1, "mean": float(x[0]), "low": float("nan"), "high": float("nan")}
    t = _T975[len(x) - 2] if len(x) - 1 <= len(_T975) else 1.96
    half = t * x.std(ddof=1) / math.sqrt(len(x))
    return {"n": int(len(x)), "mean": float(x.mean()), "low": float(x.mean() - half), "high": float(x.mean() + half)}


def final_eval(run: Run) -> dict[str, float]:
    metrics = run.metrics
    evals = metrics[metrics["split"] == "eval"].sort_values("step")
    last = evals.iloc[-1]
    return {"loss": float(last["loss"]), "accuracy": float(last["accuracy"]),
            "transition": transition_step(run)}


def study_seed(
    config: RunConfig, seed: int, out: Path, conditions: tuple[str, ...] = CONDITIONS
) -> dict[str, Any]:
    """Everything measured for one seed (runs in a worker process)."""
    import torch

    torch.set_num_threads(1)
    base = ensure_run(config, seed, out / "base" / f"seed-{seed}", progress=False)
    found = detect(base)
    result: dict[str, Any] = {"seed": seed, "base": final_eval(base), "summary": found.summary()}
    v, c = found.vestigial, found.contrast
    result["vestigial"] = None if v is None else {
        k: (v[k].item() if hasattr(v[k], "item") else v[k])
        for k in ("unit", "layer", "neuron", "peak_effect", "peak_step", "settle_step",
                  "final_effect", "final_selectivity", "baseline", "positions")
    }
    result["contrast"] = None if c is None else {
        "unit": c["unit"], "positions": c["positions"], "final_effect": float(c["final_effect"]),
        "final_selectivity": float(c["final_selectivity"]),
    }
    result["init_floor"] = found.init_floor
    result["timeline"] = (
        found.timelines[found.timelines["unit"] == v["unit"]][["step", "selectivity", "effect"]]
        .to_dict("records") if v is not None else []
    )
    transition = result["base"]["transition"]
    early_end = int(transition) if not math.isnan(transition) else config.train.steps // 4
    interventions = {"selectivity-down": (SelectivityPenalty(alpha=ALPHA),)}
    if v is not None:
        neuron = (int(v["neuron"]),)
        interventions["suppress-whole"] = (Suppress(int(v["layer"]), neuron),)
        interventions["suppress-early"] = (Suppress(int(v["layer"]), neuron, end=early_end),)
    for name in conditions:
        if name in interventions:
            run = ensure_run(config.replace(interventions=interventions[name]), seed,
                             out / name / f"seed-{seed}", progress=False)
            result[name] = final_eval(run)
    result["early_window"] = [0, early_end]
    return result


def run_study(
    preset_name: str,
    seeds: list[int],
    out: str | os.PathLike,
    report: str | os.PathLike | None = None,
    workers: int = 2,
    progress: bool = True,
    conditions: tuple[str, ...] = CONDITIONS,
) -> dict[str, Any]:
    """Run (or reuse) every seed, then write report.md, summary.json and figures to `report`
    (default: OUT). Returns the summary. `conditions` limits the suppression runs."""
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"unknown conditions {sorted(unknown)}; known: {', '.join(CONDITIONS)}")
    config = preset(preset_name)
    out = Path(out)
    report = Path(report) if report else out
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(study_seed, config, seed, out, conditions): seed for seed in seeds}
        for future in tqdm(as_completed(futures), total=len(futures), desc="seeds", disable=not progress):
            result = future.result()
            results.append(result)
            tqdm.write(result["summary"])
    results.sort(key=lambda r: r["seed"])
    summary = summarize(config, results, time.perf_counter() - started)
    write_report(summary, results, report)
    return summary


def summarize(config: RunConfig, results: list[dict], seconds: float) -> dict[str, Any]:
    comparisons = {}
    for name in CONDITIONS:
        pairs = [r for r in results if name in r]
        comparisons[name] = {
            "seeds": [r["seed"] for r in pairs],
            **{
                f"delta_{m}": mean_ci([r[name][m] - r["base"][m] for r in pairs])
                for m in ("loss", "accuracy", "transition")
            },
        }
        comparisons[name]["verdict"] = _verdict(comparisons[name]["delta_loss"])
    caught = [r for r in results if r["vestigial"]]
    return {
        "preset": config.name,
        "seeds": len(results),
        "seed_list": [r["seed"] for r in results],
        "vestigial_found": len(caught),
        "retired_at_transition": sum(_retired_at_transition(r) for r in caught),
        "peak_over_twice_init_floor": sum(r["vestigial"]["peak_effect"] >= 2 * r["init_floor"] for r in caught),
        "contrast_found": sum(r["contrast"] is not None for r in results),
        "transition_step": [r["base"]["transition"] for r in results],
        "base": {m: mean_ci([r["base"][m] for r in results]) for m in ("loss", "accuracy", "transition")},
        "comparisons": comparisons,
        "early_window": {r["seed"]: r["early_window"] for r in results},
        "selectivity_alpha": ALPHA,
        "seconds": round(seconds, 1),
    }


def _retired_at_transition(result: dict) -> bool:
    """The caught neuron stopped mattering no earlier than 100 steps before the transition,
    as it would if induction took its job over (rather than another early mechanism)."""
    settle, transition = result["vestigial"]["settle_step"], result["base"]["transition"]
    return settle is not None and not math.isnan(transition) and settle >= transition - 100


def _verdict(delta: dict[str, float]) -> str:
    """Suppressed minus unsuppressed final loss: better, worse, or no clear difference."""
    if delta["n"] < 2:
        return "too few seeds to say"
    if delta["high"] < 0:
        return "better (lower final loss, 95% interval below 0)"
    if delta["low"] > 0:
        return "worse (higher final loss, 95% interval above 0)"
    return "no clear difference (95% interval contains 0)"


def _fmt(ci: dict[str, float], digits: int = 3, signed: bool = True) -> str:
    """'mean [low, high]'; `signed` for differences."""
    if ci["n"] == 0:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if math.isnan(ci["low"]):
        return f.format(ci["mean"])
    return f"{f.format(ci['mean'])} [{f.format(ci['low'])}, {f.format(ci['high'])}]"


def write_report(summary: dict, results: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    figures = write_figures(results, folder)
    lines = [
        f"# Vestigial-neuron study: preset `{summary['preset']}`, {summary['seeds']} seeds",
        "",
        f"Generated by `vestige study --preset {summary['preset']} --seeds "
        f"{_seed_text(summary['seed_list'])}` (this invocation: {summary['seconds']:.0f} s; runs and "
        "analyses already on disk are reused). Every number below is measured by the code in this "
        "repository; rerun the command to reproduce it.",
        "",
        f"**A vestigial neuron was caught in {summary['vestigial_found']} of {summary['seeds']} seeds.** "
        "Criteria: mean-ablation effect on the positions where the early heuristic applies peaked "
        "at >= 0.15 nats, fell below 10% of that peak by the final checkpoint, and the final "
        "selectivity index is above the 99th percentile of a shuffled-label baseline.",
        "",
        "## Per seed",
        "",
        "| seed | transition step | caught neuron | final SI (shuffled p99) | peak effect (step) | "
        "settles at step | final effect | init floor | contrast: final effect (positions) | "
        "final loss | whole: d loss | early: d loss | selectivity-down: d loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        v, c = r["vestigial"], r["contrast"]
        d = {n: (f"{r[n]['loss'] - r['base']['loss']:+.3f}" if n in r else "n/a") for n in CONDITIONS}
        lines.append(
            f"| {r['seed']} | {r['base']['transition']:.0f} | {v['unit'] if v else 'none'} | "
            + (f"{v['final_selectivity']:.2f} ({v['baseline']:.2f}) | {v['peak_effect']:.3f} ({v['peak_step']}) | "
               f"{_int(v['settle_step'])} | {v['final_effect']:.3f} | " if v else "- | - | - | - | ")
            + f"{r['init_floor']:.3f} | "
            + (f"{c['unit']}: {c['final_effect']:.3f} ({c['positions']})" if c else "none")
            + f" | {r['base']['loss']:.3f} | {d['suppress-whole']} | {d['suppress-early']} | "
            f"{d['selectivity-down']} |"
        )
    n_caught = summary["vestigial_found"]
    lines += [
        "",
        "Read with care:",
        "",
        f"- *Settles at* is the first checkpoint after the peak from which the effect stays below "
        f"half the peak. In {summary['retired_at_transition']} of {n_caught} caught seeds it is no "
        "earlier than 100 steps before the transition, as it would be if induction took the "
        "neuron's job over. In the others it stopped mattering earlier, before the copy loss "
        "dropped: something other than induction took its job over, or spread it across several "
        "neurons; this study does not say what.",
        f"- *Init floor* is the largest effect of any neuron at step 0 (an untrained model). The "
        f"caught peak is at least twice it in {summary['peak_over_twice_init_floor']} of {n_caught} "
        "seeds; a peak near the floor is weak evidence.",
        f"- A contrast (a selective neuron whose final mean-ablation effect on its own preferred "
        f"positions is at least 0.15 nats: selective and still needed) was found in "
        f"{summary['contrast_found']} of {summary['seeds']} seeds.",
        "- The shuffled-label p99 is a low bar (about 0.1 here): most neurons pass it.",
    ]
    lines += [
        "",
        "## Training without the neuron, against the unsuppressed run of the same seed",
        "",
        "Differences are suppressed minus unsuppressed (final evaluation loss in nats, accuracy, "
        "transition step), mean with a 95% t-interval over seeds.",
        "",
        "| condition | seeds | d final loss | d final accuracy | d transition step | verdict |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "suppress-whole": "neuron held at its mean, whole run",
        "suppress-early": "neuron held at its mean until the transition",
        "selectivity-down": f"selectivity regulariser, alpha = {summary['selectivity_alpha']}",
    }
    for name, comp in summary["comparisons"].items():
        lines.append(
            f"| {names[name]} | {len(comp['seeds'])} | {_fmt(comp['delta_loss'])} | "
            f"{_fmt(comp['delta_accuracy'])} | {_fmt(comp['delta_transition'], 0)} | {comp['verdict']} |"
        )
    base = summary["base"]
    lines += [
        "",
        f"Unsuppressed runs: final loss {_fmt(base['loss'], signed=False)}, accuracy "
        f"{_fmt(base['accuracy'], signed=False)}, transition at step "
        f"{_fmt(base['transition'], 0, signed=False)} (mean, 95% interval).",
        "",
        "## Figures",
        "",
        *[f"![{name}]({name}.png)" for name in figures],
        "",
    ]
    (folder / "report.md").write_text("\n".join(lines))


def _int(value) -> str:
    return "never" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def _seed_text(seeds: list[int]) -> str:
    contiguous = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 1 else ",".join(map(str, seeds))


def write_figures(results: list[dict], folder: Path) -> list[str]:
    """PNG figures (altair through vl-convert); returns their names."""
    rows = [
        {"seed": str(r["seed"]), "unit": r["vestigial"]["unit"], **point}
        for r in results if r["vestigial"] for point in r["timeline"]
    ]
    names = []
    if rows:
        data = pd.DataFrame(rows)
        data["step"] = data["step"].clip(lower=1)
        x = alt.X("step:Q", title="training step (log; step 0 drawn at 1)",
                  scale=alt.Scale(type="log", domain=[1, int(data["step"].max())], nice=False))
        effect = alt.Chart(data).mark_line(point=True).encode(
            x=x, y=alt.Y("effect:Q", title="ablation effect (nats)"), color="seed:N"
        ).properties(width=320, height=220, title="Caught neuron: ablation effect")
        selectivity = alt.Chart(data).mark_line(point=True).encode(
            x=x, y=alt.Y("selectivity:Q", title="selectivity index"), color="seed:N"
        ).properties(width=320, height=220, title="Caught neuron: selectivity")
        (effect | selectivity).save(str(folder / "vestigial_timelines.png"), scale_factor=1.5)
        names.append("vestigial_timelines")
    deltas = pd.DataFrame(
        [{"seed": r["seed"], "condition": n, "delta_loss": r[n]["loss"] - r["base"]["loss"]}
         for r in results for n in CONDITIONS if n in r]
    )
    if len(deltas):
        chart = alt.Chart(deltas).mark_circle(size=60).encode(
            x=alt.X("delta_loss:Q", title="final loss, suppressed minus unsuppressed (nats)"),
            y=alt.Y("condition:N", title=None), tooltip=["seed", "delta_loss"],
        ).properties(width=420, height=140, title="Training without the neuron, per seed")
        rule = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(color="gray").encode(x="x:Q")
        (rule + chart).save(str(folder / "suppression.png"), scale_factor=1.5)
        names.append("suppression")
    return names
