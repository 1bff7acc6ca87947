"""Tables across checkpoints: selectivity, ablation effects, class means, attention.

One pass over a run's checkpoints, one checkpoint in memory at a time, gives tidy pandas
tables keyed by (seed, step, layer, neuron). They are cached under the run's `analysis/`
folder with a manifest naming the analysis settings and the checkpoint files they came
from; a change to either makes them stale and they are recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vestige.device import batch_on, model_device
from vestige.hooks import attn_pattern, cache_activations, mlp_post, resid_post
from vestige.metrics import (
    Ablated,
    ablate_neurons,
    ablation_values,
    class_means,
    contrast_selectivity,
    firing_fraction,
    logit_margin,
    per_position_loss,
    same_token_positions,
    selectivity_index,
    shuffled_selectivity,
)
from vestige.runs import Run, analysis_dir, atomic_write, manifest_path, shared_path
from vestige.stats import ratio_interval, resample_counts

ANALYSIS_VERSION = 4
UNTRAINED_SEED = 10**6  # untrained baselines use seeds from here on, never a run's own
ACTIVE_FRACTION = 0.1  # a neuron firing on fewer of the positions compared has no selectivity
TABLES = ("neurons", "ablation", "class_means", "baseline", "attention", "example_tokens")
MEASURES = {"loss": "effect", "margin": "margin_effect"}  # SequenceSums field: neurons column


@dataclass(frozen=True)
class AnalysisSpec:
    """What to compute. `modes` are ablation kinds ("mean", "zero", "resample"); the
    neurons table's effects use the first: `effect` is the loss increase on the task's focus
    positions (e.g. "trigger"; else on the neuron's preferred class), `margin_effect` the
    drop in the target's logit margin there, both with percentile bootstrap intervals over
    `n_resamples` resamples of the evaluation sequences. `n_untrained` fresh models give the
    untrained selectivity baseline. `example` is the sequence whose attention is kept."""

    modes: tuple[str, ...] = ("mean",)
    n_shuffles: int = 8
    n_untrained: int = 32
    n_resamples: int = 1000
    example: int = 0
    max_sequences: int = 512


def iter_activations(
    run: Run, hook_name: str, steps: Sequence[int] | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """(step, activations on the evaluation batch, on the CPU) at each checkpoint, one at a
    time."""
    for step in run.steps if steps is None else steps:
        model = run.model_at(step)
        _, acts = cache_activations(model, run.eval_batch.tokens, [hook_name])
        yield step, acts[hook_name].cpu()


def analyze(
    run: Run, spec: AnalysisSpec = AnalysisSpec(), progress: bool = False
) -> dict[str, pd.DataFrame]:
    """All tables for `run`, from the cache when it is fresh, else computed and cached."""
    settings = {"version": ANALYSIS_VERSION, "spec": asdict(spec)}
    return cached_tables(run, "", settings, TABLES, lambda: _compute(run, spec, progress))


def cached_tables(
    run: Run,
    prefix: str,
    settings: dict,
    names: Sequence[str],
    compute: Callable[[], dict[str, pd.DataFrame]],
) -> dict[str, pd.DataFrame]:
    """Tables `names` of `run` from its analysis folder when they were computed with these
    `settings` from the checkpoints on disk now; else `compute()` them and cache them."""
    files = [[step, *run.checkpoint_id(step)] for step in run.steps]
    manifest = json.loads(json.dumps({**settings, "checkpoints": files}))  # as it reads back
    folder = analysis_dir(run.path, prefix)
    written = manifest_path(run.path, prefix)
    if written.exists() and json.loads(written.read_text()) == manifest:
        try:
            return {name: pd.read_parquet(folder / f"{name}.parquet") for name in names}
        except (OSError, ValueError):
            pass  # a damaged cache is recomputed below
    tables = compute()
    for name in names:
        buffer = io.BytesIO()
        tables[name].to_parquet(buffer, index=False)
        atomic_write(folder / f"{name}.parquet", buffer.getvalue())
    atomic_write(written, json.dumps(manifest, indent=1))
    return tables


def _compute(run: Run, spec: AnalysisSpec, progress: bool) -> dict[str, pd.DataFrame]:
    positions = Positions.of(run)
    untrained = untrained_baseline(run, spec.n_untrained)
    per_layer = untrained.groupby("layer", as_index=False)[list(BARS)].first()
    rows: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    sums: dict[tuple[int, int, str], np.ndarray] = {}  # (step, layer, focus): `focus_sums`
    for step in tqdm(
        run.steps, desc=f"analysing seed {run.seed}", disable=not progress, leave=False
    ):
        model = run.model_at(step)
        tables, focus = checkpoint_tables(model, run, positions, spec, step)
        sums.update({(step, layer, name): part for (layer, name), part in focus.items()})
        tables["baseline"] = tables["baseline"].merge(per_layer, on="layer")
        for name, table in tables.items():
            rows[name].append(_keyed(table, {"seed": run.seed, "step": step}))
    tokens = run.eval_batch.tokens[spec.example].tolist()
    rows["example_tokens"] = [
        pd.DataFrame({"seed": run.seed, "position": range(len(tokens)), "token": map(str, tokens)})
    ]
    tables = {name: pd.concat(parts, ignore_index=True) for name, parts in rows.items()}
    matched = untrained[["layer", "positions", *MATCHED_BARS]]
    neurons = tables["neurons"]
    if positions.focus:  # the bootstrap for the rows kept only (one focus class per neuron)
        resamples = resample_counts(len(run.eval_batch), spec.n_resamples, seed=run.seed)
        neurons = with_intervals(own_focus(neurons), sums, positions, resamples)
    tables["neurons"] = neurons.merge(matched, on=["layer", "positions"], how="left")
    return tables


def with_intervals(
    neurons: pd.DataFrame,
    sums: dict[tuple[int, int, str], np.ndarray],
    positions: Positions,
    resamples: np.ndarray,
) -> pd.DataFrame:
    """`neurons` with percentile bootstrap intervals of each effect in MEASURES on its row's
    focus class, over `resamples` of the evaluation sequences (`stats.ratio_interval`), from
    the per-sequence sums {(step, layer, focus): `focus_sums`}."""
    neurons = neurons.copy()
    for focus in positions.focus:
        counts = positions.classes[focus].sum(-1).numpy().astype(float)
        rows = neurons.index[neurons["positions"] == focus]
        keys = neurons.loc[rows, ["step", "layer", "neuron"]].to_numpy().tolist()
        if not keys:
            continue
        per_sequence = np.stack([sums[(step, layer, focus)][:, n] for step, layer, n in keys], 1)
        # sequences without the class add 0 to every resample's sums and counts: left out
        has = counts > 0
        low, high = ratio_interval(per_sequence, counts[has], resamples[:, has])
        for i, column in enumerate(MEASURES.values()):
            neurons.loc[rows, f"{column}_low"] = low[i]
            neurons.loc[rows, f"{column}_high"] = high[i]
    return neurons


def own_focus(neurons: pd.DataFrame) -> pd.DataFrame:
    """Keep each neuron's rows on its own focus class: the one on which its largest effect
    after step 0 is largest (the crutch it served). With one focus class, every row."""
    trained = neurons[neurons["step"] > 0]
    peaks = trained.groupby(["layer", "neuron", "positions"])["effect"].max().reset_index()
    own = peaks.loc[peaks.groupby(["layer", "neuron"])["effect"].idxmax()]
    keep = own[["layer", "neuron", "positions"]]
    return neurons.merge(keep, on=["layer", "neuron", "positions"]).sort_values(
        ["step", "layer", "neuron"], ignore_index=True
    )


@dataclass(frozen=True)
class Positions:
    """The evaluation positions the tables are about, as [batch, seq] masks.

    classes:    scored positions of each class of the task (and "all"), for ablation effects;
                and each focus class's unscored positions (`unscored_class`), e.g. the first
                copy's triggers, where only the crutch can predict the next token.
    focus:      the task's focus classes present in the batch (one per crutch; may be empty).
    focus_all:  every position of each focus class, scored or not.
    same_token: for each focus class, the positions (scored or not) holding the same current
                tokens without being in it, e.g. a lone B against B after A: the contrast for
                `matched_selectivity`, which token identity alone cannot win.
    """

    classes: dict[str, torch.Tensor]
    focus: tuple[str, ...]
    focus_all: dict[str, torch.Tensor]
    same_token: dict[str, torch.Tensor]

    def on(self, device: torch.device) -> Positions:
        """These positions with every mask on `device` (itself when they are there)."""
        if self.classes["all"].device == device:
            return self
        masks = (self.classes, self.focus_all, self.same_token)
        classes, focus_all, same_token = ({k: v.to(device) for k, v in m.items()} for m in masks)
        return Positions(classes, self.focus, focus_all, same_token)

    @property
    def wanted(self) -> torch.Tensor:
        """Every position an ablation effect is measured on: [batch, seq]."""
        return torch.stack(list(self.classes.values())).any(0)

    @classmethod
    def of(cls, run: Run) -> Positions:
        return cls.of_batch(run.eval_batch, run.task)

    @classmethod
    def of_batch(cls, batch, task) -> Positions:
        names = task.class_names
        classes = {"all": batch.loss_mask}
        for index, name in enumerate(names):
            where = batch.loss_mask & (batch.labels == index)
            if where.any():
                classes[name] = where
        focus = tuple(name for name in task.focus_classes if name in classes)
        focus_all = {name: batch.labels == names.index(name) for name in focus}
        for name in focus:
            unscored = focus_all[name] & ~batch.loss_mask
            unscored[:, -1] = False  # the last position predicts nothing
            if unscored.any():
                classes[unscored_class(name)] = unscored
        same_token = {}
        for name, where in focus_all.items():
            same = same_token_positions(batch.tokens, where)
            if same.any():
                same_token[name] = same
        return cls(classes, focus, focus_all, same_token)


QUANTILES = {"p95": 0.95, "p99": 0.99, "p999": 0.999}
BARS = tuple(f"untrained_{q}" for q in QUANTILES)  # selectivity over every class
MATCHED_BARS = tuple(f"untrained_matched_{q}" for q in QUANTILES)  # focus vs same token


def untrained_baseline(run: Run, n_models: int) -> pd.DataFrame:
    """Quantiles of the selectivity of untrained neurons, per layer and focus class (rows
    `layer`, `positions`, `BARS`, `MATCHED_BARS`): `n_models` fresh initialisations on an
    evaluation batch of the run's task, both from seeds no run uses. Position classes defined
    by token identity make untrained neurons selective too; this, not a shuffled-label
    baseline, is the bar a trained neuron must clear. It depends on the task and the model
    only, so it is computed once per configuration and shared by every seed of it (cached
    beside the runs, see `vestige.runs.shared_path`). The run says how untrained models like
    its own are made and what they depend on (`untrained_model`, `untrained_probe`,
    `untrained_key`: the kit's model for a kit run, `from_config` for a suite)."""
    key = {"version": ANALYSIS_VERSION, **run.untrained_key(), "n_models": n_models}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = shared_path(run.path, f"untrained-{digest}.parquet")
    if path.exists():
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError):
            pass  # a damaged cache is recomputed below
    table = _untrained(run, n_models)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write(path, buffer.getvalue())
    return table


def _untrained(run: Run, n_models: int) -> pd.DataFrame:
    task, batch = run.untrained_probe(UNTRAINED_SEED)
    positions = Positions.of_batch(batch, task)
    n_layers, n_classes = run.config.model.n_layers, len(task.class_names)
    si: dict[int, list[torch.Tensor]] = {layer: [] for layer in range(n_layers)}
    matched: dict[tuple[int, str], list[torch.Tensor]] = {}
    for k in range(n_models):
        model = run.untrained_model(UNTRAINED_SEED + k).eval()
        _, acts = cache_activations(model, batch.tokens, [mlp_post(i) for i in range(n_layers)])
        for layer in range(n_layers):
            mlp = acts[mlp_post(layer)].cpu()  # cheap statistics: on the probe's device
            measured = selectivities(mlp, batch.labels, n_classes, positions)
            si[layer].append(measured["selectivity"])
            for name, values in measured["matched_selectivity"].items():
                matched.setdefault((layer, name), []).append(values)
    rows = []
    for layer in range(n_layers):
        bars = _quantiles(si[layer], "untrained")
        for name in ("all", *task.class_names):
            values = matched.get((layer, name))
            rows.append(
                {
                    "layer": layer,
                    "positions": name,
                    **bars,
                    **(
                        _quantiles(values, "untrained_matched")
                        if values
                        else dict.fromkeys(MATCHED_BARS, float("nan"))
                    ),
                }
            )
    return pd.DataFrame(rows)


def _quantiles(values: list[torch.Tensor], prefix: str) -> dict[str, float]:
    flat = torch.cat(values)
    flat = flat[~flat.isnan()]
    return {
        f"{prefix}_{name}": flat.quantile(q).item() if len(flat) else float("nan")
        for name, q in QUANTILES.items()
    }


def selectivities(
    mlp: torch.Tensor, labels: torch.Tensor, n_classes: int, positions: Positions
) -> dict:
    """Class means [d, n_classes], SI over the classes [d], and {focus class: SI of that
    class against its same-token positions [d]}. A neuron that fires (> 0) on fewer than
    ACTIVE_FRACTION of the positions compared gets NaN: the ratio of two near-zero means is
    noise (and would make untrained neurons look perfectly selective)."""
    means = class_means(mlp, labels, n_classes)
    si = selectivity_index(means)
    preferred = means.argmax(-1)
    fires = torch.stack([firing_fraction(mlp, labels == c) for c in range(n_classes)], -1)
    si[fires.gather(-1, preferred[:, None])[:, 0] < ACTIVE_FRACTION] = float("nan")
    matched = {}
    for name, same in positions.same_token.items():
        focus = positions.focus_all[name]
        values = contrast_selectivity(mlp, focus, same)
        values[firing_fraction(mlp, focus) < ACTIVE_FRACTION] = float("nan")
        matched[name] = values
    return {"means": means, "selectivity": si, "matched_selectivity": matched}


@torch.no_grad()
def checkpoint_tables(
    model, run: Run, positions: Positions, spec: AnalysisSpec, step: int
) -> tuple[dict[str, pd.DataFrame], dict[tuple[int, str], np.ndarray]]:
    """The rows of every table for one checkpoint (not yet keyed by seed and step; the
    neurons' intervals not yet computed), and {(layer, focus class): `focus_sums`}."""
    device = model_device(model)  # the batch and the masks go where the model is
    batch, positions = batch_on(run.eval_batch, device), positions.on(device)
    classes, n_layers = run.task.class_names, run.config.model.n_layers
    names = [mlp_post(layer) for layer in range(n_layers)]
    names += [resid_post(layer) for layer in range(n_layers)]  # for the ablations
    names += [attn_pattern(layer) for layer in range(n_layers)]
    logits, acts = cache_activations(model, batch.tokens, names)
    clean = Clean(*per_position_loss(logits, batch.tokens), logit_margin(logits, batch.tokens))
    parts: dict[str, list[pd.DataFrame]] = {
        "neurons": [],
        "ablation": [],
        "class_means": [],
        "baseline": [],
        "attention": [],
    }
    focus_parts = {}
    for layer in range(n_layers):
        mlp = acts[mlp_post(layer)]
        measured = selectivities(mlp, batch.labels, len(classes), positions)
        means = measured["means"]
        shuffled = shuffled_selectivity(mlp, batch.labels, len(classes), spec.n_shuffles, seed=step)
        parts["baseline"].append(
            pd.DataFrame(
                [
                    {
                        "layer": layer,
                        "p99": shuffled.quantile(0.99).item(),
                        "p95": shuffled.quantile(0.95).item(),
                        "median": shuffled.median().item(),
                    }
                ]
            )
        )
        effects = {}
        for mode in spec.modes:
            values = ablation_values(mlp, mode, seed=step)
            ablated = ablate_neurons(
                model,
                batch,
                layer,
                range(mlp.shape[-1]),
                values,
                spec.max_sequences,
                cache=acts,
                where=positions.wanted,
            )
            effects[mode] = sequence_sums(ablated, clean, positions.classes)
            parts["ablation"].append(ablation_rows(effects[mode], layer, mode))
        parts["neurons"].append(
            neuron_rows(measured, effects[spec.modes[0]], positions, classes, layer)
        )
        for name, values in focus_sums(effects[spec.modes[0]], positions.focus).items():
            focus_parts[layer, name] = values
        parts["class_means"].append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "neuron": np.repeat(np.arange(mlp.shape[-1]), len(classes)),
                    "cls": list(classes) * mlp.shape[-1],
                    "mean_act": means.reshape(-1).cpu().numpy(),
                }
            )
        )
        pattern = acts[attn_pattern(layer)][spec.example].cpu()
        parts["attention"].append(attention_rows(pattern, layer))
    tables = {name: pd.concat(rows, ignore_index=True) for name, rows in parts.items()}
    return tables, focus_parts


