"""Where the work runs: `--device auto|cpu|cuda` and the same `device=` in Python.

A model, its batches and its hooks live on one device. Checkpoints are always written from
CPU tensors, so a run trained on a GPU opens anywhere. On CPU nothing changes: the same
config and seed give bit-identical runs and tables with or without `device="cpu"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the CLI parses without it
    import torch

    from vestige.task import Batch

DEVICES = ("auto", "cpu", "cuda")
DEVICE_HELP = (
    "where models, batches and hooks live: auto (cuda when available, else cpu), cpu or "
    "cuda (default cpu: bit-identical to runs trained before --device existed)"
)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device `name` stands for: "auto" is cuda when available, else cpu."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    kind = name.split(":")[0]
    if kind not in DEVICES or (kind == "auto" and name != "auto"):
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} asked for, but torch sees no CUDA GPU here (torch "
            f"{torch.__version__}); use --device cpu (device='cpu') or --device auto"
        )
    return torch.device(name)


def model_device(model) -> torch.device:
    """The device a model's parameters are on (what analysis moves its batches to)."""
    return next(model.parameters()).device


def batch_on(batch: Batch, device: torch.device) -> Batch:
    """`batch` with its tensors on `device` (the same object when they are there already)."""
    from vestige.task import Batch

    if batch.tokens.device == device:
        return batch
    return Batch(*(t.to(device) for t in (batch.tokens, batch.loss_mask, batch.labels)))
