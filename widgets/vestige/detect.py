"""The one definition of "vestigial" in the kit, and the detector that applies it to a run.

A neuron is vestigial when it was needed once (well above what an untrained model shows,
for more than one checkpoint), is not needed now, and is still selective for the positions
it served, beyond what untrained neurons reach with the same labels. `Criteria` holds every
threshold; `judge` applies them to one neuron's history and says which clause failed;
`detect` judges every neuron of a run. Charts, reports and notebooks read these verdicts
instead of restating the rule.

The verdict uses the run's checkpoints only. Whether training *without* the neuron ends no
worse is a separate experiment (suppression runs, `vestige.study`), always across seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vestige.analysis import AnalysisSpec, analyze
from vestige.runs import Run


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the verdict. Effects are mean-ablation loss increases in nats on the
    task's focus positions, with bootstrap 95% intervals over evaluation sequences; the init
    floor is the largest effect of any neuron at step 0. `same_token` adds the clause that
    token identity alone cannot pass (see `clauses`)."""

    min_peak: float = 0.15
    init_floor_ratio: float = 2.0
    sustained: int = 2
    max_final_fraction: float = 0.10
    same_token: bool = True
    contrast_min_final: float = 0.15

    def clauses(self) -> dict[str, str]:
        """Every clause a vestigial neuron must pass, by name, in the order a reader checks."""
        clauses = {
            "needed": f"its peak effect's 95% lower bound is >= {self.min_peak:g} nats",
            "above_init": f"its peak effect is >= {self.init_floor_ratio:g}x the init floor",
            "sustained": f"its effect's lower bound is >= {self.min_peak:g} nats at >= "
            f"{self.sustained} consecutive checkpoints",
            "faded": f"its final effect's 95% upper bound is < {self.max_final_fraction:.0%} of "
            "the peak",
            "selective": "its final selectivity beats the 99th percentile of untrained neurons "
            "of its layer, with the same labels",
            "prefers_focus": "its preferred class at the end is the focus class",
        }
        if self.same_token:
            clauses["token_selective"] = (
                "its final selectivity between focus positions and other positions with the same "
                "current token beats the untrained 99th percentile"
            )
        return clauses


@dataclass
class Detection:
    """What `detect` found in one run.

    neurons:    one row per neuron: evidence, each clause (True/False), `failed` (the
                clauses it failed), `vestigial`, and a one-line `reason`; caught first.
    timelines:  (step, layer, neuron) -> selectivity, effect with interval, margin effect.
    vestigial:  the caught neuron's row (largest peak among those caught), or None.
    contrast:   the selective neuron the final model needs most on its own preferred
                positions, or None.
    init_floor: the largest effect of any neuron at step 0 (an untrained model).
    """

    seed: int
    neurons: pd.DataFrame
    timelines: pd.DataFrame
    vestigial: pd.Series | None
    contrast: pd.Series | None
    init_floor: float
    criteria: Criteria

    def summary(self) -> str:
        if self.vestigial is None:
            best = self.neurons.iloc[0]
            return (
                f"seed {self.seed}: no vestigial neuron; best candidate {best.unit}: {best.reason}"
            )
        v = self.vestigial
        text = f"seed {self.seed}: {v.unit} is vestigial: {v.reason}"
        if self.contrast is not None:
            c = self.contrast
            text += (
                f"; contrast {c.unit} (final effect {c.final_effect:.2f} on {c.positions} "
                "positions)"
            )
        return text


