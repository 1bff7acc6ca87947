"""Recompute the detector's verdicts from the checkpoints, independently of its code.

Uses only `Run.open`, `.steps`, `.model_at`, `.eval_batch` (tokens, loss_mask, labels),
`.task.class_names`, `.config.model.n_layers` and `detect(run).vestigial` (layer, neuron,
positions), plain TransformerLens hooks and numpy (and the kit's `json_safe` and
`atomic_write` to record what it found). The untrained baseline here is what such a script
can build: every seed's step-0 model with the same labels.

    python course/study/verify.py runs/verify/reference runs/verify/control [--json FILE]

For a run whose detector claims a neuron, every clause is recomputed for it; for a run with
no claim, every neuron that is selective at the end and prefers a class with scored
positions (two of the clauses, cheap to test) gets every other clause recomputed too. Each
checkpoint is loaded once per run and every such neuron ablated on it. Prints one line per
seed and exits 1 when a claim does not hold up or a neuron the detector missed passes every
clause.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from vestige import Run
from vestige.detect import detect
from vestige.report import json_safe
from vestige.runs import atomic_write

HOOK = "blocks.{}.mlp.out.hook_in"  # MLP activations after the nonlinearity
RNG = np.random.default_rng(12345)
# the strict verdict's thresholds, restated (not imported from `vestige.detect.Criteria`)
MIN_PEAK = 0.15  # nats: the peak's 95% lower bound, and each "needed" checkpoint's
FLOOR_RATIO = 2.0  # the peak against the init floor
SUSTAINED = 2  # consecutive checkpoints needed
FINAL_FRACTION = 0.10  # the final effect's upper bound against the peak
QUANTILE = 0.99  # of untrained neurons' selectivities, to beat


@torch.no_grad()
def loss_increases(run: Run, step: int, units: list[tuple[int, int]]) -> dict:
    """{(layer, neuron): [n_sequences, positions - 1]} the loss increase at each predicted
    position when the neuron is held at its batch mean, at `step`."""
    tokens = run.eval_batch.tokens
    model = run.model_at(step)
    names = sorted({HOOK.format(layer) for layer, _ in units})
    logits, cache = model.run_with_cache(tokens, names_filter=names)
    clean = _loss(logits, tokens)
    out = {}
    for layer, neuron in units:
        name = HOOK.format(layer)
        mean = cache[name][..., neuron].mean()

        def hold(act, hook=None, neuron=neuron, mean=mean):
            act = act.clone()
            act[..., neuron] = mean
            return act

        out[layer, neuron] = _loss(model.run_with_hooks(tokens, fwd_hooks=[(name, hold)]), tokens)
        out[layer, neuron] -= clean
    return out


def _loss(logits, tokens):
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none"
    )


def scored(run: Run, positions: str) -> torch.Tensor:
    """[n_sequences, positions - 1] the scored positions of class `positions`, aligned with
    `loss_increases` (a label belongs to the position that predicts it)."""
    batch = run.eval_batch
    index = run.task.class_names.index(positions)
    return (batch.loss_mask & (batch.labels == index))[:, :-1]


def per_sequence(increase: torch.Tensor, where: torch.Tensor) -> np.ndarray:
    """[2, n_sequences]: the loss increase summed over `where`, and how many positions."""
    return np.stack([(increase * where).sum(1).numpy(), where.sum(1).numpy().astype(float)])


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
    """The untrained `QUANTILE`s from every seed's step-0 model: of the selectivity per
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
    q = {k: float(np.nanquantile(np.concatenate(v), QUANTILE)) for k, v in si.items()}
    m = {k: float(np.nanquantile(np.concatenate(v), QUANTILE)) for k, v in matched.items()}
    return {"selective": q, "matched": m}


def candidates(run: Run, bar: dict, final: list[np.ndarray]) -> list[tuple[int, int, str]]:
    """(layer, neuron, class) of every neuron selective at the end that prefers a class with
    scored positions and a same-token bar: every neuron that can pass all clauses."""
    names = run.task.class_names
    labels = run.eval_batch.labels.reshape(-1).numpy()
    mask = run.eval_batch.loss_mask.reshape(-1).numpy()
    out = []
    for layer, acts in enumerate(final):
        si, preferred = selectivity(acts, labels, len(names))
        for neuron in np.flatnonzero(si > bar["selective"][layer]):
            c = int(preferred[neuron])
            if (layer, names[c]) in bar["matched"] and (mask & (labels == c)).any():
                out.append((layer, int(neuron), names[c]))
    return out


