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
    tables = analyze(tiny_run)
    baseline, neurons = tables["baseline"], tables["neurons"]
    assert (baseline.groupby("layer")["untrained_p99"].nunique() == 1).all()
    assert (neurons.groupby("layer")["untrained_matched_p99"].nunique() == 1).all()
    # untrained neurons are selective with token-defined classes: far above shuffled labels
    assert (baseline.untrained_p99 > baseline.p99).all()
    assert (baseline.untrained_p95 <= baseline.untrained_p99).all()
    assert (baseline.untrained_p99 <= baseline.untrained_p999).all()


def test_the_untrained_baseline_is_shared_by_every_seed_of_a_config(tiny_run, tmp_path):
    from vestige.analysis import untrained_baseline
    from vestige.runs import Run, shared_path

    first = untrained_baseline(tiny_run, 4)
    cached = sorted(shared_path(tiny_run.path, "").glob("untrained-*.parquet"))
    assert cached
    other = Run(tiny_run.path.parent / "seed-elsewhere", tiny_run.config, tiny_run.seed + 1)
    assert untrained_baseline(other, 4).equals(first)  # read from the cache, not recomputed
    assert not untrained_baseline(other, 5).equals(first)  # another setting, another file


def test_focus_and_same_token_positions(tiny_run):
    positions = Positions.of(tiny_run)
    batch, names = tiny_run.eval_batch, tiny_run.task.class_names
    assert positions.focus == ("trigger",)
    focus_all, same = positions.focus_all["trigger"], positions.same_token["trigger"]
    assert (focus_all == (batch.labels == names.index("trigger"))).all()
    assert not (same & focus_all).any()
    assert set(batch.tokens[same].unique().tolist()) <= set(
        batch.tokens[focus_all].unique().tolist()
    )
    unscored = positions.classes["trigger_unscored"]
    assert (unscored == (focus_all & ~batch.loss_mask)).all() and unscored.any()


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


def test_batched_sums_and_intervals_equal_one_class_and_one_neuron_at_a_time(tiny_run):
    from vestige.analysis import Clean, sequence_sums
    from vestige.hooks import cache_activations, resid_post
    from vestige.metrics import ablate_neurons, ablation_values, logit_margin, per_position_loss
    from vestige.stats import ratio_interval, resample_counts

    spec = AnalysisSpec()
    neurons = analyze(tiny_run, spec)["neurons"]
    positions, batch, step = Positions.of(tiny_run), tiny_run.eval_batch, tiny_run.steps[-1]
    model = tiny_run.model_at(step)
    logits, acts = cache_activations(model, batch.tokens, [mlp_post(0), resid_post(0)])
    clean = Clean(*per_position_loss(logits, batch.tokens), logit_margin(logits, batch.tokens))
    values = ablation_values(acts[mlp_post(0)], "mean")
    ablated = ablate_neurons(model, batch, 0, range(8), values, cache=acts, where=positions.wanted)
    sums = sequence_sums(ablated, clean, positions.classes)
    for cls, mask in positions.classes.items():  # the sums of all classes, one at a time
        assert np.allclose(sums.loss[cls], ((ablated.loss - clean.loss) * mask).sum(-1), atol=1e-6)
        assert np.allclose(sums.margin[cls], ((clean.margin - ablated.margin) * mask).sum(-1))
        assert (sums.counts[cls] == mask.sum(-1).numpy()).all()
    # the intervals, computed after own_focus on the kept rows' sequences, against one
    # neuron's interval over every sequence
    resamples = resample_counts(len(batch), spec.n_resamples, seed=tiny_run.seed)
    rows = neurons[neurons.step == step].set_index("neuron")
    for n in range(8):
        for measure, column in (("loss", "effect"), ("margin", "margin_effect")):
            per_sequence = getattr(sums, measure)["trigger"][n]
            low, high = ratio_interval(per_sequence, sums.counts["trigger"], resamples)
            assert np.isclose(rows.loc[n, f"{column}_low"], low, rtol=0, atol=1e-6)
            assert np.isclose(rows.loc[n, f"{column}_high"], high, rtol=0, atol=1e-6)