def timelines(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (step, layer, neuron): selectivities, effects with intervals, and the baselines
    of the neuron's layer at that step."""
    columns = [
        "seed",
        "step",
        "layer",
        "neuron",
        "unit",
        "positions",
        "preferred_class",
        "selectivity",
        "matched_selectivity",
        "effect",
        "effect_low",
        "effect_high",
        "margin_effect",
        "margin_effect_low",
        "margin_effect_high",
        "effect_own",
    ]
    baseline = tables["baseline"][
        ["step", "layer", "p99", "untrained_p99", "untrained_matched_p99"]
    ]
    return tables["neurons"][columns].merge(baseline, on=["step", "layer"])


def judge(line: pd.DataFrame, criteria: Criteria, init_floor: float, focus: str | None) -> dict:
    """Evidence, clauses and verdict for one neuron's timeline (see `timelines`)."""
    line = line.sort_values("step").reset_index(drop=True)
    final = line.iloc[-1]
    trained = line[line["step"] > 0]  # at initialisation effects are noise, not a mechanism
    peak_at = trained["effect"].idxmax()
    peak = line.loc[peak_at]
    needed = (line["effect_low"] >= criteria.min_peak) & (line["step"] > 0)
    peak_margin = float(trained["margin_effect"].max())
    clauses = {
        "needed": bool(peak["effect_low"] >= criteria.min_peak),
        "above_init": bool(peak["effect"] >= criteria.init_floor_ratio * init_floor),
        "sustained": _longest_run(needed.to_numpy()) >= criteria.sustained,
        "faded": bool(final["effect_high"] < criteria.max_final_fraction * peak["effect"]),
        "selective": bool(final["selectivity"] > final["untrained_p99"]),
        "prefers_focus": focus is None or final["preferred_class"] == focus,
    }
    if criteria.same_token:
        clauses["token_selective"] = bool(
            final["matched_selectivity"] > final["untrained_matched_p99"]
        )
    failed = [name for name, ok in clauses.items() if not ok]
    evidence = {
        "unit": final["unit"],
        "positions": final["positions"],
        "peak_effect": float(peak["effect"]),
        "peak_low": float(peak["effect_low"]),
        "peak_high": float(peak["effect_high"]),
        "peak_step": int(peak["step"]),
        "needed_checkpoints": int(needed.sum()),
        "settle_step": settle_step(line, peak_at),
        "final_effect": float(final["effect"]),
        "final_low": float(final["effect_low"]),
        "final_high": float(final["effect_high"]),
        "final_fraction": float(final["effect"] / peak["effect"]) if peak["effect"] > 0 else np.nan,
        "peak_margin": peak_margin,
        "final_margin": float(final["margin_effect"]),
        "final_margin_low": float(final["margin_effect_low"]),
        "final_margin_high": float(final["margin_effect_high"]),
        "margin_fraction": float(final["margin_effect"] / peak_margin)
        if peak_margin > 0
        else np.nan,
        "final_selectivity": float(final["selectivity"]),
        "selectivity_baseline": float(final["untrained_p99"]),
        "preferred_class": final["preferred_class"],
        "final_matched_selectivity": float(final["matched_selectivity"]),
        "matched_baseline": float(final["untrained_matched_p99"]),
    }
    return {
        **evidence,
        **clauses,
        "failed": failed,
        "vestigial": not failed,
        "reason": _reason(evidence, failed, criteria, init_floor),
    }


def _longest_run(flags: np.ndarray) -> int:
    best = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        best = max(best, current)
    return best


def settle_step(line: pd.DataFrame, peak_at: int) -> int | None:
    """The first checkpoint after the peak from which the effect stays below half the peak."""
    after = line.loc[peak_at:]
    high = after["effect"] >= line.loc[peak_at, "effect"] / 2
    settled = after["step"][~high[::-1].cummax()[::-1]]
    return int(settled.iloc[0]) if len(settled) else None


def _reason(e: dict, failed: list[str], criteria: Criteria, init_floor: float) -> str:
    """One line: why the neuron is, or is not, vestigial (the first failed clause)."""
    peak = f"peak {e['peak_effect']:.3f} [{e['peak_low']:.3f}, {e['peak_high']:.3f}] nats at step {e['peak_step']}"
    if not failed:
        return (
            f"{peak}, final {e['final_effect']:.3f} (upper bound {e['final_high'] / e['peak_effect']:.0%} "
            f"of peak; logit margin {e['margin_fraction']:.0%} of its peak), SI "
            f"{e['final_selectivity']:.2f} > untrained p99 {e['selectivity_baseline']:.2f}, "
            f"same-token SI {e['final_matched_selectivity']:.2f} > {e['matched_baseline']:.2f}"
        )
    first = failed[0]
    return {
        "needed": f"never clearly needed ({peak}; lower bound < {criteria.min_peak})",
        "above_init": f"peak {e['peak_effect']:.3f} < {criteria.init_floor_ratio:g}x the init floor {init_floor:.3f}",
        "sustained": f"needed at only {e['needed_checkpoints']} checkpoint(s) ({peak})",
        "faded": f"still needed (final {e['final_effect']:.3f}, upper bound {e['final_high']:.3f} "
        f">= {criteria.max_final_fraction:.0%} of {peak})",
        "selective": f"not selective at the end (SI {e['final_selectivity']:.2f} <= untrained "
        f"p99 {e['selectivity_baseline']:.2f})",
        "prefers_focus": f"prefers {e['preferred_class']} positions at the end, not {e['positions']}",
        "token_selective": f"no more selective than an untrained neuron among same-token positions "
        f"(SI {e['final_matched_selectivity']:.2f} <= {e['matched_baseline']:.2f})",
    }[first]


def detect(
    run: Run, criteria: Criteria = Criteria(), spec: AnalysisSpec = AnalysisSpec()
) -> Detection:
    """Judge every MLP neuron of `run` and pick the vestigial one and a contrast."""
    tables = analyze(run, spec)
    lines = timelines(tables)
    init_floor = float(lines.loc[lines["step"] == 0, "effect"].max())
    focus = run.task.focus_class
    rows = [
        {"layer": int(layer), "neuron": int(neuron), **judge(line, criteria, init_floor, focus)}
        for (layer, neuron), line in lines.groupby(["layer", "neuron"])
    ]
    neurons = pd.DataFrame(rows)
    neurons["n_failed"] = neurons["failed"].map(len)
    neurons = neurons.sort_values(
        ["vestigial", "n_failed", "peak_effect"], ascending=[False, True, False]
    ).reset_index(drop=True)
    caught = neurons[neurons["vestigial"]]
    return Detection(
        seed=run.seed,
        neurons=neurons,
        timelines=lines,
        vestigial=caught.iloc[0] if len(caught) else None,
        contrast=_contrast(lines, criteria),
        init_floor=init_floor,
        criteria=criteria,
    )


def _contrast(lines: pd.DataFrame, criteria: Criteria) -> pd.Series | None:
    """The selective neuron that the final model needs most on its own preferred positions."""
    final = lines[lines["step"] == lines["step"].max()]
    own = final[
        (final["selectivity"] > final["untrained_p99"])
        & (final["effect_own"] >= criteria.contrast_min_final)
    ]
    if own.empty:
        return None
    best = own.loc[own["effect_own"].idxmax()]
    return pd.Series(
        {
            "unit": best["unit"],
            "layer": int(best["layer"]),
            "neuron": int(best["neuron"]),
            "positions": best["preferred_class"],
            "final_effect": float(best["effect_own"]),
            "final_selectivity": float(best["selectivity"]),
        }
    )
