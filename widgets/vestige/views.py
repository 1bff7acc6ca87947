"""Altair views of a run's checkpoints, all following one step cursor (a param named ``step``).

Each view is a function ``f(tables, seed, step=..., ...) -> alt.TopLevelMixin`` over
`vestige.tables.ExplorerTables`, built from a ``*_view(layout, ...)`` function that draws
named datasets (`vestige.packing`) and writes only the seed's `Layout` literally: the same
spec draws any seed of that layout once it holds that seed's datasets (the explorer changes
seed so, `vestige.dashboards`). Cursor arguments (``step``, ``neuron``, ``layer``, ``head``)
take either an ``alt.Parameter`` (shared between views) or a plain value (a param with that
name and value is created). A cursor only filters or indexes data that is already in the
spec, so moving it never re-sends data. The views are ordinary altair charts: displayed in a
notebook set up by `vestige.notebook.setup` they are saved as vega-lite outputs (with a PNG
beside them) that JupyterLab, nbviewer and GitHub show without a kernel. Only the explorer
(`vestige.explorer`) is a widget, and it is all five views in one chart. Font sizes and
title style come from the kit's theme (`vestige.theme`).

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

from vestige.packing import Layout, datasets, neuron_rows, unit_positions
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
# The datasets each view draws (names of `vestige.packing.DATASETS`).
READS = {
    "training": ("losses", "accuracy", "checkpoints", "transition"),
    "neurons": ("neurons", "bars", "facts"),
    "class_means": ("class_means",),
    "timeline": ("neurons", "checkpoints", "transition", "facts"),
    "attention": ("attention", "tokens"),
}
FACTS = "data('facts')[0]"  # the seed's facts in an expression (a view drawing them holds them)
# Each view keeps its own colour and shape legends (concat would merge them).
INDEPENDENT = alt.Resolve(
    scale=alt.ScaleResolveMap(color="independent", shape="independent"),
    legend=alt.LegendResolveMap(color="independent", shape="independent"),
)


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
        values=list(steps), labelOverlap="greedy", labelFlush=True, title=title, grid=False
    )


def step_x(steps: list[int], title: str | None = "step (log scale)", field: str = "step"):
    return alt.X(f"{field}:Q", scale=step_scale(steps), axis=step_axis(steps, title))


def source(name: str) -> alt.NamedData:
    """The dataset ``name`` of `vestige.packing.DATASETS`, by name."""
    return alt.NamedData(name=name)


# ----------------------------------------------------------------------------- views


def training_curves(tables: ExplorerTables, seed: int, step=None) -> alt.VConcatChart:
    """Loss (all positions, the focus class's and the transition class's) and accuracy
    against step, with the step cursor and the transition marked."""
    layout = Layout.of(tables, seed)
    chart = training_view(layout, cursor(_first(step, layout.steps[0]), "step"))
    return _holding(chart, datasets(tables, seed, READS["training"]))


def training_view(layout: Layout, step: alt.Parameter) -> alt.VConcatChart:
    marks = _step_marks(step)
    w, h = SIZES["curves"]
    loss = alt.LayerChart(
        layer=[
            alt.Chart(source("losses"))
            .mark_line(strokeWidth=1.3)
            .encode(
                x=step_x(layout.steps, None),
                y=alt.Y("nats:Q", title="loss (nats)"),
                color=alt.Color(
                    "series:N",
                    sort=list(layout.series),
                    title=None,
                    scale=alt.Scale(
                        domain=list(layout.series), range=SERIES_COLORS[: len(layout.series)]
                    ),
                    legend=alt.Legend(
                        orient="top", direction="horizontal", symbolSize=60, columns=2
                    ),
                ),
            ),
            *marks,
        ],
        width=w,
        height=h,
        title=_title(f"'training (cursor at step ' + {step.name} + ')'"),
    )
    aw, ah = SIZES["accuracy"]
    accuracy = alt.LayerChart(
        layer=[
            alt.Chart(source("accuracy"))
            .mark_line(strokeWidth=1.3, color=SERIES_COLORS[0])
            .encode(
                x=step_x(layout.steps),
                y=alt.Y(
                    "accuracy:Q",
                    title="accuracy",
                    scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(tickCount=3),
                ),
            ),
            *marks,
        ],
        width=aw,
        height=ah,
    )
    return alt.VConcatChart(
        vconcat=[loss, accuracy],
        spacing=6,
        resolve=INDEPENDENT,
        name=VIEWS[0],
        params=as_params(step),
    )


def selectivity_vs_effect(
    tables: ExplorerTables, seed: int, step=None, neuron=None
) -> alt.LayerChart:
    """Every neuron at the cursor step: selectivity (x) against its ablation effect on its own
    positions (y), coloured by the detector's verdict, shaped by layer; dashed: each layer's
    untrained p99 (the selectivity bar). No region is drawn: the verdicts are the detector's.
    The y axis spans every checkpoint's effects, so it stays put while the cursor moves."""
    layout = Layout.of(tables, seed)
    static = not isinstance(step, alt.Parameter)  # a plain step: only its rows are needed
    step = cursor(_first(step, layout.steps[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    data = datasets(tables, seed, READS["neurons"])
    if static:
        at = nearest_step(list(layout.steps), step.param.value)
        data["neurons"] = [r for r in data["neurons"] if r["step"] == at]
    return _holding(neurons_view(layout, step, neuron), data)


def neurons_view(layout: Layout, step: alt.Parameter, neuron: alt.Parameter) -> alt.LayerChart:
    at_step = f"datum.step == {step.name}"
    legend = "  ".join(
        f"{SHAPE_GLYPHS[i % len(SHAPES)]} L{ly}" for i, ly in enumerate(layout.layers)
    )
    labels = list(VERDICTS.values())
    title = "ablation effect on own positions (nats)"
    bars = alt.Chart(source("bars")).transform_filter(at_step)
    rules = bars.mark_rule(strokeDash=[4, 3], color="#555").encode(
        x=alt.X("untrained_p99:Q", scale=alt.Scale(domain=[0, 1]))
    )
    rule_labels = (
        bars.transform_calculate(label="'L' + datum.layer + ' bar'", ypos="4 + 11 * datum.layer")
        .mark_text(align="left", dx=3, color="#555")
        .encode(x=alt.X("untrained_p99:Q"), y=alt.Y("ypos:Q", scale=None), text="label:N")
    )
    span = (  # invisible: makes the y scale span every checkpoint's effects
        alt.Chart(source("facts"))
        .mark_rule(opacity=0)
        .encode(y=alt.Y("effect_lo:Q", title=title), y2="effect_hi:Q")
    )
    picked = alt.when(f"datum.unit == {neuron.name}")
    points = (
        alt.Chart(source("neurons"))
        .transform_filter(at_step)
        .transform_calculate(x="isValid(datum.selectivity) ? datum.selectivity : 0")
        .mark_point(filled=True, opacity=0.9)
        .encode(
            x=alt.X("x:Q", scale=alt.Scale(domain=[0, 1]), title="selectivity (class SI)"),
            y=alt.Y("effect:Q", scale=alt.Scale(zero=False, nice=False), title=title),
            color=alt.Color(
                "verdict:N",
                title=None,
                scale=alt.Scale(domain=labels, range=[VERDICT_COLORS[k] for k in VERDICTS]),
                legend=alt.Legend(orient="bottom", direction="horizontal", symbolType="circle"),
            ),
            shape=alt.Shape(
                "layer:N",
                scale=alt.Scale(domain=list(layout.layers), range=SHAPES[: len(layout.layers)]),
                legend=None,
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
    return alt.LayerChart(
        layer=[rules, rule_labels, span, points],
        width=w,
        height=h,
        name=VIEWS[1],
        title=_title(
            f"'neurons at step ' + {step.name}",
            [
                f"{legend}; dashed: each layer's untrained p99 (its bar)",
                "faint at 0: fires too rarely to have a selectivity",
            ],
        ),
        params=as_params(step, neuron),
    )


def class_means(tables: ExplorerTables, seed: int, step=None, neuron=None) -> alt.LayerChart:
    """The picked neuron's mean activation per class at the cursor step; the dark bar is the
    class whose positions its effect is measured on. The y axis spans that neuron's values
    over all steps, so it stays put while the cursor moves."""
    layout = Layout.of(tables, seed)
    step = cursor(_first(step, layout.steps[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    chart = class_means_view(layout, step, neuron)
    return _holding(chart, datasets(tables, seed, READS["class_means"]))


def class_means_view(layout: Layout, step: alt.Parameter, neuron: alt.Parameter) -> alt.LayerChart:
    base = alt.Chart(source("class_means")).transform_filter(f"datum.unit == {neuron.name}")
    pick = f"datum.m[indexof({json.dumps(layout.steps)}, {step.name})]"
    x = alt.X("cls:N", sort=list(layout.classes), title=None, axis=alt.Axis(labelAngle=-40))
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
    return alt.LayerChart(
        layer=[span, bars],
        width=w,
        height=h,
        name=VIEWS[2],
        title=_title(
            f"{neuron.name} + ' at step ' + {step.name}", "dark: where its effect is measured"
        ),
        params=as_params(step, neuron),
    )


def neuron_timeline(tables: ExplorerTables, seed: int, step=None, neuron=None) -> alt.VConcatChart:
    """The picked neuron over checkpoints: its selectivity (and same-token selectivity) with
    its layer's untrained p99 bars; its effect on its own positions (with the interval where
    the analysis has one), every other neuron in grey, the detector's picks in colour, and
    the detector's "needed" bar."""
    layout = Layout.of(tables, seed)
    step = cursor(_first(step, layout.steps[0]), "step")
    neuron = cursor(_first(neuron, tables.default_neuron(seed)), "neuron")
    chart = timeline_view(layout, step, neuron)
    return _holding(chart, datasets(tables, seed, READS["timeline"]))


def timeline_view(layout: Layout, step: alt.Parameter, neuron: alt.Parameter) -> alt.VConcatChart:
    neurons = source("neurons")
    mine = alt.Chart(neurons).transform_filter(f"datum.unit == {neuron.name}")
    x = step_x(layout.steps, None)
    marks = _step_marks(step)
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
        legend=alt.Legend(orient="top", direction="horizontal"),
    )
    sw, sh = SIZES["selectivity"]
    selectivity = alt.LayerChart(
        layer=[
            folded.transform_filter("!datum.bar")
            .mark_line(point=alt.OverlayMarkDef(size=18))
            .encode(
                x=x,
                y=alt.Y("value:Q", title="selectivity", scale=alt.Scale(domainMax=1)),
                color=color,
            ),
            folded.transform_filter("datum.bar")
            .mark_line(strokeDash=[4, 3], strokeWidth=1)
            .encode(x=x, y="value:Q", color=color),
            *marks,
        ],
        width=sw,
        height=sh,
        title=_title(
            f"{neuron.name} + ' over training'", "dashed: untrained p99 of its layer (the bars)"
        ),
    )
    ew, eh = SIZES["effect"]
    highlighted = list(VERDICTS.values())[:2]
    x = step_x(layout.steps)
    needed = alt.Chart(source("facts")).encode(y="min_peak:Q")  # puts the facts in the spec
    effect = alt.LayerChart(
        layer=[
            alt.Chart(neurons)
            .mark_line(strokeWidth=0.8, color=CONTEXT)
            .encode(
                x=x, y=alt.Y("effect:Q", title="effect on own positions (nats)"), detail="unit:N"
            ),
            alt.Chart(neurons)
            .transform_filter(alt.FieldOneOfPredicate("verdict", highlighted))
            .mark_line(strokeWidth=1.3)
            .encode(
                x=x,
                y="effect:Q",
                detail="unit:N",
                color=alt.Color(
                    "verdict:N",
                    legend=None,
                    scale=alt.Scale(
                        domain=list(VERDICTS.values()),
                        range=[VERDICT_COLORS[k] for k in VERDICTS],
                    ),
                ),
            ),
            mine.mark_area(opacity=0.2, color=CURSOR).encode(
                x=x, y="effect_low:Q", y2="effect_high:Q"
            ),
            mine.mark_line(point=alt.OverlayMarkDef(size=18), color=CURSOR, strokeWidth=2).encode(
                x=x, y="effect:Q", tooltip=_neuron_tooltip()
            ),
            needed.mark_rule(strokeDash=[2, 2], color="#555"),
            needed.transform_calculate(label="\"detector's 'needed' bar (\" + datum.min_peak + ')'")
            .mark_text(align="right", baseline="bottom", dx=-2, dy=-1, color="#555")
            .encode(x=alt.value(ew), text="label:N"),
            *marks,
        ],
        width=ew,
        height=eh,
        title=_title(
            f"'effect on ' + {FACTS}.positions[{neuron.name}] + ' positions'",
            "grey: other neurons; colour: the detector's picks; band: 95% interval",
        ),
    )
    return alt.VConcatChart(
        vconcat=[selectivity, effect],
        spacing=6,
        resolve=INDEPENDENT,
        name=VIEWS[3],
        params=as_params(step, neuron),
    )


def attention_pattern(
    tables: ExplorerTables, seed: int, step=None, layer=None, head=None
) -> alt.Chart:
    """Attention weights (query x key) of one example at the cursor step; ``layer`` and
    ``head`` are params too, so switching head sends no data."""
    layout = Layout.of(tables, seed)
    step = cursor(_first(step, layout.steps[0]), "step")
    layer = cursor(_first(layer, 0), "layer")
    head = cursor(_first(head, 0), "head")
    chart = attention_view(layout, step, layer, head)
    return _holding(chart, datasets(tables, seed, READS["attention"]))


def attention_view(
    layout: Layout, step: alt.Parameter, layer: alt.Parameter, head: alt.Parameter
) -> alt.Chart:
    steps = layout.steps
    index = (
        f"(({layer.name} * {layout.n_heads} + {head.name}) * {len(steps)}"
        f" + indexof({json.dumps(steps)}, {step.name}))"
    )
    pick = f"parseInt(substring(datum.w, 2 * {index}, 2 * {index} + 2), 16) / 255"
    labels = "data('tokens')[datum.value].token"  # the lookup below puts the tokens in the spec
    size = max(160, min(340, SIZES["cell"] * layout.n_tokens))
    tight = {} if size / max(layout.n_tokens, 1) >= 8 else {"labelFontSize": 7}
    axis = {"labelExpr": labels, "labelPadding": 2, "ticks": False, **tight}
    tokens = alt.LookupData(source("tokens"), key="position", fields=["token"])
    return (
        alt.Chart(source("attention"))
        .transform_lookup(lookup="query", from_=tokens, as_=["query_token"])
        .transform_lookup(lookup="key", from_=tokens, as_=["key_token"])
        .transform_calculate(weight=pick)
        .mark_rect()
        .encode(
            x=alt.X("key:O", axis=alt.Axis(labelAngle=-90, title="key (token)", **axis)),
            y=alt.Y("query:O", axis=alt.Axis(title="query (token)", **axis)),
            color=alt.Color(
                "weight:Q",
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
                legend=alt.Legend(orient="right", gradientLength=120, title=None),
            ),
            tooltip=[
                alt.Tooltip("query:O", title="query position"),
                alt.Tooltip("query_token:N", title="query token"),
                alt.Tooltip("key:O", title="key position"),
                alt.Tooltip("key_token:N", title="key token"),
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
            .mark_text(color=TRANSITION, align="left", baseline="top", dx=3, text="transition")
            .encode(x=alt.datum(transition), y=alt.value(2))
        )
    return alt.layer(*layers).properties(
        width=width,
        height=height,
        title=alt.Title(
            "Each neuron's ablation effect over training",
            subtitle=f"grey: the other {data['unit'].nunique() - len(picked['unit'].unique())} "
            f"neurons; dashed: the detector's 'needed' bar ({min_peak:g} nats)",
        ),
    )


# ----------------------------------------------------------------------------- helpers


def _first(value, default):
    return default if value is None else value


def _holding(chart: alt.TopLevelMixin, data: dict[str, list[dict]]) -> alt.TopLevelMixin:
    """``chart`` holding the datasets it draws (a view on its own)."""
    return chart.properties(datasets=data)


def as_params(*cursors: alt.Parameter) -> list:
    """The cursors as a chart's ``params`` (what ``add_params`` adds, without its copies)."""
    return [c.param for c in cursors]


def _title(expr: str, subtitle: str | list[str] | None = None) -> alt.Title:
    return alt.Title(text=alt.ExprRef(expr), **({"subtitle": subtitle} if subtitle else {}))


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


def _step_marks(step: alt.Parameter) -> list[alt.Chart]:
    """The cursor rule (a checkpoint filtered to the step) and the transition rule (none
    when the seed's transition dataset is empty)."""
    return [
        alt.Chart(source("checkpoints"))
        .transform_filter(f"datum.step == {step.name}")
        .mark_rule(color=CURSOR, strokeWidth=1.5)
        .encode(x="step:Q"),
        alt.Chart(source("transition"))
        .transform_calculate(tip="'transition at step ' + datum.step")
        .mark_rule(color=TRANSITION, strokeDash=[5, 3])
        .encode(x="step:Q", tooltip="tip:N"),
    ]
