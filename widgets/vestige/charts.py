"""Altair views of a run's checkpoints, all following one step cursor (a param named ``step``).

Each view is a function ``f(tables, seed, step=..., ...) -> alt.TopLevelMixin``. Cursor
arguments (``step``, ``neuron``, ``layer``, ``head``) take either an ``alt.Parameter`` (shared
between views) or a plain value (a param with that name and value is created). A cursor only
filters or indexes data that is already in the spec, so moving it never re-sends data.

Altair's 5,000-row limit is handled on purpose, never by disabling it:

* every view holds one seed only (seed is a kernel-side filter; changing seed re-sends data);
* per seed the views hold 200-2,000 rows (metrics, neurons x checkpoints, class means);
* the attention table (per seed ~20 steps x 2 layers x 4 heads x 820 causal cells = 131,200
  long rows) is packed kernel-side into one row per (query, key) cell whose ``w`` column lists
  the weights for every (layer, head, checkpoint): 820 rows; a ``calculate`` transform picks
  ``w[(layer * n_heads + head) * n_steps + indexof(steps, step)]``, so step, layer and head
  stay params. Weights are sent as ints in 1/1000. Measured by ``benchmarks/bench_explorer.py``
  (synthetic, realistic size, per seed): long rows 131,200 (12 MB of JSON; altair raises
  MaxRowsError); long rows of one layer/head 16,400 (still over the limit, 1.1 MB); packed
  cells 820 rows, 0.55 MB for all layers and heads (used) or 0.09 MB for one layer/head, which
  would make a head switch a data re-send. VegaFusion was not used: it evaluates transforms in the
  kernel, so every step change would be a kernel round trip re-sending filtered rows, and it
  needs another dependency and a global data transformer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

COLUMNS = {
    "metrics": ["seed", "step", "loss", "accuracy"],
    "checkpoints": ["seed", "step"],
    "transitions": ["seed", "step"],
    "neurons": ["seed", "step", "layer", "neuron", "unit", "selectivity", "preferred_class",
                "effect", "effect_all"],
    "baseline": ["seed", "step", "layer", "p99"],
    "class_means": ["seed", "step", "layer", "neuron", "cls", "mean_act"],
    "attention": ["seed", "step", "layer", "head", "query", "key", "weight"],
    "example_tokens": ["seed", "position", "token"],
}
EFFECT_THRESHOLD = 0.05  # nats: below this a neuron "is not needed"
CURSOR = "black"
TRANSITION = "firebrick"


@dataclass(frozen=True)
class ExplorerTables:
    """The tables the explorer and the charts read (columns: see ``COLUMNS``)."""

    metrics: pd.DataFrame
    checkpoints: pd.DataFrame
    transitions: pd.DataFrame
    neurons: pd.DataFrame
    baseline: pd.DataFrame
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
        return sorted(int(s) for s in _rows(self.checkpoints, seed)["step"].unique())

    def units(self, seed: int) -> list[str]:
        """Neuron names ("L0N5") ordered by layer then neuron."""
        rows = _rows(self.neurons, seed).drop_duplicates("unit").sort_values(["layer", "neuron"])
        return rows["unit"].tolist()

    def default_neuron(self, seed: int) -> str:
        """The unit with the largest ablation effect at any checkpoint: the one worth a look."""
        rows = _rows(self.neurons, seed)
        return str(rows.loc[rows["effect"].idxmax(), "unit"])

    def transition(self, seed: int) -> float:
        step = _rows(self.transitions, seed)["step"]
        return float(step.iloc[0]) if len(step) else float("nan")

    @classmethod
    def synthetic(cls, n_seeds=10, steps=None, n_layers=2, d_mlp=16, n_heads=4, seq_len=40,
                  classes=("other", "trigger", "copy")) -> ExplorerTables:
        """Realistic fake tables: a loss drop near step 900 and a neuron that becomes selective,
        then needed, then not needed any more (a vestige), for tests and benchmarks."""
        steps = log_steps() if steps is None else sorted(steps)
        parts = [_synthetic_seed(seed, np.asarray(steps), n_layers, d_mlp, n_heads, seq_len,
                                 list(classes)) for seed in range(n_seeds)]
        return cls(**{name: pd.concat([p[name] for p in parts], ignore_index=True)
                      for name in COLUMNS})


def as_tables(source: Any) -> ExplorerTables:
    """``source`` itself if it is an ExplorerTables, else ``source.explorer_tables()``."""
    return source if isinstance(source, ExplorerTables) else source.explorer_tables()


def log_steps(last: int = 2000, n: int = 20) -> list[int]:
    """``n`` distinct log-spaced checkpoint steps from 0 to ``last``."""
    k = n
    while len(steps := np.unique(np.round(np.geomspace(1, last, k)).astype(int))) < n - 1:
        k += 1
    return [0, *steps.tolist()]


def nearest_step(steps: list[int], step: float | None) -> int:
    """The checkpoint step closest to ``step`` (the first one if ``step`` is None)."""
    return steps[0] if step is None else min(steps, key=lambda s: abs(s - step))


def cursor(value: Any, name: str) -> alt.Parameter:
    """``value`` if it already is a param, else a new param ``name`` holding ``value``."""
    return value if isinstance(value, alt.Parameter) else alt.param(name=name, value=value)


# ----------------------------------------------------------------------------- views


def training_curves(tables: ExplorerTables, seed: int, step=None) -> alt.HConcatChart:
    """Loss and accuracy against step, with the step cursor and the transition marked."""
    step = cursor(_first(step, tables.steps(seed)[0]), "step")
    metrics = _rows(tables.metrics, seed)[["step", "loss", "accuracy"]]
    marks = _step_marks(tables, seed, step)
    panels = [
        alt.layer(
            alt.Chart(metrics).mark_line().encode(x=alt.X("step:Q", title="step"),
                                                  y=alt.Y(f"{col}:Q", title=col)),
            *marks,
        ).properties(width=240, height=150, title=col)
        for col in ("loss", "accuracy")
    ]
    return alt.hconcat(*panels).add_params(step)


def selectivity_vs_effect(tables: ExplorerTables, seed: int, step=None, neuron=None,
                          effect_threshold: float = EFFECT_THRESHOLD) -> alt.LayerChart:
    """Every neuron at the cursor step: selectivity (x) against ablation effect (y). Shaded:
    "selective but not needed" (selectivity >= the shuffled-label p99 of the step, the larger
    over layers, and effect < ``effect_threshold``)."""
    step = cursor(_first(step, tables.steps(seed)[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = _neuron_rows(tables, seed)
    lo, hi = _padded_range(data["effect"], floor=effect_threshold)
    x = alt.Scale(domain=[0, 1])
    y = alt.Scale(domain=[lo, hi])
    at_step = f"datum.step == {step.name}"
    region = alt.Chart(_rows(tables.baseline, seed)[["step", "p99"]]).transform_filter(
        at_step).transform_aggregate(p99="max(p99)")
    shade = region.mark_rect(color="orange", opacity=0.18).encode(
        x=alt.X("p99:Q", scale=x), x2=alt.datum(1), y=alt.datum(lo),
        y2=alt.datum(effect_threshold))
    label = region.mark_text(align="right", baseline="bottom", dx=-3, dy=-3, color="darkorange",
                             text="selective but not needed").encode(
        x=alt.datum(1), y=alt.datum(effect_threshold))
    picked = alt.when(f"datum.unit == {neuron.name}")
    points = alt.Chart(data).transform_filter(at_step).mark_circle(stroke="black").encode(
        x=alt.X("selectivity:Q", scale=x, title="selectivity"),
        y=alt.Y("effect:Q", scale=y, title=f"ablation effect on {_effect_positions(tables)} (nats)"),
        color=alt.Color("layer:N", title="layer"),
        size=picked.then(alt.value(220)).otherwise(alt.value(45)),
        strokeWidth=picked.then(alt.value(2)).otherwise(alt.value(0)),
        tooltip=["unit:N", "preferred_class:N", alt.Tooltip("selectivity:Q", format=".2f"),
                 alt.Tooltip("effect:Q", format=".3f"), alt.Tooltip("effect_all:Q", format=".3f")],
    )
    return alt.layer(shade, label, points).properties(
        width=300, height=260, title=_title("'neurons at step ' + " + step.name)
    ).add_params(step, neuron)


def class_means(tables: ExplorerTables, seed: int, step=None, neuron=None) -> alt.LayerChart:
    """The picked neuron's mean activation per class at the cursor step (the y axis spans
    that neuron's values over all steps, so it stays put while the cursor moves)."""
    step = cursor(_first(step, tables.steps(seed)[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = _with_unit(_rows(tables.class_means, seed))[["unit", "step", "cls", "mean_act"]]
    order = list(dict.fromkeys(data["cls"]))
    base = alt.Chart(data).transform_filter(f"datum.unit == {neuron.name}").encode(
        x=alt.X("cls:N", sort=order, title="class", axis=alt.Axis(labelAngle=0)), y=alt.Y("mean_act:Q", title="mean activation"))
    bars = base.transform_filter(f"datum.step == {step.name}").mark_bar().encode(
        color=alt.Color("cls:N", sort=order, legend=None),
        tooltip=["cls:N", alt.Tooltip("mean_act:Q", format=".3f")])
    span = base.mark_tick(opacity=0)  # all steps of this neuron: fixes the y range
    return alt.layer(span, bars).properties(
        width=180, height=220,
        title=_title(f"{neuron.name} + ' at step ' + {step.name}"),
    ).add_params(step, neuron)


def neuron_timeline(tables: ExplorerTables, seed: int, step=None, neuron=None,
                    effect_threshold: float = EFFECT_THRESHOLD) -> alt.VConcatChart:
    """The picked neuron's selectivity (with its layer's shuffled p99) and ablation effect
    over checkpoints, with the step cursor."""
    step = cursor(_first(step, tables.steps(seed)[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = _neuron_rows(tables, seed)[["unit", "step", "selectivity", "p99", "effect"]]
    mine = alt.Chart(data).transform_filter(f"datum.unit == {neuron.name}")
    # Checkpoints are log-spaced: a symlog axis spreads them out (and keeps step 0).
    x = alt.X("step:Q", title="step (log scale)", scale=alt.Scale(type="symlog"))
    marks = _step_marks(tables, seed, step)
    selectivity = alt.layer(
        mine.mark_line(point=True).encode(x=x, y=alt.Y("selectivity:Q", scale=alt.Scale(
            domain=[0, 1]))),
        mine.mark_line(strokeDash=[3, 3], color="gray").encode(x=x, y="p99:Q"),
        *marks,
    ).properties(width=260, height=110, title=_title(f"{neuron.name} + ' over training'"))
    effect = alt.layer(
        mine.mark_line(point=True, color="seagreen").encode(
            x=x, y=alt.Y("effect:Q", title="ablation effect (nats)")),
        alt.Chart().mark_rule(strokeDash=[3, 3], color="gray").encode(
            y=alt.datum(effect_threshold)),
        *marks,
    ).properties(width=260, height=110)
    return alt.vconcat(selectivity, effect).add_params(step, neuron)


def attention_pattern(tables: ExplorerTables, seed: int, step=None, layer=None,
                      head=None) -> alt.Chart:
    """Attention weights (query x key) of one example at the cursor step; ``layer`` and
    ``head`` are params too, so switching head sends no data."""
    steps = tables.steps(seed)
    step = cursor(_first(step, steps[0]), "step")
    layer = cursor(_first(layer, 0), "layer")
    head = cursor(_first(head, 0), "head")
    cells, n_heads = _attention_cells(tables, seed, steps)
    pick = (f"datum.w[({layer.name} * {n_heads} + {head.name}) * {len(steps)}"
            f" + indexof({json.dumps(steps)}, {step.name})] / 1000")
    tokens = _rows(tables.example_tokens, seed).sort_values("position")["token"].tolist()
    axis = alt.Axis(labelExpr=f"{json.dumps(tokens)}[datum.value]", labelAngle=0, labelFontSize=8)
    return alt.Chart(cells).transform_calculate(weight=pick).mark_rect().encode(
        x=alt.X("key:O", axis=axis, title="key"),
        y=alt.Y("query:O", axis=axis, title="query"),
        color=alt.Color("weight:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=["query:O", "key:O", alt.Tooltip("weight:Q", format=".3f")],
    ).properties(
        width=300, height=300,
        title=_title(f"'attention L' + {layer.name} + 'H' + {head.name} + ' at step ' + "
                     f"{step.name}"),
    ).add_params(step, layer, head)


# ----------------------------------------------------------------------------- static


def dashboard(tables: ExplorerTables, seed: int, step, neuron, layer, head) -> alt.VConcatChart:
    """All five views sharing the given cursor params."""
    return alt.vconcat(
        alt.hconcat(training_curves(tables, seed, step),
                    selectivity_vs_effect(tables, seed, step, neuron)),
        alt.hconcat(class_means(tables, seed, step, neuron),
                    neuron_timeline(tables, seed, step, neuron),
                    attention_pattern(tables, seed, step, layer, head)),
    )


def standalone(tables: ExplorerTables, seed: int | None = None, step: int | None = None,
               neuron: str | None = None, layer: int = 0, head: int = 0) -> alt.VConcatChart:
    """The dashboard with altair-native controls (checkpoint slider, neuron, layer and head
    pickers) that work without a kernel: nbviewer, a course web page."""
    seed = tables.seeds[0] if seed is None else seed
    steps = tables.steps(seed)
    index = alt.param(name="checkpoint", value=steps.index(nearest_step(steps, step)),
                      bind=alt.binding_range(min=0, max=len(steps) - 1, step=1,
                                             name="checkpoint # "))
    step_param = alt.param(name="step", expr=f"{json.dumps(steps)}[checkpoint]")
    units = tables.units(seed)
    layers = sorted(int(v) for v in _rows(tables.attention, seed)["layer"].unique())
    heads = sorted(int(v) for v in _rows(tables.attention, seed)["head"].unique())
    controls = {
        "neuron": alt.param(name="neuron", value=_first(neuron, tables.default_neuron(seed)),
                            bind=alt.binding_select(options=units, name="neuron ")),
        "layer": alt.param(name="layer", value=layer,
                           bind=alt.binding_radio(options=layers, name="attention layer ")),
        "head": alt.param(name="head", value=head,
                          bind=alt.binding_radio(options=heads, name="head ")),
    }
    return dashboard(tables, seed, step_param, **controls).add_params(index).properties(
        title=f"seed {seed}")


def export_static(tables: ExplorerTables, path: str | Path, seed: int | None = None,
                  step: int | None = None, neuron: str | None = None, layer: int = 0,
                  head: int = 0, scale: float = 1.0) -> Path:
    """Save the standalone dashboard: ``.html`` self-contained (vega JS inlined, works
    offline) or ``.png``/``.svg`` through vl-convert (at the given cursor)."""
    path = Path(path)
    chart = standalone(tables, seed, step, neuron, layer, head)
    if path.suffix == ".html":
        chart.save(path, inline=True)
    else:
        chart.save(path, scale_factor=scale)
    return path


# ----------------------------------------------------------------------------- helpers


def _rows(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    return df[df["seed"] == seed]


def _first(value, default):
    return default if value is None else value


def _title(expr: str) -> alt.Title:
    return alt.Title(text=alt.ExprRef(expr), anchor="start", fontSize=12)


def _padded_range(values: pd.Series, floor: float) -> tuple[float, float]:
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), floor)
    pad = 0.05 * (hi - lo)
    return round(lo - pad, 4), round(hi + pad, 4)


def _with_unit(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(unit="L" + df["layer"].astype(str) + "N" + df["neuron"].astype(str))


def _neuron_rows(tables: ExplorerTables, seed: int) -> pd.DataFrame:
    """One seed's neuron rows with their layer's shuffled-label p99 at that step."""
    neurons = _rows(tables.neurons, seed).drop(columns=["seed", "neuron"])
    baseline = _rows(tables.baseline, seed)[["step", "layer", "p99"]]
    return neurons.merge(baseline, on=["step", "layer"], how="left").round(4)


def _effect_positions(tables: ExplorerTables) -> str:
    """Which positions the `effect` column was measured on (e.g. "trigger positions")."""
    where = tables.neurons.get("effect_positions")
    if where is None or where.nunique() != 1:
        return "preferred-class positions"
    return "all positions" if where.iloc[0] == "all" else f"{where.iloc[0]} positions"


def _step_marks(tables: ExplorerTables, seed: int, step: alt.Parameter) -> list[alt.Chart]:
    """The cursor rule (a checkpoints row filtered to the step) and the transition rule."""
    ckpts = _rows(tables.checkpoints, seed)[["step"]]
    marks = [alt.Chart(ckpts).transform_filter(f"datum.step == {step.name}").mark_rule(
        color=CURSOR, strokeWidth=1.5).encode(x="step:Q")]
    transition = tables.transition(seed)
    if not np.isnan(transition):
        marks.append(alt.Chart().mark_rule(color=TRANSITION, strokeDash=[5, 3]).encode(
            x=alt.datum(transition), tooltip=alt.value(f"transition at step {transition:g}")))
    return marks


def _attention_cells(tables: ExplorerTables, seed: int, steps: list[int]
                     ) -> tuple[pd.DataFrame, int]:
    """One row per (query, key) with ``w`` = weights in 1/1000 (ints: half the JSON of floats),
    indexed by (layer, head, checkpoint)."""
    att = _rows(tables.attention, seed)
    n_layers, n_heads = int(att["layer"].max()) + 1, int(att["head"].max()) + 1
    n_pos = int(att["query"].max()) + 1
    grid = np.full((n_pos, n_pos, n_layers, n_heads, len(steps)), np.nan)
    grid[att["query"], att["key"], att["layer"], att["head"],
         np.searchsorted(steps, att["step"])] = (1000 * att["weight"]).round()
    query, key = np.nonzero(~np.isnan(grid).all(axis=(2, 3, 4)))
    flat = grid[query, key].reshape(len(query), -1)
    w = [[None if np.isnan(v) else int(v) for v in row] for row in flat.tolist()]
    return pd.DataFrame({"query": query, "key": key, "w": w}), n_heads


# ----------------------------------------------------------------------------- synthetic


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _synthetic_seed(seed, steps, n_layers, d_mlp, n_heads, seq_len, classes):
    """One seed of synthetic tables (see ``ExplorerTables.synthetic``)."""
    rng = np.random.default_rng(seed)
    t_star = 900 + rng.normal(0, 60)
    logged = np.arange(0, steps[-1] + 1, 10)
    drop = _sigmoid((logged - t_star) / 40)
    metrics = pd.DataFrame({
        "seed": seed, "step": logged,
        "loss": 0.6 + 1.6 * np.exp(-logged / 60) + 0.9 * (1 - drop) + rng.normal(0, 0.02, len(logged)),
        "accuracy": np.clip(0.25 + 0.15 * (1 - np.exp(-logged / 60)) + 0.5 * drop
                            + rng.normal(0, 0.01, len(logged)), 0, 1),
    })
    neurons, class_means = _synthetic_neurons(rng, seed, steps, t_star, n_layers, d_mlp, classes)
    layers = np.arange(n_layers)
    baseline = pd.DataFrame({
        "seed": seed, "step": np.repeat(steps, n_layers), "layer": np.tile(layers, len(steps)),
        "p99": 0.3 + rng.normal(0, 0.015, len(steps) * n_layers)})
    return {
        "metrics": metrics,
        "checkpoints": pd.DataFrame({"seed": seed, "step": steps}),
        "transitions": pd.DataFrame({"seed": [seed], "step": [float(round(t_star))]}),
        "neurons": neurons, "baseline": baseline, "class_means": class_means,
        "attention": _synthetic_attention(rng, seed, steps, t_star, n_layers, n_heads, seq_len),
        "example_tokens": pd.DataFrame({
            "seed": seed, "position": np.arange(seq_len),
            "token": rng.choice(list("abcdefgh#"), seq_len)}),
    }


def _synthetic_neurons(rng, seed, steps, t_star, n_layers, d_mlp, classes):
    """Noise neurons, one vestige (selective, needed, then not needed: layer 0) and one
    circuit neuron (selective and needed from the transition on: last layer)."""
    n_units = n_layers * d_mlp
    t = steps[:, None].astype(float)
    sel = np.clip(rng.beta(2, 18, (len(steps), n_units)), 0, 1)
    eff = rng.normal(0.004, 0.006, (len(steps), n_units))
    vestige = rng.integers(d_mlp)
    circuit = (n_layers - 1) * d_mlp + rng.integers(d_mlp)
    sel[:, vestige] = 0.1 + 0.75 * _sigmoid((t[:, 0] - 0.6 * t_star) / 80)
    eff[:, vestige] += 0.6 * _sigmoid((t[:, 0] - 0.8 * t_star) / 60) * np.exp(
        -np.maximum(0, t[:, 0] - t_star) / 350)
    sel[:, circuit] = 0.1 + 0.7 * _sigmoid((t[:, 0] - t_star) / 60)
    eff[:, circuit] += 0.45 * _sigmoid((t[:, 0] - t_star) / 60)
    pref = rng.integers(len(classes), size=n_units)
    pref[vestige], pref[circuit] = 1 % len(classes), 2 % len(classes)
    unit_layer, unit_neuron = np.divmod(np.arange(n_units), d_mlp)
    unit = np.array([f"L{ly}N{n}" for ly, n in zip(unit_layer, unit_neuron)])
    neurons = pd.DataFrame({
        "seed": seed, "step": np.repeat(steps, n_units), "layer": np.tile(unit_layer, len(steps)),
        "neuron": np.tile(unit_neuron, len(steps)), "unit": np.tile(unit, len(steps)),
        "selectivity": sel.ravel(), "preferred_class": np.array(classes)[np.tile(pref, len(steps))],
        "effect": eff.ravel(), "effect_all": (0.25 * eff + rng.normal(0, 0.002, eff.shape)).ravel(),
    })
    base = rng.normal(0, 0.15, (n_units, len(classes)))
    onehot = np.eye(len(classes))[pref]
    acts = base[None] + 1.5 * sel[:, :, None] * onehot[None]  # (steps, units, classes)
    class_means = pd.DataFrame({
        "seed": seed, "step": np.repeat(steps, n_units * len(classes)),
        "layer": np.tile(np.repeat(unit_layer, len(classes)), len(steps)),
        "neuron": np.tile(np.repeat(unit_neuron, len(classes)), len(steps)),
        "cls": np.tile(classes, n_units * len(steps)), "mean_act": acts.ravel(),
    })
    return neurons, class_means


def _synthetic_attention(rng, seed, steps, t_star, n_layers, n_heads, seq_len):
    """Causal softmax attention; after the transition one last-layer head attends to the
    previous token and one first-layer head to the first token."""
    logits = rng.normal(0, 0.7, (1, n_layers, n_heads, seq_len, seq_len)) + rng.normal(
        0, 0.2, (len(steps), n_layers, n_heads, seq_len, seq_len))
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
    return pd.DataFrame({
        "seed": seed, "step": np.repeat(s.ravel(), n_cells), "layer": np.repeat(ly.ravel(), n_cells),
        "head": np.repeat(h.ravel(), n_cells), "query": np.tile(query, s.size),
        "key": np.tile(key, s.size), "weight": weights.ravel(),
    })
