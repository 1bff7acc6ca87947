"""vestige.charts: views build and validate, follow the step param, export statically."""

import re
import struct
from types import SimpleNamespace

import altair as alt
import numpy as np
import pytest
import vl_convert as vlc
from vestige import charts
from vestige.charts import ExplorerTables

VIEWS = [charts.training_curves, charts.selectivity_vs_effect, charts.class_means,
         charts.neuron_timeline, charts.attention_pattern]


@pytest.fixture(scope="module")
def tables():
    return ExplorerTables.synthetic(n_seeds=2, seq_len=12)


@pytest.fixture(scope="module")
def realistic():
    """One seed at the issue's sizes (20 checkpoints, 2x16 neurons, 2x4 heads, 40 tokens)."""
    return ExplorerTables.synthetic(n_seeds=1)


def params(spec):
    return {p["name"]: p for p in spec["params"]}


@pytest.mark.parametrize("view", VIEWS)
def test_view_validates_and_has_step_param(tables, view):
    spec = view(tables, 1).to_dict(validate=True)
    assert params(spec)["step"]["value"] == tables.steps(1)[0]


@pytest.mark.parametrize("view", VIEWS)
def test_view_uses_a_given_step_param(tables, view):
    step = alt.param(name="step", value=899)
    assert params(view(tables, 0, step).to_dict())["step"]["value"] == 899


@pytest.mark.parametrize("view", VIEWS)
def test_realistic_views_stay_under_the_row_limit(realistic, view):
    spec = view(realistic, 0).to_dict()  # raises MaxRowsError past 5,000 rows
    assert 0 < max(len(rows) for rows in spec["datasets"].values()) <= 2000


def test_attention_packs_every_layer_head_step_in_a_cell(tables):
    steps = tables.steps(0)
    cells, n_heads = charts._attention_cells(tables, 0, steps)
    att = charts._rows(tables.attention, 0)
    row = att.iloc[1234]
    cell = cells[(cells["query"] == row["query"]) & (cells["key"] == row["key"])].iloc[0]
    index = int((row["layer"] * n_heads + row["head"]) * len(steps) + steps.index(row["step"]))
    assert cell["w"][index] == round(1000 * row["weight"])
    assert len(cells) == 12 * 13 // 2


def test_synthetic_has_a_vestige_neuron(tables):
    neurons = charts._neuron_rows(tables, 0)
    mine = neurons[neurons["unit"] == tables.default_neuron(0)].sort_values("step")
    assert mine["effect"].max() > 0.3
    last = mine.iloc[-1]
    assert last["selectivity"] >= last["p99"] and last["effect"] < charts.EFFECT_THRESHOLD
    assert 700 < tables.transition(0) < 1100


def test_missing_transition_draws_no_transition_rule(tables):
    no_transition = ExplorerTables(**{**tables.__dict__, "transitions":
                                      tables.transitions.assign(step=np.nan)})
    spec = charts.training_curves(no_transition, 0).to_dict(validate=True)
    assert charts.TRANSITION not in str(spec)


def test_tables_check_columns_and_accept_runs(tables):
    with pytest.raises(ValueError, match="metrics lacks columns"):
        ExplorerTables(**{**tables.__dict__, "metrics": tables.metrics.drop(columns="loss")})
    runs = SimpleNamespace(explorer_tables=lambda: tables)
    assert charts.as_tables(runs) is tables


def test_nearest_step():
    assert charts.nearest_step([0, 1, 10, 100], 40) == 10
    assert charts.nearest_step([0, 1, 10, 100], None) == 0


def test_static_png_has_the_rendered_size(tables, tmp_path):
    path = charts.export_static(tables, tmp_path / "explorer.png", seed=1, step=899, scale=2)
    svg = vlc.vegalite_to_svg(charts.standalone(tables, 1, 899).to_dict())
    width, height = (float(v) for v in re.search(r'width="([\d.]+)" height="([\d.]+)"', svg).groups())
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (round(2 * width), round(2 * height))
    assert width > 600 and height > 400


def test_static_html_is_self_contained(tables, tmp_path):
    html = charts.export_static(tables, tmp_path / "explorer.html", seed=0).read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?https?:", html)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", html)
    assert '"checkpoint"' in html and "vegaEmbed" in html