def clauses(
    run: Run, unit: tuple[int, int, str], timeline: dict, floor: float, bar: dict, final: list
) -> dict:
    """Every clause of the strict verdict for one neuron, from its effect at every checkpoint
    ({step: (effect, low, high)}), its positions' init floor and the final activations."""
    layer, neuron, positions = unit
    steps = run.steps
    trained = [s for s in steps if s > 0]
    peak_step = max(trained, key=lambda s: timeline[s][0])
    peak, peak_low, _ = timeline[peak_step]
    needed = "".join("1" if timeline[s][1] >= MIN_PEAK else "0" for s in trained)
    labels = run.eval_batch.labels.reshape(-1).numpy()
    si, preferred = selectivity(final[layer], labels, len(run.task.class_names))
    focus, other = same_token(run, positions)
    matched = contrast(final[layer], focus, other)[neuron]
    return {
        "peak": round(float(peak), 3),
        "peak_step": peak_step,
        "init_floor": round(floor, 3),
        "final_high": round(float(timeline[steps[-1]][2]), 4),
        "si": round(float(si[neuron]), 2),
        "needed": peak_low >= MIN_PEAK,
        "above_init": peak >= FLOOR_RATIO * floor,
        "sustained": max(len(r) for r in needed.split("0")) >= SUSTAINED,
        "faded": timeline[steps[-1]][2] < FINAL_FRACTION * peak,
        "selective": si[neuron] > bar["selective"][layer],
        "prefers_focus": run.task.class_names[preferred[neuron]] == positions,
        "token_selective": matched > bar["matched"][(layer, positions)],
    }


def judged(run: Run, units: list[tuple[int, int, str]], bar: dict, final: list) -> list[dict]:
    """`clauses` of every unit. The init floor of a class is the largest effect of any
    neuron at step 0 on its positions, so step 0 ablates every neuron."""
    layers, d_mlp = run.config.model.n_layers, final[0].shape[-1]
    every = [(layer, n) for layer in range(layers) for n in range(d_mlp)]
    masks = {positions: scored(run, positions) for _, _, positions in units}
    timelines = {unit: {} for unit in units}
    floors = {}
    for step in run.steps:
        wanted = every if step == 0 else sorted({(layer, n) for layer, n, _ in units})
        increases = loss_increases(run, step, wanted)
        for unit in units:
            sums = per_sequence(increases[unit[:2]], masks[unit[2]])
            timelines[unit][step] = interval(sums)
        if step == 0:
            floors = {
                p: max(float((d * m).sum() / m.sum()) for d in increases.values())
                for p, m in masks.items()
            }
    return [clauses(run, u, timelines[u], floors[u[2]], bar, final) for u in units]


def passes(result: dict) -> bool:
    return all(v for v in result.values() if isinstance(v, (bool, np.bool_)))


def verify(run: Run, bar: dict) -> dict:
    found = detect(run).vestigial
    final = activations(run, run.steps[-1])
    if found is not None:
        unit = (int(found["layer"]), int(found["neuron"]), found["positions"])
        (result,) = judged(run, [unit], bar, final)
        return {"seed": run.seed, "claimed": found["unit"], **result, "holds": passes(result)}
    units = candidates(run, bar, final)
    missed = [f"L{u[0]}N{u[1]}" for u, r in zip(units, judged(run, units, bar, final)) if passes(r)]
    return {"seed": run.seed, "claimed": None, "missed": missed, "holds": not missed}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders of seed-* runs, one preset each")
    parser.add_argument(
        "--json", help="record each folder's verdicts in this file (kept: other presets' records)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one core per script: two at once would oversubscribe two cores
    ok = True
    for folder in args.folders:
        runs = [Run.open(p) for p in sorted(Path(folder).glob("seed-*"))]
        if not runs:
            print(
                f"{folder}: no seed-* runs here: train them first (see the docstring)",
                file=sys.stderr,
            )
            return 2
        bar = bars(runs)
        results = []
        for run in runs:
            results.append(json_safe(verify(run, bar)))
            print(results[-1], flush=True)
            ok &= results[-1]["holds"]
        claims = sum(r["claimed"] is not None and r["holds"] for r in results)
        print(f"{folder}: {claims} of {len(runs)} seeds with a catch that holds up", flush=True)
        if args.json:
            record(Path(args.json), runs[0].config.name, folder, results)
    return 0 if ok else 1


def record(path: Path, preset: str, folder: str, results: list[dict]) -> None:
    """Put one preset's verdicts into `path` ({preset: {folder, results}}), keeping the
    others' (two copies of this script may check two folders at once)."""
    with FileLock(f"{path}.lock"):
        records = json.loads(path.read_text()) if path.exists() else {}
        records[preset] = {"folder": folder, "results": results}
        atomic_write(path, json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
