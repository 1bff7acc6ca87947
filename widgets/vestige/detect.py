"""Catch a vestigial neuron in one run: selective at the end, needed once, not needed now.

The verdict uses the run's checkpoints only. Whether training *without* the neuron ends no
worse is a separate experiment (suppression runs, `vestige.study`), always across seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vestige.analysis import AnalysisSpec, analyze
from vestige.runs import Run


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the verdict. Effects are mean-ablation loss increases in nats on the
    task's focus positions (where its early heuristic applies), see `AnalysisSpec`."""

    min_peak: float = 0.15
    max_final_fraction: float = 0.10
    baseline_quantile: str = "p99"
    contrast_min_final: float = 0.15


@dataclass
class Detection:
    """What `detect` found in one run.

    neurons:   one row per neuron with its evidence, verdict and reason, best candidates first.
    timelines: (step, layer, neuron) -> selectivity, effect, baseline: the evidence over time.
    vestigial: the caught neuron's row (the one with the largest peak effect), or None.
    contrast:  the selective neuron with the largest final effect on the positions of its
               own preferred class (still needed there), or None.
    init_floor: the largest effect of any neuron at step 0, an untrained model: peaks not
               well above it are weak evidence.
    """

    seed: int
    neurons: pd.DataFrame
    timelines: pd.DataFrame
    vestigial: pd.Series | None
    contrast: pd.Series | None
    init_floor: float

    def summary(self) -> str:
        if self.vestigial is None:
            best = self.neurons.iloc[0]
            return f"seed {self.seed}: no vestigial neuron; best candidate {best.unit}: {best.reason}"
        v = self.vestigial
        return (
            f"seed {self.seed}: {v.unit} is vestigial: {v.reason}"
            + (f"; contrast {self.contrast.unit} (final effect {self.contrast.final_effect:.2f} "
               f"on {self.contrast.positions} positions)" if self.contrast is not None else "")
        )


def timelines(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (step, layer, neuron): selectivity, ablation effect (see `AnalysisSpec`) and the
    shuffled-label baseline quantiles of the neuron's layer."""
    neurons = tables["neurons"].rename(columns={"effect_positions": "positions"})
    columns = ["seed", "step", "layer", "neuron", "unit", "selectivity", "effect", "positions"]
    return neurons[columns].merge(tables["baseline"].drop(columns="seed"), on=["step", "layer"])


def judge(line: pd.DataFrame, criteria: Criteria) -> dict:
    """Evidence and verdict for one neuron's timeline (rows ordered by step)."""
    line = line.sort_values("step")
    final = line.iloc[-1]
    trained = line[line["step"] > 0]  # at initialisation effects are noise, not a mechanism
    peak_row = trained.loc[trained["effect"].idxmax()]
    peak, final_effect = float(peak_row["effect"]), float(final["effect"])
    threshold = float(final[criteria.baseline_quantile])
    selective = final["selectivity"] > threshold
    faded = final_effect < criteria.max_final_fraction * peak
    mattered = peak >= criteria.min_peak
    if not mattered:
        reason = f"never needed much (peak effect {peak:.3f} < {criteria.min_peak} nats)"
    elif not faded:
        reason = (f"still needed (final effect {final_effect:.3f} >= "
                  f"{criteria.max_final_fraction:.0%} of peak {peak:.3f})")
    elif not selective:
        reason = (f"not selective at the end (SI {final['selectivity']:.2f} <= shuffled-label "
                  f"{criteria.baseline_quantile} {threshold:.2f})")
    else:
        reason = (f"selective (SI {final['selectivity']:.2f} > shuffled {criteria.baseline_quantile} "
                  f"{threshold:.2f}) but its effect fell from {peak:.3f} nats at step "
                  f"{int(peak_row['step'])} to {final_effect:.3f} ({final_effect / peak:.1%} of peak)")
    after = line[line["step"] >= peak_row["step"]]
    high = after["effect"] >= peak / 2
    settle = after["step"][~high[::-1].cummax()[::-1]]  # below half the peak from then on
    return {
        "unit": final["unit"],
        "positions": final["positions"],
        "peak_effect": peak,
        "peak_step": int(peak_row["step"]),
        "settle_step": int(settle.iloc[0]) if len(settle) else None,
        "final_effect": final_effect,
        "final_selectivity": float(final["selectivity"]),
        "baseline": threshold,
        "selective": bool(selective),
        "vestigial": bool(mattered and faded and selective),
        "reason": reason,
    }


def detect(run: Run, criteria: Criteria = Criteria(), spec: AnalysisSpec = AnalysisSpec()) -> Detection:
    """Judge every MLP neuron of `run` and pick the vestigial one and a contrast."""
    tables = analyze(run, spec)
    lines = timelines(tables)
    rows = [
        {"layer": layer, "neuron": neuron, **judge(line, criteria)}
        for (layer, neuron), line in lines.groupby(["layer", "neuron"])
    ]
    neurons = pd.DataFrame(rows).sort_values(["vestigial", "peak_effect"], ascending=False)
    neurons = neurons.reset_index(drop=True)
    caught = neurons[neurons["vestigial"]]
    return Detection(
        seed=run.seed,
        neurons=neurons,
        timelines=lines,
        vestigial=caught.iloc[0] if len(caught) else None,
        contrast=_contrast(tables, spec.modes[0], criteria),
        init_floor=float(lines.loc[lines["step"] == 0, "effect"].max()),
    )


def _contrast(tables: dict[str, pd.DataFrame], mode: str, criteria: Criteria):
    """The selective neuron that the final model needs most on its own preferred positions."""
    final = tables["neurons"]["step"].max()
    neurons = tables["neurons"][tables["neurons"]["step"] == final]
    ablation = tables["ablation"]
    own = neurons.merge(
        ablation[(ablation["mode"] == mode) & (ablation["step"] == final)],
        left_on=["layer", "neuron", "preferred_class"],
        right_on=["layer", "neuron", "positions"],
    )
    baseline = tables["baseline"][tables["baseline"]["step"] == final].set_index("layer")
    own = own[own["selectivity"] > own["layer"].map(baseline[criteria.baseline_quantile])]
    own = own[own["delta_loss"] >= criteria.contrast_min_final]
    if own.empty:
        return None
    best = own.loc[own["delta_loss"].idxmax()]
    return pd.Series({
        "unit": best["unit"], "layer": int(best["layer"]), "neuron": int(best["neuron"]),
        "positions": best["positions"], "final_effect": float(best["delta_loss"]),
        "final_selectivity": float(best["selectivity"]),
    })