class Clean(NamedTuple):
    """Per-position loss, correctness and logit margin of the unablated model."""

    loss: torch.Tensor
    correct: torch.Tensor
    margin: torch.Tensor


@dataclass(frozen=True)
class SequenceSums:
    """Per-sequence totals of an ablation's effects over each class's positions.

    loss, acc, margin: {class: [n_neurons, n_sequences]} sums of the loss increase, the
    accuracy drop and the logit-margin drop; counts: {class: [n_sequences]} positions."""

    loss: dict[str, np.ndarray]
    acc: dict[str, np.ndarray]
    margin: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]

    def mean(self, measure: str, cls: str) -> np.ndarray:
        """The effect per neuron over all positions of `cls`, [n_neurons]."""
        return getattr(self, measure)[cls].sum(-1) / max(self.counts[cls].sum(), 1)


def sequence_sums(ablated: Ablated, clean: Clean, classes: dict[str, torch.Tensor]) -> SequenceSums:
    deltas = torch.stack(
        [ablated.loss - clean.loss, clean.correct - ablated.correct, clean.margin - ablated.margin]
    )  # [measure, neuron, batch, seq]
    weights = torch.stack(list(classes.values())).to(deltas.dtype)  # [class, batch, seq]
    # one batched product over the sequence axis for every measure and class at once
    sums = torch.einsum("knbs,cbs->kcnb", deltas, weights).contiguous().cpu().numpy()
    counts = weights.sum(-1).cpu().numpy()
    per_class = [dict(zip(classes, measure)) for measure in sums]
    return SequenceSums(*per_class, counts=dict(zip(classes, counts)))


