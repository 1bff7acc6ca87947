"""Mechanism tools: exact attribution, the right key positions, consistent ablations."""

import numpy as np
import torch
from vestige.analysis import analyze
from vestige.hooks import (
    FINAL_SCALE,
    cache_activations,
    head_outputs,
    head_z,
    logit_contributions,
    resid_post,
)
from vestige.mechanism import Subject, _key_positions, mechanism, stage_change_steps


def test_head_outputs_and_logit_contributions_add_up_to_the_model(tiny_run):
    model, tokens = tiny_run.model_at(60), tiny_run.eval_batch.tokens[:8]
    names = [head_z(0), "blocks.0.attn.hook_out", resid_post(0), FINAL_SCALE]
    logits, acts = cache_activations(model, tokens, names)
    with torch.no_grad():
        heads = head_outputs(model, 0, acts[head_z(0)])  # [batch, seq, head, d_model]
        bias = model.blocks[0].attn.o(torch.zeros(1, heads.shape[-2] * acts[head_z(0)].shape[-1]))
        assert torch.allclose(heads.sum(-2) + bias, acts["blocks.0.attn.hook_out"], atol=1e-5)
        direct = logit_contributions(model, acts[resid_post(0)], acts[FINAL_SCALE])
        constant = model.unembed(model.ln_final.bias[None])
        assert torch.allclose(direct + constant, logits, atol=1e-4)


def test_key_positions_previous_token_and_induction_target():
    tokens = torch.tensor([[9, 1, 2, 3, 8, 1, 2, 7]])
    previous, induction = _key_positions(tokens)
    assert previous[0].tolist() == [-1, 0, 1, 2, 3, 4, 5, 6]
    # the second "1 2" (position 6) last occurred at positions 1-2: the target is position 3
    assert induction[0, 6].item() == 3
    assert induction[0, 5].item() == -1  # "8 1" never occurred before
    assert (induction[0, :6] == -1).all()


def test_mechanism_tables_agree_with_the_analysis(tiny_run):
    tables = mechanism(tiny_run, Subject(0, 2, joint=(3, 5)))
    assert set(tables) == {"heads", "stages", "attribution", "neuron"}
    heads = tables["heads"]
    assert len(heads) == len(tiny_run.steps) * 2  # one layer, two heads
    assert heads.attn_previous.between(0, 1).all()
    neuron = tables["neuron"].set_index("step")
    effects = analyze(tiny_run)["neurons"].query("layer == 0 and neuron == 2").set_index("step")
    assert np.allclose(neuron.effect_alone, effects.effect.loc[neuron.index], atol=1e-5)
    assert "effect_later_attn_ablated" not in neuron  # no later layer in a one-layer model
    assert set(tables["stages"].stage) == set(tiny_run.task.stages(tiny_run.eval_batch))
    assert tables["stages"].probability.between(0, 1).all()
    again = mechanism(tiny_run, Subject(0, 2, joint=(3, 5)))  # from the cache
    assert again["attribution"].equals(tables["attribution"])


def test_stage_change_step_is_where_a_curve_moves_half_way():
    import pandas as pd

    steps = [0, 10, 20, 40, 80, 160]
    falling = [0.1, 0.5, 0.6, 0.5, 0.2, 0.1]  # peaks at 20, half way (0.35) crossed at 80
    flat = [0.3, 0.31, 0.32, 0.3, 0.31, 0.3]
    stages = pd.DataFrame(
        {"step": steps * 2, "stage": ["falls"] * 6 + ["flat"] * 6, "probability": falling + flat}
    )
    changes = stage_change_steps(stages)
    assert changes["falls"] == 80 and np.isnan(changes["flat"])


