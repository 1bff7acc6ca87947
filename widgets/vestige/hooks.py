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


def embedding_hooks(model) -> dict[str, str]:
    """{component: hook name} of what the embeddings add to the residual stream: the token
    embedding, and the position embedding where the model adds one (a rotary model such as
    GPT-NeoX / Pythia rotates queries and keys instead, and has no `POS_EMBED`)."""
    names = {"embed": EMBED, "pos_embed": POS_EMBED}
    return {part: name for part, name in names.items() if name in model.hook_dict}


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


def run_from(
    model, layer: int, resid: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits from the residual stream entering block `layer` (after blocks < layer).

    `rows` [batch, m] (long): only the logits at these query positions are wanted, and
    returned as [batch, m, vocab]. The last block then computes only those queries: exact,
    since attention still reads every earlier key and nothing after the last block mixes
    positions. Ablations judged on a fifth of the positions cost a third of the full pass.
    """
    blocks = list(model.blocks[layer:])
    if rows is not None and blocks and _plain_block(blocks[-1]):
        for block in blocks[:-1]:
            (resid,) = block(resid)
        return model.unembed(model.ln_final(_last_block_at(blocks[-1], resid, rows)))
    for block in blocks:
        (resid,) = block(resid)
    if rows is not None:
        resid = _gather_rows(resid, rows)
    return model.unembed(model.ln_final(resid))


def _gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x [batch, seq, d] at positions rows [batch, m] -> [batch, m, d]."""
    return x.gather(1, rows[..., None].expand(-1, -1, x.shape[-1]))


def _plain_block(block) -> bool:
    """Whether `block` is the kit's own pre-LN block (causal attention without rotary,
    grouped keys or soft-capping, then an MLP), which `_last_block_at` reproduces."""
    from vestige.model import _LeanCausalAttention

    native = block.original_component
    attn = block.attn.original_component
    return (
        type(attn) is _LeanCausalAttention
        and attn.rotary is None
        and attn.kv_repeats == 1
        and attn.causal
        and not attn.attn_scores_soft_cap > 0
        and not native.cfg.attn_only
    )


def _last_block_at(block, resid: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The block's output residual at query positions `rows` only: NativeBlock.forward with
    the queries (and everything after attention) restricted to those rows."""
    native, attn = block.original_component, block.attn.original_component
    x = native.ln1(resid)
    n, s, _ = x.shape
    m, heads, d_head = rows.shape[1], attn.n_heads, attn.d_head
    k = attn.k(x).view(n, s, heads, d_head).transpose(1, 2)
    v = attn.v(x).view(n, s, heads, d_head).transpose(1, 2)
    q = attn.q(_gather_rows(x, rows)).view(n, m, heads, d_head).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) / attn.scale  # [n, head, m, s]
    future = torch.arange(s, device=rows.device)[None, None, :] > rows[:, :, None]
    pattern = torch.softmax(scores.masked_fill(future[:, None], float("-inf")), dim=-1)
    z = torch.matmul(pattern, v).transpose(1, 2).reshape(n, m, heads * d_head)
    out = _gather_rows(resid, rows) + attn.o(z)
    return out + native.mlp(native.ln2(out))


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
