"""The kit's model is TransformerLens's native model behind a bridge, with two lean parts
(attention without a redundant mask, LayerNorm without unhooked statistics): it must compute
what the stock `TransformerBridge.boot_native` computes, with the same weights and hooks."""

import dataclasses

import pytest
import torch
import vestige
from transformer_lens.model_bridge import TransformerBridge
from vestige.hooks import FINAL_SCALE, cache_activations, mlp_post, suppress_hook
from vestige.model import bridge_config, build_model


@pytest.mark.parametrize("act, norm", [("relu", "LN"), ("gelu", "RMS"), ("silu", None)])
def test_same_weights_and_outputs_as_the_stock_bridge(act, norm):
    config = vestige.preset("reference")
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, act_fn=act, normalization_type=norm)
    )
    ours, stock = build_model(config, 3), TransformerBridge.boot_native(bridge_config(config, 3))
    assert ours.state_dict().keys() == stock.state_dict().keys()
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in stock.state_dict().items())
    tokens = torch.randint(7, 64, (4, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(tokens), stock(tokens), atol=1e-5)


def test_hooks_still_fire_and_gradients_flow_through_an_edited_neuron():
    model = build_model(vestige.preset("tiny"), 0)
    tokens = torch.randint(7, 24, (4, 16), generator=torch.Generator().manual_seed(1))
    _, cache = cache_activations(model, tokens, [FINAL_SCALE, mlp_post(0)])
    assert cache[FINAL_SCALE].shape == (4, 16, 1)  # the fast LayerNorm computes it when hooked
    logits = model.run_with_hooks(tokens, fwd_hooks=[(mlp_post(0), suppress_hook([2], "zero"))])
    logits.sum().backward()
    w_in = getattr(model.blocks[0].mlp, "in").weight  # [d_mlp, d_model]
    assert w_in.grad[2].abs().sum() == 0  # the held neuron learns nothing
    assert w_in.grad[[0, 1, 3]].abs().sum() > 0  # the others do