def ablation_rows(sums: SequenceSums, layer: int, mode: str) -> pd.DataFrame:
    rows = []
    for cls in sums.counts:
        loss = sums.mean("loss", cls)
        rows.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "neuron": np.arange(len(loss)),
                    "mode": mode,
                    "positions": cls,
                    "delta_loss": loss,
                    "delta_acc": sums.mean("acc", cls),
                    "delta_margin": sums.mean("margin", cls),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def focus_sums(sums: SequenceSums, focus: Sequence[str]) -> dict[str, np.ndarray]:
    """The per-sequence sums of each effect in MEASURES on each focus class, on the sequences
    that hold the class only: {focus: [measure, neuron, sequence]}, for `with_intervals`."""
    return {
        name: np.stack(
            [getattr(sums, measure)[name][:, sums.counts[name] > 0] for measure in MEASURES]
        )
        for name in focus
    }


def neuron_rows(
    measured: dict,
    sums: SequenceSums,
    positions: Positions,
    classes: tuple[str, ...],
    layer: int,
) -> pd.DataFrame:
    """Rows per neuron: selectivity, and the effects the detector judges (their bootstrap
    intervals over sequences left NaN for `with_intervals`); one row per focus class
    (`own_focus` later keeps the neuron's own), or, for a task without one, a row on the
    neuron's preferred class, without intervals."""
    d_mlp = measured["means"].shape[0]
    preferred = [classes[int(i)] for i in measured["means"].argmax(-1)]
    own = [own_positions(p, sums.counts) for p in preferred]
    table = pd.DataFrame(
        {
            "layer": layer,
            "neuron": np.arange(d_mlp),
            "unit": [unit_name(layer, n) for n in range(d_mlp)],
            "selectivity": measured["selectivity"].cpu().numpy(),
            "preferred_class": preferred,
            "effect_all": sums.mean("loss", "all"),
            "effect_own": [sums.mean("loss", p)[n] for n, p in enumerate(own)],
        }
    )
    if not positions.focus:  # judge each neuron on its own preferred class, without intervals
        table["positions"] = own
        table["matched_selectivity"] = np.nan
        for measure, column in MEASURES.items():
            table[column] = [sums.mean(measure, p)[n] for n, p in enumerate(own)]
            table[f"{column}_low"] = table[f"{column}_high"] = np.nan
        return table
    parts = []
    for focus in positions.focus:
        part = table.assign(positions=focus)
        matched = measured["matched_selectivity"].get(focus)
        part["matched_selectivity"] = np.nan if matched is None else matched.cpu().numpy()
        for measure, column in MEASURES.items():
            part[column] = sums.mean(measure, focus)
            part[f"{column}_low"] = part[f"{column}_high"] = np.nan
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def unscored_class(focus: str) -> str:
    """The name of a focus class's unscored positions in `Positions.classes`."""
    return f"{focus}_unscored"


def own_positions(preferred: str, measured: dict) -> str:
    """The positions a neuron's own effect is measured on: its preferred class where that
    class has scored positions (a key of `measured`), else all scored positions."""
    return preferred if preferred in measured else "all"


def attention_rows(pattern: torch.Tensor, layer: int) -> pd.DataFrame:
    """The causal cells of one example's attention pattern [head, query, key]."""
    heads, query, key = torch.meshgrid(*(torch.arange(n) for n in pattern.shape), indexing="ij")
    causal = key <= query
    return pd.DataFrame(
        {
            "layer": layer,
            "head": heads[causal].numpy(),
            "query": query[causal].numpy(),
            "key": key[causal].numpy(),
            "weight": pattern[causal].numpy(),
        }
    )


def unit_name(layer: int, neuron: int) -> str:
    """The name of MLP neuron `neuron` of `layer` everywhere in the kit, e.g. "L0N7"."""
    return f"L{layer}N{neuron}"


def head_name(layer: int, head: int) -> str:
    """The name of attention head `head` of `layer` everywhere in the kit, e.g. "L1H3"."""
    return f"L{layer}H{head}"


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
