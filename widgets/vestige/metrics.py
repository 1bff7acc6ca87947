"""Per-neuron measures: class selectivity (with a shuffled-label baseline) and ablation effects.

Selectivity is Leavitt & Morcos's class selectivity index (ICLR 2021),
SI = (mu_max - mu_rest) / (mu_max + mu_rest), from mean activations per class. It is
meant for non-negative activations (ReLU), where it lies in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vestige.device import batch_on, model_device
from vestige.hooks import (
    RankOneSweep,
    cache_activations,
    mlp_out_weight,
    mlp_post,
    resid_post,
    run_from,
)
from vestige.task import Batch

EPS = 1e-7
ABLATIONS = ("mean", "zero", "resample")


def class_means(acts: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean activation per class: acts [..., d] with labels [...] -> [d, n_classes].

    Differentiable (used live by the selectivity regulariser). A class with no positions
    gets a mean of 0.
    """
    flat = acts.reshape(-1, acts.shape[-1])
    onehot = F.one_hot(labels.reshape(-1), n_classes).to(flat.dtype)
    counts = onehot.sum(0).clamp(min=1)
    return (flat.T @ onehot) / counts


def selectivity_index(means: torch.Tensor) -> torch.Tensor:
    """SI per neuron from class means [d, n_classes] -> [d]; 0 for a silent neuron."""
    n_classes = means.shape[-1]
    top = means.max(dim=-1).values
    rest = (means.sum(dim=-1) - top) / max(n_classes - 1, 1)
    return (top - rest) / (top + rest + EPS)


def contrast_selectivity(
    acts: torch.Tensor, focus: torch.Tensor, other: torch.Tensor
) -> torch.Tensor:
    """SI between two sets of positions, [d]: (mu_focus - mu_other) / (mu_focus + mu_other).

    With `other` the positions that hold the same current tokens as `focus` (e.g. a lone B
    against B after A), token identity alone cannot make a neuron selective."""
    flat = acts.reshape(-1, acts.shape[-1])
    mu_focus = flat[focus.reshape(-1)].mean(0)
    mu_other = flat[other.reshape(-1)].mean(0)
    return (mu_focus - mu_other) / (mu_focus + mu_other + EPS)


