"""The one definition of "vestigial" in the kit, and the detector that applies it to a run.

A neuron is vestigial when it was needed once (well above what an untrained model shows,
for more than one checkpoint), is not needed now, and is still selective for the positions
it served, beyond what untrained neurons reach with the same labels. `Criteria` holds every
threshold and `CLAUSES` every clause (its text, its test and the reason it gives when it
fails), so a clause is added in one place; `judge` applies them to one neuron's history;
`detect` judges every neuron of a run; `target_neuron` says which neuron a study of the run
is about. Charts, reports and notebooks read these verdicts instead of restating the rule.

A task with several crutches has one focus class per crutch; each neuron is judged on its
own (`vestige.analysis.own_focus`), against the init floor of those positions.

The verdict uses the run's checkpoints only. Whether training *without* the neuron ends no
worse is a separate experiment (suppression runs, `vestige.study`), always across seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from vestige.analysis import BARS, AnalysisSpec, analyze
from vestige.runs import Run


@dataclass(frozen=True)
class Criteria:
    """Thresholds of the verdict. Effects are mean-ablation loss increases in nats on the
    neuron's focus positions, with bootstrap 95% intervals over evaluation sequences; the
    init floor is the largest effect of any neuron at step 0 on those positions (`floor`
    "all": on any focus class's positions). `bar` is the quantile of untrained neurons'
    selectivity to beat ("p95", "p99", "p999"). `same_token` adds the clause that token
    identity alone cannot pass (see `CLAUSES`)."""

    min_peak: float = 0.15
    init_floor_ratio: float = 2.0
    sustained: int = 2
    max_final_fraction: float = 0.10
    same_token: bool = True
    contrast_min_final: float = 0.15
    bar: str = "p99"
    floor: str = "positions"

    def __post_init__(self) -> None:
        if f"untrained_{self.bar}" not in BARS:
            raise ValueError(
                f"Criteria.bar must be one of {[b[10:] for b in BARS]}, got {self.bar!r}"
            )
        if self.floor not in ("positions", "all"):
            raise ValueError(f"Criteria.floor must be 'positions' or 'all', got {self.floor!r}")

    def clauses(self) -> dict[str, str]:
        """Every clause a vestigial neuron must pass, by name, in the order a reader checks."""
        return {c.name: c.text(self) for c in CLAUSES if c.applies(self)}

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Clause:
    """One clause of the verdict: its `text` for readers, its `test` on a neuron's evidence
    (see `evidence`) and the `reason` it gives when it is the first to fail."""

    name: str
    text: Callable[[Criteria], str]
    test: Callable[[dict, Criteria], bool]
    reason: Callable[[dict, Criteria], str]
    applies: Callable[[Criteria], bool] = lambda c: True


def _peak(e: dict) -> str:
    return (
        f"peak {e['peak_effect']:.3f} [{e['peak_low']:.3f}, {e['peak_high']:.3f}] nats at "
        f"step {e['peak_step']}"
    )


CLAUSES: tuple[Clause, ...] = (
    Clause(
        "needed",
        lambda c: f"its peak effect's 95% lower bound is >= {c.min_peak:g} nats",
        lambda e, c: e["peak_low"] >= c.min_peak,
        lambda e, c: f"never clearly needed ({_peak(e)}; lower bound < {c.min_peak})",
    ),
    Clause(
        "above_init",
        lambda c: f"its peak effect is >= {c.init_floor_ratio:g}x the init floor",
        lambda e, c: e["peak_effect"] >= c.init_floor_ratio * e["init_floor"],
        lambda e, c: (
            f"peak {e['peak_effect']:.3f} < {c.init_floor_ratio:g}x the init floor "
            f"{e['init_floor']:.3f}"
        ),
    ),
    Clause(
        "sustained",
        lambda c: (
            f"its effect's lower bound is >= {c.min_peak:g} nats at >= {c.sustained} "
            "consecutive checkpoints"
        ),
        lambda e, c: e["longest_needed"] >= c.sustained,
        lambda e, c: f"needed at only {e['needed_checkpoints']} checkpoint(s) ({_peak(e)})",
    ),
    Clause(
        "faded",
        lambda c: f"its final effect's 95% upper bound is < {c.max_final_fraction:.0%} of the peak",
        lambda e, c: e["final_high"] < c.max_final_fraction * e["peak_effect"],
        lambda e, c: (
            f"still needed (final {e['final_effect']:.3f}, upper bound "
            f"{e['final_high']:.3f} >= {c.max_final_fraction:.0%} of {_peak(e)})"
        ),
    ),
    Clause(
        "selective",
        lambda c: (
            f"its final selectivity beats the {_quantile(c.bar)} of untrained neurons of "
            "its layer, with the same labels"
        ),
        lambda e, c: e["final_selectivity"] > e["selectivity_baseline"],
        lambda e, c: (
            f"not selective at the end (SI {e['final_selectivity']:.2f} <= untrained "
            f"{c.bar} {e['selectivity_baseline']:.2f})"
        ),
    ),
    Clause(
        "prefers_focus",
        lambda c: "its preferred class at the end is its focus class",
        lambda e, c: e["focus"] is None or e["preferred_class"] == e["focus"],
        lambda e, c: f"prefers {e['preferred_class']} positions at the end, not {e['positions']}",
    ),
    Clause(
        "token_selective",
        lambda c: (
            "its final selectivity between its focus positions and other positions with "
            f"the same current token beats the untrained {_quantile(c.bar)}"
        ),
        lambda e, c: e["final_matched_selectivity"] > e["matched_baseline"],
        lambda e, c: (
            "no more selective than an untrained neuron among same-token positions "
            f"(SI {e['final_matched_selectivity']:.2f} <= {e['matched_baseline']:.2f})"
        ),
        applies=lambda c: c.same_token,
    ),
)


def _quantile(bar: str) -> str:
    return {"p95": "95th percentile", "p99": "99th percentile", "p999": "99.9th percentile"}[bar]


@dataclass
class Detection:
    """What `detect` found in one run.

    neurons:    one row per neuron: evidence, each clause (True/False), `failed` (the
                clauses it failed), `vestigial`, and a one-line `reason`; caught first.
    timelines:  (step, layer, neuron) -> selectivity, effect with interval, margin effect,
                on the neuron's own positions, with the bars it is judged against.
    vestigial:  the caught neuron's row (largest peak among those caught), or None.
    contrast:   the selective neuron the final model needs most on its own preferred
                positions, or None.
    init_floor: the largest effect of any neuron at step 0 (an untrained model) on any focus
                class's positions; `init_floors` per focus class.
    focus:      the focus classes the neurons were judged on (empty: none, see `judge_all`).
    """

    seed: int
    neurons: pd.DataFrame
    timelines: pd.DataFrame
    vestigial: pd.Series | None
    contrast: pd.Series | None
    init_floor: float
    criteria: Criteria
    init_floors: dict[str, float]
    focus: tuple[str, ...] = ()

    def rejudge(self, criteria: Criteria) -> pd.DataFrame:
        """Every neuron's verdict under other `criteria` (the same timelines and floors)."""
        return judge_all(self.timelines, criteria, self.init_floors, self.focus)

    def floor_for(self, positions: str) -> float:
        """The init floor a neuron whose own positions are `positions` is judged against."""
        return own_floor(self.criteria, self.init_floors, positions)

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


TIMELINE_COLUMNS = [
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


def timelines(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (step, layer, neuron): selectivities, effects with intervals on the neuron's own
    positions, and the bars of its layer (and positions) at that step."""
    from vestige.analysis import MATCHED_BARS

    neurons = tables["neurons"][TIMELINE_COLUMNS + list(MATCHED_BARS)]
    baseline = tables["baseline"][["step", "layer", "p99", *BARS]]
    return neurons.merge(baseline, on=["step", "layer"])


def evidence(line: pd.DataFrame, criteria: Criteria, init_floor: float, focus: str | None) -> dict:
    """The numbers a verdict rests on, from one neuron's timeline (see `timelines`)."""
    line = line.sort_values("step").reset_index(drop=True)
    final = line.iloc[-1]
    trained = line[line["step"] > 0]  # at initialisation effects are noise, not a mechanism
    peak_at = trained["effect"].idxmax()
    peak = line.loc[peak_at]
    needed = (line["effect_low"] >= criteria.min_peak) & (line["step"] > 0)
    peak_margin = float(trained["margin_effect"].max())
    return {
        "unit": final["unit"],
        "positions": final["positions"],
        "focus": focus,
        "init_floor": float(init_floor),
        "peak_effect": float(peak["effect"]),
        "peak_low": float(peak["effect_low"]),
        "peak_high": float(peak["effect_high"]),
        "peak_step": int(peak["step"]),
        "needed_checkpoints": int(needed.sum()),
        "longest_needed": _longest_run(needed.to_numpy()),
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
        "selectivity_baseline": float(final[f"untrained_{criteria.bar}"]),
        "preferred_class": final["preferred_class"],
        "final_matched_selectivity": float(final["matched_selectivity"]),
        "matched_baseline": float(final[f"untrained_matched_{criteria.bar}"]),
    }


def judge(line: pd.DataFrame, criteria: Criteria, init_floor: float, focus: str | None) -> dict:
    """Evidence, clauses and verdict for one neuron's timeline (see `timelines`)."""
    e = evidence(line, criteria, init_floor, focus)
    applicable = [c for c in CLAUSES if c.applies(criteria)]
    clauses = {c.name: bool(c.test(e, criteria)) for c in applicable}
    failed = [name for name, ok in clauses.items() if not ok]
    if failed:
        reason = next(c for c in applicable if c.name == failed[0]).reason(e, criteria)
    else:
        reason = (
            f"{_peak(e)}, final {e['final_effect']:.3f} (upper bound "
            f"{e['final_high'] / e['peak_effect']:.0%} of peak; logit margin "
            f"{e['margin_fraction']:.0%} of its peak), SI {e['final_selectivity']:.2f} > "
            f"untrained {criteria.bar} {e['selectivity_baseline']:.2f}, same-token SI "
            f"{e['final_matched_selectivity']:.2f} > {e['matched_baseline']:.2f}"
        )
    return {**e, **clauses, "failed": failed, "vestigial": not failed, "reason": reason}


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


def init_floors(tables: dict[str, pd.DataFrame], focus: tuple[str, ...], mode: str) -> dict:
    """{focus class: the largest effect of any neuron on its positions at step 0}."""
    ablation = tables["ablation"]
    at_init = ablation[(ablation["step"] == 0) & (ablation["mode"] == mode)]
    return {
        name: float(at_init.loc[at_init["positions"] == name, "delta_loss"].max()) for name in focus
    }


def own_floor(criteria: Criteria, floors: dict[str, float], positions: str) -> float:
    """The init floor for a neuron measured on `positions`: that class's floor (`floors` as
    `init_floors`), or the largest of them when `criteria.floor` is "all" or the class has none."""
    overall = max(floors.values())
    return floors.get(positions, overall) if criteria.floor == "positions" else overall


def judge_all(
    lines: pd.DataFrame, criteria: Criteria, floors: dict[str, float], focus: tuple[str, ...]
) -> pd.DataFrame:
    """Every neuron's verdict (see `judge`), caught first, then by fewest failed clauses and
    largest peak. `floors` as `init_floors`; for a task without focus classes, {"all": floor}."""
    rows = []
    for (layer, neuron), line in lines.groupby(["layer", "neuron"]):
        positions = line["positions"].iloc[-1]
        own = positions if focus else None
        floor = own_floor(criteria, floors, positions)
        rows.append(
            {"layer": int(layer), "neuron": int(neuron), **judge(line, criteria, floor, own)}
        )
    neurons = pd.DataFrame(rows)
    neurons["n_failed"] = neurons["failed"].map(len)
    return neurons.sort_values(
        ["vestigial", "n_failed", "peak_effect"], ascending=[False, True, False]
    ).reset_index(drop=True)


def detect(
    run: Run, criteria: Criteria = Criteria(), spec: AnalysisSpec = AnalysisSpec()
) -> Detection:
    """Judge every MLP neuron of `run` and pick the vestigial one and a contrast."""
    tables = analyze(run, spec)
    lines = timelines(tables)
    focus = tuple(f for f in run.task.focus_classes if f in set(lines["positions"]))
    if focus:
        floors = init_floors(tables, focus, spec.modes[0])
    else:  # each neuron on its preferred class: the largest effect of any at step 0
        floors = {"all": float(lines.loc[lines["step"] == 0, "effect"].max())}
    neurons = judge_all(lines, criteria, floors, focus)
    caught = neurons[neurons["vestigial"]]
    return Detection(
        seed=run.seed,
        neurons=neurons,
        timelines=lines,
        vestigial=caught.iloc[0] if len(caught) else None,
        contrast=_contrast(lines, criteria),
        init_floor=max(floors.values()),
        criteria=criteria,
        init_floors=floors,
        focus=focus,
    )


def _contrast(lines: pd.DataFrame, criteria: Criteria) -> pd.Series | None:
    """The selective neuron that the final model needs most on its own preferred positions."""
    final = lines[lines["step"] == lines["step"].max()]
    own = final[
        (final["selectivity"] > final[f"untrained_{criteria.bar}"])
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


# ----------------------------------------------------------------------------- which neuron


def target_neuron(found: Detection) -> pd.Series:
    """The neuron a study of the run is about: the caught one, else the one the crutch leaned
    on most (the largest peak effect on its focus positions)."""
    if found.vestigial is not None:
        return found.vestigial
    return found.neurons.loc[found.neurons["peak_effect"].idxmax()]


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
