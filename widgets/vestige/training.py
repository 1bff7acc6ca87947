"""The training loop: deterministic, checkpointed, resumable, forkable, with interventions.

Same config and seed give bit-identical checkpoints on one machine (and thread setting). A
run killed at any moment resumes from its last saved state and ends bit-identical to one
that was never interrupted, because every batch is a pure function of (seed, step) and the
state file holds the weights, the optimiser moments and the RNG state. The state at every
checkpoint is kept too, so a run can be *forked* there: `fork` continues it from step t with
other interventions, and the fork's history up to t is the parent's, exactly.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from vestige.config import RunConfig, SelectivityPenalty, Suppress, SuppressHeads
from vestige.device import batch_on, model_device, resolve_device
from vestige.hooks import head_z, hold_heads, mlp_post, suppress_hook
from vestige.metrics import class_means, per_position_loss, selectivity_index
from vestige.model import build_model
from vestige.runs import (
    Run,
    RunError,
    checkpoint_path,
    config_path,
    latest_state_path,
    load_safetensors,
    read_config,
    read_metrics,
    save_safetensors,
    state_path,
    write_config,
    write_metrics,
)
from vestige.task import Batch, Task, make_task

RESTART_HINT = "Delete the state/ folder to restart this run from step 0."


def train(
    config: RunConfig,
    seed: int,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    device: str | torch.device = "cpu",
) -> Run:
    """Train one seed of `config` into the run directory `out` and return the opened Run.

    `resume=True` continues an interrupted run (and returns a finished one unchanged); without
    it an existing run in `out` is an error, so nothing saved is overwritten. `stop_after`
    ends training early after that many steps (the run can be resumed later). `device`:
    where the model, its batches, hooks and optimiser live ("auto", "cpu", "cuda"; see
    `vestige.device`); what is saved is on the CPU, so the run opens and resumes anywhere.
    """
    out = Path(out)
    config.validate()
    start = prepare_dir(config, seed, out, resume)
    session = Session.begin(config, seed, out, start, resolve_device(device))
    total = config.train.steps
    end = total if stop_after is None else min(total, start + stop_after)
    bar = tqdm(
        total=total,
        initial=start,
        disable=not progress or start >= end,
        desc=f"seed {seed}",
        unit="step",
        leave=False,
    )  # a saved notebook keeps no dead bar
    with bar:
        for step in range(start, end):
            if step > start or step == 0:  # the state at `start` is on disk already
                session.save_point(step)
            record = train_step(session, step)
            if step % config.train.log_every == 0:
                session.records.append(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", refresh=False)
            bar.update(1)
        if end > start:
            session.save_point(end, force=True)
    return Run.open(out, device=device)


def ensure_run(
    config: RunConfig,
    seed: int,
    out: str | os.PathLike,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Run:
    """Open the finished run in `out`, training or resuming it first if needed (on
    `device`). A run of another config or seed in `out` is an error, never silently reused."""
    return train(config, seed, out, resume=True, progress=progress, device=device)


def fork(
    parent: Run,
    at: int,
    interventions: tuple,
    out: str | os.PathLike,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Run:
    """Continue `parent` from its checkpoint `at` with `interventions` added (each must start
    at or after `at`), into the new run directory `out`; returns the finished fork. Up to
    `at` the fork is the parent (checkpoints and metrics are copied, not recomputed), so it
    equals training the forked config from scratch, bit for bit. Reopens a finished fork.
    The fork trains on `device`."""
    out = Path(out)
    config = parent.config.replace(interventions=parent.config.interventions + tuple(interventions))
    early = [i for i in interventions if i.start < at]
    if early:
        raise ValueError(
            f"{early[0]} starts at step {early[0].start}, before the fork at step {at}: the fork "
            f"shares the parent's history up to {at}; set start={at} or later"
        )
    if config_path(out).exists():
        return train(config, parent.seed, out, resume=True, progress=progress, device=device)
    if at not in parent.steps:
        nearest = sorted(parent.steps, key=lambda s: abs(s - at))[:3]
        raise RunError(
            f"step {at} is not a checkpoint of {parent.path}; nearest: {sorted(nearest)}"
        )
    if not state_path(parent.path, at).exists():
        raise RunError(
            f"{parent.path} has no training state at step {at} (it was trained before "
            "runs kept one per checkpoint); retrain it to fork it"
        )
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out} exists and is not empty; choose a new directory for the fork")
    write_config(out, config, parent.seed, forked_from={"run": str(parent.path), "step": at})
    for step in (s for s in parent.steps if s <= at):
        for path in (checkpoint_path, state_path):
            target = path(out, step)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path(parent.path, step), target)
    shutil.copyfile(state_path(parent.path, at), latest_state_path(out))
    write_metrics(
        out,
        [
            r
            for r in read_metrics(parent.path)
            if r["step"] < at or (r["split"] == "eval" and r["step"] == at)
        ],
    )
    return train(config, parent.seed, out, resume=True, progress=progress, device=device)


def prepare_dir(config: RunConfig, seed: int, out: Path, resume: bool) -> int:
    """Create or check the run directory; return the step to start from."""
    if not config_path(out).exists():
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
    if not latest_state_path(out).exists():
        return 0
    _, meta = load_safetensors(latest_state_path(out), RESTART_HINT)
    return int(meta["step"])


# ----------------------------------------------------------------------------- the session


@dataclass
class Session:
    """Everything one training process writes: the model, its optimiser, the metrics so far,
    and where they go."""

    config: RunConfig
    out: Path
    task: Task
    eval_batch: Batch
    model: Any
    optimizer: torch.optim.Optimizer
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def begin(
        cls, config: RunConfig, seed: int, out: Path, start: int, device: torch.device
    ) -> Session:
        task = make_task(config.task.name, config.task.params, seed, config.task.train_pool)
        model = build_model(config, seed, device)
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=config.train.lr,
            betas=config.train.betas,
            weight_decay=config.train.weight_decay,
        )
        eval_batch = batch_on(task.eval_batch(config.task.eval_size), device)
        session = cls(config, out, task, eval_batch, model, optimizer)
        if start > 0:
            session.load_state(latest_state_path(out))
            session.records = [
                r
                for r in read_metrics(out)
                if r["step"] < start or (r["split"] == "eval" and r["step"] == start)
            ]
        else:
            torch.manual_seed(seed)
        return session

    def saves_at(self, step: int) -> bool:
        """Whether `save_point(step)` writes anything unforced (the last step is forced)."""
        return step in self.config.checkpoint_steps or step % self.config.train.state_every == 0

    def save_point(self, step: int, force: bool = False) -> None:
        """At a checkpoint step save weights, evaluation and state; else save the state every
        `state_every` steps (and when `force`)."""
        if step in self.config.checkpoint_steps:
            self.checkpoint(step)
        elif force or self.saves_at(step):
            self.save_state(step, latest_state_path(self.out))

    @torch.no_grad()
    def checkpoint(self, step: int) -> None:
        """Weights at `step` (before that step's update), evaluation metrics, and the state."""
        save_safetensors(checkpoint_path(self.out, step), self.model.state_dict(), {"step": step})
        self.model.eval()
        logits = self.model(self.eval_batch.tokens)
        loss_at, correct_at = per_position_loss(logits, self.eval_batch.tokens)
        record = {"split": "eval", "step": step}
        record.update(summaries(loss_at, correct_at, self.eval_batch, self.task))
        if self.task.train_pool:  # the loss on (part of) the training set: the gap
            seen = self.task.pool
            seen = Batch(
                *(t[: len(self.eval_batch)] for t in (seen.tokens, seen.loss_mask, seen.labels))
            )
            seen = batch_on(seen, model_device(self.model))
            pool_loss, _ = per_position_loss(self.model(seen.tokens), seen.tokens)
            record["pool_loss"] = pool_loss[seen.loss_mask].mean().item()
        self.model.train()
        self.records.append(record)
        self.save_state(step, state_path(self.out, step))
        self.save_state(step, latest_state_path(self.out))

    def save_state(self, step: int, path: Path) -> None:
        """Everything needed to continue from `step`, then the metrics up to it."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        for index, state in opt_state["state"].items():
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
        tensors["rng"] = torch.get_rng_state()
        groups = [{k: v for k, v in g.items() if k != "params"} for g in opt_state["param_groups"]]
        save_safetensors(path, tensors, {"step": step, "param_groups": groups})
        write_metrics(self.out, self.records)

    def load_state(self, path: Path) -> None:
        tensors, meta = load_safetensors(path, RESTART_HINT)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        template = self.optimizer.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        groups = [
            {**saved, "params": g["params"], "betas": tuple(saved["betas"])}
            for saved, g in zip(meta["param_groups"], template["param_groups"])
        ]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        torch.set_rng_state(tensors["rng"])


# ----------------------------------------------------------------------------- one step


def train_step(session: Session, step: int) -> dict[str, Any]:
    """One optimiser step with this step's interventions; returns its train record."""
    config, model = session.config, session.model
    batch = batch_on(session.task.train_batch(step, config.train.batch_size), model_device(model))
    lr = learning_rate(config, step)
    for group in session.optimizer.param_groups:
        group["lr"] = lr
    live: dict[int, torch.Tensor] = {}
    hooks = intervention_hooks(config, step, live)
    logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks) if hooks else model(batch.tokens)
    loss_at, correct_at = per_position_loss(logits, batch.tokens)
    mask = batch.loss_mask.to(loss_at.dtype)
    loss = (loss_at * mask).sum() / mask.sum()
    record: dict[str, Any] = {"split": "train", "step": step, "lr": lr}
    penalty = selectivity_penalty(config, step, live, batch.labels, len(session.task.class_names))
    if penalty is not None:
        loss = loss - penalty[0]
        record["selectivity"] = penalty[1]
    session.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    session.optimizer.step()
    record.update(summaries(loss_at.detach(), correct_at, batch, session.task))
    return record