def firing_fraction(acts: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Fraction of the positions in `where` at which each neuron fires (is > 0), [d]."""
    flat = acts.reshape(-1, acts.shape[-1])[where.reshape(-1)]
    return (flat > 0).to(acts.dtype).mean(0)


def same_token_positions(tokens: torch.Tensor, focus: torch.Tensor) -> torch.Tensor:
    """Positions outside `focus` whose current token also occurs at a `focus` position."""
    return torch.isin(tokens, tokens[focus].unique()) & ~focus


def shuffled_selectivity(
    acts: torch.Tensor, labels: torch.Tensor, n_classes: int, n_shuffles: int = 8, seed: int = 0
) -> torch.Tensor:
    """SI of every neuron under `n_shuffles` random permutations of the position labels:
    [n_shuffles, d]. The index is biased upward (more so with many classes or rare
    classes); its quantiles are the baseline a real neuron must beat."""
    gen = torch.Generator().manual_seed(seed)
    flat_labels = labels.reshape(-1)
    out = []
    for _ in range(n_shuffles):
        perm = torch.randperm(flat_labels.numel(), generator=gen)
        out.append(
            selectivity_index(class_means(acts, flat_labels[perm].view_as(labels), n_classes))
        )
    return torch.stack(out)


def per_position_loss(
    logits: torch.Tensor, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss and correctness at each position: ([batch, seq], [batch, seq]).

    The last position predicts nothing and gets loss 0."""
    pred = logits[:, :-1]
    target = tokens[:, 1:]
    loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none")
    correct = (pred.argmax(-1) == target).to(loss.dtype)
    pad = torch.zeros(tokens.shape[0], 1, dtype=loss.dtype, device=loss.device)
    return (
        torch.cat([loss.view_as(target), pad], dim=1),
        torch.cat([correct.view_as(target), pad], dim=1),
    )


@torch.no_grad()
def ablation_values(acts: torch.Tensor, mode: str, seed: int = 0) -> torch.Tensor:
    """What each neuron is replaced by: its mean over all positions [d], zeros [d], or
    (resample) its activations in other examples of the batch [d, batch, seq]."""
    if mode == "mean":
        return acts.reshape(-1, acts.shape[-1]).mean(0)
    if mode == "zero":
        return torch.zeros(acts.shape[-1], dtype=acts.dtype, device=acts.device)
    if mode == "resample":
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(acts.shape[0], generator=gen)
        return acts[perm].permute(2, 0, 1)
    raise ValueError(f"ablation mode must be one of {list(ABLATIONS)}, got {mode!r}")


def logit_margin(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Target logit minus the mean logit at each position, [batch, seq] (0 at the last).

    Unlike the loss it does not saturate: a component that still pushes the right answer
    shows up here even when the prediction is already certain without it."""
    pred = logits[:, :-1]
    target = pred.gather(-1, tokens[:, 1:, None])[..., 0]
    margin = target - pred.mean(-1)
    pad = torch.zeros(tokens.shape[0], 1, dtype=margin.dtype, device=margin.device)
    return torch.cat([margin, pad], dim=1)


class Ablated(NamedTuple):
    """Per-position outcomes with each neuron ablated alone: [n_neurons, batch, seq] each."""

    loss: torch.Tensor
    correct: torch.Tensor
    margin: torch.Tensor


@torch.no_grad()
def ablate_neurons(
    model,
    batch: Batch,
    layer: int,
    neurons: Sequence[int],
    values: torch.Tensor,
    max_sequences: int = 512,
    cache: dict[str, torch.Tensor] | None = None,
    where: torch.Tensor | None = None,
) -> Ablated:
    """Loss, correctness and logit margin at every position with each neuron of `layer`
    ablated alone. `values` is what each neuron is set to, indexed by neuron ([d] or
    [d, batch, seq], see `ablation_values`). `where` [batch, seq] (bool): only these
    positions are wanted (the others hold 0), which lets the last block skip the rest.

    Exact: a neuron's ablation changes the residual stream after its block by
    (value - activation) * W_out[:, neuron] and nothing before it, so the stream is cached
    once and only the later blocks run. Where the next block allows it
    (`RankOneSweep.covers`), that rank-one change goes through its LayerNorm and W_Q, W_K,
    W_V algebraically, shared by every neuron; otherwise the later blocks run on the changed
    stream, for several neurons per forward pass (at most `max_sequences` sequences each).
    `cache` may hold the activations already (from `cache_activations` with
    `mlp_post(layer)` and `resid_post(layer)`).
    """
    neurons = list(neurons)
    device = model_device(model)
    batch = batch_on(batch, device)
    where = None if where is None else where.to(device)
    names = [mlp_post(layer), resid_post(layer)]
    if cache is None or not all(name in cache for name in names):
        cache = cache_activations(model, batch.tokens, names)[1]
    mlp, resid = cache[mlp_post(layer)], cache[resid_post(layer)]
    directions = mlp_out_weight(model, layer)[:, neurons].T
    changes = _changes(mlp, values, neurons)  # [neurons, batch, seq]
    if not RankOneSweep.covers(model, layer + 1):
        return _ablate_by_passes(
            model, batch, layer, resid, directions, changes, max_sequences, where
        )
    where = _predicting(batch.tokens) if where is None else where
    rows = wanted_rows(where)
    sweep = RankOneSweep(model, layer + 1, resid, directions, rows)
    parts = [
        outcomes_at(sweep.logits(i, change), batch.tokens, rows, where)
        for i, change in enumerate(changes)
    ]
    return Ablated(*(torch.stack(part) for part in zip(*parts)))


def _changes(mlp: torch.Tensor, values: torch.Tensor, neurons: list[int]) -> torch.Tensor:
    """value - activation of each neuron, [neurons, batch, seq] (values [d] or [d, batch, seq])."""
    index = torch.as_tensor(neurons, dtype=torch.long)
    target = values[index].reshape(-1, 1, 1) if values.dim() == 1 else values[index]
    return target - mlp[..., index].permute(2, 0, 1)


def _predicting(tokens: torch.Tensor) -> torch.Tensor:
    """Every position but the last (which predicts nothing), [batch, seq]."""
    where = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)
    where[:, -1] = False
    return where


def _ablate_by_passes(
    model,
    batch: Batch,
    layer: int,
    resid: torch.Tensor,
    directions: torch.Tensor,
    changes: torch.Tensor,
    max_sequences: int,
    where: torch.Tensor | None,
) -> Ablated:
    """`ablate_neurons` by forward passes of the later blocks on the changed stream, for
    several neurons per pass (any model)."""
    rows = None if where is None else wanted_rows(where)
    per_pass = max(1, max_sequences // len(batch))
    parts: list[Ablated] = []
    for start in range(0, len(changes), per_pass):
        change, direction = changes[start : start + per_pass], directions[start : start + per_pass]
        stream = resid[None] + change[..., None] * direction[:, None, None, :]
        stream = stream.reshape(-1, *resid.shape[1:])
        tokens = batch.tokens.repeat(len(change), 1)
        if rows is None:
            logits = run_from(model, layer + 1, stream)
            loss, correct = per_position_loss(logits, tokens)
            margin = logit_margin(logits, tokens)
        else:
            group_rows = rows.repeat(len(change), 1)
            logits = run_from(model, layer + 1, stream, group_rows)
            loss, correct, margin = outcomes_at(
                logits, tokens, group_rows, where.repeat(len(change), 1)
            )
        shape = (len(change), *batch.tokens.shape)
        parts.append(Ablated(loss.view(shape), correct.view(shape), margin.view(shape)))
    return Ablated(*(torch.cat(part) for part in zip(*parts)))


def wanted_rows(where: torch.Tensor) -> torch.Tensor:
    """The positions marked in `where` [batch, seq], as [batch, m] indices (m: the most in
    any sequence; shorter rows are padded with unmarked positions)."""
    seq = where.shape[1]
    order = torch.argsort(
        (~where).to(torch.int64) * seq + torch.arange(seq, device=where.device), dim=1
    )
    return order[:, : max(int(where.sum(1).max()), 1)]


def outcomes_at(
    logits: torch.Tensor, tokens: torch.Tensor, rows: torch.Tensor, where: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, correctness and logit margin [batch, seq] from the logits at `rows` only
    (logits [batch, m, vocab], see `wanted_rows`); 0 outside `where`."""
    if bool(where[:, -1].any()):
        raise ValueError("the last position predicts nothing: it cannot be wanted")
    target = tokens.gather(1, (rows + 1).clamp(max=tokens.shape[1] - 1))
    # the cross-entropy and the correctness from one max over the vocabulary (amax: several
    # times faster than argmax or F.cross_entropy here); correct means the target's logit is
    # the largest, so an exact tie (which float rounding decides anyway) counts as correct
    top = logits.amax(-1)
    picked = logits.gather(-1, target[..., None])[..., 0]
    loss = (logits - top[..., None]).exp_().sum(-1).log_().add_(top).sub_(picked)
    correct = (picked >= top).to(loss.dtype)
    margin = picked - logits.mean(-1)
    keep = where.gather(1, rows).to(loss.dtype)
    out = []
    for value in (loss, correct, margin):
        full = torch.zeros(tokens.shape, dtype=value.dtype, device=value.device)
        out.append(full.scatter(1, rows, value * keep))
    return tuple(out)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values [..., batch, seq] over positions where mask [batch, seq] is True."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim=(-2, -1)) / mask.sum().clamp(min=1)
