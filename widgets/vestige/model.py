"""The toy transformer: a TransformerLens native model behind a TransformerBridge."""

from __future__ import annotations

from transformer_lens import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from vestige.config import RunConfig
from vestige.task import TASKS


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
    )


def build_model(config: RunConfig, seed: int) -> TransformerBridge:
    """A freshly initialised model; the same (config, seed) always gives the same weights."""
    return TransformerBridge.boot_native(bridge_config(config, seed))
