"""vestige.charts, vestige.tables and vestige.notebook: views build and validate, follow the
step param, take their definitions from the tables, render as saved vega-lite outputs, export
statically."""

import json
import re
import struct
from types import SimpleNamespace

import altair as alt
import nbformat
import numpy as np
import pytest
import vl_convert as vlc
from vestige import charts, notebook, theme
from vestige.tables import COLUMNS, ExplorerTables, as_tables, explorer_tables, nearest_step

VIEWS = [
    charts.training_curves,
    charts.selectivity_vs_effect,
    charts.class_means,
    charts.neuron_timeline,
    charts.attention_pattern,
]


@pytest.fixture(scope="module")
def tables():
    return ExplorerTables.synthetic(n_seeds=2, seq_len=12)


@pytest.fixture(scope="module")
def realistic():
    """One seed at the issue's sizes (20 checkpoints, 2x16 neurons, 2x4 heads, 40 tokens)."""
    return ExplorerTables.synthetic(n_seeds=1)


@pytest.fixture(scope="module")
def run_tables(tiny_run):
    return explorer_tables(tiny_run)


def params(spec):
    return {p["name"]: p for p in spec["params"]}


def datasets(spec) -> list[list[dict]]:
    return list(spec.get("datasets", {}).values())


@pytest.mark.parametrize("view", VIEWS)
def test_view_validates_and_has_step_param(tables, view):
    spec = view(tables, 1).to_dict(validate=True)
    assert params(spec)["step"]["value"] == tables.steps(1)[0]
    assert spec.get("name") in charts.VIEWS


@pytest.mark.parametrize("view", VIEWS)
def test_view_uses_a_given_step_param(tables, view):
    step = alt.param(name="step", value=742)
    assert params(view(tables, 0, step).to_dict())["step"]["value"] == 742


@pytest.mark.parametrize("view", VIEWS)
def test_realistic_views_stay_under_the_row_limit(realistic, view):
    spec = view(realistic, 0).to_dict()  # raises MaxRowsError past 5,000 rows
    assert 0 < max(len(rows) for rows in datasets(spec)) <= 2000


def test_dashboard_is_one_chart_with_shared_cursors_and_independent_legends(realistic):
    spec = charts.dashboard(
        realistic,
        0,
        alt.param(name="step", value=742),
        alt.param(name="neuron", value="L1N3"),
        alt.param(name="layer", value=1),
        alt.param(name="head", value=2),
    ).to_dict(validate=True)
    assert {p["name"]: p["value"] for p in spec["params"]} == {
        "step": 742,
        "neuron": "L1N3",
        "layer": 1,
        "head": 2,
    }
    text = json.dumps(spec)
    assert all(f'"name": "{name}"' in text for name in charts.VIEWS)
    assert spec["resolve"]["legend"]["color"] == "independent"
    assert len(json.dumps(spec)) < 1_000_000  # one seed, all checkpoints: ~0.8 MB


def test_attention_packs_every_layer_head_step_in_a_cell(tables):
    steps = tables.steps(0)
    cells, n_heads = charts.attention_cells(tables, 0, steps)
    att = charts.rows(tables.attention, 0)
    row = att.iloc[1234]
    cell = cells[(cells["query"] == row["query"]) & (cells["key"] == row["key"])].iloc[0]
    index = int((row["layer"] * n_heads + row["head"]) * len(steps) + steps.index(row["step"]))
    assert int(cell["w"][2 * index : 2 * index + 2], 16) == round(255 * row["weight"])
    assert len(cell["w"]) == 2 * 2 * n_heads * len(steps)
    assert len(cells) == 12 * 13 // 2


def test_class_means_are_packed_per_unit_and_class(tables):
    steps = tables.steps(0)
    cells = charts.class_mean_cells(tables, 0, steps)
    means = charts.rows(tables.class_means, 0)
    row = means.iloc[77]
    unit = f"L{row['layer']}N{row['neuron']}"
    cell = cells[(cells["unit"] == unit) & (cells["cls"] == row["cls"])].iloc[0]
    assert cell["m"][steps.index(row["step"])] == pytest.approx(row["mean_act"], abs=1e-3)
    assert cell["positions"] == tables.verdict(0, unit)["positions"]
    assert len(cells) == 32 * 3


