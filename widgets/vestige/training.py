"""The training loop: deterministic, checkpointed, resumable, with interventions via hooks.

Same config and seed give bit-identical checkpoints on one machine (and thread setting). A
run killed at any moment resumes from its last saved state and ends bit-identical to one
that was never interrupted, because every batch is a pure function of (seed, step) and the
state file holds the weights, the optimiser moments and the RNG state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from vestige.config import RunConfig, SelectivityPenalty, Suppress
from vestige.hooks import mlp_post, suppress_hook
from vestige.metrics import class_means, per_position_loss, selectivity_index
from vestige.model import build_model
from vestige.runs import (
    Run,
    RunError,
    checkpoint_path,
    load_safetensors,
    read_config,
    read_metrics,
    save_safetensors,
    write_config,
    write_metrics,
)
from vestige.task import Batch, Task, make_task

STATE_FILE = Path("state") / "latest.safetensors"


def train(
    config: RunConfig,
    seed: int,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Run:
    """Train one seed of `config` into the run directory `out` and return the opened Run.

    `resume=True` continues an interrupted run (and returns a finished one unchanged); without
    it an existing run in `out` is an error, so nothing saved is overwritten. `stop_after`
    ends training early after that many steps (the run can be resumed later).
    """
    out = Path(out)
    config.validate()
    start = _prepare_dir(config, seed, out, resume)
    task = make_task(config.task.name, config.task.params, seed)
    model = build_model(config, seed)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.train.lr,
        betas=config.train.betas,
        weight_decay=config.train.weight_decay,
    )
    records: list[dict[str, Any]] = []
    if start > 0:
        _load_state(out, model, optimizer)
        records = [
            r
            for r in read_metrics(out)
            if r["step"] < start or (r["split"] == "eval" and r["step"] == start)
        ]
    else:
        torch.manual_seed(seed)

    total = config.train.steps
    end = total if stop_after is None else min(total, start + stop_after)
    eval_batch = task.eval_batch(config.task.eval_size)
    bar = tqdm(total=total, initial=start, disable=not progress, desc=f"seed {seed}", unit="step")
    with bar:
        for step in range(start, end):
            if step > start or step == 0:  # the state at `start` is on disk already
                _save_point(out, config, model, optimizer, step, eval_batch, task, records)
            record = _train_step(config, model, optimizer, task, step)
            if step % config.train.log_every == 0:
                records.append(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", refresh=False)
            bar.update(1)
        if end > start:
            _save_point(out, config, model, optimizer, end, eval_batch, task, records, force=True)
    return Run.open(out)


def _prepare_dir(config: RunConfig, seed: int, out: Path, resume: bool) -> int:
    """Create or check the run directory; return the step to start from."""
    if not (out / "config.json").exists():
        if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise RunError(f"{out} exists and is not a run directory; choose an empty or new --out")
        write_config(out, config, seed)
        return 0
    existing, existing_seed = read_config(out)
    if not resume:
        raise RunError(
            f"{out} already holds a run; pass --resume (resume=True) to continue it, "
            "or choose another --out"
        )
    if existing != config or existing_seed != seed:
        raise RunError(
            f"{out} holds a run of another config or seed (seed {existing_seed}); "
            "resume it with its own config (`--config DIR/config.json`) or choose another --out"
        )
    state = out / STATE_FILE
    if not state.exists():
        return 0
    _, meta = load_safetensors(state, "Delete the state/ folder to restart this run from step 0.")
    return int(meta["step"])


def _active(intervention: Suppress | SelectivityPenalty, step: int) -> bool:
    return intervention.start <= step and (intervention.end is None or step < intervention.end)


def _train_step(
    config: RunConfig, model, optimizer: torch.optim.Optimizer, task: Task, step: int
) -> dict[str, Any]:
    batch = task.train_batch(step, config.train.batch_size)
    lr = _lr(config, step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    live: dict[int, torch.Tensor] = {}
    hooks = _intervention_hooks(config, step, live)
    logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks) if hooks else model(batch.tokens)
    loss_at, correct_at = per_position_loss(logits, batch.tokens)
    mask = batch.loss_mask.to(loss_at.dtype)
    ce = (loss_at * mask).sum() / mask.sum()
    loss = ce
    record: dict[str, Any] = {"split": "train", "step": step, "lr": lr}
    penalty = next((i for i in config.interventions if isinstance(i, SelectivityPenalty)), None)
    if penalty is not None and _active(penalty, step):
        si = torch.stack(
            [
                selectivity_index(class_means(acts, batch.labels, len(task.class_names))).mean()
                for acts in live.values()
            ]
        ).mean()
        loss = ce - penalty.alpha * si
        record["selectivity"] = si.item()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    record.update(_summaries(loss_at.detach(), correct_at, batch, task))
    return record


def _lr(config: RunConfig, step: int) -> float:
    warmup = config.train.warmup_steps
    return config.train.lr * (min(1.0, (step + 1) / warmup) if warmup else 1.0)


def _intervention_hooks(config: RunConfig, step: int, live: dict[int, torch.Tensor]) -> list:
    """Forward hooks for this step: suppressions, then capture of live activations."""
    hooks = []
    for i in config.interventions:
        if isinstance(i, Suppress) and _active(i, step):
            hooks.append((mlp_post(i.layer), suppress_hook(i.neurons, i.mode)))
    for i in config.interventions:
        if isinstance(i, SelectivityPenalty) and _active(i, step):
            for layer in i.layers or range(config.model.n_layers):
                hooks.append((mlp_post(layer), _capture(live, layer)))
    return hooks


def _capture(live: dict[int, torch.Tensor], layer: int):
    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        live[layer] = act  # not detached: the regulariser's gradient flows through it
        return act

    return hook


def _summaries(loss_at: torch.Tensor, correct_at: torch.Tensor, batch: Batch, task: Task) -> dict:
    """Loss and accuracy over the loss mask, and loss per class of position."""
    mask = batch.loss_mask
    out = {
        "loss": loss_at[mask].mean().item(),
        "accuracy": correct_at[mask].mean().item(),
    }
    for index, name in enumerate(task.class_names):
        where = mask & (batch.labels == index)
        if where.any():
            out[f"loss_{name}"] = loss_at[where].mean().item()
    return out


def _save_point(out, config, model, optimizer, step, eval_batch, task, records, force=False):
    """At a checkpoint step save weights and state; else save state every `state_every`."""
    if step in config.checkpoint_steps:
        _checkpoint(out, config, model, optimizer, step, eval_batch, task, records)
    elif force or step % config.train.state_every == 0:
        _save_state(out, model, optimizer, step, records)


@torch.no_grad()
def _checkpoint(out, config, model, optimizer, step, eval_batch, task, records) -> None:
    """Save weights at `step` (before that step's update), log eval metrics, save state."""
    save_safetensors(checkpoint_path(out, step), model.state_dict(), {"step": step})
    model.eval()
    logits = model(eval_batch.tokens)
    model.train()
    loss_at, correct_at = per_position_loss(logits, eval_batch.tokens)
    records.append({"split": "eval", "step": step, **_summaries(loss_at, correct_at, eval_batch, task)})
    _save_state(out, model, optimizer, step, records)


def _save_state(out: Path, model, optimizer: torch.optim.Optimizer, step: int, records) -> None:
    """Everything needed to continue from `step`, then the metrics up to it."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    tensors["rng"] = torch.get_rng_state()
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]]
    save_safetensors(out / STATE_FILE, tensors, {"step": step, "param_groups": groups})
    write_metrics(out, records)


def _load_state(out: Path, model, optimizer: torch.optim.Optimizer) -> None:
    tensors, meta = load_safetensors(
        out / STATE_FILE, "Delete the state/ folder to restart this run from step 0."
    )
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    template = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    groups = [
        {**saved, "params": g["params"]}
        for saved, g in zip(meta["param_groups"], template["param_groups"])
    ]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng"])


def ensure_run(config: RunConfig, seed: int, out: str | os.PathLike, progress: bool = True) -> Run:
    """Open the finished run in `out`, training or resuming it first if needed. A run of
    another config or seed in `out` is an error, never silently reused."""
    return train(config, seed, out, resume=True, progress=progress)
