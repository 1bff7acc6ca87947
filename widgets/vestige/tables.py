"""The explorer's tables: their schema (`ExplorerTables`), their producer (`explorer_tables`)
and realistic synthetic ones for tests and benchmarks (`ExplorerTables.synthetic`).

Nothing here defines science. Every number comes from its one home:

* selectivity, baselines, ablation effects, class means, attention: `vestige.analysis.analyze`;
* the transition: `vestige.analysis.transition_step`;
* which neuron is vestigial, which is the contrast, why the others are not, and on which
  positions each neuron's effect is judged: `vestige.detect.detect`.

Each neuron's ``effect`` here is the mean-ablation loss increase on *its own* positions
(column ``positions``): the task's focus class for a neuron that prefers it at the end (the
analysis' ``effect``), else the class it prefers at the end (for the contrast neuron this is
the detector's ``effect_own`` at the last checkpoint). Intervals (``effect_low``/``_high``)
exist where the analysis computes them, on the focus positions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from vestige.config import CheckpointConfig

COLUMNS = {
    "metrics": ["seed", "step", "loss", "accuracy"],
    "checkpoints": ["seed", "step"],
    "transitions": ["seed", "step", "metric"],
    "neurons": [
        "seed",
        "step",
        "layer",
        "neuron",
        "unit",
        "selectivity",
        "matched_selectivity",
        "preferred_class",
        "positions",
        "effect",
        "effect_low",
        "effect_high",
        "effect_all",
        "untrained_matched_p99",
    ],
    "baseline": ["seed", "step", "layer", "untrained_p99"],
    "verdicts": [
        "seed",
        "layer",
        "neuron",
        "unit",
        "rank",
        "verdict",
        "failed",
        "reason",
        "positions",
        "focus",
        "peak_step",
        "settle_step",
        "min_peak",
    ],
    "class_means": ["seed", "step", "layer", "neuron", "cls", "mean_act"],
    "attention": ["seed", "step", "layer", "head", "query", "key", "weight"],
    "example_tokens": ["seed", "position", "token"],
}
# The detector's verdicts as the charts name them (the keys are `verdicts.verdict` values).
VERDICTS = {
    "vestigial": "vestigial",
    "contrast": "contrast: still needed",
    "neither": "neither",
}


@dataclass(frozen=True)
class ExplorerTables:
    """The tables the explorer and the charts read (columns: see ``COLUMNS``; extra
    ``metrics`` columns ``loss_<class>`` are kept and drawn when present)."""

    metrics: pd.DataFrame
    checkpoints: pd.DataFrame
    transitions: pd.DataFrame
    neurons: pd.DataFrame
    baseline: pd.DataFrame
    verdicts: pd.DataFrame
    class_means: pd.DataFrame
    attention: pd.DataFrame
    example_tokens: pd.DataFrame

    def __post_init__(self):
        for f in fields(self):
            missing = set(COLUMNS[f.name]) - set(getattr(self, f.name).columns)
            if missing:
                raise ValueError(f"ExplorerTables.{f.name} lacks columns {sorted(missing)}")

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.checkpoints["seed"].unique())

    def steps(self, seed: int | None = None) -> list[int]:
        """Checkpoint steps (of ``seed``, else of the first seed), ascending."""
        seed = self.seeds[0] if seed is None else seed
        return sorted(int(s) for s in rows(self.checkpoints, seed)["step"].unique())

    def units(self, seed: int) -> list[str]:
        """Neuron names ("L0N5") ordered by layer then neuron."""
        found = rows(self.verdicts, seed).sort_values(["layer", "neuron"])
        return found["unit"].tolist()

    def verdict(self, seed: int, unit: str) -> pd.Series:
        """The detector's row for ``unit`` (verdict, failed clauses, positions, ...)."""
        found = rows(self.verdicts, seed)
        return found[found["unit"] == unit].iloc[0]

    def highlighted(self, seed: int) -> dict[str, str]:
        """{unit: verdict} of the units the detector singles out (vestigial, contrast)."""
        found = rows(self.verdicts, seed)
        found = found[found["verdict"] != "neither"].sort_values("rank")
        return dict(zip(found["unit"], found["verdict"]))

    def default_neuron(self, seed: int) -> str:
        """The detector's first-ranked neuron: the vestigial one, else its best candidate."""
        return str(rows(self.verdicts, seed).sort_values("rank")["unit"].iloc[0])

    def transition(self, seed: int) -> float:
        step = rows(self.transitions, seed)["step"]
        return float(step.iloc[0]) if len(step) else float("nan")

    def transition_metric(self, seed: int) -> str | None:
        metric = rows(self.transitions, seed)["metric"]
        return str(metric.iloc[0]) if len(metric) and isinstance(metric.iloc[0], str) else None

    def focus(self, seed: int) -> str | None:
        focus = rows(self.verdicts, seed)["focus"]
        return str(focus.iloc[0]) if len(focus) and isinstance(focus.iloc[0], str) else None

    def seed_tables(self, seed: int) -> ExplorerTables:
        """The same tables holding one seed only."""
        return ExplorerTables(**{f.name: rows(getattr(self, f.name), seed) for f in fields(self)})

    @classmethod
    def synthetic(
        cls,
        n_seeds=10,
        steps=None,
        n_layers=2,
        d_mlp=16,
        n_heads=4,
        seq_len=40,
        classes=("other", "trigger", "copy"),
    ) -> ExplorerTables:
        """Realistic fake tables: a loss drop near step 900, a neuron that becomes selective,
        then needed, then not needed any more (marked vestigial), and one needed from the
        transition on (marked contrast), for tests and benchmarks."""
        steps = CheckpointConfig(first=1, n_log=24).steps(2000) if steps is None else sorted(steps)
        parts = [
            _synthetic_seed(
                seed, np.asarray(steps), n_layers, d_mlp, n_heads, seq_len, list(classes)
            )
            for seed in range(n_seeds)
        ]
        return cls(
            **{name: pd.concat([p[name] for p in parts], ignore_index=True) for name in COLUMNS}
        )