def test_scatter_colours_by_the_detectors_verdict_and_draws_untrained_bars(tables):
    spec = charts.selectivity_vs_effect(tables, 0, 742).to_dict()
    text = json.dumps(spec)
    assert "untrained_p99" in text and '"p99"' not in text  # the bar is the untrained p99
    assert "isValid(datum.selectivity)" in text
    rows = [r for d in datasets(spec) for r in d if "verdict" in r]
    verdict = {r["unit"]: r["verdict"] for r in rows}
    for unit, v in tables.highlighted(0).items():
        assert verdict[unit] == charts.VERDICTS[v]
    assert all("reason" not in r for r in rows)  # the reason names the peak step: an answer
    assert "EFFECT_THRESHOLD" not in dir(charts)  # no region of its own


def test_each_neuron_effect_is_on_its_own_positions(run_tables, tiny_run):
    """The focus-preferring neurons show the analysis' `effect`; the others the ablation on
    their own (final) preferred class, which at the last checkpoint is `effect_own`."""
    from vestige.analysis import analyze

    analysis = analyze(tiny_run)
    last = max(tiny_run.steps)
    seed = tiny_run.seed
    neurons = charts.rows(run_tables.neurons, seed).set_index(["step", "unit"])
    source = analysis["neurons"].set_index(["step", "unit"])
    (focus,) = tiny_run.task.focus_classes
    for _, verdict in charts.rows(run_tables.verdicts, seed).iterrows():
        mine = neurons.xs(verdict.unit, level="unit")
        assert (mine["positions"] == verdict.positions).all()
        theirs = source.xs(verdict.unit, level="unit")
        if verdict.positions == focus:
            np.testing.assert_allclose(mine["effect"], theirs["effect"], atol=1e-9)
        elif theirs.loc[last, "preferred_class"] == verdict.positions:
            assert mine.loc[last, "effect"] == pytest.approx(theirs.loc[last, "effect_own"])


def test_tables_take_the_detectors_verdicts_and_the_analysis_transition(run_tables, tiny_run):
    from vestige.analysis import transition_step
    from vestige.detect import detect

    found = detect(tiny_run)
    seed = tiny_run.seed
    verdicts = charts.rows(run_tables.verdicts, seed).sort_values("rank")
    assert verdicts["unit"].tolist() == found.neurons["unit"].tolist()
    assert run_tables.default_neuron(seed) == found.neurons["unit"].iloc[0]
    caught = set(verdicts.loc[verdicts["verdict"] == "vestigial", "unit"])
    assert caught == set(found.neurons.loc[found.neurons["vestigial"], "unit"])
    if found.contrast is not None:
        assert run_tables.highlighted(seed)[found.contrast["unit"]] == "contrast"
    transition = transition_step(tiny_run)
    assert run_tables.transition(seed) == transition or (
        np.isnan(transition) and np.isnan(run_tables.transition(seed))
    )


def test_runs_give_tables_through_as_tables(tiny_run, run_tables):
    tables = as_tables(tiny_run)
    assert tables.units(tiny_run.seed) == run_tables.units(tiny_run.seed)
    for name in COLUMNS:
        assert set(COLUMNS[name]) <= set(getattr(tables, name).columns)


def test_timelines_tick_at_checkpoints_and_end_where_the_data_ends(realistic):
    steps = realistic.steps(0)
    spec = charts.neuron_timeline(realistic, 0).to_dict()
    scales = [e["x"]["scale"] for e in _encodings(spec) if "x" in e and "scale" in e["x"]]
    assert scales and all(
        s["domain"] == [steps[0], steps[-1]] and s["nice"] is False for s in scales
    )
    axes = [e["x"]["axis"] for e in _encodings(spec) if "x" in e and "axis" in e["x"]]
    assert axes and all(a["values"] == steps for a in axes)
    effects = charts.effects_over_training(realistic, 0).to_dict(validate=True)
    scales = [e["x"]["scale"] for e in _encodings(effects) if "scale" in e.get("x", {})]
    assert all(s["domain"][-1] == steps[-1] for s in scales)


