"""Recompute the detector's catches from the checkpoints, independently of its code.

Uses only `Run.open`, `.steps`, `.model_at`, `.eval_batch` (tokens, loss_mask, labels),
`.task.class_names`, `.config.model.n_layers` and `detect(run).vestigial` (layer, neuron,
positions), plain TransformerLens hooks and numpy. The untrained baseline here is what such a
script can build: every seed's step-0 model with the same labels.

    python course/study/verify.py runs/study/reference/base

prints, per seed, the recomputed evidence and whether every clause holds, and exits 1 when
a claimed catch does not hold up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from vestige import Run
from vestige.detect import detect

HOOK = "blocks.{}.mlp.out.hook_in"  # MLP activations after the nonlinearity
RNG = np.random.default_rng(12345)


@torch.no_grad()
def effect_sums(run: Run, step: int, layer: int, neuron: int, positions: str) -> np.ndarray:
    """[2, n_sequences]: the loss increase per evaluation sequence, summed over its focus
    positions, when the neuron is held at its mean over the batch; and its focus positions."""
    batch = run.eval_batch
    focus = (batch.loss_mask & (batch.labels == run.task.class_names.index(positions)))[:, :-1]
    model = run.model_at(step)
    name = HOOK.format(layer)
    logits, cache = model.run_with_cache(batch.tokens, names_filter=[name])
    mean = cache[name][..., neuron].mean()

    def hold(act, hook=None):
        act = act.clone()
        act[..., neuron] = mean
        return act

    ablated = model.run_with_hooks(batch.tokens, fwd_hooks=[(name, hold)])
    delta = _loss(ablated, batch.tokens) - _loss(logits, batch.tokens)
    return np.stack([(delta * focus).sum(1).numpy(), focus.sum(1).numpy().astype(float)])


def _loss(logits, tokens):
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none"
    )


def interval(sums: np.ndarray, n: int = 2000) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap 95% interval, resampling sequences."""
    idx = RNG.integers(0, sums.shape[1], size=(n, sums.shape[1]))
    boots = sums[0][idx].sum(1) / sums[1][idx].sum(1)
    return sums[0].sum() / sums[1].sum(), *np.quantile(boots, [0.025, 0.975])


@torch.no_grad()
def selectivity(run: Run, step: int) -> list[np.ndarray]:
    """Class selectivity index of every neuron of every layer at `step`."""
    batch, classes = run.eval_batch, run.task.class_names
    model = run.model_at(step)
    names = [HOOK.format(layer) for layer in range(run.config.model.n_layers)]
    _, cache = model.run_with_cache(batch.tokens, names_filter=names)
    out = []
    for name in names:
        acts = cache[name].reshape(-1, cache[name].shape[-1]).numpy()
        labels = batch.labels.reshape(-1).numpy()
        means = np.stack([acts[labels == c].mean(0) for c in range(len(classes))], 1)
        top = means.max(1)
        rest = (means.sum(1) - top) / (len(classes) - 1)
        out.append((top - rest) / (top + rest + 1e-7))
    return out


def verify(run: Run, untrained_p99: list[float]) -> dict:
    found = detect(run).vestigial
    if found is None:
        return {"seed": run.seed, "claimed": None}
    layer, neuron, positions = int(found["layer"]), int(found["neuron"]), found["positions"]
    steps = run.steps
    timeline = {step: interval(effect_sums(run, step, layer, neuron, positions)) for step in steps}
    trained = [s for s in steps if s > 0]
    peak_step = max(trained, key=lambda s: timeline[s][0])
    peak, peak_low, _ = timeline[peak_step]
    floor = init_floor(run, positions)
    needed = [timeline[s][1] >= 0.15 for s in trained]
    longest = max(
        (len(r) for r in "".join("1" if n else "0" for n in needed).split("0")), default=0
    )
    final_si = selectivity(run, steps[-1])[layer][neuron]
    clauses = {
        "needed": peak_low >= 0.15,
        "above_init": peak >= 2 * floor,
        "sustained": longest >= 2,
        "faded": timeline[steps[-1]][2] < 0.10 * peak,
        "selective": final_si > untrained_p99[layer],
    }
    return {
        "seed": run.seed,
        "claimed": found["unit"],
        "peak": peak,
        "peak_low": peak_low,
        "peak_step": peak_step,
        "init_floor": floor,
        "final": timeline[steps[-1]],
        "final_si": float(final_si),
        "untrained_p99": untrained_p99[layer],
        **clauses,
        "holds": all(clauses.values()),
    }


def init_floor(run: Run, positions: str) -> float:
    """The largest mean-ablation effect of any neuron at step 0."""
    d_mlp = run.model_at(0).cfg.d_mlp
    return max(
        _ratio(effect_sums(run, 0, layer, neuron, positions))
        for layer in range(run.config.model.n_layers)
        for neuron in range(d_mlp)
    )


def _ratio(sums: np.ndarray) -> float:
    return float(sums[0].sum() / sums[1].sum())


def main(folder: str) -> int:
    runs = [Run.open(p) for p in sorted(Path(folder).glob("seed-*"))]
    n_layers = runs[0].config.model.n_layers
    untrained = [
        np.concatenate([selectivity(r, 0)[layer] for r in runs]) for layer in range(n_layers)
    ]
    p99 = [float(np.quantile(u, 0.99)) for u in untrained]
    ok = True
    for run in runs:
        result = verify(run, p99)
        print(result)
        ok &= result["claimed"] is None or result["holds"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
