"""Altair views of a run's checkpoints, all following one step cursor (a param named ``step``).

Each view is a function ``f(tables, seed, step=..., ...) -> alt.TopLevelMixin`` over
`vestige.tables.ExplorerTables`. Cursor arguments (``step``, ``neuron``, ``layer``, ``head``)
take either an ``alt.Parameter`` (shared between views) or a plain value (a param with that
name and value is created). A cursor only filters or indexes data that is already in the
spec, so moving it never re-sends data (the data, one seed's, is packed by
`vestige.packing`). The views are ordinary altair charts: displayed in a notebook set up by
`vestige.notebook.setup` they are saved as vega-lite outputs (with a PNG beside them) that
JupyterLab, nbviewer and GitHub show without a kernel. Only the explorer
(`vestige.explorer`) is a widget, and it is all five views in one chart
(`vestige.dashboards`).

The views define no science: verdicts (vestigial, contrast), the positions each neuron's
effect is measured on, the selectivity bar (each layer's untrained p99), the detector's
"needed" bar and the transition all come from the tables (see `vestige.tables`).

Timelines use a symlog step axis (checkpoints are log-spaced) with a tick at every
checkpoint, ending at the last one.
"""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from vestige.packing import attention_cells, class_mean_cells, neuron_rows, unit_positions
from vestige.tables import VERDICTS, ExplorerTables, nearest_step, rows

# The five views' names in a spec (vega group "<name>_group"; the browser test finds them).
VIEWS = ("training", "neurons", "class_means", "timeline", "attention")
CURSOR = "black"
TRANSITION = "firebrick"
VERDICT_COLORS = {"vestigial": "#d95f02", "contrast": "#1b9e77", "neither": "#b0b0b0"}
CONTEXT = "#d0d0d0"  # units not singled out: drawn, greyed
SHAPES = ["circle", "square", "triangle-up", "diamond"]
SHAPE_GLYPHS = ["\u25cf", "\u25a0", "\u25b2", "\u25c6"]
SERIES_COLORS = ["#6b6b6b", "#d95f02", "#1f77b4", "#7570b3", "#e7298a"]
SPACING = 16
# Sizes: the whole dashboard fits the output area of a 1366x768 laptop with JupyterLab's
# file browser open (~910 px wide; measured by tests/test_browser.py).
SIZES = {
    "curves": (230, 110),
    "accuracy": (230, 50),
    "scatter": (260, 210),
    "means": (130, 170),
    "selectivity": (330, 95),
    "effect": (330, 125),
    "cell": 8,
}


def cursor(value: Any, name: str) -> alt.Parameter:
    """``value`` if it already is a param, else a new param ``name`` holding ``value``."""
    return value if isinstance(value, alt.Parameter) else alt.param(name=name, value=value)


def step_scale(steps: list[int]) -> alt.Scale:
    """A symlog scale over the checkpoints, from the first to the last one (no rounding to a
    power of ten); its constant is the first checkpoint after 0, so early ones spread out."""
    first = next((s for s in steps if s > 0), 1)
    return alt.Scale(type="symlog", constant=first, domain=[steps[0], steps[-1]], nice=False)


def step_axis(steps: list[int], title: str | None = "step (log scale)") -> alt.Axis:
    """Ticks at every checkpoint; labels where they fit."""
    return alt.Axis(
        values=list(steps),
        labelOverlap="greedy",
        labelFlush=True,
        title=title,
        grid=False,
        labelFontSize=9,
    )


def step_x(steps: list[int], title: str | None = "step (log scale)", field: str = "step"):
    return alt.X(f"{field}:Q", scale=step_scale(steps), axis=step_axis(steps, title))


# ----------------------------------------------------------------------------- views


