"""vestige.explorer: code and controls drive the chart's params; only seed re-sends data; the
explorer leaves a static snapshot that follows its cursor."""

import base64
import json
from types import SimpleNamespace
from typing import ClassVar

import altair as alt
import comm
import pytest
import traitlets
from comm.base_comm import BaseComm
from vestige import charts
from vestige import explorer as explorer_module
from vestige.explorer import CheckpointExplorer, ExplorerTables


class StrictComm(BaseComm):
    """Records the state keys each widget message carries; fails on non-JSON (NaN) payloads."""

    sent: ClassVar[list[set[str]]] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        json.dumps(data, allow_nan=False)
        StrictComm.sent.append(set((data or {}).get("state", {})))


@pytest.fixture(autouse=True)
def strict_comm(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", StrictComm)
    StrictComm.sent.clear()
    return StrictComm.sent


@pytest.fixture(scope="module")
def tables():
    return ExplorerTables.synthetic(n_seeds=2, seq_len=12)


@pytest.fixture
def explorer(tables):
    return CheckpointExplorer(tables)


def param(explorer, name):
    return getattr(explorer.chart.params, name)


def _widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def test_one_chart_holds_the_five_views(explorer):
    shown = [w for w in _widgets(explorer.ui) if isinstance(w, alt.JupyterChart)]
    assert shown == [explorer.chart]  # the widget displays that one chart, and no other
    text = json.dumps(explorer.chart.spec)
    assert all(f'"name": "{name}"' in text for name in charts.VIEWS)
    assert explorer.chart.embed_options == explorer_module.EMBED_OPTIONS


def test_step_from_code_sets_the_param_without_resending_data(explorer, strict_comm):
    strict_comm.clear()
    explorer.step = 742  # a checkpoint of the synthetic tables, not the current one
    assert param(explorer, "step") == 742
    assert explorer.controls["step"].value == 742
    assert strict_comm and not any("spec" in keys for keys in strict_comm)


def test_step_snaps_to_the_nearest_checkpoint(explorer):
    explorer.step = 800  # between the checkpoints 742 and 1033
    assert explorer.step == 742 and param(explorer, "step") == 742


def test_slider_drives_the_chart(explorer):
    explorer.controls["step"].index = 3
    assert explorer.step == explorer.tables.steps()[3]
    assert param(explorer, "step") == explorer.step


def test_neuron_layer_head_are_params(explorer):
    explorer.neuron, explorer.layer, explorer.head = "L1N3", 1, 2
    assert (param(explorer, "neuron"), param(explorer, "layer"), param(explorer, "head")) == (
        "L1N3",
        1,
        2,
    )


def test_neuron_picker_marks_the_detectors_picks(explorer, tables):
    labels = {value: label for label, value in explorer.controls["neuron"].options}
    for unit, verdict in tables.highlighted(0).items():
        assert verdict in labels[unit]
    assert explorer.neuron == tables.default_neuron(0)


def test_seed_change_resends_data_and_keeps_the_cursor(explorer, strict_comm):
    explorer.step, explorer.neuron = 742, "L1N3"
    before = explorer.chart.spec["datasets"]
    strict_comm.clear()
    explorer.seed = 1
    assert explorer.chart.spec["datasets"] != before
    assert sum("spec" in keys for keys in strict_comm) == 1
    assert param(explorer, "step") == 742 and param(explorer, "neuron") == "L1N3"
    assert explorer.state()["seed"] == 1


def test_unknown_seed_or_neuron_is_refused(explorer):
    with pytest.raises(traitlets.TraitError):
        explorer.seed = 7
    with pytest.raises(traitlets.TraitError):
        explorer.neuron = "L9N9"


def test_the_offline_bundle_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """`enable_offline` bundles through altair once and writes the bundle to the user's
    cache folder; a later kernel (here: the class reset) reads it instead of bundling."""
    import platformdirs
    from altair.jupyter.jupyter_chart import load_js_src

    bundled = []

    def bundle(cls=alt.JupyterChart):
        bundled.append(1)
        cls._esm, cls._is_offline = "// the bundle", True

    monkeypatch.setattr(platformdirs, "user_cache_path", lambda name: tmp_path / name)
    monkeypatch.setattr(alt.JupyterChart, "enable_offline", bundle)
    for _ in range(2):  # a new kernel each time
        monkeypatch.setattr(alt.JupyterChart, "_is_offline", False)
        monkeypatch.setattr(alt.JupyterChart, "_esm", load_js_src())
        explorer_module.enable_offline()
        assert alt.JupyterChart._is_offline and alt.JupyterChart._esm == "// the bundle"
    assert bundled == [1]
    assert [p.read_text() for p in (tmp_path / "vestige").iterdir()] == ["// the bundle"]


def test_displays_offline_layout_from_runs(tables):
    explorer = CheckpointExplorer(SimpleNamespace(explorer_tables=lambda: tables), play=False)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert alt.JupyterChart._is_offline
    assert "esm.sh" not in explorer.chart._esm
    assert "seed" in explorer.controls and "play" not in explorer.controls
    assert explorer_module.LIVE_CLASS in explorer.ui._dom_classes


def test_single_seed_has_no_seed_picker(tables):
    assert "seed" not in CheckpointExplorer(tables.seed_tables(0)).controls


def test_seed_with_other_checkpoints_and_units_keeps_the_nearest_cursor(tables):
    steps = [0, 5, 2000]
    other = {
        name: df[(df["seed"] == 0) | df["step"].isin(steps)]
        if name in ("checkpoints", "neurons", "baseline", "class_means", "attention")
        else df
        for name, df in tables.__dict__.items()
    }
    for name in ("neurons", "verdicts", "class_means"):
        df = other[name]
        drop = (df["seed"] == 1) & (df["layer"] == 1) & (df["neuron"] == 3)
        other[name] = df[~drop]
    explorer = CheckpointExplorer(ExplorerTables(**other), step=742, neuron="L1N3")
    explorer.seed = 1
    assert explorer.step == 5 and explorer.controls["step"].options[-1] == ("2000", 2000)
    assert explorer.neuron == explorer.tables.default_neuron(1)
    assert param(explorer, "step") == 5


def test_display_leaves_a_snapshot_that_follows_the_cursor(tables, monkeypatch):
    """In a notebook: the widget, then a JPEG snapshot with a display id, redrawn after a
    cell that moved the cursor (the saved notebook's fallback)."""
    shown = []
    monkeypatch.setattr(
        "IPython.display.display",
        lambda obj, raw=False, display_id=None: shown.append((obj, display_id)),
    )
    monkeypatch.setattr(
        "IPython.display.update_display",
        lambda obj, raw=False, display_id=None: shown.append((obj, display_id)),
    )
    monkeypatch.setattr(CheckpointExplorer, "snapshot", lambda self, **k: f"{self.step}".encode())
    explorer = CheckpointExplorer(tables.seed_tables(0))
    explorer._ipython_display_()
    (widget, none), (snapshot, display_id) = shown
    assert "application/vnd.jupyter.widget-view+json" in widget and none is None
    assert display_id and base64.b64decode(snapshot["image/jpeg"]) == b"0"
    explorer.refresh_snapshot()
    assert len(shown) == 2  # nothing moved
    explorer.step = 742
    explorer.refresh_snapshot()
    assert shown[-1][1] == display_id and base64.b64decode(shown[-1][0]["image/jpeg"]) == b"742"


def test_snapshot_is_a_jpeg_of_the_dashboard(tables):
    explorer = CheckpointExplorer(tables.seed_tables(0), step=742)
    jpeg = explorer.snapshot(scale=0.5)
    assert jpeg[:3] == b"\xff\xd8\xff"


def test_the_style_hides_the_snapshot_only_next_to_a_live_explorer():
    style = explorer_module.STYLE
    assert f":has(.{explorer_module.LIVE_CLASS}) + .jp-OutputArea-child" in style
    assert "display: none" in style
