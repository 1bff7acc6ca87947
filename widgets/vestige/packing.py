"""The explorer's tables packed for the views: one seed's named datasets (`datasets`) and
the layout every seed of the same shape shares (`Layout`).

A spec of the views writes only its `Layout` literally (checkpoints, layers, heads, classes,
loss series, sequence length); everything else that differs between seeds (rows, the
transition, the detector's bar, where each neuron's effect is measured, the example's tokens)
comes from the datasets, by name. So one spec draws every seed of a layout: changing seed
swaps the datasets and builds no chart.

Altair's 5,000-row limit is handled here on purpose, never by disabling it (every dataset
goes through altair's data transformer, which raises past it):

* a seed's datasets hold that seed only;
* per seed the neuron rows are neurons x checkpoints (672 for the reference runs);
* class means and attention are packed into one row per (unit, class) and per (query, key)
  cell whose list column holds the values for every checkpoint (and, for attention, every
  layer and head); the views pick the cursor's entry with a ``calculate`` transform, so
  step, layer and head stay params. Attention weights are sent as two hex digits each, one
  string per cell. Measured by ``benchmarks/bench_explorer.py`` (synthetic, realistic size,
  per seed): long attention rows 131,200 (altair raises MaxRowsError); packed 820 rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from vestige.tables import VERDICTS, ExplorerTables, rows

DATASETS = (
    "losses",  # step, series (its legend name), nats
    "accuracy",  # step, accuracy
    "checkpoints",  # step
    "transition",  # step; no row when the run has no transition
    "facts",  # one row: min_peak, effect_lo/effect_hi (the scatter's y range), positions
    "neurons",  # `neuron_rows`
    "bars",  # step, layer, untrained_p99
    "class_means",  # `class_mean_cells`
    "attention",  # `attention_cells`
    "tokens",  # position, token: the example sequence of the attention view
)
# The hex digits of a weight in 1/255 (index 256: no weight).
HEX = np.array([f"{i:02x}" for i in range(256)] + ["--"])


@dataclass(frozen=True)
class Layout:
    """What a spec of one seed writes literally; seeds with equal layouts share a spec."""

    steps: tuple[int, ...]
    layers: tuple[int, ...]  # MLP layers (the scatter's shapes)
    classes: tuple[str, ...]  # the class-means axis, in table order
    series: tuple[str, ...]  # the loss curves' legend
    n_heads: int
    n_tokens: int

    @classmethod
    def of(cls, tables: ExplorerTables, seed: int) -> Layout:
        return cls(
            steps=tuple(tables.steps(seed)),
            layers=tuple(sorted(int(v) for v in rows(tables.neurons, seed)["layer"].unique())),
            classes=tuple(dict.fromkeys(rows(tables.class_means, seed)["cls"])),
            series=tuple(loss_series(tables, seed).values()),
            n_heads=int(rows(tables.attention, seed)["head"].max()) + 1,
            n_tokens=len(rows(tables.example_tokens, seed)),
        )


def datasets(
    tables: ExplorerTables, seed: int, names: tuple[str, ...] = DATASETS
) -> dict[str, list[dict]]:
    """One seed's datasets `names` as JSON rows (NaN as null), by name."""
    to_values = alt.data_transformers.get()
    return {name: to_values(_PACKERS[name](tables, seed))["values"] for name in names}


def loss_series(tables: ExplorerTables, seed: int) -> dict[str, str]:
    """{metrics column: legend name}: all positions, the focus class, the transition class."""
    metrics = rows(tables.metrics, seed)
    series = {"loss": "all positions"}
    for cls in (tables.focus(seed), (tables.transition_metric(seed) or "")[len("loss_") :]):
        column = f"loss_{cls}"
        if cls and column in metrics and metrics[column].notna().any():
            series[column] = f"{cls} positions"
    return series


def unit_positions(tables: ExplorerTables, seed: int) -> dict[str, str]:
    """{unit: the class of positions its effect is measured on}."""
    found = rows(tables.verdicts, seed)
    return dict(zip(found["unit"], found["positions"]))


def neuron_rows(tables: ExplorerTables, seed: int) -> pd.DataFrame:
    """One seed's neuron rows with their layer's bars (untrained p99s) at that step and the
    detector's verdict (as the legend names it) and failed clauses."""
    neurons = rows(tables.neurons, seed)[
        [
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
            "untrained_matched_p99",
        ]
    ].rename(columns={"untrained_matched_p99": "bar_matched"})
    bars = rows(tables.baseline, seed)[["step", "layer", "untrained_p99"]]
    bars = bars.rename(columns={"untrained_p99": "bar_selectivity"})
    verdicts = rows(tables.verdicts, seed)[["unit", "verdict", "failed"]]
    out = neurons.merge(bars, on=["step", "layer"], how="left").merge(verdicts, on="unit")
    out["verdict"] = out["verdict"].map(VERDICTS)
    out["failed"] = out["failed"].where(out["failed"] != "", "none")
    return out.drop(columns="neuron").round(3).reset_index(drop=True)