def test_ablation_effects_from_the_ablated_block_equal_full_forwards(tiny_run):
    from vestige.analysis import Positions
    from vestige.hooks import mlp_post, set_neurons
    from vestige.mechanism import _hold, checkpoint_mechanism
    from vestige.metrics import per_position_loss

    model, batch, positions = tiny_run.model_at(60), tiny_run.eval_batch, Positions.of(tiny_run)
    tables = checkpoint_mechanism(model, tiny_run, positions, Subject(0, 2, joint=(3, 5)))
    logits, acts = cache_activations(model, batch.tokens, [head_z(0), mlp_post(0)])
    clean, _ = per_position_loss(logits, batch.tokens)
    focus, copy = positions.classes["trigger"], positions.classes["copy"]

    def full_forward(hooks) -> torch.Tensor:
        with torch.no_grad():
            logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks)
        return per_position_loss(logits, batch.tokens)[0] - clean

    for head, row in tables["heads"].iterrows():
        mean = acts[head_z(0)][..., head, :].mean(dim=(0, 1))
        delta = full_forward([(head_z(0), _hold(head, mean))])
        assert abs(row.effect_focus - delta[focus].mean()) < 1e-5
        assert abs(row.effect_copy - delta[copy].mean()) < 1e-5
    means = acts[mlp_post(0)].mean(dim=(0, 1))
    joint = [2, 3, 5]
    delta = full_forward([(mlp_post(0), set_neurons(joint, means[joint]))])
    assert abs(tables["neuron"].effect_joint[0] - delta[focus].mean()) < 1e-5


def test_two_layer_effects_from_block_outputs_equal_hooked_full_forwards(tmp_path):
    """In a two-layer model the heads and neurons of block 0 are held by adding their change
    to the block's output (`post_with_heads`, `post_with_neurons`), and block 1 then runs with
    any later hooks: every effect equals a full forward with the hooks on."""
    import dataclasses

    import vestige
    from vestige.analysis import Positions
    from vestige.hooks import mlp_post, set_neurons
    from vestige.mechanism import _hold, _hold_all, checkpoint_mechanism
    from vestige.metrics import per_position_loss

    tiny = vestige.preset("tiny")
    config = dataclasses.replace(tiny, model=dataclasses.replace(tiny.model, n_layers=2))
    run = vestige.train(config, 0, tmp_path / "two-layers", progress=False)
    model, batch, positions = run.model_at(run.steps[-1]), run.eval_batch, Positions.of(run)
    tables = checkpoint_mechanism(model, run, positions, Subject(0, 2, joint=(3, 5)))
    logits, acts = cache_activations(model, batch.tokens, [head_z(0), head_z(1), mlp_post(0)])
    clean, _ = per_position_loss(logits, batch.tokens)
    focus = positions.classes["trigger"]

    def full(hooks) -> float:
        with torch.no_grad():
            out = model.run_with_hooks(batch.tokens, fwd_hooks=hooks)
        return float((per_position_loss(out, batch.tokens)[0] - clean)[focus].mean())

    for _, row in tables["heads"].iterrows():
        layer, head = int(row["layer"]), int(row["head"])
        mean = acts[head_z(layer)][..., head, :].mean(dim=(0, 1))
        assert abs(row.effect_focus - full([(head_z(layer), _hold(head, mean))])) < 1e-5
    assert set(tables["heads"].layer) == {0, 1}
    means = acts[mlp_post(0)].mean(dim=(0, 1))
    later = [(head_z(1), _hold_all(acts[head_z(1)].mean(dim=(0, 1))))]
    neuron = tables["neuron"].iloc[0]
    alone = [(mlp_post(0), set_neurons([2], means[2]))]
    assert abs(neuron.effect_alone - full(alone)) < 1e-5
    assert abs(neuron.later_attn_effect - full(later)) < 1e-5
    assert abs(neuron.effect_later_attn_ablated - (full(later + alone) - full(later))) < 1e-5
    group = [2, 3, 5]
    assert abs(neuron.effect_joint - full([(mlp_post(0), set_neurons(group, means[group]))])) < 1e-5
    others = [n for n in range(config.model.d_mlp) if n != 2]
    rest = full([(mlp_post(0), set_neurons(others, means[others]))])
    assert abs(neuron.effect_all_others - rest) < 1e-5
