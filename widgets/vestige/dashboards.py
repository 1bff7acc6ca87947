"""The five views of `vestige.views` composed: the explorer's dashboard (cursor params shared,
laid out for a laptop screen) and its standalone form with altair-native controls, saved as
a self-contained page (altair's own inline HTML: vega, vega-lite and vega-embed bundled by
vl-convert, so it works offline) or an image.

A dashboard is built from a seed's `Layout` only (`template`) and draws whichever seed's
datasets it holds (`filled`): the explorer builds it once and changes seed by swapping the
datasets in its spec.
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt

from vestige import theme
from vestige.packing import Layout, datasets
from vestige.tables import ExplorerTables, nearest_step, rows
from vestige.views import (
    INDEPENDENT,
    SPACING,
    as_params,
    attention_view,
    class_means_view,
    cursor,
    neurons_view,
    timeline_view,
    training_view,
)

EMBED_OPTIONS = {"renderer": "svg", "actions": False}


def template(layout: Layout, step, neuron, layer, head) -> alt.VConcatChart:
    """All five views sharing the cursors (params, or values for new params), laid out for a
    laptop screen, holding no data: `filled` gives it a seed's."""
    step, neuron = cursor(step, "step"), cursor(neuron, "neuron")
    layer, head = cursor(layer, "layer"), cursor(head, "head")
    top = alt.HConcatChart(
        hconcat=[
            training_view(layout, step),
            neurons_view(layout, step, neuron),
            class_means_view(layout, step, neuron),
        ],
        spacing=SPACING,
        resolve=INDEPENDENT,
    )
    bottom = alt.HConcatChart(
        hconcat=[timeline_view(layout, step, neuron), attention_view(layout, step, layer, head)],
        spacing=SPACING,
        resolve=INDEPENDENT,
    )
    return alt.VConcatChart(
        vconcat=[top, bottom],
        spacing=SPACING,
        resolve=INDEPENDENT,
        params=as_params(step, neuron, layer, head),
    )


def dashboard(tables: ExplorerTables, seed: int, step, neuron, layer, head) -> alt.VConcatChart:
    """The `template` of ``seed``'s layout holding ``seed``'s datasets."""
    chart = template(Layout.of(tables, seed), step, neuron, layer, head)
    return chart.properties(datasets=datasets(tables, seed))


def filled(spec: dict, data: dict[str, list[dict]], **values) -> dict:
    """A `template`'s spec (its dict) holding the datasets ``data``, its params' values set
    from ``values`` (param name: value)."""
    params = [
        {**p, "value": values[p["name"]]} if p["name"] in values else p for p in spec["params"]
    ]
    return {**spec, "params": params, "datasets": data}


def standalone(
    tables: ExplorerTables,
    seed: int | None = None,
    step: int | None = None,
    neuron: str | None = None,
    layer: int = 0,
    head: int = 0,
) -> alt.VConcatChart:
    """The dashboard with altair-native controls (checkpoint slider, neuron, layer and head
    pickers) that work without a kernel: nbviewer, a course web page."""
    seed = tables.seeds[0] if seed is None else seed
    steps = tables.steps(seed)
    index = alt.param(
        name="checkpoint",
        value=steps.index(nearest_step(steps, step)),
        bind=alt.binding_range(min=0, max=len(steps) - 1, step=1, name="checkpoint "),
    )
    step_param = alt.param(name="step", expr=f"{json.dumps(steps)}[checkpoint]")
    verdicts = rows(tables.verdicts, seed).sort_values(["layer", "neuron"])
    marks = {"vestigial": " (vestigial)", "contrast": " (contrast)", "neither": ""}
    layers = sorted(int(v) for v in rows(tables.attention, seed)["layer"].unique())
    heads = sorted(int(v) for v in rows(tables.attention, seed)["head"].unique())
    controls = {
        "neuron": alt.param(
            name="neuron",
            value=tables.default_neuron(seed) if neuron is None else neuron,
            bind=alt.binding_select(
                options=verdicts["unit"].tolist(),
                name="neuron ",
                labels=[u + marks[v] for u, v in zip(verdicts["unit"], verdicts["verdict"])],
            ),
        ),
        "layer": alt.param(
            name="layer",
            value=layer,
            bind=alt.binding_radio(options=layers, name="attention layer "),
        ),
        "head": alt.param(
            name="head", value=head, bind=alt.binding_radio(options=heads, name="head ")
        ),
    }
    chart = template(Layout.of(tables, seed), step_param, **controls)
    return chart.properties(
        datasets=datasets(tables, seed),
        params=[*chart.params, index.param],
        title=alt.Title(f"seed {seed}", subtitle="the views' titles name the checkpoint's step"),
    )


def export_static(
    tables: ExplorerTables,
    path: str | Path,
    seed: int | None = None,
    step: int | None = None,
    neuron: str | None = None,
    layer: int = 0,
    head: int = 0,
    scale: float = 1.0,
) -> Path:
    """Save the standalone dashboard: ``.html`` self-contained (altair's inline page: vega
    bundled by vl-convert, works offline; the controls below the views) or ``.png``/``.svg``
    through vl-convert (at the given cursor)."""
    path = Path(path)
    chart = standalone(tables, seed, step, neuron, layer, head)
    with theme.enabled():
        if path.suffix == ".html":
            chart.save(path, inline=True, embed_options=EMBED_OPTIONS)
        else:
            chart.save(path, scale_factor=scale)
    return path