def test_effects_over_training_greys_all_but_a_few_units(realistic):
    spec = charts.effects_over_training(realistic, 0).to_dict(validate=True)
    colour = [e["color"] for e in _encodings(spec) if "color" in e]
    assert len(colour) == 1 and len(colour[0]["scale"]["domain"]) == 2  # vestigial, contrast
    chosen = charts.effects_over_training(realistic, 0, highlight=["L0N1", "L0N2", "L1N0"])
    colour = [e["color"] for e in _encodings(chosen.to_dict()) if "color" in e]
    assert len(colour[0]["scale"]["domain"]) == 3


def test_missing_transition_draws_no_transition_rule(tables):
    no_transition = ExplorerTables(
        **{**tables.__dict__, "transitions": tables.transitions.assign(step=np.nan)}
    )
    spec = charts.training_curves(no_transition, 0).to_dict(validate=True)
    assert spec["datasets"]["transition"] == []
    assert f'stroke="{charts.TRANSITION}"' not in vlc.vegalite_to_svg(spec)
    drawn = vlc.vegalite_to_svg(charts.training_curves(tables, 0).to_dict())
    assert f'stroke="{charts.TRANSITION}"' in drawn  # the check above can fail


def test_one_template_draws_every_seed_of_its_layout(tables):
    """The explorer's seed change: seed 0's template holding seed 1's datasets is the
    dashboard built for seed 1."""
    cursors = {"step": 742, "neuron": "L1N3", "layer": 1, "head": 2}
    assert charts.Layout.of(tables, 0) == charts.Layout.of(tables, 1)
    built = charts.template(charts.Layout.of(tables, 0), **cursors).to_dict()
    swapped = charts.filled(built, charts.datasets(tables, 1), **cursors)
    assert swapped == charts.dashboard(tables, 1, **cursors).to_dict()
    assert swapped["datasets"] != charts.datasets(tables, 0)


def test_views_set_no_font_size_the_theme_sets_them(realistic):
    spec = charts.dashboard(realistic, 0, 742, "L0N1", 0, 0).to_dict()
    assert "fontSize" not in json.dumps({k: v for k, v in spec.items() if k != "config"})
    assert "title" not in spec["config"]  # the kit's theme is not enabled by default
    before = alt.theme.active
    with theme.enabled():
        config = charts.training_curves(realistic, 0).to_dict()["config"]
    assert config["axis"]["labelFontSize"] == theme.SMALL and config["title"]["anchor"] == "start"
    assert alt.theme.active == before


def test_tables_check_columns_and_accept_runs(tables):
    with pytest.raises(ValueError, match="metrics lacks columns"):
        ExplorerTables(**{**tables.__dict__, "metrics": tables.metrics.drop(columns="loss")})
    runs = SimpleNamespace(explorer_tables=lambda: tables)
    assert as_tables(runs) is tables


def test_nearest_step():
    assert nearest_step([0, 1, 10, 100], 40) == 10
    assert nearest_step([0, 1, 10, 100], None) == 0


def test_static_png_has_the_rendered_size(tables, tmp_path):
    path = charts.export_static(tables, tmp_path / "explorer.png", seed=1, step=742, scale=2)
    with theme.enabled():  # as export_static draws it
        svg = vlc.vegalite_to_svg(charts.standalone(tables, 1, 742).to_dict())
    width, height = (
        float(v) for v in re.search(r'width="([\d.]+)" height="([\d.]+)"', svg).groups()
    )
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (round(2 * width), round(2 * height))
    assert 600 < width <= 900 and height > 400  # fits a laptop's notebook column