def as_tables(source: Any) -> ExplorerTables:
    """``source`` itself if it is an ExplorerTables; tables of a Run or Runs; else
    ``source.explorer_tables()``."""
    if isinstance(source, ExplorerTables):
        return source
    from vestige.runs import Runs

    if isinstance(source, Runs) or hasattr(source, "model_at"):  # a run of any kind, or seeds
        return explorer_tables(source)
    return source.explorer_tables()


def rows(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    return df[df["seed"] == seed]


def nearest_step(steps: list[int], step: float | None) -> int:
    """The checkpoint step closest to ``step`` (the first one if ``step`` is None)."""
    return steps[0] if step is None else min(steps, key=lambda s: abs(s - step))


# ----------------------------------------------------------------------------- producer


def explorer_tables(runs, spec=None, criteria=None, progress: bool = False) -> ExplorerTables:
    """The explorer's tables for a Run or Runs: `analyze` (cached) and `detect` per seed."""
    from vestige.analysis import AnalysisSpec
    from vestige.detect import Criteria

    spec = AnalysisSpec() if spec is None else spec
    criteria = Criteria() if criteria is None else criteria
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in COLUMNS}
    for run in [runs] if hasattr(runs, "model_at") else list(runs):
        for name, table in run_tables(run, spec, criteria, progress).items():
            parts[name].append(table)
    return ExplorerTables(**{name: pd.concat(p, ignore_index=True) for name, p in parts.items()})


