"""Hook names and the hooks the kit uses: caching, neuron ablation, suppression in training.

TransformerLens hook names and module paths are an implementation detail; call these
helpers instead of spelling them out, so a rename upstream is fixed in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

HookFn = Callable[[torch.Tensor, object], torch.Tensor]


def mlp_post(layer: int) -> str:
    """MLP activations after the nonlinearity: one value per neuron, [batch, seq, d_mlp]."""
    return f"blocks.{layer}.mlp.out.hook_in"


def attn_pattern(layer: int) -> str:
    """Attention probabilities, [batch, head, query, key]."""
    return f"blocks.{layer}.attn.hook_pattern"


def resid_post(layer: int) -> str:
    """The residual stream after block `layer`, [batch, seq, d_model]."""
    return f"blocks.{layer}.hook_out"


def head_z(layer: int) -> str:
    """Each head's attention-weighted values before the output matrix, [batch, seq, head, d_head]."""
    return f"blocks.{layer}.attn.o.hook_in"


EMBED = "embed.hook_out"  # token embeddings, [batch, seq, d_model]
POS_EMBED = "pos_embed.hook_out"  # position embeddings, [batch, seq, d_model]
FINAL_SCALE = "ln_final.hook_scale"  # the final LayerNorm's divisor, [batch, seq, 1]


@torch.no_grad()
def cache_activations(
    model, tokens: torch.Tensor, names: Iterable[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run `model` on `tokens` and return (logits, {hook name: activation}) for `names` only."""
    names = list(names)
    logits, cache = model.run_with_cache(tokens, names_filter=names)
    return logits, {name: cache[name] for name in names}


def set_neurons(neurons: Sequence[int], values: torch.Tensor | float) -> HookFn:
    """A hook that overwrites the given neurons (last dim) with `values` (e.g. their means)."""
    index = torch.as_tensor(list(neurons), dtype=torch.long)

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        act = act.clone()
        act[..., index] = torch.as_tensor(values, dtype=act.dtype).expand(act[..., index].shape)
        return act

    return hook


def suppress_hook(neurons: Sequence[int], mode: str) -> HookFn:
    """Hold neurons at their current-batch mean (detached) or at zero: the training-time
    intervention. Gradients do not flow through the held neurons."""
    index = torch.as_tensor(list(neurons), dtype=torch.long)

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        held = act[..., index].detach()
        value = held.mean(dim=tuple(range(held.dim() - 1)), keepdim=True) if mode == "mean" else 0
        act = act.clone()
        act[..., index] = torch.zeros_like(held) + value
        return act

    return hook


def mlp_out_weight(model, layer: int) -> torch.Tensor:
    """The MLP's output matrix of `layer`, [d_model, d_mlp]: column n is what neuron n writes."""
    return model.blocks[layer].mlp.out.weight


def run_from(model, layer: int, resid: torch.Tensor) -> torch.Tensor:
    """Logits from the residual stream entering block `layer` (after blocks < layer)."""
    for block in model.blocks[layer:]:
        (resid,) = block(resid)
    return model.unembed(model.ln_final(resid))


def hold_heads(heads: Sequence[int], mode: str) -> HookFn:
    """For `head_z`: hold heads at their current-batch mean (detached) or at zero."""
    index = torch.as_tensor(list(heads), dtype=torch.long)

    def hook(z: torch.Tensor, hook=None) -> torch.Tensor:
        held = z[..., index, :].detach()
        value = held.mean(dim=(0, 1), keepdim=True) if mode == "mean" else 0
        z = z.clone()
        z[..., index, :] = torch.zeros_like(held) + value
        return z

    return hook


def head_outputs(model, layer: int, z: torch.Tensor) -> torch.Tensor:
    """What each head of `layer` writes to the residual stream, [batch, seq, head, d_model],
    from its `head_z` activations (the output bias belongs to no head and is left out)."""
    out = model.blocks[layer].attn.o
    zero = out(torch.zeros_like(z).flatten(-2))
    parts = []
    for head in range(z.shape[-2]):
        only = torch.zeros_like(z)
        only[..., head, :] = z[..., head, :]
        parts.append(out(only.flatten(-2)) - zero)
    return torch.stack(parts, dim=-2)


def logit_contributions(model, vectors: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Direct logit attribution: the logits that residual-stream `vectors` [..., d_model] add
    through the final LayerNorm (its `scale` [..., 1] frozen at the clean run's value) and the
    unembedding, [..., d_vocab]. Summed over every component plus the biases, they give
    the model's logits exactly."""
    centred = vectors - vectors.mean(-1, keepdim=True)
    unembed = model.unembed
    return unembed(centred / scale * model.ln_final.weight) - unembed(
        torch.zeros(1, vectors.shape[-1])
    )
