"""vestige.explorer: code and controls drive every view's params; only seed re-sends data."""

import json
from types import SimpleNamespace
from typing import ClassVar

import altair as alt
import comm
import pytest
import traitlets
from comm.base_comm import BaseComm
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


def view_params(explorer, name):
    return [getattr(view.params, name) for view in explorer.views
            if view.params.has_trait(name)]


def test_step_from_code_sets_every_view_param_without_resending_data(explorer, strict_comm):
    strict_comm.clear()
    explorer.step = 899
    assert view_params(explorer, "step") == [899] * 5
    assert explorer.controls["step"].value == 899
    assert strict_comm and not any("spec" in keys for keys in strict_comm)


def test_step_snaps_to_the_nearest_checkpoint(explorer):
    explorer.step = 950
    assert explorer.step == 899 and view_params(explorer, "step") == [899] * 5


def test_slider_drives_the_views(explorer):
    explorer.controls["step"].index = 3
    assert explorer.step == explorer.tables.steps()[3]
    assert view_params(explorer, "step") == [explorer.step] * 5


def test_neuron_layer_head_are_params(explorer):
    explorer.neuron, explorer.layer, explorer.head = "L1N3", 1, 2
    assert view_params(explorer, "neuron") == ["L1N3"] * 3
    assert view_params(explorer, "layer") == [1] and view_params(explorer, "head") == [2]


def test_seed_change_resends_data_and_keeps_the_cursor(explorer, strict_comm):
    explorer.step, explorer.neuron = 899, "L1N3"
    before = [view.spec["datasets"] for view in explorer.views]
    strict_comm.clear()
    explorer.seed = 1
    assert all(view.spec["datasets"] != old for view, old in zip(explorer.views, before))
    assert sum("spec" in keys for keys in strict_comm) == 5
    assert view_params(explorer, "step") == [899] * 5
    assert view_params(explorer, "neuron") == ["L1N3"] * 3
    assert explorer.state()["seed"] == 1


def test_unknown_seed_or_neuron_is_refused(explorer):
    with pytest.raises(traitlets.TraitError):
        explorer.seed = 7
    with pytest.raises(traitlets.TraitError):
        explorer.neuron = "L9N9"


def test_displays_offline_layout_from_runs(tables):
    explorer = CheckpointExplorer(SimpleNamespace(explorer_tables=lambda: tables), play=False)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert alt.JupyterChart._is_offline
    assert all("esm.sh" not in view._esm for view in explorer.views)
    assert "seed" in explorer.controls and "play" not in explorer.controls


def test_single_seed_has_no_seed_picker(tables):
    one = ExplorerTables(**{name: df[df["seed"] == 0] for name, df in tables.__dict__.items()})
    assert "seed" not in CheckpointExplorer(one).controls


def test_seed_with_other_checkpoints_and_units_keeps_the_nearest_cursor(tables):
    steps = [0, 5, 2000]
    other = {name: df[(df["seed"] == 0) | df["step"].isin(steps)] if name in
             ("checkpoints", "neurons", "baseline", "class_means", "attention") else df
             for name, df in tables.__dict__.items()}
    neurons = other["neurons"]
    other["neurons"] = neurons[(neurons["seed"] == 0) | (neurons["unit"] != "L1N3")]
    explorer = CheckpointExplorer(ExplorerTables(**other), step=899, neuron="L1N3")
    explorer.seed = 1
    assert explorer.step == 5 and explorer.controls["step"].options[-1] == ("2000", 2000)
    assert explorer.neuron == explorer.tables.default_neuron(1)
    assert view_params(explorer, "step") == [5] * 5