def run_tables(run, spec, criteria, progress: bool = False) -> dict[str, pd.DataFrame]:
    """One run's explorer tables."""
    from vestige.analysis import analyze, transition_step
    from vestige.detect import detect

    tables = analyze(run, spec, progress=progress)
    found = detect(run, criteria, spec)
    focus = run.task.focus_metric[len("loss_") :] if run.task.focus_metric else None
    verdicts = verdict_rows(found, focus)
    neurons = own_effects(tables["neurons"], tables["ablation"], verdicts, spec.modes[0])
    metrics = run.metrics
    train = metrics[metrics["split"] == "train"]
    logged = not train.empty  # a suite without a training log has only its checkpoints'
    if not logged:  # losses (split "eval"): those are drawn, and no transition is marked
        train = metrics[metrics["split"] == "eval"]
    keep = ["step", "loss", "accuracy", *(c for c in train.columns if c.startswith("loss_"))]
    transition_metric = f"loss_{run.task.transition_class}"
    return {
        "metrics": train[keep].assign(seed=run.seed).reset_index(drop=True),
        "checkpoints": pd.DataFrame({"seed": run.seed, "step": run.steps}),
        "transitions": pd.DataFrame(
            {
                "seed": [run.seed],
                "step": [transition_step(run) if logged else float("nan")],
                "metric": [transition_metric if transition_metric in train else "loss"],
            }
        ),
        "neurons": neurons,
        "baseline": tables["baseline"],
        "verdicts": verdicts.assign(seed=run.seed),
        "class_means": tables["class_means"],
        "attention": tables["attention"],
        "example_tokens": tables["example_tokens"],
    }


def verdict_rows(found, focus: str | None) -> pd.DataFrame:
    """One row per neuron from a `Detection`: its verdict ("vestigial", "contrast" or
    "neither"), the clauses it failed, the detector's rank, and the positions its effect is
    shown on here (the class it prefers at the end, see `own_effects`). `focus` names the
    focus positions' loss in the metrics (`loss_<focus>`)."""
    neurons = found.neurons.reset_index(drop=True)
    contrast = None if found.contrast is None else found.contrast["unit"]
    verdict = np.where(
        neurons["vestigial"],
        "vestigial",
        np.where(neurons["unit"] == contrast, "contrast", "neither"),
    )
    positions = list(neurons["preferred_class"])
    return pd.DataFrame(
        {
            "layer": neurons["layer"].astype(int),
            "neuron": neurons["neuron"].astype(int),
            "unit": neurons["unit"],
            "rank": np.arange(len(neurons)),
            "verdict": verdict,
            "failed": [", ".join(f) for f in neurons["failed"]],
            "reason": neurons["reason"],
            "positions": positions,
            "focus": focus,
            "peak_step": neurons["peak_step"].astype(float),
            "settle_step": pd.to_numeric(neurons["settle_step"], errors="coerce").astype(float),
            "min_peak": found.criteria.min_peak,
        }
    )


def own_effects(
    neurons: pd.DataFrame, ablation: pd.DataFrame, verdicts: pd.DataFrame, mode: str
) -> pd.DataFrame:
    """The analysis' neuron rows with ``effect`` on each neuron's own positions (from the
    ablation table, the same mode as the analysis' ``effect``; see
    `vestige.analysis.own_positions`) and its interval where the analysis has one (the
    neuron's focus positions)."""
    from vestige.analysis import own_positions

    mine = verdicts[["layer", "neuron", "positions"]]
    ablated = ablation[ablation["mode"] == mode]
    known = set(ablated["positions"])
    mine = mine.assign(positions=[own_positions(p, known) for p in mine["positions"]])
    own = ablated.merge(mine, on=["layer", "neuron", "positions"])[
        ["step", "layer", "neuron", "positions", "delta_loss"]
    ]
    keep = [
        "seed",
        "step",
        "layer",
        "neuron",
        "unit",
        "selectivity",
        "matched_selectivity",
        "untrained_matched_p99",
        "preferred_class",
        "effect_low",
        "effect_high",
        "effect_all",
    ]
    judged = neurons[["step", "layer", "neuron", "positions"]]
    out = neurons[keep].merge(own, on=["step", "layer", "neuron"], how="left")
    out = out.rename(columns={"delta_loss": "effect"})
    interval = out["positions"].to_numpy() == judged["positions"].to_numpy()
    out["effect_low"] = out["effect_low"].where(interval)
    out["effect_high"] = out["effect_high"].where(interval)
    return out


