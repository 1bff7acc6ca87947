"""CheckpointExplorer: a step slider, seed and neuron pickers driving linked altair views.

Each view is an ``alt.JupyterChart`` built once per seed with every checkpoint's data in
its spec. Moving the step (or picking a neuron, layer or head) only sets that param on the
views (``view.params.step = s``): a few bytes per view, no data re-sent, no chart rebuilt.
Changing seed rebuilds the charts (one seed's data per spec keeps each view under altair's
5,000-row limit; see ``vestige.charts``).

Offline: ``alt.JupyterChart.enable_offline()`` is called before the first view is created, so
the widget JavaScript comes bundled from vl-convert instead of a CDN (a workshop room without
internet works). It costs ~1.5 s once per kernel and ~0.9 MB of JavaScript per view.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import ipywidgets as widgets
import traitlets

from vestige.charts import (
    ExplorerTables,
    as_tables,
    attention_pattern,
    class_means,
    nearest_step,
    neuron_timeline,
    selectivity_vs_effect,
    training_curves,
)

__all__ = ["CheckpointExplorer", "ExplorerTables"]

CURSORS = ("step", "neuron", "layer", "head")


class CheckpointExplorer(traitlets.HasTraits):
    """Drag through training and watch neurons become selective, matter, and stop mattering.

    ``source`` is an ``ExplorerTables`` or anything with ``.explorer_tables()`` (runs).
    Set ``step`` (snapped to the nearest checkpoint), ``seed``, ``neuron``, ``layer`` or
    ``head`` from code or with the controls. ``views`` are the ``alt.JupyterChart`` views:
    training curves, selectivity vs effect, class means, neuron timeline, attention pattern.
    """

    step = traitlets.Int()
    seed = traitlets.Int()
    neuron = traitlets.Unicode()
    layer = traitlets.Int(0)
    head = traitlets.Int(0)

    def __init__(self, source: Any, seed: int | None = None, step: int | None = None,
                 neuron: str | None = None, layer: int = 0, head: int = 0, play: bool = True):
        alt.JupyterChart.enable_offline()
        self.tables = as_tables(source)
        seed = self.tables.seeds[0] if seed is None else seed
        self._steps = self.tables.steps(seed)
        self._units = self.tables.units(seed)
        super().__init__(seed=seed, step=nearest_step(self._steps, step), layer=layer, head=head,
                         neuron=neuron or self.tables.default_neuron(seed))
        self.views = [alt.JupyterChart(chart) for chart in self._charts()]
        self.controls = self._controls(play)
        self.ui = self._layout()
        self.observe(self._on_cursor, names=list(CURSORS))
        self.observe(self._on_seed, names="seed")

    def state(self) -> dict:
        """Cursor values and each view's params (for notebook checks)."""
        return {**{name: getattr(self, name) for name in ("seed", *CURSORS)},
                "views": [view.params.trait_values() for view in self.views]}

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ validation

    @traitlets.validate("step")
    def _snap_step(self, proposal):
        return nearest_step(self._steps, proposal.value)

    @traitlets.validate("seed")
    def _known_seed(self, proposal):
        if proposal.value not in self.tables.seeds:
            raise traitlets.TraitError(f"seed {proposal.value} not in {self.tables.seeds}")
        return proposal.value

    @traitlets.validate("neuron")
    def _known_neuron(self, proposal):
        if proposal.value not in self._units:
            raise traitlets.TraitError(f"neuron {proposal.value!r} not in {self._units}")
        return proposal.value

    # ------------------------------------------------------------------ updates

    def _charts(self) -> list[alt.TopLevelMixin]:
        t, s = self.tables, self.seed
        return [
            training_curves(t, s, self.step),
            selectivity_vs_effect(t, s, self.step, self.neuron),
            class_means(t, s, self.step, self.neuron),
            neuron_timeline(t, s, self.step, self.neuron),
            attention_pattern(t, s, self.step, self.layer, self.head),
        ]

    def _on_cursor(self, change):
        """A cursor moved: set that param on the views that have it (no data sent)."""
        for view in self.views:
            if view.params.has_trait(change.name):
                setattr(view.params, change.name, change.new)

    def _on_seed(self, change):
        """A new seed: new steps and units if they differ, then rebuild the views' specs."""
        seed = change.new
        steps, units = self.tables.steps(seed), self.tables.units(seed)
        step = nearest_step(steps, self.step)
        neuron = self.neuron if self.neuron in units else self.tables.default_neuron(seed)
        if steps != self._steps:
            self._steps = steps
            self.controls["step"].options = _step_options(steps)
            if "play" in self.controls:
                self.controls["play"].max = len(steps) - 1
        if units != self._units:
            self._units = units
            self.controls["neuron"].options = units
        self.step, self.neuron = step, neuron
        for view, chart in zip(self.views, self._charts()):
            view.chart = chart

    # ------------------------------------------------------------------ layout

    def _controls(self, play: bool) -> dict[str, widgets.Widget]:
        """The control widgets, each linked to its trait."""
        layers = sorted(int(v) for v in self.tables.attention["layer"].unique())
        heads = sorted(int(v) for v in self.tables.attention["head"].unique())
        controls = {
            "step": widgets.SelectionSlider(options=_step_options(self._steps),
                                            description="step", layout={"width": "520px"}),
            "neuron": widgets.Dropdown(options=self._units, description="neuron",
                                       layout={"width": "170px"}),
            "layer": widgets.Dropdown(options=layers, description="layer",
                                      layout={"width": "150px"}),
            "head": widgets.Dropdown(options=heads, description="head", layout={"width": "150px"}),
        }
        if len(self.tables.seeds) > 1:
            controls["seed"] = widgets.Dropdown(options=self.tables.seeds, description="seed",
                                                layout={"width": "150px"})
        for name, control in controls.items():
            traitlets.link((self, name), (control, "value"))
        if play:
            controls["play"] = widgets.Play(value=controls["step"].index, min=0,
                                            max=len(self._steps) - 1, interval=500)
            widgets.jslink((controls["play"], "value"), (controls["step"], "index"))
        return controls

    def _layout(self) -> widgets.VBox:
        c, v = self.controls, self.views
        top = [c[name] for name in ("play", "step", "seed", "neuron") if name in c]
        return widgets.VBox([
            widgets.HBox(top),
            widgets.HBox([v[0], v[1]]),
            widgets.HBox([v[2], v[3], widgets.VBox([widgets.HBox([c["layer"], c["head"]]), v[4]])]),
        ])


def _step_options(steps: list[int]) -> list[tuple[str, int]]:
    return [(str(s), s) for s in steps]
