import pytest
import torch
from vestige.hooks import mlp_post, set_neurons
from vestige.metrics import (
    ablate_neurons,
    ablation_values,
    class_means,
    contrast_selectivity,
    firing_fraction,
    logit_margin,
    per_position_loss,
    same_token_positions,
    selectivity_index,
    shuffled_selectivity,
)


def test_selectivity_index_known_values():
    means = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [3.0, 1.0, 1.0]])
    assert torch.allclose(selectivity_index(means), torch.tensor([1.0, 0.0, 0.0, 0.5]), atol=1e-5)


def test_class_means_and_shuffled_baseline_separate_a_planted_neuron():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (64, 20), generator=gen)
    acts = torch.rand(64, 20, 4, generator=gen)
    acts[..., 0] = (labels == 1).float() * 2.0  # fires for class 1 only
    means = class_means(acts, labels, 3)
    assert means.shape == (4, 3)
    assert torch.allclose(means[0], torch.tensor([0.0, 2.0, 0.0]))
    baseline = shuffled_selectivity(acts, labels, 3, n_shuffles=4)
    assert baseline.shape == (4, 4)
    assert selectivity_index(means)[0] > baseline.quantile(0.99) + 0.5


def test_same_token_selectivity_ignores_token_identity():
    tokens = torch.tensor([[1, 2, 5, 2, 1, 2, 7, 2]])
    focus = torch.tensor([[0, 1, 0, 0, 0, 1, 0, 0]], dtype=torch.bool)  # "2 after 1"
    same = same_token_positions(tokens, focus)
    assert same.tolist() == [[False, False, False, True, False, False, False, True]]
    token_neuron = (tokens == 2).float()  # fires for every 2: selective for the token only
    pair_neuron = focus.float() * 3  # fires for the pair only
    acts = torch.stack([token_neuron, pair_neuron], -1)
    si = contrast_selectivity(acts, focus, same)
    assert abs(si[0]) < 1e-6 and si[1] > 0.99
    assert firing_fraction(acts, focus).tolist() == [1.0, 1.0]
    assert firing_fraction(acts, same).tolist() == [1.0, 0.0]


def test_logit_margin_is_target_minus_mean_logit():
    logits = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 6.0], [1.0, 1.0, 1.0]]])
    tokens = torch.tensor([[0, 2, 1]])
    # position t predicts tokens[t + 1]: logit 3 of mean 2, then logit 0 of mean 2; the last: 0
    assert logit_margin(logits, tokens).tolist() == [[3.0 - 2.0, 0.0 - 2.0, 0.0]]


def test_batched_ablation_equals_one_forward_per_neuron(tiny_run):
    model, batch = tiny_run.model_at(60), tiny_run.eval_batch
    _, cache = model.run_with_cache(batch.tokens, names_filter=[mlp_post(0)])
    acts = cache[mlp_post(0)]
    for mode in ("mean", "zero", "resample"):
        values = ablation_values(acts, mode)
        ablated = ablate_neurons(model, batch, 0, range(8), values, max_sequences=3 * len(batch))
        for neuron in range(8):
            value = values[neuron] if mode != "resample" else values[neuron][..., None]
            with torch.no_grad():
                logits = model.run_with_hooks(
                    batch.tokens, fwd_hooks=[(mlp_post(0), set_neurons([neuron], value))]
                )
            expected, correct = per_position_loss(logits, batch.tokens)
            assert torch.allclose(ablated.loss[neuron], expected, atol=1e-5), (mode, neuron)
            assert torch.equal(ablated.correct[neuron], correct), (mode, neuron)
            assert torch.allclose(
                ablated.margin[neuron], logit_margin(logits, batch.tokens), atol=1e-4
            )


def test_ablation_on_wanted_positions_equals_the_full_pass_there(tiny_run):
    model, batch = tiny_run.model_at(60), tiny_run.eval_batch
    _, cache = model.run_with_cache(batch.tokens, names_filter=[mlp_post(0)])
    values = ablation_values(cache[mlp_post(0)], "mean")
    full = ablate_neurons(model, batch, 0, range(8), values)
    part = ablate_neurons(model, batch, 0, range(8), values, where=batch.loss_mask)
    wanted = batch.loss_mask
    for whole, some in zip(full, part):
        assert torch.allclose(whole[:, wanted], some[:, wanted], atol=1e-5)
        assert not some[:, ~wanted].any()  # the positions nobody asked for hold 0


def test_the_last_block_at_some_rows_equals_the_full_block():
    import dataclasses

    from vestige.config import preset
    from vestige.hooks import resid_post, run_from
    from vestige.metrics import wanted_rows
    from vestige.model import build_model
    from vestige.task import make_task

    config = preset("tiny")
    config = config.replace(model=dataclasses.replace(config.model, n_layers=3))
    model = build_model(config, 3).eval()
    batch = make_task(config.task.name, config.task.params, 3).eval_batch(16)
    _, cache = model.run_with_cache(batch.tokens, names_filter=[resid_post(0)])
    rows = wanted_rows(batch.loss_mask)
    with torch.no_grad():
        full = run_from(model, 1, cache[resid_post(0)])
        some = run_from(model, 1, cache[resid_post(0)], rows)
    expected = full.gather(1, rows[..., None].expand(-1, -1, full.shape[-1]))
    assert some.shape == expected.shape and torch.allclose(some, expected, atol=1e-5)