# ----------------------------------------------------------------------------- synthetic


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _synthetic_seed(seed, steps, n_layers, d_mlp, n_heads, seq_len, classes):
    """One seed of synthetic tables (see ``ExplorerTables.synthetic``)."""
    from vestige.analysis import unit_name

    rng = np.random.default_rng(seed)
    t_star = 900 + rng.normal(0, 60)
    logged = np.arange(0, steps[-1] + 1, 10)
    drop = _sigmoid((logged - t_star) / 40)
    focus, late = classes[1 % len(classes)], classes[2 % len(classes)]
    metrics = pd.DataFrame(
        {
            "seed": seed,
            "step": logged,
            "loss": 0.6
            + 1.6 * np.exp(-logged / 60)
            + 0.9 * (1 - drop)
            + rng.normal(0, 0.02, len(logged)),
            "accuracy": np.clip(
                0.25
                + 0.15 * (1 - np.exp(-logged / 60))
                + 0.5 * drop
                + rng.normal(0, 0.01, len(logged)),
                0,
                1,
            ),
            f"loss_{focus}": 0.4 + 2.5 * np.exp(-logged / 40) + rng.normal(0, 0.02, len(logged)),
            f"loss_{late}": 0.5 + 2.2 * (1 - drop) + rng.normal(0, 0.03, len(logged)),
        }
    )
    neurons, class_means, verdicts = _synthetic_neurons(
        rng, seed, steps, t_star, n_layers, d_mlp, classes, unit_name
    )
    layers = np.arange(n_layers)
    baseline = pd.DataFrame(
        {
            "seed": seed,
            "step": np.repeat(steps, n_layers),
            "layer": np.tile(layers, len(steps)),
            "untrained_p99": np.tile(0.3 + rng.normal(0, 0.015, n_layers), len(steps)),
        }
    )
    matched_bars = 0.2 + rng.normal(0, 0.015, n_layers)
    neurons["untrained_matched_p99"] = matched_bars[neurons["layer"].to_numpy()]
    return {
        "metrics": metrics,
        "checkpoints": pd.DataFrame({"seed": seed, "step": steps}),
        "transitions": pd.DataFrame(
            {"seed": [seed], "step": [float(round(t_star))], "metric": [f"loss_{late}"]}
        ),
        "neurons": neurons,
        "baseline": baseline,
        "verdicts": verdicts,
        "class_means": class_means,
        "attention": _synthetic_attention(rng, seed, steps, t_star, n_layers, n_heads, seq_len),
        "example_tokens": pd.DataFrame(
            {
                "seed": seed,
                "position": np.arange(seq_len),
                "token": [str(t) for t in rng.integers(1, 64, seq_len)],
            }
        ),
    }


