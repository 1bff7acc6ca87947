"""Recompute the detector's verdicts from the checkpoints, independently of its code.

Uses only `Run.open`, `.steps`, `.model_at`, `.eval_batch` (tokens, loss_mask, labels),
`.task.class_names`, `.config.model.n_layers` and `detect(run).vestigial` (layer, neuron,
positions), plain TransformerLens hooks and numpy. The untrained baseline here is what such a
script can build: every seed's step-0 model with the same labels.

    python course/study/verify.py runs/verify/reference runs/verify/control

For a run whose detector claims a neuron, every clause is recomputed for it; for a run with
no claim, every neuron's final effect, selectivity and preference are screened and the
clauses recomputed for any neuron that passes those. Prints one line per seed and exits 1
when a claim does not hold up or a neuron the detector missed passes every clause.
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
def effect_sums(run: Run, step: int, layer: int, neurons: list[int], positions: str):
    """[neurons, 2, n_sequences]: per evaluation sequence, the loss increase summed over the
    scored positions of class `positions` when each neuron is held at its batch mean, and
    how many such positions it has."""
    batch = run.eval_batch
    index = run.task.class_names.index(positions)
    where = (batch.loss_mask & (batch.labels == index))[:, :-1]
    model = run.model_at(step)
    name = HOOK.format(layer)
    logits, cache = model.run_with_cache(batch.tokens, names_filter=[name])
    clean = _loss(logits, batch.tokens)
    out = []
    for neuron in neurons:
        mean = cache[name][..., neuron].mean()

        def hold(act, hook=None, neuron=neuron, mean=mean):
            act = act.clone()
            act[..., neuron] = mean
            return act

        delta = _loss(model.run_with_hooks(batch.tokens, fwd_hooks=[(name, hold)]), batch.tokens)
        delta = delta - clean
        out.append(np.stack([(delta * where).sum(1).numpy(), where.sum(1).numpy().astype(float)]))
    return np.stack(out)


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
def activations(run: Run, step: int) -> list[np.ndarray]:
    """Every layer's MLP activations at `step`, [positions, neurons] each."""
    model = run.model_at(step)
    names = [HOOK.format(layer) for layer in range(run.config.model.n_layers)]
    _, cache = model.run_with_cache(run.eval_batch.tokens, names_filter=names)
    return [cache[name].reshape(-1, cache[name].shape[-1]).numpy() for name in names]


def selectivity(acts: np.ndarray, labels: np.ndarray, n_classes: int):
    """Class selectivity index per neuron and each neuron's preferred class."""
    means = np.stack([acts[labels == c].mean(0) for c in range(n_classes)], 1)
    top = means.max(1)
    rest = (means.sum(1) - top) / (n_classes - 1)
    return (top - rest) / (top + rest + 1e-7), means.argmax(1)


