"""The toy transformer: a TransformerLens native model behind a TransformerBridge.

Built the way TransformerBridge.boot_native builds it (NativeModel + initialize_native_model +
build_bridge_from_module, all public TransformerLens API), with two kit-owned pieces that keep
every hook, weight name and output but drop work the kit's training step does not need:

- `layer_norm_folding=True`: the only effect in TL 4.3 is that NormalizationBridge runs the
  wrapped nn.LayerNorm (fused F.layer_norm forward and backward) instead of its from-scratch
  python LayerNorm. Nothing is folded; hook_scale / hook_normalized still fire.
- `_LeanCausalAttention`: NativeAttention without the post-softmax masked_fill (a no-op for
  causal attention without a padding mask: softmax already gives exact zeros there).
- `_FastLayerNormBridge`: skips the hook_scale / hook_normalized statistics when neither has a
  hook attached; with a hook attached it is exactly NormalizationBridge.

Same weights, state_dict and hook names as boot_native; outputs bit-identical to boot_native
with layer_norm_folding=True, and within float32 rounding (~1e-6) of the python LayerNorm.

Why (profiled on the reference shape, one thread): the stock bridge trains at 0.73-0.77 of a
plain PyTorch model of the same shape, TransformerLens's native module alone at 0.91-0.95;
config switches reach ~0.85 (only layer_norm_folding helps; torch.compile is slower). This
module reaches 0.93 (`make bench`). Upstream, the stock bridge would get there if
NormalizationBridge used the fused LayerNorm by default and skipped statistics no hook reads,
and NativeAttention dropped its redundant post-softmax masked_fill.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from transformer_lens import TransformerBridgeConfig
from transformer_lens.hook_points import HookPoint
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.generalized_components.normalization import NormalizationBridge
from transformer_lens.model_bridge.sources import build_bridge_from_module
from transformer_lens.model_bridge.sources.native import (
    NativeAttention,
    NativeModel,
    initialize_native_model,
)

from vestige.config import RunConfig
from vestige.device import resolve_device
from vestige.task import TASKS

NOISE_SEED = 7 * 10**6  # the perturbation's generator: seeds unrelated to the init's


def bridge_config(config: RunConfig, seed: int) -> TransformerBridgeConfig:
    """The TransformerLens config of the model described by `config`, initialised from `seed`."""
    m = config.model
    task = TASKS[config.task.name]
    params = {**task.defaults, **config.task.params}
    return TransformerBridgeConfig(
        n_layers=m.n_layers,
        d_model=m.d_model,
        n_heads=m.n_heads,
        d_head=m.d_model // m.n_heads,
        d_mlp=m.d_mlp,
        act_fn=m.act_fn,
        normalization_type=m.normalization_type,
        n_ctx=int(params["seq_len"]),
        d_vocab=int(params["vocab"]),
        seed=seed,
        layer_norm_folding=True,  # fused LayerNorm in the bridge; folds nothing (see docstring)
        **({} if m.init_range is None else {"initializer_range": m.init_range}),
    )


def _hooked(hook: Any) -> bool:
    """Whether anything is attached to a HookPoint (TL hooks or raw torch hooks)."""
    if not isinstance(hook, HookPoint):
        return hook is not None
    return bool(
        hook.has_hooks()
        or hook._forward_hooks
        or hook._forward_pre_hooks
        or hook._backward_hooks
        or hook._backward_pre_hooks
    )


class _LeanCausalAttention(NativeAttention):
    """NativeAttention minus the redundant post-softmax masked_fill on the causal, unpadded
    path; every other case (padding mask, rotary, GQA, soft-cap) is NativeAttention itself."""

    def forward(
        self, hidden_states, attention_mask=None, position_ids=None, pattern_fn=None, **kwargs
    ):
        if (
            attention_mask is not None
            or self.rotary is not None
            or self.kv_repeats != 1
            or not self.causal
            or self.attn_scores_soft_cap > 0
        ):
            return super().forward(
                hidden_states, attention_mask, position_ids, pattern_fn, **kwargs
            )
        b, s, _ = hidden_states.shape
        q = self.q(hidden_states).view(b, s, self.n_heads, self.d_head).transpose(1, 2)
        k = self.k(hidden_states).view(b, s, self.n_heads, self.d_head).transpose(1, 2)
        v = self.v(hidden_states).view(b, s, self.n_heads, self.d_head).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / self.scale
        pattern = F.softmax(scores.masked_fill(self.causal_mask[:s, :s], float("-inf")), dim=-1)
        if pattern_fn is not None:
            pattern = pattern_fn(pattern)  # the bridge's hook_pattern, as in NativeAttention
        z = torch.matmul(pattern, v).transpose(1, 2).contiguous().view(b, s, -1)
        return self.o(z), pattern


class _FastLayerNormBridge(NormalizationBridge):
    """NormalizationBridge that only runs the wrapped LayerNorm when hook_scale and
    hook_normalized have no hooks; otherwise exactly NormalizationBridge.forward."""

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        if (
            _hooked(self.hook_scale)
            or _hooked(self.hook_normalized)
            or not isinstance(self.original_component, torch.nn.LayerNorm)
        ):
            return super().forward(hidden_states, **kwargs)
        return self.hook_out(self.original_component(self.hook_in(hidden_states)))


def _fast_norms(adapter) -> None:
    """post_adapter_hook: swap the plain LayerNorm bridges for _FastLayerNormBridge."""

    def fast(bridge):
        if type(bridge) is not NormalizationBridge:  # RMS / LNPre / no norm keep theirs
            return bridge
        return _FastLayerNormBridge(name=bridge.name, config=bridge.config)

    mapping = adapter.component_mapping
    mapping["ln_final"] = fast(mapping["ln_final"])
    block = mapping["blocks"].submodules
    for key in ("ln1", "ln2"):
        if key in block:
            block[key] = fast(block[key])


def build_model(
    config: RunConfig, seed: int, device: str | torch.device = "cpu"
) -> TransformerBridge:
    """A freshly initialised model on `device` (see `vestige.device.resolve_device`); the same
    (config, seed) always gives the same weights, on any device (they are drawn on the CPU)."""
    cfg = copy.deepcopy(bridge_config(config, seed))
    with torch.random.fork_rng(devices=[]):  # as boot_native: seeded init, caller's RNG untouched
        model = NativeModel(cfg)
        initialize_native_model(model, cfg)
    if config.model.init_noise:  # a perturbed copy of the same initialisation
        noise = torch.Generator().manual_seed(NOISE_SEED + seed)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=noise) * config.model.init_noise)
    for layer in model.layers:
        layer.attn.__class__ = _LeanCausalAttention
    bridge = build_bridge_from_module(
        model,
        architecture="TransformerLensNative",
        tl_config=cfg,
        model_name="native",
        post_adapter_hook=_fast_norms,
    )
    target = resolve_device(device)
    return bridge if target.type == "cpu" else bridge.to(target, print_details=False)