def _synthetic_neurons(rng, seed, steps, t_star, n_layers, d_mlp, classes, unit_name):
    """Noise neurons, one vestige (selective, needed, then not needed: layer 0) and one
    circuit neuron (selective and needed from the transition on: last layer)."""
    n_units = n_layers * d_mlp
    t = steps.astype(float)
    sel = np.clip(rng.beta(2, 18, (len(steps), n_units)), 0, 1)
    eff = rng.normal(0.004, 0.006, (len(steps), n_units))
    vestige = int(rng.integers(d_mlp))
    circuit = (n_layers - 1) * d_mlp + int(rng.integers(d_mlp))
    sel[:, vestige] = 0.1 + 0.75 * _sigmoid((t - 0.6 * t_star) / 80)
    eff[:, vestige] += (
        0.6 * _sigmoid((t - 0.8 * t_star) / 60) * np.exp(-np.maximum(0, t - t_star) / 350)
    )
    sel[:, circuit] = 0.1 + 0.7 * _sigmoid((t - t_star) / 60)
    eff[:, circuit] += 0.45 * _sigmoid((t - t_star) / 60)
    pref = rng.integers(len(classes), size=n_units)
    focus = classes[1 % len(classes)]
    pref[vestige], pref[circuit] = 1 % len(classes), 2 % len(classes)
    unit_layer, unit_neuron = np.divmod(np.arange(n_units), d_mlp)
    unit = np.array([unit_name(ly, n) for ly, n in zip(unit_layer, unit_neuron)])
    positions = np.array(classes)[pref]
    half = 0.02 + 0.1 * np.abs(eff)
    on_focus = np.tile(positions == focus, len(steps))
    neurons = pd.DataFrame(
        {
            "seed": seed,
            "step": np.repeat(steps, n_units),
            "layer": np.tile(unit_layer, len(steps)),
            "neuron": np.tile(unit_neuron, len(steps)),
            "unit": np.tile(unit, len(steps)),
            "selectivity": sel.ravel(),
            "matched_selectivity": np.clip(
                sel.ravel() * 0.8 + rng.normal(0, 0.05, sel.size), -1, 1
            ),
            "preferred_class": np.tile(positions, len(steps)),
            "positions": np.tile(positions, len(steps)),
            "effect": eff.ravel(),
            "effect_low": np.where(on_focus, (eff - half).ravel(), np.nan),
            "effect_high": np.where(on_focus, (eff + half).ravel(), np.nan),
            "effect_all": (0.25 * eff + rng.normal(0, 0.002, eff.shape)).ravel(),
        }
    )
    base = rng.normal(0, 0.15, (n_units, len(classes)))
    onehot = np.eye(len(classes))[pref]
    acts = base[None] + 1.5 * sel[:, :, None] * onehot[None]  # (steps, units, classes)
    class_means = pd.DataFrame(
        {
            "seed": seed,
            "step": np.repeat(steps, n_units * len(classes)),
            "layer": np.tile(np.repeat(unit_layer, len(classes)), len(steps)),
            "neuron": np.tile(np.repeat(unit_neuron, len(classes)), len(steps)),
            "cls": np.tile(classes, n_units * len(steps)),
            "mean_act": acts.ravel(),
        }
    )
    order = [vestige, circuit, *(u for u in range(n_units) if u not in (vestige, circuit))]
    verdict = {vestige: "vestigial", circuit: "contrast"}
    peak = steps[np.argmax(eff, axis=0)]
    verdicts = pd.DataFrame(
        {
            "seed": seed,
            "layer": unit_layer[order],
            "neuron": unit_neuron[order],
            "unit": unit[order],
            "rank": np.arange(n_units),
            "verdict": [verdict.get(u, "neither") for u in order],
            "failed": [
                "" if u == vestige else "faded" if u == circuit else "needed" for u in order
            ],
            "reason": ["synthetic"] * n_units,
            "positions": positions[order],
            "focus": focus,
            "peak_step": peak[order].astype(float),
            "settle_step": np.nan,
            "min_peak": 0.15,
        }
    )
    return neurons, class_means, verdicts


def _synthetic_attention(rng, seed, steps, t_star, n_layers, n_heads, seq_len):
    """Causal softmax attention; after the transition one last-layer head attends to the
    previous token and one first-layer head to the first token."""
    logits = rng.normal(0, 0.7, (1, n_layers, n_heads, seq_len, seq_len)) + rng.normal(
        0, 0.2, (len(steps), n_layers, n_heads, seq_len, seq_len)
    )
    grow = 6 * _sigmoid((steps - t_star) / 60)[:, None]
    q = np.arange(1, seq_len)
    logits[:, -1, rng.integers(n_heads), q, q - 1] += grow
    logits[:, 0, rng.integers(n_heads), :, 0] += grow
    query, key = np.tril_indices(seq_len)
    causal = logits[..., query, key]
    full = np.full(logits.shape, -np.inf)
    full[..., query, key] = causal
    weights = np.exp(full - full.max(axis=-1, keepdims=True))
    weights = (weights / weights.sum(axis=-1, keepdims=True))[..., query, key]
    n_cells = len(query)
    s, ly, h = np.meshgrid(steps, np.arange(n_layers), np.arange(n_heads), indexing="ij")
    return pd.DataFrame(
        {
            "seed": seed,
            "step": np.repeat(s.ravel(), n_cells),
            "layer": np.repeat(ly.ravel(), n_cells),
            "head": np.repeat(h.ravel(), n_cells),
            "query": np.tile(query, s.size),
            "key": np.tile(key, s.size),
            "weight": weights.ravel(),
        }
    )
