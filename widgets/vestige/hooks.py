"""Hook names and the hooks the kit uses: caching, neuron ablation, suppression in training.

TransformerLens hook names and module paths are an implementation detail; call these
helpers instead of spelling them out, so a rename upstream is fixed in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from vestige.device import model_device

HookFn = Callable[[torch.Tensor, object], torch.Tensor]


def mlp_post(layer: int) -> str:
    """MLP activations after the nonlinearity: one value per neuron, [batch, seq, d_mlp]."""
    return f"blocks.{layer}.mlp.out.hook_in"


def attn_pattern(layer: int) -> str:
    """Attention probabilities, [batch, head, query, key]."""
    return f"blocks.{layer}.attn.hook_pattern"


def resid_pre(layer: int) -> str:
    """The residual stream entering block `layer`, [batch, seq, d_model]."""
    return f"blocks.{layer}.hook_in"


def resid_post(layer: int) -> str:
    """The residual stream after block `layer`, [batch, seq, d_model]."""
    return f"blocks.{layer}.hook_out"


def resid_mid(layer: int) -> str:
    """The residual stream between block `layer`'s attention and its MLP (the input of its
    second LayerNorm in a pre-LN block), [batch, seq, d_model]."""
    return f"blocks.{layer}.ln2.hook_in"


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
    tokens = tokens.to(model_device(model))  # the model's device (a no-op when it is there)
    logits, cache = model.run_with_cache(tokens, names_filter=names)
    return logits, {name: cache[name] for name in names}


def set_neurons(neurons: Sequence[int], values: torch.Tensor | float) -> HookFn:
    """A hook that overwrites the given neurons (last dim) with `values` (e.g. their means)."""
    index = torch.as_tensor(list(neurons), dtype=torch.long)

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        act = act.clone()
        act[..., index] = torch.as_tensor(values, dtype=act.dtype, device=act.device).expand(
            act[..., index].shape
        )
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


def _kit_block(block) -> bool:
    """Whether `block` is one of the kit's own (`vestige.model`), whatever its options."""
    from vestige.model import _LeanCausalAttention

    return type(block.attn.original_component) is _LeanCausalAttention


