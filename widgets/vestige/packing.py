"""The explorer's tables packed for the views: one seed's rows, with list columns where a
checkpoint's values are picked in the browser.

Altair's 5,000-row limit is handled here on purpose, never by disabling it:

* every view holds one seed only (seed is a kernel-side filter; changing seed re-sends data);
* per seed the neuron rows are neurons x checkpoints (672 for the reference runs);
* class means and attention are packed kernel-side into one row per (unit, class) and per
  (query, key) cell whose list column holds the values for every checkpoint (and, for
  attention, every layer and head); the views pick the cursor's entry with a ``calculate``
  transform, so step, layer and head stay params. Attention weights are sent as two hex
  digits each, one string per cell. Measured by ``benchmarks/bench_explorer.py`` (synthetic,
  realistic size, per seed): long attention rows 131,200 (altair raises MaxRowsError); packed
  820 rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vestige.tables import VERDICTS, ExplorerTables, rows


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
    grid = np.full((n_pos, n_pos, n_layers, n_heads, len(steps)), np.nan)
    grid[
        att["query"], att["key"], att["layer"], att["head"], np.searchsorted(steps, att["step"])
    ] = (255 * att["weight"]).round()
    query, key = np.nonzero(~np.isnan(grid).all(axis=(2, 3, 4)))
    flat = grid[query, key].reshape(len(query), -1)
    w = ["".join("--" if np.isnan(v) else f"{int(v):02x}" for v in row) for row in flat.tolist()]
    return pd.DataFrame({"query": query, "key": key, "w": w}), n_heads
