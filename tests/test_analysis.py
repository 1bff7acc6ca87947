import os

import numpy as np
from vestige.analysis import AnalysisSpec, Positions, analyze, iter_activations
from vestige.hooks import mlp_post
from vestige.runs import checkpoint_path


def test_tables_are_keyed_by_seed_step_layer_neuron(tiny_run):
    tables = analyze(tiny_run, AnalysisSpec(modes=("mean", "zero")))
    neurons = tables["neurons"]
    assert len(neurons) == len(tiny_run.steps) * 8
    assert not neurons.duplicated(["seed", "step", "layer", "neuron"]).any()
    assert neurons.selectivity.dropna().between(0, 1).all()
    assert (neurons.effect_low <= neurons.effect).all() and (
        neurons.effect <= neurons.effect_high
    ).all()
    assert (neurons.positions == "trigger").all()
    ablation = tables["ablation"]
    assert set(ablation["mode"]) == {"mean", "zero"}
    assert {"all", "trigger", "copy"} <= set(ablation.positions)
    trigger = (
        ablation.query("mode == 'mean' and positions == 'trigger'")
        .set_index(["step", "layer", "neuron"])
        .delta_loss
    )
    assert np.allclose(
        neurons.set_index(["step", "layer", "neuron"]).effect,
        trigger.loc[neurons.set_index(["step", "layer", "neuron"]).index],
    )
    assert set(tables["class_means"].cls) == {"other", "trigger", "decoy", "copy", "live"}
    attention = tables["attention"]
    assert (attention["key"] <= attention["query"]).all()
    sums = attention.groupby(["step", "layer", "head", "query"]).weight.sum()
    assert ((sums - 1).abs() < 1e-4).all()


def test_untrained_baseline_is_one_value_per_layer_from_fresh_models(tiny_run):
    baseline = analyze(tiny_run)["baseline"]
    per_layer = baseline.groupby("layer")[["untrained_p99", "untrained_matched_p99"]].nunique()
    assert (per_layer == 1).all().all()
    # untrained neurons are selective with token-defined classes: far above shuffled labels
    assert (baseline.untrained_p99 > baseline.p99).all()


def test_focus_and_same_token_positions(tiny_run):
    positions = Positions.of(tiny_run)
    batch, names = tiny_run.eval_batch, tiny_run.task.class_names
    assert positions.focus == "trigger"
    assert (positions.focus_all == (batch.labels == names.index("trigger"))).all()
    assert not (positions.same_token & positions.focus_all).any()
    assert set(batch.tokens[positions.same_token].unique().tolist()) <= set(
        batch.tokens[positions.focus_all].unique().tolist()
    )


def test_cache_is_reused_and_recomputed_when_stale(tiny_run):
    spec = AnalysisSpec(modes=("mean",), n_shuffles=3)
    analyze(tiny_run, spec)
    manifest = tiny_run.path / "analysis" / "manifest.json"
    written = manifest.stat().st_mtime_ns
    analyze(tiny_run, spec)
    assert manifest.stat().st_mtime_ns == written
    ckpt = checkpoint_path(tiny_run.path, 60)
    stat = ckpt.stat()
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    analyze(tiny_run, spec)
    assert manifest.stat().st_mtime_ns != written


def test_activations_across_checkpoints_one_at_a_time(tiny_run):
    seen = [(step, acts.shape) for step, acts in iter_activations(tiny_run, mlp_post(0))]
    assert [s for s, _ in seen] == tiny_run.steps
    assert all(shape == (64, 16, 8) for _, shape in seen)