def learning_rate(config: RunConfig, step: int) -> float:
    warmup = config.train.warmup_steps
    return config.train.lr * (min(1.0, (step + 1) / warmup) if warmup else 1.0)


def active(intervention, step: int) -> bool:
    return intervention.start <= step and (intervention.end is None or step < intervention.end)


def intervention_hooks(config: RunConfig, step: int, live: dict[int, torch.Tensor]) -> list:
    """Forward hooks for this step: suppressions, then capture of live activations for the
    selectivity penalties (into `live`, by layer)."""
    hooks = []
    for i in config.interventions:
        if isinstance(i, Suppress) and active(i, step):
            hooks.append((mlp_post(i.layer), suppress_hook(i.neurons, i.mode)))
        elif isinstance(i, SuppressHeads) and active(i, step):
            hooks.append((head_z(i.layer), hold_heads(i.heads, i.mode)))
    layers = {
        layer
        for i in config.interventions
        if isinstance(i, SelectivityPenalty) and active(i, step)
        for layer in (i.layers or range(config.model.n_layers))
    }
    hooks += [(mlp_post(layer), _capture(live, layer)) for layer in sorted(layers)]
    return hooks


def selectivity_penalty(
    config: RunConfig,
    step: int,
    live: dict[int, torch.Tensor],
    labels: torch.Tensor,
    n_classes: int,
) -> tuple[torch.Tensor, float] | None:
    """Leavitt & Morcos's term, summed over the active penalties: (sum of alpha * mean SI over
    each penalty's layers, the mean SI over all captured layers), or None when none is active."""
    penalties = [
        i for i in config.interventions if isinstance(i, SelectivityPenalty) and active(i, step)
    ]
    if not penalties:
        return None
    si = {
        layer: selectivity_index(class_means(acts, labels, n_classes)).mean()
        for layer, acts in live.items()
    }
    term = sum(
        p.alpha * torch.stack([si[layer] for layer in (p.layers or sorted(si))]).mean()
        for p in penalties
    )
    return term, torch.stack(list(si.values())).mean().item()


def _capture(live: dict[int, torch.Tensor], layer: int):
    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        live[layer] = act  # not detached: the regulariser's gradient flows through it
        return act

    return hook


def summaries(loss_at: torch.Tensor, correct_at: torch.Tensor, batch: Batch, task: Task) -> dict:
    """Loss and accuracy over the loss mask, loss per class of position, and (for a task
    with several focus classes) on all of them together, `loss_focus`."""
    mask = batch.loss_mask
    out = {"loss": loss_at[mask].mean().item(), "accuracy": correct_at[mask].mean().item()}
    for index, name in enumerate(task.class_names):
        where = mask & (batch.labels == index)
        if where.any():
            out[f"loss_{name}"] = loss_at[where].mean().item()
    focus = [task.class_names.index(name) for name in task.focus_classes]
    focus = torch.tensor(focus, dtype=batch.labels.dtype, device=batch.labels.device)
    where = mask & torch.isin(batch.labels, focus)
    if task.focus_metric == "loss_focus" and where.any():  # every crutch's positions together
        out["loss_focus"] = loss_at[where].mean().item()
    return out