def same_token(run: Run, positions: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat masks: every position of class `positions`, and the positions outside it that
    hold one of the tokens found there (e.g. a lone B against B after A)."""
    batch = run.eval_batch
    focus = (batch.labels == run.task.class_names.index(positions)).reshape(-1).numpy()
    tokens = batch.tokens.reshape(-1).numpy()
    return focus, np.isin(tokens, np.unique(tokens[focus])) & ~focus


def contrast(acts: np.ndarray, focus: np.ndarray, other: np.ndarray) -> np.ndarray:
    mu_f, mu_o = acts[focus].mean(0), acts[other].mean(0)
    return (mu_f - mu_o) / (mu_f + mu_o + 1e-7)


def bars(runs: list[Run]) -> dict:
    """The untrained 99th percentiles from every seed's step-0 model: of the selectivity per
    layer, and of the same-token selectivity per (layer, focus class)."""
    si, matched = {}, {}
    for run in runs:
        labels = run.eval_batch.labels.reshape(-1).numpy()
        names = run.task.class_names
        for layer, acts in enumerate(activations(run, 0)):
            si.setdefault(layer, []).append(selectivity(acts, labels, len(names))[0])
            for name in names:
                focus, other = same_token(run, name)
                if focus.any() and other.any():
                    values = contrast(acts, focus, other)
                    values = values[(acts[focus] > 0).mean(0) >= 0.1]
                    matched.setdefault((layer, name), []).append(values)
    q = {k: float(np.nanquantile(np.concatenate(v), 0.99)) for k, v in si.items()}
    m = {k: float(np.nanquantile(np.concatenate(v), 0.99)) for k, v in matched.items()}
    return {"selective": q, "matched": m}


def clauses(run: Run, layer: int, neuron: int, positions: str, bar: dict) -> dict:
    """Every clause of the strict verdict for one neuron, recomputed."""
    steps = run.steps
    timeline = {
        step: interval(effect_sums(run, step, layer, [neuron], positions)[0]) for step in steps
    }
    trained = [s for s in steps if s > 0]
    peak_step = max(trained, key=lambda s: timeline[s][0])
    peak, peak_low, _ = timeline[peak_step]
    floor = init_floor(run, positions)
    needed = "".join("1" if timeline[s][1] >= 0.15 else "0" for s in trained)
    acts = activations(run, steps[-1])[layer]
    labels = run.eval_batch.labels.reshape(-1).numpy()
    si, preferred = selectivity(acts, labels, len(run.task.class_names))
    focus, other = same_token(run, positions)
    matched = contrast(acts, focus, other)[neuron]
    return {
        "peak": round(float(peak), 3),
        "peak_step": peak_step,
        "init_floor": round(floor, 3),
        "final_high": round(float(timeline[steps[-1]][2]), 4),
        "si": round(float(si[neuron]), 2),
        "needed": peak_low >= 0.15,
        "above_init": peak >= 2 * floor,
        "sustained": max(len(r) for r in needed.split("0")) >= 2,
        "faded": timeline[steps[-1]][2] < 0.10 * peak,
        "selective": si[neuron] > bar["selective"][layer],
        "prefers_focus": run.task.class_names[preferred[neuron]] == positions,
        "token_selective": matched > bar["matched"][(layer, positions)],
    }


def init_floor(run: Run, positions: str) -> float:
    """The largest mean-ablation effect of any neuron at step 0 on those positions."""
    d_mlp = run.model_at(0).cfg.d_mlp
    return max(
        float(s[0].sum() / s[1].sum())
        for layer in range(run.config.model.n_layers)
        for s in effect_sums(run, 0, layer, list(range(d_mlp)), positions)
    )


def screen(run: Run, bar: dict) -> list[tuple[int, int, str]]:
    """Neurons that pass the cheap clauses at the end (selective, preferring a class with
    scored positions) and were needed at their best checkpoint on it: the candidates a claim
    of "nothing here" must survive."""
    steps, names = run.steps, run.task.class_names
    labels = run.eval_batch.labels.reshape(-1).numpy()
    scored = run.eval_batch.loss_mask.reshape(-1).numpy()
    out = []
    for layer, acts in enumerate(activations(run, steps[-1])):
        si, preferred = selectivity(acts, labels, len(names))
        for neuron in np.flatnonzero(si > bar["selective"][layer]):
            positions = names[preferred[neuron]]
            if (layer, positions) not in bar["matched"] or not (
                scored & (labels == preferred[neuron])
            ).any():
                continue
            best = max(
                effect_sums(run, step, layer, [int(neuron)], positions)[0][0].sum()
                for step in steps[1:]
            )
            if best > 0:
                out.append((layer, int(neuron), positions))
    return out


def verify(run: Run, bar: dict) -> dict:
    found = detect(run).vestigial
    if found is not None:
        layer, neuron, positions = int(found["layer"]), int(found["neuron"]), found["positions"]
        result = clauses(run, layer, neuron, positions, bar)
        ok = all(v for k, v in result.items() if isinstance(v, (bool, np.bool_)))
        return {"seed": run.seed, "claimed": found["unit"], **result, "holds": bool(ok)}
    missed = []
    for layer, neuron, positions in screen(run, bar):
        result = clauses(run, layer, neuron, positions, bar)
        if all(v for v in result.values() if isinstance(v, (bool, np.bool_))):
            missed.append(f"L{layer}N{neuron}")
    return {"seed": run.seed, "claimed": None, "missed": missed, "holds": not missed}


def main(folders: list[str]) -> int:
    torch.set_num_threads(1)  # one core per script: two at once would oversubscribe two cores
    ok = True
    for folder in folders:
        runs = [Run.open(p) for p in sorted(Path(folder).glob("seed-*"))]
        bar = bars(runs)
        claims = 0
        for run in runs:
            result = verify(run, bar)
            claims += result["claimed"] is not None and result["holds"]
            print(result, flush=True)
            ok &= result["holds"]
        print(f"{folder}: {claims} of {len(runs)} seeds with a catch that holds up", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
