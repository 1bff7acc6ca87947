"""Training maps (vestige.maps, vestige.map_charts): the HMM finds known phases and switch
points, BIC prefers one state on noise, fits are deterministic per fit seed, detours are
measured (and "too few to tell" said), the features of a real run, and the figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import vestige
from vestige import map_charts
from vestige.maps import (
    checkpoint_features,
    detours,
    fit_map,
    split_seeds,
    training_map,
    zscore_runs,
)
from vestige.runs import Runs, checkpoint_path, load_safetensors

PHASES = np.array([[0, 0, 0, 0], [3, -2, 1, 2], [1, 2, -3, 0]], float)


def phased(n_seeds=12, n_steps=30, noise=0.6, seed=1):
    """Three phases in order; each seed switches at its own two checkpoints."""
    rng = np.random.default_rng(seed)
    rows, switches = [], {}
    for s in range(n_seeds):
        a, b = int(rng.integers(6, 12)), int(rng.integers(17, 24))
        switches[s] = [a, b]
        for t in range(n_steps):
            level = PHASES[0 if t < a else 1 if t < b else 2]
            values = level + noise * rng.standard_normal(4)
            rows.append({"seed": s, "step": t, **{f"f{i}": v for i, v in enumerate(values)}})
    return pd.DataFrame(rows), switches


def pure_noise(n_seeds=12, n_steps=30, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n_seeds * n_steps, 4))
    table = pd.DataFrame(values, columns=[f"f{i}" for i in range(4)])
    table.insert(0, "step", np.tile(np.arange(n_steps), n_seeds))
    table.insert(0, "seed", np.repeat(np.arange(n_seeds), n_steps))
    return table


def with_detour(detour_seeds, n_seeds=20, n_steps=24, noise=0.5, seed=0):
    """Phases 0 -> 1 -> 2 for every seed; `detour_seeds` pass through a fourth phase between
    0 and 1 and so reach phase 2 (their "copy transition") 3-4 checkpoints later."""
    rng = np.random.default_rng(seed)
    levels = {0: [0, 0, 0], 1: [3, -2, 1], 2: [1, 2, -3], "detour": [-3, -3, 3]}
    rows, transitions = [], {}
    for s in range(n_seeds):
        a = int(rng.integers(4, 7))
        d = a + (int(rng.integers(3, 5)) if s in detour_seeds else 0)
        b = d + int(rng.integers(5, 8))
        transitions[s] = float(b)
        for t in range(n_steps):
            phase = 0 if t < a else "detour" if t < d else 1 if t < b else 2
            values = np.array(levels[phase]) + noise * rng.standard_normal(3)
            rows.append({"seed": s, "step": t, **{f"f{i}": v for i, v in enumerate(values)}})
    return pd.DataFrame(rows), transitions


def switch_points(path: list[int]) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.diff(path)) + 1]


# ----------------------------------------------------------------------------- the HMM


def test_the_map_recovers_known_phases_and_every_seeds_switch_points():
    features, switches = phased()
    found = fit_map(features, seed=0, max_states=5, restarts=3)
    assert found.n_states == 3
    assert found.selection["bic"].idxmin() == 2  # the row of 3 states
    assert found.held_out_seeds and set(found.held_out_seeds) < set(switches)
    for seed, path in found.paths().items():  # held-out seeds too
        assert switch_points(path) == switches[seed], seed
        assert path[0] == 0 and path[-1] == 2  # states are numbered by when they occur
    np.testing.assert_allclose(found.transmat.sum(1), 1)
    edges = found.edges().set_index(["source", "target"])
    assert edges.loc[(0, 1), "seeds"] == edges.loc[(1, 2), "seeds"] == 12
    assert (2, 0) not in edges.index and (1, 0) not in edges.index
    assert found.detour_states() == [] and not found.at_ceiling


def test_smooth_curves_hit_the_ceiling_and_the_map_says_so():
    steps = np.arange(20)
    table = pd.DataFrame({"seed": np.repeat([0, 1, 2, 3], 20), "step": np.tile(steps, 4)}).assign(
        a=lambda t: np.log1p(t["step"]) + 0.01 * t["seed"], b=lambda t: t["step"] ** 0.5
    )
    found = fit_map(table, seed=0, max_states=3, restarts=1)
    assert found.n_states == 3 and found.at_ceiling and found.summary()["at_ceiling"]
    assert "a floor, not a finding" in json.dumps(map_charts.states_chart(found).to_dict())


def test_bic_picks_one_state_on_pure_noise():
    found = fit_map(pure_noise(), seed=0, max_states=4, restarts=2)
    assert found.n_states == 1 and not found.at_ceiling
    assert found.selection["bic"].is_monotonic_increasing
    # ... while more states still fit the fitted seeds better (what BIC's penalty is for)
    assert (
        found.selection["fit_log_likelihood"].iloc[-1]
        > found.selection["fit_log_likelihood"].iloc[0]
    )


def test_the_same_fit_seed_gives_the_same_map():
    features, _ = phased(n_seeds=10, n_steps=20, noise=0.8, seed=5)
    first, again = (fit_map(features, seed=7, max_states=4, restarts=2) for _ in range(2))
    pd.testing.assert_frame_equal(first.states, again.states)
    pd.testing.assert_frame_equal(first.selection, again.selection)
    np.testing.assert_array_equal(first.transmat, again.transmat)
    assert first.summary() == again.summary()
    other = fit_map(features, seed=8, max_states=4, restarts=2)
    assert other.held_out_seeds != first.held_out_seeds  # the seed draws the split


def test_split_seeds_is_a_deterministic_partition():
    fit, held = split_seeds(range(100, 120), 0.2, seed=0)
    assert (fit, held) == split_seeds(reversed(range(100, 120)), 0.2, seed=0)
    assert len(held) == 4 and sorted(fit + held) == list(range(100, 120))
    assert split_seeds([1, 2], 0.2, seed=0) == ([1, 2], [])


def test_zscores_are_per_seed_and_constant_features_are_zero():
    table = pd.DataFrame(
        {"seed": [0, 0, 0, 1, 1, 1], "step": [0, 1, 2] * 2, "a": [1, 2, 3, 10, 20, 30.0]}
    )
    table["flat"] = 4.0
    z = zscore_runs(table, ["a", "flat"])
    np.testing.assert_allclose(z["a"], np.tile([-1.2247449, 0, 1.2247449], 2), atol=1e-6)
    assert (z["flat"] == 0).all()
    pooled = zscore_runs(table, ["a"], "pooled")
    assert pooled["a"].iloc[0] < pooled["a"].iloc[3]  # one scale for every seed


def test_summary_is_plain_json():
    features, _ = phased(n_seeds=6, n_steps=15, seed=2)
    found = fit_map(features, seed=0, max_states=3, restarts=1, transitions={0: float("nan")})
    summary = found.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["n_states"] == found.n_states
    assert len(summary["paths"]) == 6 and summary["paths"][0]["transition_step"] is None
    assert len(summary["transmat"]) == found.n_states
    assert [r["n_states"] for r in summary["selection"]] == [1, 2, 3]


def test_a_feature_with_missing_values_is_dropped_and_named():
    features, _ = phased(n_seeds=6, n_steps=15, seed=2)
    features.loc[3, "f2"] = np.nan
    found = fit_map(features, seed=0, max_states=2, restarts=1)
    assert found.dropped == ["f2"] and found.columns == ["f0", "f1", "f3"]


# ----------------------------------------------------------------------------- detours


@pytest.fixture(scope="module")
def detour_map():
    took = set(range(0, 20, 2))
    features, transitions = with_detour(took)
    found = fit_map(
        features, seed=0, max_states=6, restarts=3, normalize="pooled", transitions=transitions
    )
    return found, took


def test_detours_finds_the_detour_and_that_caught_seeds_take_it(detour_map):
    found, took = detour_map
    assert found.n_states == 4 and found.detour_states() == [1]
    assert set(found.visited().index[found.visited()[1]]) == took
    result = detours(found, caught={s: s in took for s in found.seeds})
    row = result.table.set_index("state").loc[1]
    assert row["shift_low"] > 0  # the detour's seeds reach their transition later
    assert 3 <= row["shift"] <= 4  # by 3-4 checkpoints, as generated
    assert row["p_holm"] < 0.001 and row["caught_visiting"] == 10
    assert result.table.set_index("state")["p_value"].drop(1).isna().all()  # not detours
    assert result.enough_for_path_test and result.enough_for_regression
    assert "State 1: visiting it goes with a later copy transition" in result.verdict
    assert json.loads(json.dumps(result.summary(), allow_nan=False)) == result.summary()


def test_detours_says_plainly_when_there_are_too_few_seeds(detour_map):
    found, took = detour_map
    few = detours(found, caught={s: s in took for s in found.seeds if s < 6})
    assert not few.enough_for_path_test
    assert "Too few seeds to tell whether seeds with a caught neuron" in few.verdict
    assert "3 caught and 3 not" in few.verdict

    features, transitions = with_detour({0, 1})  # a detour only two seeds take
    rare = fit_map(
        features, seed=0, max_states=5, restarts=3, normalize="pooled", transitions=transitions
    )
    result = detours(rare)
    (state,) = rare.detour_states()
    assert result.table.loc[state, "reading"].startswith("too few seeds to tell")
    assert not result.enough_for_regression
    assert "Too few seeds to tell whether any detour" in result.verdict


def test_per_run_zscores_split_a_phase_when_seeds_differ_in_timing(detour_map):
    """Why `normalize` exists: z-scored per run (as Hu et al.), a phase's values depend on how
    long the seed spends in each phase, so the same four phases take more states and every
    seed looks like it took a detour."""
    pooled, _ = detour_map
    features, transitions = with_detour(set(range(0, 20, 2)))
    per_run = fit_map(features, seed=0, max_states=6, restarts=3, transitions=transitions)
    assert per_run.n_states > pooled.n_states
    assert len(per_run.detour_states()) > len(pooled.detour_states())


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Runs:
    folder = tmp_path_factory.mktemp("map-runs")
    for seed in (0, 1, 2):
        vestige.train(vestige.preset("tiny"), seed, folder / f"seed-{seed}", progress=False)
    return Runs.open(folder)


def test_features_of_a_tiny_run_one_row_per_checkpoint(tiny_runs):
    features = checkpoint_features(tiny_runs)
    run = tiny_runs[1]
    classes = run.task.class_names
    matrices = ["l0_attn_k", "l0_attn_o", "l0_attn_q", "l0_attn_v", "l0_mlp_in", "l0_mlp_out"]
    assert list(features.columns) == [
        "seed",
        "step",
        *[f"norm_{n}" for n in ("l0", "embed", "ln_final", "pos_embed", "unembed")],
        "l1_l2",
        *[f"spectral_{n}" for n in [*matrices, "embed", "pos_embed", "unembed"]],
        *[f"loss_{c}" for c in classes],
        "stage_p_c_a_b_first_copy",
        "stage_p_c_a_b_second_copy",
        "stage_p_c_lone_b",
    ]
    mine = features[features["seed"] == 1]
    assert mine["step"].tolist() == run.steps
    assert np.isfinite(features.drop(columns=["seed", "step"]).to_numpy()).all()
    # the numbers are what they say: checked against the checkpoint and the metrics
    last = mine.iloc[-1]
    tensors, _ = load_safetensors(checkpoint_path(run.path, run.steps[-1]), "")
    w = tensors["blocks.0.mlp.in.weight"].double()
    assert last["spectral_l0_mlp_in"] == pytest.approx(float(torch.linalg.svdvals(w)[0]))
    assert last["norm_unembed"] == pytest.approx(float(tensors["unembed.weight"].double().norm()))
    evals = run.metrics[run.metrics["split"] == "eval"].set_index("step")
    assert last["loss_copy"] == pytest.approx(evals.loc[run.steps[-1], "loss_copy"])
    assert 0 < last["stage_p_c_a_b_second_copy"] < 1
    # cached next to the run, and read back equal
    assert (run.path / "analysis" / "map-features" / "features.parquet").exists()
    pd.testing.assert_frame_equal(checkpoint_features(tiny_runs), features)


def test_features_skip_stages_when_the_task_has_none(tiny_runs, monkeypatch):
    run = tiny_runs[0]
    monkeypatch.setattr(type(run.task), "stages", lambda self, batch: {})
    features = checkpoint_features([run], cache=False)
    assert not [c for c in features if c.startswith("stage_")]
    assert len(features) == len(run.steps)


def test_training_map_of_tiny_runs_and_its_figures(tiny_runs, tmp_path):
    found = training_map(tiny_runs, seed=0, max_states=2, restarts=2)
    assert len(found.states) == sum(len(run.steps) for run in tiny_runs)
    assert set(found.transitions) == set(tiny_runs.seeds)
    assert found.fit_seeds and found.held_out_seeds  # 3 seeds: one held out
    assert json.loads(json.dumps(found.summary(), allow_nan=False)) == found.summary()
    names = map_charts.save_map_charts(found, tmp_path)
    assert names == ["map_states", "map_graph", "map_selection"]
    for name in names:
        spec = json.loads((tmp_path / f"{name}.vl.json").read_text())
        assert "vega-lite" in spec["$schema"]
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- charts


def _layers(chart) -> list[dict]:
    spec = chart.to_dict()
    datasets = spec["datasets"]
    return [{**layer, "values": datasets[layer["data"]["name"]]} for layer in spec["layer"]]


def test_the_state_chart_colours_states_consistently_and_marks_each_transition():
    features, switches = phased(n_seeds=6, n_steps=30, seed=3)
    transitions = {s: float(b) for s, (_, b) in switches.items()}
    transitions[0] = float("nan")  # a seed without a transition has no mark
    found = fit_map(features, seed=0, max_states=4, restarts=2, transitions=transitions)
    squares, ticks = _layers(map_charts.states_chart(found))
    scale = squares["encoding"]["color"]["scale"]
    assert scale == {"domain": list(range(found.n_states)), "range": map_charts.STATE_COLORS[:3]}
    assert len(squares["values"]) == len(found.states)
    assert sorted((r["seed_label"], r["step"]) for r in ticks["values"]) == sorted(
        (f"{s}*" if s in found.held_out_seeds else str(s), transitions[s]) for s in range(1, 6)
    )
    order = squares["encoding"]["y"]["sort"]
    assert order[-1].rstrip("*") == "0"  # sorted by transition, none last


def test_the_graph_draws_each_transition_above_the_threshold_once():
    features, _ = phased(n_seeds=8, n_steps=30, seed=4)
    found = fit_map(features, seed=0, max_states=4, restarts=2)
    layers = _layers(map_charts.graph_chart(found, min_probability=0.02))
    edges = layers[0]["values"]
    expected = {
        f"{i}->{j}"
        for i in range(found.n_states)
        for j in range(found.n_states)
        if i != j and found.transmat[i, j] >= 0.02
    }
    assert {e["edge"] for e in edges} == expected and expected
    nodes = layers[3]["values"]
    assert [n["state"] for n in nodes] == list(range(found.n_states))