def test_static_html_is_self_contained_with_a_step_slider(tables, tmp_path):
    html = charts.export_static(tables, tmp_path / "explorer.html", seed=0).read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", html)
    assert not re.search(r"<link[^>]*\bhref\s*=", html)
    spec = json.loads(re.search(r"const spec = (\{.*\});\n", html).group(1))
    slider = next(p for p in spec["params"] if p["name"] == "checkpoint")
    assert slider["bind"]["input"] == "range" and slider["bind"]["max"] == len(tables.steps(0)) - 1
    assert json.dumps(tables.steps(0)) in json.dumps(spec)
    assert spec["config"]["title"]["anchor"] == "start"  # in the kit's theme


def test_charts_render_as_vegalite_v5_with_a_png(tables):
    chart = charts.effects_over_training(tables, 0)
    bundle = notebook.chart_bundle(chart.to_dict())
    assert bundle[notebook.VEGALITE_V5]["$schema"].endswith("/v5.json")
    assert bundle["image/png"].startswith("iVBORw0KGgo")  # base64 PNG
    notebook.enable_charts(png=False)
    try:
        data = alt.renderers.get()(chart.to_dict())
        assert notebook.VEGALITE_V5 in data and "image/png" not in data
    finally:
        notebook.enable_charts()


def test_setup_saves_charts_as_vegalite_outputs_not_widgets(tmp_path):
    """An executed notebook keeps each chart as a vega-lite output with a PNG, no widget."""
    import papermill as pm

    source = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("from vestige.notebook import setup\nsetup()"),
            nbformat.v4.new_code_cell(
                "import altair as alt, pandas as pd\n"
                "alt.Chart(pd.DataFrame({'x': [1, 2], 'y': [3, 4]})).mark_line().encode(x='x', y='y')"
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(source, tmp_path / "in.ipynb")
    pm.execute_notebook(
        tmp_path / "in.ipynb", tmp_path / "out.ipynb", kernel_name="python3", progress_bar=False
    )
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    data = executed.cells[1].outputs[0]["data"]
    assert notebook.VEGALITE_V5 in data and "image/png" in data
    assert not any("widget" in key for o in executed.cells[1].outputs for key in o.get("data", {}))
    assert "widgets" not in executed.metadata


def _encodings(spec) -> list[dict]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "encoding" in node:
                found.append(node["encoding"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def test_synthetic_has_a_vestige_and_a_contrast(tables):
    neurons = charts.neuron_rows(tables, 0)
    mine = neurons[neurons["unit"] == tables.default_neuron(0)].sort_values("step")
    assert mine["effect"].max() > 0.3 and mine["verdict"].iloc[0] == charts.VERDICTS["vestigial"]
    assert set(tables.highlighted(0).values()) == {"vestigial", "contrast"}
    assert 700 < tables.transition(0) < 1100


def test_task_sequence_colours_every_position_by_its_class(tiny_run):
    """One cell per position of the sequence, in the class the task gave it, the scored ones
    outlined; the chart renders (vl-convert) and a sequence out of range is refused."""
    batch = tiny_run.eval_batch
    table = charts.sequence_table(tiny_run, index=1)
    names = tiny_run.task.class_names
    assert table["token"].tolist() == batch.tokens[1].tolist()
    assert table["class"].tolist() == [names[i] for i in batch.labels[1].tolist()]
    assert table["scored"].tolist() == batch.loss_mask[1].tolist()
    assert "trigger" in set(table["class"]) or "copy" in set(table["class"])
    spec = charts.task_sequence(tiny_run, index=1).to_dict()
    color = spec["layer"][0]["encoding"]["color"]["scale"]
    assert set(color["domain"]) == set(table["class"])
    assert len(set(color["range"])) == len(color["domain"])  # one colour per class
    assert vlc.vegalite_to_svg(spec).count("<path") >= len(table)
    with pytest.raises(IndexError, match="sequences"):
        charts.sequence_table(tiny_run, index=batch.tokens.shape[0])