def small_model(n_layers: int, dtype=torch.float64, seed: int = 1, **fields):
    """A fresh model of the tiny preset's shape with `n_layers` blocks and larger initial
    weights (so every ablation moves the loss), in `dtype`, and 32 evaluation sequences of its
    task. `fields` override the TransformerLens config (e.g. positional_embedding_type)."""
    import dataclasses
    from unittest import mock

    from vestige import model as model_module
    from vestige.config import preset
    from vestige.task import make_task

    config = preset("tiny")
    config = config.replace(
        model=dataclasses.replace(config.model, n_layers=n_layers, init_range=0.5)
    )
    make_config = model_module.bridge_config

    def bridge_config(*args):
        cfg = make_config(*args)
        for name, value in fields.items():
            setattr(cfg, name, value)
        return cfg

    with mock.patch.object(model_module, "bridge_config", bridge_config):
        model = model_module.build_model(config, seed).eval().to(dtype)
    return model, make_task(config.task.name, config.task.params, seed).eval_batch(32)


def hooked_outcomes(model, batch, layer: int, neuron: int, value):
    """Loss, correctness and margin [batch, seq] of one hooked forward pass with `neuron`
    held at `value` (a number, or [batch, seq] for resampling)."""
    value = value[..., None] if torch.is_tensor(value) and value.dim() == 2 else value
    hook = set_neurons([neuron], value)
    with torch.no_grad():
        logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(mlp_post(layer), hook)])
    return (*per_position_loss(logits, batch.tokens), logit_margin(logits, batch.tokens))


def assert_ablations_match_hooked_forwards(model, batch, layer: int, atol: float) -> float:
    """ablate_neurons (all modes, with and without `where`) against one hooked forward per
    neuron; returns the largest change of the loss any ablation made."""
    _, cache = model.run_with_cache(batch.tokens, names_filter=[mlp_post(layer)])
    acts = cache[mlp_post(layer)]
    clean = per_position_loss(model(batch.tokens), batch.tokens)[0]
    moved = 0.0
    for mode in ("mean", "zero", "resample"):
        values = ablation_values(acts, mode)
        for where in (batch.loss_mask, None):
            got = ablate_neurons(model, batch, layer, range(acts.shape[-1]), values, where=where)
            wanted = torch.ones_like(batch.loss_mask) if where is None else where
            for neuron in range(acts.shape[-1]):
                loss, correct, margin = hooked_outcomes(model, batch, layer, neuron, values[neuron])
                context = (layer, mode, where is None, neuron)
                assert torch.allclose(got.loss[neuron][wanted], loss[wanted], atol=atol), context
                assert torch.allclose(got.margin[neuron][wanted], margin[wanted], atol=10 * atol)
                assert torch.equal(got.correct[neuron][wanted], correct[wanted]), context
                assert not got.loss[neuron][~wanted].any(), context
                moved = max(moved, (loss - clean)[wanted].abs().max().item())
    return moved


@pytest.mark.parametrize("n_layers", [2, 3])
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_the_rank_one_sweep_equals_one_hooked_forward_per_neuron(n_layers, dtype, atol):
    """Every layer of a 2- and a 3-layer LayerNorm model: the ablation enters a block that is
    not the last (3 layers, layer 0), the last block, or only ln_final and the unembedding.
    In float64 the algebra must agree to 1e-10 (exact but for rounding); in float32 to 1e-5."""
    from vestige.hooks import RankOneSweep

    model, batch = small_model(n_layers, dtype)
    for layer in range(n_layers):
        assert RankOneSweep.covers(model, layer + 1)
        assert assert_ablations_match_hooked_forwards(model, batch, layer, atol) > 0.05


@pytest.mark.parametrize(
    "fields, covered",
    [
        ({}, (True, True)),
        ({"gated_mlp": True, "act_fn": "silu"}, (True, True)),  # the MLP runs as a module
        ({"final_rms": True}, (True, False)),  # ln_final: an RMS norm, the blocks' LayerNorm
        ({"normalization_type": "RMS"}, (False, False)),
        ({"normalization_type": "LNPre"}, (False, False)),
        ({"normalization_type": None}, (False, False)),
        ({"positional_embedding_type": "rotary"}, (False, True)),
        ({"n_key_value_heads": 1}, (False, True)),  # grouped keys
    ],
)
def test_the_fast_path_runs_where_it_applies_and_the_passes_elsewhere(fields, covered, monkeypatch):
    from vestige import metrics
    from vestige.hooks import RankOneSweep

    model, batch = small_model(2, **fields)
    assert (RankOneSweep.covers(model, 1), RankOneSweep.covers(model, 2)) == covered
    taken = []

    class Spy(RankOneSweep):
        def __init__(self, *args):
            taken.append("sweep")
            super().__init__(*args)

    passes = metrics._ablate_by_passes
    monkeypatch.setattr(metrics, "RankOneSweep", Spy)
    monkeypatch.setattr(
        metrics, "_ablate_by_passes", lambda *a: taken.append("passes") or passes(*a)
    )
    for layer in range(2):
        taken.clear()
        assert_ablations_match_hooked_forwards(model, batch, layer, 1e-10)
        assert set(taken) == {"sweep" if covered[layer] else "passes"}, (layer, taken)