def class_mean_cells(tables: ExplorerTables, seed: int, steps: list[int]) -> pd.DataFrame:
    """One row per (unit, class): ``m`` the mean activation at every checkpoint, ``lo``/``hi``
    the range of the unit's means (fixes its y axis), ``positions`` where its effect is
    measured."""
    from vestige.analysis import unit_name

    means = rows(tables.class_means, seed)
    units = [unit_name(int(ly), int(n)) for ly, n in zip(means["layer"], means["neuron"])]
    means = means.assign(unit=units)
    wide = means.pivot_table(
        index=["unit", "cls"], columns="step", values="mean_act", sort=False
    ).reindex(columns=steps)
    cells = wide.index.to_frame(index=False)
    cells["m"] = [[None if np.isnan(v) else round(float(v), 3) for v in r] for r in wide.to_numpy()]
    span = means.groupby("unit")["mean_act"].agg(["min", "max"])
    cells["lo"] = cells["unit"].map(np.minimum(span["min"], 0)).round(3)
    cells["hi"] = cells["unit"].map(span["max"]).round(3)
    cells["positions"] = cells["unit"].map(unit_positions(tables, seed))
    return cells


def attention_cells(
    tables: ExplorerTables, seed: int, steps: list[int]
) -> tuple[pd.DataFrame, int]:
    """One row per (query, key) with ``w`` = its weights for every (layer, head, checkpoint),
    in that order, as two hex digits each (1/255): one short string per cell, a fifth of the
    JSON of a list of floats, and one line in a saved notebook however it is indented ("--":
    no weight)."""
    att = rows(tables.attention, seed)
    n_layers, n_heads = int(att["layer"].max()) + 1, int(att["head"].max()) + 1
    n_pos = int(att["query"].max()) + 1
    grid = np.full((n_pos, n_pos, n_layers, n_heads, len(steps)), 256, dtype=np.int16)
    grid[
        att["query"], att["key"], att["layer"], att["head"], np.searchsorted(steps, att["step"])
    ] = (255 * att["weight"]).round()
    query, key = np.nonzero((grid != 256).any(axis=(2, 3, 4)))
    digits = HEX[grid[query, key].reshape(len(query), -1)]  # (cells, weights) two-char strings
    w = digits.view(f"<U{2 * digits.shape[1]}")[:, 0] if len(query) else digits[:, 0]
    return pd.DataFrame({"query": query, "key": key, "w": w.astype(object)}), n_heads


def padded_range(values: pd.Series, floor: float = 0.05) -> tuple[float, float]:
    """[lo, hi] spanning `values`, 0 and `floor`, padded by 5%."""
    values = values.dropna()
    lo = min(float(values.min()) if len(values) else 0.0, 0.0)
    hi = max(float(values.max()) if len(values) else floor, floor)
    pad = 0.05 * (hi - lo)
    return round(lo - pad, 4), round(hi + pad, 4)


def _losses(tables: ExplorerTables, seed: int) -> pd.DataFrame:
    series = loss_series(tables, seed)
    metrics = rows(tables.metrics, seed)
    long = metrics.melt("step", list(series), var_name="series", value_name="nats")
    return long.assign(series=long["series"].map(series)).dropna().round(4)


def _transition(tables: ExplorerTables, seed: int) -> pd.DataFrame:
    step = tables.transition(seed)
    return pd.DataFrame({"step": [] if np.isnan(step) else [step]})


def _facts(tables: ExplorerTables, seed: int) -> pd.DataFrame:
    lo, hi = padded_range(rows(tables.neurons, seed)["effect"])
    min_peak = float(rows(tables.verdicts, seed)["min_peak"].iloc[0])
    positions = unit_positions(tables, seed)
    return pd.DataFrame(
        {"min_peak": [min_peak], "effect_lo": [lo], "effect_hi": [hi], "positions": [positions]}
    )


_PACKERS = {
    "losses": _losses,
    "accuracy": lambda t, s: rows(t.metrics, s)[["step", "accuracy"]].round(4),
    "checkpoints": lambda t, s: rows(t.checkpoints, s)[["step"]],
    "transition": _transition,
    "facts": _facts,
    "neurons": neuron_rows,
    "bars": lambda t, s: rows(t.baseline, s)[["step", "layer", "untrained_p99"]].round(4),
    "class_means": lambda t, s: class_mean_cells(t, s, t.steps(s)),
    "attention": lambda t, s: attention_cells(t, s, t.steps(s))[0],
    "tokens": lambda t, s: rows(t.example_tokens, s).sort_values("position")[["position", "token"]],
}