def training_curves(tables: ExplorerTables, seed: int, step=None) -> alt.VConcatChart:
    """Loss (all positions, the focus class's and the transition class's) and accuracy
    against step, with the step cursor and the transition marked."""
    steps = tables.steps(seed)
    step = cursor(_first(step, steps[0]), "step")
    metrics = rows(tables.metrics, seed)
    series = _loss_series(tables, seed, metrics)
    long = metrics.melt("step", list(series), var_name="series", value_name="nats")
    long = long.assign(series=long["series"].map(series)).dropna().round(4)
    marks = _step_marks(tables, seed, step)
    x = step_x(steps, None)
    w, h = SIZES["curves"]
    loss = alt.layer(
        alt.Chart(long)
        .mark_line(strokeWidth=1.3)
        .encode(
            x=x,
            y=alt.Y("nats:Q", title="loss (nats)"),
            color=alt.Color(
                "series:N",
                sort=list(series.values()),
                title=None,
                scale=alt.Scale(domain=list(series.values()), range=SERIES_COLORS[: len(series)]),
                legend=alt.Legend(
                    orient="top", direction="horizontal", labelFontSize=9, symbolSize=60, columns=2
                ),
            ),
        ),
        *marks,
    ).properties(width=w, height=h, title=_title("'training (cursor at step ' + step + ')'"))
    aw, ah = SIZES["accuracy"]
    accuracy = alt.layer(
        alt.Chart(metrics[["step", "accuracy"]].round(4))
        .mark_line(strokeWidth=1.3, color=SERIES_COLORS[0])
        .encode(
            x=step_x(steps),
            y=alt.Y(
                "accuracy:Q",
                title="accuracy",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(tickCount=3),
            ),
        ),
        *marks,
    ).properties(width=aw, height=ah)
    return (
        independent(alt.vconcat(loss, accuracy, spacing=6))
        .properties(name=VIEWS[0])
        .add_params(step)
    )


