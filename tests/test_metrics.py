import torch
from vestige.hooks import mlp_post, set_neurons
from vestige.metrics import (
    ablated_losses,
    ablation_values,
    class_means,
    per_position_loss,
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


def test_batched_ablation_equals_one_forward_per_neuron(tiny_run):
    model, batch = tiny_run.model_at(60), tiny_run.eval_batch
    _, cache = model.run_with_cache(batch.tokens, names_filter=[mlp_post(0)])
    acts = cache[mlp_post(0)]
    for mode in ("mean", "zero", "resample"):
        values = ablation_values(acts, mode)
        losses, _ = ablated_losses(model, batch, 0, range(8), values, max_sequences=3 * len(batch))
        for neuron in range(8):
            value = values[neuron] if mode != "resample" else values[neuron][..., None]
            with torch.no_grad():
                logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(mlp_post(0), set_neurons([neuron], value))])
            expected, _ = per_position_loss(logits, batch.tokens)
            assert torch.allclose(losses[neuron], expected, atol=1e-5), (mode, neuron)
