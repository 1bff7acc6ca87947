"""Seed-batched training: K seeds of one config as one `vmap`'d model on one device.

Where a GPU makes it pay (on one CPU thread it does not: `make bench`, section 2), the seeds
train together: their weights are stacked (`torch.func.stack_module_state`), each step's
gradients come from `vmap(grad(...))` over `functional_call` of the bridge, and one AdamW
updates the stacked weights (AdamW is elementwise, so that is K AdamWs). Each seed's run is
written as `vestige.training.train` writes it (checkpoints, metrics, training state), so it
opens, analyses, resumes and forks like any run; it equals the single-seed run to float
tolerance, not bit for bit (the batched kernels round differently).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from vestige.config import RunConfig
from vestige.device import batch_on, resolve_device
from vestige.metrics import per_position_loss
from vestige.runs import Runs, seed_dir
from vestige.training import Session, learning_rate, prepare_dir, summaries


def train_seeds(
    config: RunConfig,
    seeds: list[int],
    out: str | os.PathLike,
    device: str | torch.device = "cpu",
) -> Runs:
    """Train `seeds` of `config` together into ``out/seed-<k>`` and return them as `Runs`.
    Fresh runs only, without interventions (their hooks are not batched)."""
    if config.interventions:
        raise ValueError("seed batching trains configs without interventions; use train()")
    config.validate()
    device, out = resolve_device(device), Path(out)
    for seed in seeds:
        prepare_dir(config, seed, seed_dir(out, seed), resume=False)
    sessions, rngs = [], []  # each seed's session seeds the global RNG: keep each one's state
    for seed in seeds:
        sessions.append(Session.begin(config, seed, seed_dir(out, seed), 0, device))
        rngs.append(torch.get_rng_state())
    models = [s.model for s in sessions]
    params, buffers = stack_module_state(models)
    optimizer = torch.optim.AdamW(
        list(params.values()),
        lr=config.train.lr,
        betas=config.train.betas,
        weight_decay=config.train.weight_decay,
    )
    gradients = vmap(
        grad(_loss(copy.deepcopy(models[0]).to("meta", print_details=False)), has_aux=True)
    )
    for step in range(config.train.steps + 1):
        last = step == config.train.steps
        if last or sessions[0].saves_at(step):
            for k, session in enumerate(sessions):
                _unstack(params, optimizer, session, k)
                torch.set_rng_state(rngs[k])
                session.save_point(step, force=last)
        if last:
            break
        batches = [
            batch_on(s.task.train_batch(step, config.train.batch_size), device) for s in sessions
        ]
        tokens = torch.stack([b.tokens for b in batches])
        mask = torch.stack([b.loss_mask for b in batches])
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        grads, (loss_at, correct_at) = gradients(params, buffers, tokens, mask)
        for name, g in grads.items():
            params[name].grad = g
        optimizer.step()
        if step % config.train.log_every == 0:
            for k, (session, batch) in enumerate(zip(sessions, batches)):
                record = {"split": "train", "step": step, "lr": lr}
                record.update(summaries(loss_at[k], correct_at[k], batch, session.task))
                session.records.append(record)
    return Runs.open(out, device=device)


def _loss(base):
    """The kit's masked mean loss of one seed's weights (p, b), with its per-position loss
    and correctness as the auxiliary output."""

    def loss(p, b, tokens, mask):
        loss_at, correct_at = per_position_loss(functional_call(base, (p, b), (tokens,)), tokens)
        weights = mask.to(loss_at.dtype)
        total = (loss_at * weights).sum() / weights.sum()
        return total, (loss_at.detach(), correct_at.detach())

    return loss


@torch.no_grad()
def _unstack(params: dict, optimizer: torch.optim.Optimizer, session: Session, k: int) -> None:
    """Copy seed `k`'s slice of the stacked weights and AdamW state into its session's model
    and optimiser, so the session saves exactly what a single-seed run would."""
    own = dict(session.model.named_parameters())
    for group in session.optimizer.param_groups:
        group["lr"] = optimizer.param_groups[0]["lr"]
    for name, stacked in params.items():
        own[name].copy_(stacked[k])
        state = optimizer.state.get(stacked)
        if state:
            session.optimizer.state[own[name]] = {
                "step": state["step"].clone(),
                "exp_avg": state["exp_avg"][k].clone(),
                "exp_avg_sq": state["exp_avg_sq"][k].clone(),
            }