def _plain_block(block) -> bool:
    """Whether `block` is the kit's own pre-LN block (causal attention without rotary,
    grouped keys or soft-capping, then an MLP), which `_last_block_at` reproduces."""
    native = block.original_component
    attn = block.attn.original_component
    return (
        _kit_block(block)
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


def post_with_heads(
    model, layer: int, mid: torch.Tensor, z: torch.Tensor, new_z: torch.Tensor
) -> torch.Tensor | None:
    """Block `layer`'s output residual stream with its heads' `head_z` activations `z`
    replaced by `new_z`, from the clean run's `resid_mid` `mid`: the attention pattern, which
    the replacement does not change, is not recomputed. None unless the block is the kit's
    plain block (`_plain_block`); the caller then runs it with a hook instead."""
    block = model.blocks[layer]
    if not _plain_block(block):
        return None
    w_o = _leaf(block.attn.original_component.o).weight
    mid = mid + torch.nn.functional.linear((new_z - z).flatten(-2), w_o)
    native = block.original_component
    return mid + native.mlp(native.ln2(mid))


def post_with_neurons(
    model,
    layer: int,
    post: torch.Tensor,
    mlp: torch.Tensor,
    neurons: Sequence[int],
    values: torch.Tensor,
) -> torch.Tensor | None:
    """Block `layer`'s output residual stream with `neurons` of its MLP set to `values`, from
    the clean run's `resid_post` `post` and `mlp_post` `mlp`: what a neuron writes is linear in
    its activation, so only the change is added. None unless the block is the kit's plain
    block (`_plain_block`); the caller then runs it with a hook instead."""
    if not _plain_block(model.blocks[layer]):
        return None
    index = torch.as_tensor(list(neurons), dtype=torch.long, device=mlp.device)
    change = values.expand(mlp.shape[:-1] + index.shape) - mlp[..., index]
    return post + change @ mlp_out_weight(model, layer)[:, index].T


def _leaf(module):
    """The plain torch module under a TransformerLens bridge (the module itself if none)."""
    while getattr(module, "original_component", None) is not None:
        module = module.original_component
    return module


class _RankOneNorm:
    """A LayerNorm, then linear maps, of resid + delta * direction for many directions, exactly.

    With x = r + d w at one position (r the residual, w a direction, d a scalar),
    x - mean(x) = r~ + d w~ (r~, w~ centred) and var(x) = var(r) + 2 d cov(r, w) + d^2 var(w),
    so a linear map M (weight, bias) after a LayerNorm (gamma, beta, eps) gives

        M(LN(x)) = A / sigma + (d / sigma) B + c,   sigma = sqrt(var(x) + eps),

    A = (r~ * gamma) M^T shared by every direction, B = (w~ * gamma) M^T one vector per
    direction, c = beta M^T + bias. Nothing per direction and position runs over d_model
    but sigma, and that is three terms of which only cov(r, w) depends on both (one matmul for
    every direction at once). Exact algebra: only float rounding differs from the LayerNorm.
    """

    def __init__(self, norm: torch.nn.LayerNorm, resid: torch.Tensor, directions: torch.Tensor):
        """`resid` [batch, pos, d_model], `directions` [n, d_model]."""
        centred = resid - resid.mean(-1, keepdim=True)
        w = directions - directions.mean(-1, keepdim=True)
        self.var = centred.pow(2).mean(-1)  # [batch, pos]
        self.var_w = w.pow(2).mean(-1)  # [n]
        self.cov2 = (2 / resid.shape[-1]) * torch.einsum("bpd,nd->nbp", centred, w)
        self.eps = norm.eps
        gamma = torch.ones_like(w[0]) if norm.weight is None else norm.weight
        self.beta = torch.zeros_like(w[0]) if norm.bias is None else norm.bias
        self.scaled, self.scaled_w = centred * gamma, w * gamma

    def project(
        self, weight: torch.Tensor, bias: torch.Tensor | None, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A [batch, pos (or rows), out], B [n, out] and c [out] of the map x W^T + bias."""
        scaled = self.scaled if rows is None else _gather_rows(self.scaled, rows)
        c = self.beta @ weight.T
        return scaled @ weight.T, self.scaled_w @ weight.T, c if bias is None else c + bias

    def inv_sigma(self, n: int, delta: torch.Tensor) -> torch.Tensor:
        """1 / sigma [batch, pos] of resid + delta * direction n (delta [batch, pos])."""
        return torch.rsqrt(self.var + delta * (self.cov2[n] + delta * self.var_w[n]) + self.eps)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[..., pos, heads * d_head] -> [..., heads, pos, d_head], contiguous."""
    return x.unflatten(-1, (heads, -1)).transpose(-3, -2).contiguous()


class RankOneSweep:
    """run_from(model, layer, resid + delta * directions[n], rows) for many directions n,
    sharing what does not depend on n (n: e.g. each neuron of block layer - 1, ablated).

    If block `layer` is a plain block behind a LayerNorm (see `covers`), its queries, keys
    and values come from `_RankOneNorm`: no LayerNorm, W_Q, W_K or W_V pass per direction.
    Attention, the rest of that block and the later blocks run per direction, at the query
    rows only if nothing after mixes positions (the last block), else at every position. Past
    the last block (layer == n_layers) the logits themselves are A / sigma + (d / sigma) B + c
    through ln_final and the unembedding. Exact but for float rounding. Hooks on the modules
    replaced by algebra (ln1, q, k, v, attention; ln_final and unembed past the last block)
    do not run.
    """

    def __init__(
        self, model, layer: int, resid: torch.Tensor, directions: torch.Tensor, rows: torch.Tensor
    ):
        """`resid` [batch, seq, d_model] enters block `layer`; `directions` [n, d_model];
        `rows` [batch, m] (long): the query positions whose logits are wanted."""
        self.model, self.layer, self.rows, self.directions = model, layer, rows, directions
        self.n_layers = len(model.blocks)
        if layer == self.n_layers:
            self._prepare_unembedding(resid)
        else:
            self._prepare_block(model.blocks[layer], resid)

    @staticmethod
    def covers(model, layer: int) -> bool:
        """Whether the sweep can start at block `layer`: a LayerNorm then a plain block
        (`_plain_block`), or, past the last block of the kit's own model, a LayerNorm then a
        linear unembedding. Any other model (a checkpoint suite's) keeps the passes."""
        if layer == len(model.blocks):  # the kit's own models only (a suite's: the passes)
            return (
                _kit_block(model.blocks[-1])
                and type(_leaf(model.ln_final)) is torch.nn.LayerNorm
                and isinstance(_leaf(model.unembed), torch.nn.Linear)
            )
        block = model.blocks[layer]  # a plain block is the kit's own: it has ln1
        return (
            _plain_block(block) and type(_leaf(block.original_component.ln1)) is torch.nn.LayerNorm
        )

    def logits(self, n: int, delta: torch.Tensor) -> torch.Tensor:
        """Logits [batch, m, vocab] at `rows` with delta [batch, seq] * directions[n] added."""
        if self.layer == self.n_layers:
            delta = delta.gather(1, self.rows)
            inv = self.norm.inv_sigma(n, delta)[..., None]
            a, b, c = self.unembedding
            return torch.addcmul(c, inv, a).addcmul_(delta[..., None] * inv, b[n])
        out = self._block_at_queries(n, delta)
        if self.layer == self.n_layers - 1:
            return self.model.unembed(self.model.ln_final(out))
        return run_from(self.model, self.layer + 1, out, self.rows)

    def _prepare_unembedding(self, resid: torch.Tensor) -> None:
        self.norm = _RankOneNorm(
            _leaf(self.model.ln_final), _gather_rows(resid, self.rows), self.directions
        )
        unembed = _leaf(self.model.unembed)
        self.unembedding = self.norm.project(unembed.weight, unembed.bias)

    def _prepare_block(self, block, resid: torch.Tensor) -> None:
        self.native, self.attn = block.original_component, block.attn.original_component
        batch, seq, _ = resid.shape
        heads, last = self.attn.n_heads, self.layer == self.n_layers - 1
        self.queries = (
            self.rows if last else torch.arange(seq, device=resid.device).expand(batch, -1)
        )
        self.norm = _RankOneNorm(_leaf(self.native.ln1), resid, self.directions)
        k, v, q, o = (_leaf(getattr(self.attn, name)) for name in "kvqo")
        # keys and values together: A [2, batch, head, seq, d_head], B [n, 2, 1, head, 1,
        # d_head], c [2, 1, head, 1, d_head]
        a, b, c = self.norm.project(torch.cat([k.weight, v.weight]), torch.cat([k.bias, v.bias]))
        self.kv_a = a.unflatten(-1, (2, heads, -1)).permute(2, 0, 3, 1, 4).contiguous()
        self.kv_b = b.view(len(self.directions), 2, 1, heads, 1, -1)
        self.kv_c = c.view(2, 1, heads, 1, -1)
        # queries at the query rows, scaled by 1 / attn.scale: [batch, head, m, d_head], ...
        a, b, c = (x / self.attn.scale for x in self.norm.project(q.weight, q.bias, self.queries))
        self.q_a = _heads(a, heads)
        self.q_b, self.q_c = b.unflatten(-1, (heads, 1, -1)), c.view(heads, 1, -1)
        future = torch.arange(seq, device=resid.device)[None, None, :] > self.queries[:, :, None]
        mask = torch.zeros(future.shape, dtype=resid.dtype, device=resid.device)
        mask = mask.masked_fill(future, -torch.inf)
        self.mask = mask[:, None]  # [batch, 1, m, seq]: added to the attention scores
        self.w_o = o.weight
        self.resid_o = _gather_rows(resid, self.queries) + (0 if o.bias is None else o.bias)

    def _block_at_queries(self, n: int, delta: torch.Tensor) -> torch.Tensor:
        """The block's output residual stream at its query rows, [batch, m, d_model]."""
        inv = self.norm.inv_sigma(n, delta)
        scaled = (delta * inv)[None, :, None, :, None]
        kv = torch.addcmul(self.kv_c, inv[None, :, None, :, None], self.kv_a)
        k, v = kv.addcmul_(scaled, self.kv_b[n])
        inv_q, delta_q = inv.gather(1, self.queries), delta.gather(1, self.queries)
        q = torch.addcmul(self.q_c, inv_q[:, None, :, None], self.q_a)
        q = q.addcmul_((delta_q * inv_q)[:, None, :, None], self.q_b[n])
        scores = torch.matmul(q, k.transpose(-2, -1)).add_(self.mask)
        z = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).flatten(2)
        # resid + delta * direction + W_O z + b_O at the query rows, b_O already in resid_o
        out = torch.addcmul(self.resid_o, delta_q[..., None], self.directions[n])
        out = torch.addmm(out.flatten(0, 1), z.flatten(0, 1), self.w_o.T).view(out.shape)
        return out + self.native.mlp(self.native.ln2(out))


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
        torch.zeros(1, vectors.shape[-1], device=vectors.device)
    )
