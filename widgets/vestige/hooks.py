"""Hook names and the hooks the kit uses: caching, neuron ablation, suppression in training.

TransformerLens hook names are an implementation detail; call these helpers instead of
spelling them out, so a rename upstream is fixed in one place.
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
    return f"blocks.{layer}.hook_resid_post"


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
