"""The five views of `vestige.views` composed: the explorer's dashboard (cursor params shared,
laid out for a laptop screen) and its standalone form with altair-native controls, saved as
a self-contained page or an image."""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt

from vestige.tables import ExplorerTables, nearest_step, rows
from vestige.views import (
    SPACING,
    _first,
    attention_pattern,
    class_means,
    independent,
    neuron_timeline,
    selectivity_vs_effect,
    training_curves,
)


def dashboard(tables: ExplorerTables, seed: int, step, neuron, layer, head) -> alt.VConcatChart:
    """All five views sharing the given cursor params, laid out for a laptop screen."""
    return (
        independent(
            alt.vconcat(
                independent(
                    alt.hconcat(
                        training_curves(tables, seed, step),
                        selectivity_vs_effect(tables, seed, step, neuron),
                        class_means(tables, seed, step, neuron),
                        spacing=SPACING,
                    )
                ),
                independent(
                    alt.hconcat(
                        neuron_timeline(tables, seed, step, neuron),
                        attention_pattern(tables, seed, step, layer, head),
                        spacing=SPACING,
                    )
                ),
                spacing=SPACING,
            )
        )
        .configure_view(strokeWidth=0.5)
        .configure_title(anchor="start")
    )


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
        bind=alt.binding_range(min=0, max=len(steps) - 1, step=1, name="step "),
    )
    step_param = alt.param(name="step", expr=f"{json.dumps(steps)}[checkpoint]")
    verdicts = rows(tables.verdicts, seed).sort_values(["layer", "neuron"])
    marks = {"vestigial": " (vestigial)", "contrast": " (contrast)", "neither": ""}
    layers = sorted(int(v) for v in rows(tables.attention, seed)["layer"].unique())
    heads = sorted(int(v) for v in rows(tables.attention, seed)["head"].unique())
    controls = {
        "neuron": alt.param(
            name="neuron",
            value=_first(neuron, tables.default_neuron(seed)),
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
    return (
        dashboard(tables, seed, step_param, **controls)
        .add_params(index)
        .properties(title=alt.Title(f"seed {seed}", anchor="start"))
    )


STATIC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 16px; color: #222; }}
  #controls .vega-bindings {{ display: flex; flex-wrap: wrap; gap: 6px 24px; align-items: center;
    padding: 8px 12px; margin-bottom: 8px; background: #f4f4f4; border-radius: 6px; }}
  #controls .vega-bind {{ display: flex; align-items: center; }}
  #controls .vega-bind label {{ display: flex; align-items: center; gap: 6px; font-size: 14px; }}
  #controls .vega-bind-name {{ font-weight: 600; }}
  #controls input[type=range] {{ width: 360px; accent-color: #1f77b4; }}
  #controls output {{ font-variant-numeric: tabular-nums; min-width: 4.5em; font-weight: 600; }}
  #controls select {{ font-size: 14px; padding: 2px 4px; }}
  #controls .vega-bind-radio label {{ gap: 2px; margin-right: 6px; }}
</style>
<script>{script}</script>
</head>
<body>
<div id="controls"></div>
<div id="vis"></div>
<script>
  const spec = {spec};
  const steps = {steps};
  vegaEmbed('#vis', spec, {{renderer: 'svg', actions: false}}).then((result) => {{
    const controls = document.getElementById('controls');
    const bindings = document.querySelector('#vis .vega-bindings');
    if (bindings) controls.appendChild(bindings);
    const slider = controls.querySelector('input[type=range]');
    if (slider) {{
      const own = slider.nextElementSibling;  // vega's readout: the checkpoint's index
      if (own && own.tagName === 'SPAN') own.style.display = 'none';
      const bindings = controls.querySelector('.vega-bindings');
      bindings.prepend(slider.closest('.vega-bind'));
      const shown = document.createElement('output');
      slider.insertAdjacentElement('afterend', shown);
      const show = () => {{ shown.textContent = steps[Number(slider.value)]; }};
      slider.setAttribute('aria-valuetext', 'step');
      slider.addEventListener('input', show);
      result.view.addSignalListener('checkpoint', show);
      show();
    }}
  }}).catch(console.error);
</script>
</body>
</html>
"""


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
    """Save the standalone dashboard: ``.html`` self-contained (vega JS inlined, works offline,
    styled controls above the views, the slider showing the step) or ``.png``/``.svg``
    through vl-convert (at the given cursor)."""
    path = Path(path)
    chart = standalone(tables, seed, step, neuron, layer, head)
    if path.suffix == ".html":
        path.write_text(
            static_html(
                chart,
                tables.steps(tables.seeds[0] if seed is None else seed),
                title=f"vestige explorer, seed {tables.seeds[0] if seed is None else seed}",
            )
        )
    else:
        chart.save(path, scale_factor=scale)
    return path


def static_html(chart: alt.TopLevelMixin, steps: list[int], title: str = "vestige") -> str:
    """A self-contained page for ``chart`` (vega, vega-lite and vega-embed inlined)."""
    import vl_convert as vlc

    spec = chart.to_dict()
    script = vlc.javascript_bundle().replace("</script", "<\\/script")
    return STATIC_PAGE.format(
        title=title,
        script=script,
        steps=json.dumps(steps),
        spec=json.dumps(spec).replace("</", "<\\/"),
    )
