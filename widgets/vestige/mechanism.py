"""What changed as a neuron settled: mechanism measurements across a run's checkpoints.

For one neuron (usually the detector's catch) and every checkpoint:

* `heads`: each attention head mean-ablated, the loss increase on the focus and on the
  copy positions; and where the head looks from focus positions: at the previous token, and
  at the induction target (the token after the earlier occurrence of the current bigram);
* `stages`: the task's stage curves, e.g. P(C | A B) in the first copy against P(C | lone B);
* `attribution`: direct logit attribution of the target's logit margin on the focus
  positions to the embeddings, every head and every neuron;
* `neuron`: the neuron's effect alone, with every later attention layer mean-ablated (does
  it come back: a backup?), and jointly with the other top neurons of its layer.

Every effect is a mean-ablation loss increase in nats; tables are cached like `analyze`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from vestige.analysis import Positions, cached_tables, head_name, unit_name
from vestige.detect import Detection, target_neuron
from vestige.device import batch_on, model_device
from vestige.hooks import (
    FINAL_SCALE,
    attn_pattern,
    cache_activations,
    embedding_hooks,
    head_outputs,
    head_z,
    logit_contributions,
    mlp_out_weight,
    mlp_post,
    post_with_heads,
    post_with_neurons,
    resid_mid,
    resid_post,
    resid_pre,
    run_from,
    set_neurons,
)
from vestige.metrics import outcomes_at, per_position_loss, wanted_rows
from vestige.runs import Run
from vestige.task import stage_probabilities

MECHANISM_VERSION = 2
TABLES = ("heads", "stages", "attribution", "neuron")


@dataclass(frozen=True)
class Subject:
    """The neuron the mechanism tables are about, the neurons ablated jointly with it, and
    the focus class its effects are measured on (None: the task's first)."""

    layer: int
    neuron: int
    joint: tuple[int, ...] = ()
    positions: str | None = None

    @property
    def unit(self) -> str:
        return unit_name(self.layer, self.neuron)


def target_subject(found: Detection, target: pd.Series | None = None) -> Subject:
    """The mechanism tables' subject for `target` (default: `target_neuron`): the neuron, on
    its own positions, and the three neurons of its layer with the largest peaks for the
    joint ablation."""
    target = target_neuron(found) if target is None else target
    layer_rows = found.neurons[found.neurons["layer"] == target["layer"]]
    joint = tuple(int(n) for n in layer_rows.nlargest(3, "peak_effect")["neuron"])
    return Subject(int(target["layer"]), int(target["neuron"]), joint, str(target["positions"]))


def mechanism(run: Run, subject: Subject, progress: bool = False) -> dict[str, pd.DataFrame]:
    """The mechanism tables of `run` for `subject` (cached in the run's analysis folder)."""
    settings = {
        "version": MECHANISM_VERSION,
        "layer": subject.layer,
        "neuron": subject.neuron,
        "joint": list(subject.joint),
        "positions": subject.positions,
    }
    return cached_tables(
        run, f"mechanism-{subject.unit}", settings, TABLES, lambda: _compute(run, subject, progress)
    )


def _compute(run: Run, subject: Subject, progress: bool) -> dict[str, pd.DataFrame]:
    positions = Positions.of(run)
    rows: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for step in tqdm(
        run.steps, desc=f"mechanism seed {run.seed}", disable=not progress, leave=False
    ):
        model = run.model_at(step)
        for name, table in checkpoint_mechanism(model, run, positions, subject).items():
            table.insert(0, "step", step)
            rows[name].append(table)
    return {
        name: pd.concat(parts, ignore_index=True).assign(seed=run.seed)
        for name, parts in rows.items()
    }


@torch.no_grad()
def checkpoint_mechanism(
    model, run: Run, positions: Positions, subject: Subject
) -> dict[str, pd.DataFrame]:
    device = model_device(model)  # the batch and the masks go where the model is
    batch, positions = batch_on(run.eval_batch, device), positions.on(device)
    config = run.config.model
    names = [*embedding_hooks(model).values(), FINAL_SCALE]
    names += [head_z(layer) for layer in range(config.n_layers)]
    names += [attn_pattern(layer) for layer in range(config.n_layers)]
    names += [mlp_post(layer) for layer in range(config.n_layers)]
    names += [resid_pre(layer) for layer in range(config.n_layers)]
    names += [resid_mid(layer) for layer in range(config.n_layers)]
    names += [resid_post(layer) for layer in range(config.n_layers)]
    logits, acts = cache_activations(model, batch.tokens, names)
    clean, _ = per_position_loss(logits, batch.tokens)
    focus = positions.classes[subject.positions or positions.focus[0]]
    where = {"focus": focus, "copy": positions.classes.get(run.task.transition_class, focus)}
    wanted = where["focus"] | where["copy"]
    rows = wanted_rows(wanted)

    def effect(hooks, start: int, resid: torch.Tensor | None = None) -> dict[str, float]:
        """Mean loss increase with `hooks` on, from the residual stream `resid` entering
        block `start` (the clean cache's when None: the hooks touch no earlier block), and
        only the wanted positions' logits."""
        resid = acts[resid_pre(start)] if resid is None else resid
        with model.hooks(fwd_hooks=hooks):
            out = run_from(model, start, resid, rows)
        ablated, _, _ = outcomes_at(out, batch.tokens, rows, wanted)
        return {k: float((ablated - clean)[m].mean()) for k, m in where.items()}

    def held_heads(layer: int, head: int, mean: torch.Tensor) -> dict[str, float]:
        """`effect` of head `head` of `layer` held at `mean`, from the block's own output
        where the block allows it (`post_with_heads`), else through a hook."""
        z = acts[head_z(layer)]
        post = post_with_heads(model, layer, acts[resid_mid(layer)], z, _hold(head, mean)(z))
        if post is None:
            return effect([(head_z(layer), _hold(head, mean))], layer)
        return effect([], layer + 1, post)

    def held_neurons(layer: int, neurons: list[int], values, hooks=()) -> dict[str, float]:
        """`effect` of `neurons` of `layer` held at `values` (with later `hooks` on), from
        the block's own output where the block allows it (`post_with_neurons`)."""
        post = post_with_neurons(
            model, layer, acts[resid_post(layer)], acts[mlp_post(layer)], neurons, values
        )
        if post is None:
            return effect([*hooks, (mlp_post(layer), set_neurons(neurons, values))], layer)
        return effect(list(hooks), layer + 1, post)

    return {
        "heads": _heads(acts, batch.tokens, focus, config, held_heads),
        "stages": stage_rows(logits.cpu(), run.task.stages(run.eval_batch)),
        "attribution": _attribution(model, acts, batch.tokens, focus, config),
        "neuron": _neuron(acts, subject, config, effect, held_neurons),
    }


def stage_rows(logits: torch.Tensor, stages: dict) -> pd.DataFrame:
    """`vestige.task.stage_probabilities` as a table (none: a task without stages)."""
    rows = stage_probabilities(logits, stages).items()
    return pd.DataFrame(rows, columns=["stage", "probability"])


def _heads(acts, tokens, focus, config, held) -> pd.DataFrame:
    previous, induction = _key_positions(tokens)
    rows = []
    for layer in range(config.n_layers):
        z = acts[head_z(layer)]
        pattern = acts[attn_pattern(layer)]  # [batch, head, query, key]
        for head in range(config.n_heads):
            mean = z[..., head, :].mean(dim=(0, 1))
            weights = pattern[:, head]
            rows.append(
                {
                    "layer": layer,
                    "head": head,
                    "unit": head_name(layer, head),
                    **{f"effect_{k}": v for k, v in held(layer, head, mean).items()},
                    "attn_previous": _attention_to(weights, previous, focus),
                    "attn_induction": _attention_to(weights, induction, focus),
                }
            )
    return pd.DataFrame(rows)


def _hold(head: int, mean: torch.Tensor):
    def hook(z: torch.Tensor, hook=None) -> torch.Tensor:
        z = z.clone()
        z[..., head, :] = mean
        return z

    return hook


def _key_positions(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query position: the previous position, and the induction target, the position
    after the latest earlier occurrence of the same two tokens (-1 where there is none)."""
    batch, seq = tokens.shape
    t = torch.arange(seq, device=tokens.device)
    previous = (t - 1).expand(batch, seq)
    same = tokens[:, :, None] == tokens[:, None, :]  # [batch, query, key]
    prior = torch.nn.functional.pad(same[:, :-1, :-1], (1, 0, 1, 0), value=False)  # [q-1, k-1]
    earlier = t[None, :] < t[:, None]
    match = same & prior & earlier[None]
    last = torch.where(match, t, -1).max(-1).values
    induction = torch.where(last >= 0, last + 1, -1)
    return previous, induction


def _attention_to(weights: torch.Tensor, key: torch.Tensor, focus: torch.Tensor) -> float:
    """Mean attention from focus positions to the key position given per query (nan if none)."""
    ok = focus & (key >= 0)
    if not ok.any():
        return math.nan
    gathered = weights.gather(-1, key.clamp(min=0)[..., None])[..., 0]
    return float(gathered[ok].mean())


def _attribution(model, acts, tokens, focus, config) -> pd.DataFrame:
    """Each component's direct contribution to the target's logit margin on focus positions."""
    scale = acts[FINAL_SCALE][focus]  # [n, 1]
    target = torch.nn.functional.pad(tokens[:, 1:], (0, 1))[focus]  # [n]
    parts = {part: acts[name][focus][:, None] for part, name in embedding_hooks(model).items()}
    for layer in range(config.n_layers):
        parts[f"heads{layer}"] = head_outputs(model, layer, acts[head_z(layer)])[focus]
        w_out = mlp_out_weight(model, layer)  # [d_model, d_mlp]
        parts[f"mlp{layer}"] = acts[mlp_post(layer)][focus][..., None] * w_out.T[None]
    rows = []
    for key, vectors in parts.items():
        margins = margin_contributions(model, vectors, scale, target).mean(0)  # [k]
        if key.startswith("heads"):
            layer = int(key[5:])
            names = [(head_name(layer, h), "head", layer) for h in range(len(margins))]
        elif key.startswith("mlp"):
            layer = int(key[3:])
            names = [(unit_name(layer, n), "neuron", layer) for n in range(len(margins))]
        else:
            names = [(key, key, -1)]
        rows += [
            {"component": c, "kind": k, "layer": lay, "margin": float(m)}
            for (c, k, lay), m in zip(names, margins)
        ]
    return pd.DataFrame(rows)


def margin_contributions(
    model, vectors: torch.Tensor, scale: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Direct contribution of residual-stream `vectors` [n, k, d_model] to the logit margin
    (target minus mean logit) at n positions with final-LayerNorm `scale` [n, 1]: [n, k]."""
    logits = logit_contributions(model, vectors, scale[:, None, :])  # [n, k, vocab]
    picked = logits.gather(-1, target[:, None, None].expand(-1, logits.shape[1], 1))[..., 0]
    return picked - logits.mean(-1)


def _neuron(acts, subject: Subject, config, effect, held) -> pd.DataFrame:
    """The subject's effect alone, as a backup (later attention ablated), and jointly."""
    layer, neuron = subject.layer, subject.neuron
    mlp = acts[mlp_post(layer)]
    means = mlp.mean(dim=(0, 1))
    alone = held(layer, [neuron], means[[neuron]])
    later = [
        (head_z(lay), _hold_all(acts[head_z(lay)].mean(dim=(0, 1))))
        for lay in range(layer + 1, config.n_layers)
    ]
    row = {"unit": subject.unit, "effect_alone": alone["focus"]}
    if later:
        without = effect(later, layer + 1)
        both = held(layer, [neuron], means[[neuron]], later)
        row["effect_later_attn_ablated"] = both["focus"] - without["focus"]
        row["later_attn_effect"] = without["focus"]
    if subject.joint:
        group = sorted({neuron, *subject.joint})
        joint = held(layer, group, means[group])
        row["effect_joint"] = joint["focus"]
        others = [n for n in range(config.d_mlp) if n != neuron]
        rest = held(layer, others, means[others])
        row["effect_all_others"] = rest["focus"]
    return pd.DataFrame([row])


def _hold_all(mean: torch.Tensor):
    def hook(z: torch.Tensor, hook=None) -> torch.Tensor:
        return mean.expand_as(z).clone()

    return hook


def stage_change_steps(stages: pd.DataFrame) -> dict[str, float]:
    """For each stage curve, the checkpoint at which it has moved half way from its extreme
    (after step 0) to its final value, after that extreme; NaN if it moves less than 0.1."""
    out = {}
    for name, curve in stages.groupby("stage"):
        curve = curve.sort_values("step")
        trained = curve[curve["step"] > 0]
        final = trained["probability"].iloc[-1]
        high, low = trained["probability"].idxmax(), trained["probability"].idxmin()
        extreme = (
            high
            if abs(trained.loc[high, "probability"] - final)
            >= abs(trained.loc[low, "probability"] - final)
            else low
        )
        value = trained.loc[extreme, "probability"]
        if abs(value - final) < 0.1:
            out[name] = math.nan
            continue
        after = trained.loc[extreme:]
        crossed = (after["probability"] - (value + final) / 2) * np.sign(value - final) < 0
        out[name] = float(after.loc[crossed.idxmax(), "step"]) if crossed.any() else math.nan
    return out