def selectivity_vs_effect(
    tables: ExplorerTables, seed: int, step=None, neuron=None
) -> alt.LayerChart:
    """Every neuron at the cursor step: selectivity (x) against its ablation effect on its own
    positions (y), coloured by the detector's verdict, shaped by layer; dashed: each layer's
    untrained p99 (the selectivity bar). No region is drawn: the verdicts are the detector's."""
    static = not isinstance(step, alt.Parameter)  # a plain step: only its rows are needed
    step = cursor(_first(step, tables.steps(seed)[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = neuron_rows(tables, seed)
    if static:
        data = data[data["step"] == nearest_step(tables.steps(seed), step.param.value)]
    lo, hi = _padded_range(data["effect"])
    at_step = f"datum.step == {step.name}"
    layers = sorted(int(v) for v in data["layer"].unique())
    legend = "  ".join(f"{SHAPE_GLYPHS[i % len(SHAPES)]} L{ly}" for i, ly in enumerate(layers))
    labels = list(VERDICTS.values())
    x = alt.X("x:Q", scale=alt.Scale(domain=[0, 1]), title="selectivity (class SI)")
    bars = alt.Chart(
        rows(tables.baseline, seed)[["step", "layer", "untrained_p99"]].round(4)
    ).transform_filter(at_step)
    rules = bars.mark_rule(strokeDash=[4, 3], color="#555").encode(
        x=alt.X("untrained_p99:Q", scale=alt.Scale(domain=[0, 1]))
    )
    rule_labels = (
        bars.transform_calculate(label="'L' + datum.layer + ' bar'", ypos="4 + 11 * datum.layer")
        .mark_text(align="left", dx=3, fontSize=9, color="#555")
        .encode(x=alt.X("untrained_p99:Q"), y=alt.Y("ypos:Q", scale=None), text="label:N")
    )
    picked = alt.when(f"datum.unit == {neuron.name}")
    points = (
        alt.Chart(data)
        .transform_filter(at_step)
        .transform_calculate(
            x="isValid(datum.selectivity) ? datum.selectivity : 0",
        )
        .mark_point(filled=True, opacity=0.9)
        .encode(
            x=x,
            y=alt.Y(
                "effect:Q",
                scale=alt.Scale(domain=[lo, hi]),
                title="ablation effect on own positions (nats)",
            ),
            color=alt.Color(
                "verdict:N",
                title=None,
                scale=alt.Scale(domain=labels, range=[VERDICT_COLORS[k] for k in VERDICTS]),
                legend=alt.Legend(
                    orient="bottom", direction="horizontal", labelFontSize=9, symbolType="circle"
                ),
            ),
            shape=alt.Shape(
                "layer:N", scale=alt.Scale(domain=layers, range=SHAPES[: len(layers)]), legend=None
            ),
            size=picked.then(alt.value(170)).otherwise(alt.value(45)),
            fillOpacity=alt.when("isValid(datum.selectivity)")
            .then(alt.value(0.9))
            .otherwise(alt.value(0.15)),
            stroke=picked.then(alt.value(CURSOR)).otherwise(alt.value(None)),
            strokeWidth=picked.then(alt.value(2)).otherwise(alt.value(0)),
            tooltip=_neuron_tooltip(),
        )
    )
    w, h = SIZES["scatter"]
    return (
        alt.layer(rules, rule_labels, points)
        .properties(
            width=w,
            height=h,
            name=VIEWS[1],
            title=_title(
                "'neurons at step ' + " + step.name,
                [
                    f"{legend}; dashed: each layer's untrained p99 (its bar)",
                    "faint at 0: fires too rarely to have a selectivity",
                ],
            ),
        )
        .add_params(step, neuron)
    )


def class_means(tables: ExplorerTables, seed: int, step=None, neuron=None) -> alt.LayerChart:
    """The picked neuron's mean activation per class at the cursor step; the dark bar is the
    class whose positions its effect is measured on. The y axis spans that neuron's values
    over all steps, so it stays put while the cursor moves."""
    steps = tables.steps(seed)
    step = cursor(_first(step, steps[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = class_mean_cells(tables, seed, steps)
    order = list(dict.fromkeys(rows(tables.class_means, seed)["cls"]))
    base = alt.Chart(data).transform_filter(f"datum.unit == {neuron.name}")
    pick = f"datum.m[indexof({json.dumps(steps)}, {step.name})]"
    x = alt.X("cls:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40, labelFontSize=9))
    span = base.mark_rule(opacity=0).encode(x=x, y=alt.Y("lo:Q"), y2="hi:Q")
    bars = (
        base.transform_calculate(mean_act=pick, measured="datum.cls == datum.positions")
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("mean_act:Q", title="mean activation"),
            color=alt.condition("datum.measured", alt.value("#444"), alt.value("#bbb")),
            tooltip=[
                alt.Tooltip("cls:N", title="class"),
                alt.Tooltip("mean_act:Q", format=".3f"),
                alt.Tooltip("positions:N", title="effect measured on"),
            ],
        )
    )
    w, h = SIZES["means"]
    return (
        alt.layer(span, bars)
        .properties(
            width=w,
            height=h,
            name=VIEWS[2],
            title=_title(
                f"{neuron.name} + ' at step ' + {step.name}", "dark: where its effect is measured"
            ),
        )
        .add_params(step, neuron)
    )


def neuron_timeline(tables: ExplorerTables, seed: int, step=None, neuron=None) -> alt.VConcatChart:
    """The picked neuron over checkpoints: its selectivity (and same-token selectivity) with
    its layer's untrained p99 bars; its effect on its own positions (with the interval where
    the analysis has one), every other neuron in grey, the detector's picks in colour, and
    the detector's "needed" bar."""
    steps = tables.steps(seed)
    step = cursor(_first(step, steps[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = neuron_rows(tables, seed)
    mine = alt.Chart(data).transform_filter(f"datum.unit == {neuron.name}")
    x = step_x(steps, None)
    marks = _step_marks(tables, seed, step)
    measures = {
        "selectivity": ("selectivity", "bar_selectivity"),
        "same-token selectivity": ("matched_selectivity", "bar_matched"),
    }
    folded = mine.transform_fold(
        [m[0] for m in measures.values()] + [m[1] for m in measures.values()],
        as_=["column", "value"],
    )
    names = {v[0]: k for k, v in measures.items()} | {v[1]: k for k, v in measures.items()}
    folded = folded.transform_calculate(
        measure=f"{json.dumps(names)}[datum.column]", bar="indexof(datum.column, 'bar_') == 0"
    )
    color = alt.Color(
        "measure:N",
        title=None,
        scale=alt.Scale(domain=list(measures), range=["#333", "#7570b3"]),
        legend=alt.Legend(orient="top", direction="horizontal", labelFontSize=9),
    )
    sw, sh = SIZES["selectivity"]
    selectivity = alt.layer(
        folded.transform_filter("!datum.bar")
        .mark_line(point=alt.OverlayMarkDef(size=18))
        .encode(
            x=x, y=alt.Y("value:Q", title="selectivity", scale=alt.Scale(domainMax=1)), color=color
        ),
        folded.transform_filter("datum.bar")
        .mark_line(strokeDash=[4, 3], strokeWidth=1)
        .encode(x=x, y="value:Q", color=color),
        *marks,
    ).properties(
        width=sw,
        height=sh,
        title=_title(
            f"{neuron.name} + ' over training'", "dashed: untrained p99 of its layer (the bars)"
        ),
    )
    ew, eh = SIZES["effect"]
    positions = unit_positions(tables, seed)
    highlighted = list(VERDICTS.values())[:2]
    min_peak = float(rows(tables.verdicts, seed)["min_peak"].iloc[0])
    effect = alt.layer(
        alt.Chart(data)
        .mark_line(strokeWidth=0.8, color=CONTEXT)
        .encode(
            x=step_x(steps),
            y=alt.Y("effect:Q", title="effect on own positions (nats)"),
            detail="unit:N",
        ),
        alt.Chart(data)
        .transform_filter(alt.FieldOneOfPredicate("verdict", highlighted))
        .mark_line(strokeWidth=1.3)
        .encode(
            x=step_x(steps),
            y="effect:Q",
            detail="unit:N",
            color=alt.Color(
                "verdict:N",
                legend=None,
                scale=alt.Scale(
                    domain=list(VERDICTS.values()), range=[VERDICT_COLORS[k] for k in VERDICTS]
                ),
            ),
        ),
        mine.mark_area(opacity=0.2, color=CURSOR).encode(
            x=step_x(steps), y="effect_low:Q", y2="effect_high:Q"
        ),
        mine.mark_line(point=alt.OverlayMarkDef(size=18), color=CURSOR, strokeWidth=2).encode(
            x=step_x(steps), y="effect:Q", tooltip=_neuron_tooltip()
        ),
        alt.Chart().mark_rule(strokeDash=[2, 2], color="#555").encode(y=alt.datum(min_peak)),
        alt.Chart()
        .mark_text(
            align="right",
            baseline="bottom",
            dx=-2,
            dy=-1,
            fontSize=9,
            color="#555",
            text=f"detector's 'needed' bar ({min_peak:g})",
        )
        .encode(x=alt.value(ew), y=alt.datum(min_peak)),
        *marks,
    ).properties(
        width=ew,
        height=eh,
        title=_title(
            f"'effect on ' + {json.dumps(positions)}[{neuron.name}] + ' positions'",
            "grey: other neurons; colour: the detector's picks; band: 95% interval",
            size=11,
        ),
    )
    return (
        independent(alt.vconcat(selectivity, effect, spacing=6))
        .properties(name=VIEWS[3])
        .add_params(step, neuron)
    )


def attention_pattern(
    tables: ExplorerTables, seed: int, step=None, layer=None, head=None
) -> alt.Chart:
    """Attention weights (query x key) of one example at the cursor step; ``layer`` and
    ``head`` are params too, so switching head sends no data."""
    steps = tables.steps(seed)
    step = cursor(_first(step, steps[0]), "step")
    layer = cursor(_first(layer, 0), "layer")
    head = cursor(_first(head, 0), "head")
    cells, n_heads = attention_cells(tables, seed, steps)
    index = (
        f"(({layer.name} * {n_heads} + {head.name}) * {len(steps)}"
        f" + indexof({json.dumps(steps)}, {step.name}))"
    )
    pick = f"parseInt(substring(datum.w, 2 * {index}, 2 * {index} + 2), 16) / 255"
    tokens = rows(tables.example_tokens, seed).sort_values("position")["token"].tolist()
    labels = f"{json.dumps(tokens)}[datum.value]"
    size = max(160, min(340, SIZES["cell"] * len(tokens)))
    font = 9 if size / max(len(tokens), 1) >= 8 else 7
    x_axis = alt.Axis(
        labelExpr=labels,
        labelAngle=-90,
        labelFontSize=font,
        labelPadding=2,
        ticks=False,
        title="key (token)",
    )
    y_axis = alt.Axis(
        labelExpr=labels, labelFontSize=font, labelPadding=2, ticks=False, title="query (token)"
    )
    return (
        alt.Chart(cells)
        .transform_calculate(weight=pick)
        .mark_rect()
        .encode(
            x=alt.X("key:O", axis=x_axis),
            y=alt.Y("query:O", axis=y_axis),
            color=alt.Color(
                "weight:Q",
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
                legend=alt.Legend(orient="right", gradientLength=120, labelFontSize=9, title=None),
            ),
            tooltip=[
                alt.Tooltip("query:O", title="query position"),
                alt.Tooltip("key:O", title="key position"),
                alt.Tooltip("weight:Q", format=".2f"),
            ],
        )
        .properties(
            width=size,
            height=size,
            name=VIEWS[4],
            title=_title(
                f"'attention L' + {layer.name} + 'H' + {head.name} + ' at step ' + {step.name}",
                "one evaluation sequence",
            ),
        )
        .add_params(step, layer, head)
    )


def effects_over_training(
    tables: ExplorerTables,
    seed: int,
    highlight: dict | list | None = None,
    width: int = 520,
    height: int = 240,
) -> alt.LayerChart:
    """Every neuron's ablation effect on its own positions over training: grey, except the
    detector's picks (or the ``highlight`` units), which are coloured and named in the
    legend; works for any number of units. Ticks at the checkpoints; the axis ends at the
    last one."""
    steps = tables.steps(seed)
    data = neuron_rows(tables, seed)[["step", "unit", "effect", "verdict", "positions"]]
    if highlight is None:  # the detector's picks, and its best candidate if none is vestigial
        highlight = {tables.default_neuron(seed): "", **tables.highlighted(seed)}
    if not isinstance(highlight, dict):
        highlight = dict.fromkeys(highlight, "")
    highlight = {unit: v or tables.verdict(seed, unit)["verdict"] for unit, v in highlight.items()}
    first = tables.default_neuron(seed)
    label = {**{k: v.split(":")[0] for k, v in VERDICTS.items()}, "neither": "not vestigial"}
    names = {
        unit: f"{unit} ({'best candidate' if unit == first and v == 'neither' else label[v]}"
        f", {unit_positions(tables, seed)[unit]})"
        for unit, v in highlight.items()
    }
    picked = data[data["unit"].isin(list(names))].assign(name=lambda d: d["unit"].map(names))
    colors = [
        VERDICT_COLORS[v] if v != "neither" else SERIES_COLORS[2 + i % 3]
        for i, v in enumerate(highlight.values())
    ]
    min_peak = float(rows(tables.verdicts, seed)["min_peak"].iloc[0])
    tooltip = [
        "unit:N",
        alt.Tooltip("verdict:N", title="detector"),
        "step:Q",
        alt.Tooltip("effect:Q", format=".3f", title="effect (nats)"),
        alt.Tooltip("positions:N", title="effect measured on"),
    ]
    layers = [
        alt.Chart(data)
        .mark_line(strokeWidth=0.8, color=CONTEXT)
        .encode(
            x=step_x(steps),
            y=alt.Y("effect:Q", title="effect on own positions (nats)"),
            detail="unit:N",
            tooltip=tooltip,
        ),
        alt.Chart().mark_rule(strokeDash=[2, 2], color="#555").encode(y=alt.datum(min_peak)),
    ]
    if len(picked):
        layers.append(
            alt.Chart(picked)
            .mark_line(point=True, strokeWidth=2)
            .encode(
                x=step_x(steps),
                y="effect:Q",
                color=alt.Color(
                    "name:N",
                    title=None,
                    sort=list(names.values()),
                    scale=alt.Scale(domain=list(names.values()), range=colors),
                    legend=alt.Legend(orient="top"),
                ),
                tooltip=tooltip,
            )
        )
    transition = tables.transition(seed)
    if not np.isnan(transition):
        layers.append(
            alt.Chart()
            .mark_rule(color=TRANSITION, strokeDash=[5, 3])
            .encode(
                x=alt.datum(transition), tooltip=alt.value(f"transition at step {transition:g}")
            )
        )
        layers.append(
            alt.Chart()
            .mark_text(
                color=TRANSITION, align="left", baseline="top", dx=3, fontSize=9, text="transition"
            )
            .encode(x=alt.datum(transition), y=alt.value(2))
        )
    return alt.layer(*layers).properties(
        width=width,
        height=height,
        title=alt.Title(
            "Each neuron's ablation effect over training",
            subtitle=f"grey: the other {data['unit'].nunique() - len(picked['unit'].unique())} "
            f"neurons; dashed: the detector's 'needed' bar ({min_peak:g} nats)",
            anchor="start",
            fontSize=12,
            subtitleFontSize=10,
        ),
    )


# ----------------------------------------------------------------------------- helpers


def _first(value, default):
    return default if value is None else value


def _title(expr: str, subtitle: str | list[str] | None = None, size: int = 12) -> alt.Title:
    extra = (
        {"subtitle": subtitle, "subtitleFontSize": 9, "subtitleColor": "#666"} if subtitle else {}
    )
    return alt.Title(text=alt.ExprRef(expr), anchor="start", fontSize=size, **extra)


def _padded_range(values: pd.Series, floor: float = 0.05) -> tuple[float, float]:
    values = values.dropna()
    lo = min(float(values.min()) if len(values) else 0.0, 0.0)
    hi = max(float(values.max()) if len(values) else floor, floor)
    pad = 0.05 * (hi - lo)
    return round(lo - pad, 4), round(hi + pad, 4)


def _neuron_tooltip() -> list:
    # The detector's reason is left out on purpose: it names the peak step (an exercise).
    return [
        alt.Tooltip("unit:N"),
        alt.Tooltip("verdict:N", title="detector"),
        alt.Tooltip("failed:N", title="clauses failed"),
        alt.Tooltip("step:Q"),
        alt.Tooltip("selectivity:Q", format=".2f"),
        alt.Tooltip("preferred_class:N", title="prefers (at this step)"),
        alt.Tooltip("effect:Q", format=".3f", title="effect (nats)"),
        alt.Tooltip("positions:N", title="effect measured on"),
    ]


def _loss_series(tables: ExplorerTables, seed: int, metrics: pd.DataFrame) -> dict[str, str]:
    """{metrics column: legend name}: all positions, the focus class, the transition class."""
    series = {"loss": "all positions"}
    for cls in (tables.focus(seed), (tables.transition_metric(seed) or "")[len("loss_") :]):
        column = f"loss_{cls}"
        if cls and column in metrics and metrics[column].notna().any():
            series[column] = f"{cls} positions"
    return series


def _step_marks(tables: ExplorerTables, seed: int, step: alt.Parameter) -> list[alt.Chart]:
    """The cursor rule (a checkpoints row filtered to the step) and the transition rule."""
    ckpts = rows(tables.checkpoints, seed)[["step"]]
    marks = [
        alt.Chart(ckpts)
        .transform_filter(f"datum.step == {step.name}")
        .mark_rule(color=CURSOR, strokeWidth=1.5)
        .encode(x="step:Q")
    ]
    transition = tables.transition(seed)
    if not np.isnan(transition):
        marks.append(
            alt.Chart()
            .mark_rule(color=TRANSITION, strokeDash=[5, 3])
            .encode(
                x=alt.datum(transition), tooltip=alt.value(f"transition at step {transition:g}")
            )
        )
    return marks


def independent(chart):
    """Each view keeps its own colour and shape legends (concat would merge them)."""
    return chart.resolve_scale(color="independent", shape="independent").resolve_legend(
        color="independent", shape="independent"
    )
