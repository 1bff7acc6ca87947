"""CheckpointExplorer: a step slider, seed and neuron pickers driving linked altair views.

The five views (`vestige.dashboards.template`) are one ``alt.JupyterChart`` whose spec holds
every checkpoint of one seed. Moving the step (or picking a neuron, layer or head) only sets
that param on the chart (``chart.params.step = s``): a few bytes, no data re-sent, no chart
rebuilt; the browser redraws every view in one pass. The chart is built once, from the seed's
`vestige.packing.Layout`: changing seed swaps the datasets in its spec (one seed's data per
spec keeps it under altair's 5,000-row limit; see `vestige.packing`) and builds nothing,
unless the new seed's layout differs (other checkpoints, say).

Offline: `enable_offline` runs before the chart is created, so the widget JavaScript comes
bundled from vl-convert instead of a CDN (a workshop room without internet works). Bundling
takes seconds, so the bundle is kept on disk (the user's cache folder) and reused by every
later kernel; ~0.9 MB of JavaScript, sent once: one chart.

**What a saved notebook keeps.** A widget lives only as long as its kernel: reopened after a
restart, on GitHub or nbviewer, it has nothing to show. So the explorer leaves two outputs:
the live widget, then a static JPEG of its current state (vl-convert), refreshed after every
cell that moves a cursor and a few seconds after the controls stop moving. While the widget
is alive a style rule inside it hides the snapshot just below it (JupyterLab, Notebook 7);
when the widget is gone, the snapshot is what the notebook shows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
import weakref
from typing import Any

import altair as alt
import ipywidgets as widgets
import traitlets

from vestige import dashboards, theme
from vestige.dashboards import EMBED_OPTIONS
from vestige.packing import Layout, datasets
from vestige.tables import ExplorerTables, as_tables, nearest_step, rows

__all__ = ["CheckpointExplorer", "ExplorerTables", "enable_offline"]

CURSORS = ("step", "neuron", "layer", "head")
SNAPSHOT_QUALITY = 85
SNAPSHOT_DELAY = 3.0  # s without a control moving before the static snapshot is refreshed
LIVE_CLASS = "vestige-live"
# While the live explorer is on screen, hide the static snapshot output right after it.
STYLE = f"""<style>
.jp-OutputArea-child:has(.{LIVE_CLASS}) + .jp-OutputArea-child:has(.jp-RenderedImage) {{
  display: none; }}
