"""Tables across checkpoints: selectivity, ablation effects, class means, attention.

One pass over a run's checkpoints, one checkpoint in memory at a time, gives tidy pandas
tables keyed by (seed, step, layer, neuron). They are cached under the run's `analysis/`
folder with a manifest naming the analysis settings and the checkpoint files they came
from; a change to either makes them stale and they are recomputed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from vestige.hooks import attn_pattern, cache_activations, mlp_post, resid_post
from vestige.metrics import (
    ablated_losses,
    ablation_values,
    class_means,
    masked_mean,
    per_position_loss,
    selectivity_index,
    shuffled_selectivity,
)
from vestige.runs import Run, atomic_write, checkpoint_path

ANALYSIS_VERSION = 2
TABLES = ("neurons", "ablation", "class_means", "baseline", "attention", "example_tokens")


@dataclass(frozen=True)
class AnalysisSpec:
    """What to compute. `modes` are ablation kinds ("mean", "zero", "resample"); the
    neurons table's `effect` (loss increase on the task's focus positions, e.g. "trigger",
    or else on the neuron's preferred class) and `effect_all` (on all scored positions) use
    the first. `example` is the evaluation sequence whose attention pattern is kept."""

    modes: tuple[str, ...] = ("mean",)
    n_shuffles: int = 8
    example: int = 0
    max_sequences: int = 512


def iter_activations(
    run: Run, hook_name: str, steps: Sequence[int] | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """(step, activations on the evaluation batch) at each checkpoint, one at a time."""
    for step in run.steps if steps is None else steps:
        model = run.load_weights(step)
        _, acts = cache_activations(model, run.eval_batch.tokens, [hook_name])
        yield step, acts[hook_name]


def analyze(run: Run, spec: AnalysisSpec = AnalysisSpec(), progress: bool = False) -> dict[str, pd.DataFrame]:
    """All tables for `run`, from the cache when it is fresh, else computed and cached."""
    manifest = json.loads(json.dumps(_manifest(run, spec)))  # as it reads back from disk
    folder = run.path / "analysis"
    manifest_path = folder / "manifest.json"
    if manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest:
        try:
            return {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}
        except (OSError, ValueError):
            pass  # a damaged cache is recomputed below
    tables = _compute(run, spec, progress)
    for name, table in tables.items():
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write(folder / f"{name}.parquet", buffer.getvalue())
    atomic_write(manifest_path, json.dumps(manifest, indent=1))
    return tables


def _manifest(run: Run, spec: AnalysisSpec) -> dict:
    files = []
    for step in run.steps:
        stat = checkpoint_path(run.path, step).stat()
        files.append([step, stat.st_size, stat.st_mtime_ns])
    return {"version": ANALYSIS_VERSION, "spec": asdict(spec), "checkpoints": files}


def _compute(run: Run, spec: AnalysisSpec, progress: bool) -> dict[str, pd.DataFrame]:
    rows: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for step in tqdm(run.steps, desc=f"analysing seed {run.seed}", disable=not progress):
        for name, table in checkpoint_tables(run, step, spec).items():
            rows[name].append(table)
    batch = run.eval_batch
    tokens = batch.tokens[spec.example].tolist()
    rows["example_tokens"] = [
        pd.DataFrame({"seed": run.seed, "position": range(len(tokens)), "token": map(str, tokens)})
    ]
    return {name: pd.concat(parts, ignore_index=True) for name, parts in rows.items()}


@torch.no_grad()
def checkpoint_tables(run: Run, step: int, spec: AnalysisSpec) -> dict[str, pd.DataFrame]:
    """The rows of every table for one checkpoint."""
    model = run.load_weights(step)
    batch = run.eval_batch
    classes = run.task.class_names
    n_layers = run.config.model.n_layers
    names = [mlp_post(layer) for layer in range(n_layers)]
    names += [resid_post(layer) for layer in range(n_layers)]  # for the ablations
    names += [attn_pattern(layer) for layer in range(n_layers)]
    logits, acts = cache_activations(model, batch.tokens, names)
    base_loss, base_correct = per_position_loss(logits, batch.tokens)
    subsets = {"all": batch.loss_mask}
    for index, name in enumerate(classes):
        where = batch.loss_mask & (batch.labels == index)
        if where.any():
            subsets[name] = where

    neurons, ablation, means_rows, baseline, attention = [], [], [], [], []
    for layer in range(n_layers):
        mlp = acts[mlp_post(layer)]
        d_mlp = mlp.shape[-1]
        means = class_means(mlp, batch.labels, len(classes))
        si = selectivity_index(means)
        shuffled = shuffled_selectivity(mlp, batch.labels, len(classes), spec.n_shuffles, seed=step)
        baseline.append(
            {
                "layer": layer,
                "p99": shuffled.quantile(0.99).item(),
                "p95": shuffled.quantile(0.95).item(),
                "median": shuffled.median().item(),
            }
        )
        effects = {}
        for mode in spec.modes:
            values = ablation_values(mlp, mode, seed=step)
            losses, corrects = ablated_losses(
                model, batch, layer, range(d_mlp), values, spec.max_sequences, cache=acts
            )
            for subset, mask in subsets.items():
                delta_loss = masked_mean(losses - base_loss, mask)
                delta_acc = masked_mean(base_correct - corrects, mask)
                effects[mode, subset] = delta_loss
                ablation.append(
                    pd.DataFrame(
                        {
                            "layer": layer,
                            "neuron": range(d_mlp),
                            "mode": mode,
                            "positions": subset,
                            "delta_loss": delta_loss.numpy(),
                            "delta_acc": delta_acc.numpy(),
                        }
                    )
                )
        preferred = means.argmax(-1)
        first = spec.modes[0]
        focus = run.task.focus_class
        for neuron in range(d_mlp):
            pref = classes[int(preferred[neuron])]
            judged_on = next(c for c in (focus, pref, "all") if (first, c) in effects)
            neurons.append(
                {
                    "layer": layer,
                    "neuron": neuron,
                    "unit": f"L{layer}N{neuron}",
                    "selectivity": si[neuron].item(),
                    "preferred_class": pref,
                    "effect": effects[first, judged_on][neuron].item(),
                    "effect_positions": judged_on,
                    "effect_all": effects[first, "all"][neuron].item(),
                }
            )
        means_rows.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "neuron": [n for n in range(d_mlp) for _ in classes],
                    "cls": list(classes) * d_mlp,
                    "mean_act": means.reshape(-1).numpy(),
                }
            )
        )
        pattern = acts[attn_pattern(layer)][spec.example]
        heads, query, key = torch.meshgrid(
            *(torch.arange(n) for n in pattern.shape), indexing="ij"
        )
        causal = key <= query
        attention.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "head": heads[causal].numpy(),
                    "query": query[causal].numpy(),
                    "key": key[causal].numpy(),
                    "weight": pattern[causal].numpy(),
                }
            )
        )
    keys = {"seed": run.seed, "step": step}
    return {
        "neurons": _keyed(pd.DataFrame(neurons), keys),
        "ablation": _keyed(pd.concat(ablation, ignore_index=True), keys),
        "class_means": _keyed(pd.concat(means_rows, ignore_index=True), keys),
        "baseline": _keyed(pd.DataFrame(baseline), keys),
        "attention": _keyed(pd.concat(attention, ignore_index=True), keys),
    }


def _keyed(table: pd.DataFrame, keys: dict) -> pd.DataFrame:
    for i, (name, value) in enumerate(keys.items()):
        table.insert(i, name, value)
    return table


def transition_step(run: Run, metric: str | None = None) -> float:
    """The step at which the loss drop happens: the first logged step where the smoothed
    training loss on `metric` (default: the task's transition class, e.g. "copy") falls below
    the midpoint of its early plateau and its final value. NaN if it never falls by at
    least a quarter of the plateau.
    """
    metrics = run.metrics
    train = metrics[metrics["split"] == "train"]
    column = metric or f"loss_{run.task.transition_class}"
    if column not in train:
        column = "loss"
    smooth = train[column].rolling(5, min_periods=1, center=True).median().to_numpy()
    steps = train["step"].to_numpy()
    plateau = smooth[: max(1, len(smooth) // 10)].max()
    final = smooth[-max(1, len(smooth) // 20) :].mean()
    if plateau - final < 0.25 * plateau:
        return float("nan")
    below = smooth < (plateau + final) / 2
    return float(steps[below.argmax()]) if below.any() else float("nan")


def explorer_tables(runs, spec: AnalysisSpec = AnalysisSpec(), progress: bool = False):
    """The explorer's tables for a Run or Runs (analysing checkpoints if not cached)."""
    from vestige.charts import ExplorerTables

    parts: dict[str, list[pd.DataFrame]] = {}
    for run in [runs] if isinstance(runs, Run) else list(runs):
        tables = analyze(run, spec, progress=progress)
        metrics = run.metrics
        train = metrics[metrics["split"] == "train"]
        tables["metrics"] = train.assign(seed=run.seed)[["seed", "step", "loss", "accuracy"]]
        tables["checkpoints"] = pd.DataFrame({"seed": run.seed, "step": run.steps})
        tables["transitions"] = pd.DataFrame({"seed": [run.seed], "step": [transition_step(run)]})
        for name, table in tables.items():
            parts.setdefault(name, []).append(table)
    return ExplorerTables(
        **{
            name: pd.concat(parts[name], ignore_index=True)
            for name in ExplorerTables.__dataclass_fields__
        }
    )