.{LIVE_CLASS} .vestige-controls {{ flex-wrap: wrap; gap: 2px 12px; align-items: center;
  padding: 4px 6px; margin-bottom: 6px; background: var(--jp-layout-color2, #f4f4f4);
  border-radius: 4px; }}
.{LIVE_CLASS} .vestige-controls .widget-readout {{ font-weight: 600; min-width: 3.5em; }}
</style>"""


class CheckpointExplorer(traitlets.HasTraits):
    """Drag through training and watch neurons become selective, matter, and stop mattering.

    ``source`` is an ``ExplorerTables``, a Run or Runs (or anything with
    ``.explorer_tables()``). Set ``step`` (snapped to the nearest checkpoint), ``seed``,
    ``neuron``, ``layer`` or ``head`` from code or with the controls. ``chart`` is the
    ``alt.JupyterChart`` holding the five views: training curves, neurons at the step
    (selectivity against effect, coloured by the detector's verdicts), the picked neuron's
    class means, its timelines, and an attention pattern.
    """

    step = traitlets.Int()
    seed = traitlets.Int()
    neuron = traitlets.Unicode()
    layer = traitlets.Int(0)
    head = traitlets.Int(0)

    def __init__(
        self,
        source: Any,
        seed: int | None = None,
        step: int | None = None,
        neuron: str | None = None,
        layer: int = 0,
        head: int = 0,
        play: bool = True,
    ):
        enable_offline()
        self.tables = as_tables(source)
        seed = self.tables.seeds[0] if seed is None else seed
        self._steps = self.tables.steps(seed)
        self._units = self.tables.units(seed)
        super().__init__(
            seed=seed,
            step=nearest_step(self._steps, step),
            layer=layer,
            head=head,
            neuron=neuron or self.tables.default_neuron(seed),
        )
        self._data = datasets(self.tables, seed)
        with theme.enabled():
            self.chart = alt.JupyterChart(self._template_chart(), embed_options=EMBED_OPTIONS)
        self._template = self.chart.spec
        self.chart.spec = self._spec()
        self.controls = self._controls(play)
        self.ui = self._layout()
        self._display_id: str | None = None
        self._shown_state: tuple | None = None
        self._timer = None
        self.observe(self._on_cursor, names=list(CURSORS))
        self.observe(self._on_seed, names="seed")

    @property
    def views(self) -> list[alt.JupyterChart]:
        """The widget views (one chart holding all five)."""
        return [self.chart]

    def state(self) -> dict:
        """Cursor values and the chart's params (for notebook checks)."""
        return {
            **{name: getattr(self, name) for name in ("seed", *CURSORS)},
            "params": self.chart.params.trait_values(),
        }

    def snapshot(self, scale: float = 1.0, quality: int = SNAPSHOT_QUALITY) -> bytes:
        """A JPEG of the views at the current cursor (what a saved notebook shows; a JPEG is
        ~100 KB where a PNG of the attention heatmap is ~250 KB)."""
        import vl_convert as vlc

        title = f"seed {self.seed} (snapshot: run the notebook for the live explorer)"
        spec = {**self._spec(), "title": {"text": title, "color": "#666"}}
        return vlc.vegalite_to_jpeg(spec, scale=scale, quality=quality)

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        """The live widget, then the static snapshot (hidden while the widget is alive)."""
        from IPython.display import display

        bundle = self.ui._repr_mimebundle_()
        bundle["text/plain"] = (
            "CheckpointExplorer: run this cell for the live explorer "
            "(below: a snapshot of its last state)"
        )
        display(bundle, raw=True)
        first = self._display_id is None
        if first:
            self._display_id = uuid.uuid4().hex
            _after_every_cell(self)
        display(self._snapshot_bundle(), raw=True, display_id=self._display_id)

    # ------------------------------------------------------------------ snapshot

    def _cursor_state(self) -> tuple:
        return (self.seed, self.step, self.neuron, self.layer, self.head)

    def _snapshot_bundle(self) -> dict:
        self._shown_state = self._cursor_state()
        jpeg = base64.b64encode(self.snapshot()).decode()
        return {
            "image/jpeg": jpeg,
            "text/plain": f"CheckpointExplorer snapshot: seed {self.seed}, step {self.step}, "
            f"neuron {self.neuron}",
        }

    def refresh_snapshot(self) -> None:
        """Redraw the saved snapshot if the cursor moved since it was drawn."""
        self._timer = None
        if self._display_id is None or self._shown_state == self._cursor_state():
            return
        from IPython.display import update_display

        update_display(self._snapshot_bundle(), raw=True, display_id=self._display_id)

    def _schedule_snapshot(self) -> None:
        """Refresh the snapshot once the controls have been still for SNAPSHOT_DELAY (cells
        refresh it when they finish; see `_after_every_cell`)."""
        if self._display_id is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(SNAPSHOT_DELAY, self.refresh_snapshot)

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

    def _spec(self) -> dict:
        """The chart's spec: its template holding the seed's datasets, at the cursors."""
        cursors = {name: getattr(self, name) for name in CURSORS}
        return dashboards.filled(self._template, self._data, **cursors)

    def _template_chart(self) -> alt.VConcatChart:
        """The five views for the current seed's layout, at the cursors, holding no data."""
        self._shape = Layout.of(self.tables, self.seed)
        return dashboards.template(self._shape, *(getattr(self, name) for name in CURSORS))

    def redraw(self) -> None:
        """Rebuild the chart from the current seed's layout and send it (data included)."""
        with self.chart.hold_sync(), theme.enabled():
            self.chart.chart = self._template_chart()
            self._template = self.chart.spec
            self.chart.spec = self._spec()

    def _on_cursor(self, change):
        """A cursor moved: set that param on the chart (no data sent)."""
        if self.chart.params.has_trait(change.name):
            setattr(self.chart.params, change.name, change.new)
        self._schedule_snapshot()

    def _on_seed(self, change):
        """A new seed: new steps and units if they differ, then its datasets in the chart's
        spec (the chart is rebuilt only if the seed's layout differs)."""
        seed = change.new
        steps, units = self.tables.steps(seed), self.tables.units(seed)
        step = nearest_step(steps, self.step)
        neuron = self.neuron if self.neuron in units else self.tables.default_neuron(seed)
        with self.hold_trait_notifications():
            if steps != self._steps:
                self._steps = steps
                self.controls["step"].options = _step_options(steps)
                if "play" in self.controls:
                    self.controls["play"].max = len(steps) - 1
            self._units = units
            self.controls["neuron"].options = _neuron_options(self.tables, seed)
            self.step, self.neuron = step, neuron
        self._data = datasets(self.tables, seed)
        if Layout.of(self.tables, seed) == self._shape:
            self.chart.spec = self._spec()
        else:
            self.redraw()
        self._schedule_snapshot()

    # ------------------------------------------------------------------ layout

    def _controls(self, play: bool) -> dict[str, widgets.Widget]:
        """The control widgets, each linked to its trait."""
        att = rows(self.tables.attention, self.seed)
        layers = sorted(int(v) for v in att["layer"].unique())
        heads = sorted(int(v) for v in att["head"].unique())
        narrow = {"description_width": "initial"}
        controls = {
            "step": widgets.SelectionSlider(
                options=_step_options(self._steps),
                description="step",
                continuous_update=True,
                style=narrow,
                layout={"width": "380px"},
            ),
            "neuron": widgets.Dropdown(
                options=_neuron_options(self.tables, self.seed),
                description="neuron",
                style=narrow,
                layout={"width": "230px"},
            ),
            "layer": widgets.Dropdown(
                options=layers,
                description="attention layer",
                style=narrow,
                layout={"width": "150px"},
            ),
            "head": widgets.Dropdown(
                options=heads, description="head", style=narrow, layout={"width": "100px"}
            ),
        }
        if len(self.tables.seeds) > 1:
            controls["seed"] = widgets.Dropdown(
                options=self.tables.seeds,
                description="seed",
                style=narrow,
                layout={"width": "110px"},
            )
        for name, control in controls.items():
            traitlets.link((self, name), (control, "value"))
        if play:
            controls["play"] = widgets.Play(
                value=controls["step"].index,
                min=0,
                max=len(self._steps) - 1,
                interval=600,
                description="play",
            )
            widgets.jslink((controls["play"], "value"), (controls["step"], "index"))
        for name, control in controls.items():
            control.add_class(f"vestige-{name}")
        return controls

    def _layout(self) -> widgets.VBox:
        c = self.controls
        order = ("play", "step", "seed", "neuron", "layer", "head")
        bar = widgets.HBox(
            [c[name] for name in order if name in c], layout={"flex_flow": "row wrap"}
        )
        bar.add_class("vestige-controls")
        ui = widgets.VBox([widgets.HTML(STYLE), bar, self.chart])
        ui.add_class(LIVE_CLASS)
        return ui


def _step_options(steps: list[int]) -> list[tuple[str, int]]:
    return [(str(s), s) for s in steps]


def _neuron_options(tables: ExplorerTables, seed: int) -> list[tuple[str, str]]:
    """Units in layer order, the detector's picks marked."""
    marks = {"vestigial": " \u2605 vestigial", "contrast": " \u25c6 contrast", "neither": ""}
    found = rows(tables.verdicts, seed).sort_values(["layer", "neuron"])
    return [(unit + marks[v], unit) for unit, v in zip(found["unit"], found["verdict"])]


def _after_every_cell(explorer: CheckpointExplorer) -> None:
    """Refresh ``explorer``'s snapshot when a cell finishes (so a notebook saved, or run by
    papermill, keeps the state its cells left), as long as the explorer exists."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    ref = weakref.ref(explorer)

    def refresh(result=None):
        target = ref()
        if target is None:
            shell.events.unregister("post_run_cell", refresh)
        else:
            target.refresh_snapshot()

    shell.events.register("post_run_cell", refresh)


def enable_offline() -> None:
    """``alt.JupyterChart.enable_offline()``, its bundle kept in the user's cache folder
    (keyed by the altair and vl-convert versions and altair's widget source) so that vl-convert bundles
    it once per machine, not once per kernel. A cache that cannot be written is skipped."""
    if alt.JupyterChart._is_offline:
        return
    import vl_convert as vlc
    from altair.jupyter.jupyter_chart import load_js_src
    from platformdirs import user_cache_path

    source = f"{alt.__version__}\n{vlc.__version__}\n{load_js_src()}"
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = user_cache_path("vestige") / f"jupyterchart-offline-{key}.js"
    try:
        bundle = path.read_text()
    except OSError:
        alt.JupyterChart.enable_offline()
        from vestige.runs import RunError, atomic_write

        try:
            atomic_write(path, alt.JupyterChart._esm)
        except (OSError, RunError):
            pass
        return
    # What enable_offline sets, from the cached bundle (altair has no public setter).
    alt.JupyterChart._esm, alt.JupyterChart._is_offline = bundle, True
