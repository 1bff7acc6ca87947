"""The search for a phenomenon that passes the strict detector (the report's appendix).

Each variant is the reference preset with some fields changed. A variant is trained on
tuning seeds only; the seeds the report's figures come from are never used here.

    python course/study/search.py VARIANT [VARIANT ...] --seeds 100-103 --out runs/search

appends one JSON line per (variant, seed) to course/study/search.jsonl: which neuron was the
best candidate, which clauses it failed, and its evidence.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from vestige.cli import parse_seeds
from vestige.config import RunConfig, preset

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "search.jsonl"


def variant(name: str) -> RunConfig:
    """The reference preset changed as `name` says: `key=value` parts joined by `+`, keys
    `task.<param>`, `model.<field>`, `train.<field>` (e.g. `model.d_mlp=8+train.lr=0.003`)."""
    config = preset("reference")
    if name == "reference":
        return config
    task, model, train = dict(config.task.params), {}, {}
    for part in name.split("+"):
        key, _, raw = part.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word: a string
        section, _, field = key.partition(".")
        {"task": task, "model": model, "train": train}[section][field] = value
    return dataclasses.replace(
        config,
        name=name,
        task=dataclasses.replace(config.task, params=task),
        model=dataclasses.replace(config.model, **model),
        train=dataclasses.replace(config.train, **train),
    ).validate()


def run_one(name: str, seed: int, out: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from vestige.analysis import transition_step
    from vestige.detect import detect
    from vestige.training import ensure_run

    run = ensure_run(variant(name), seed, out / _dirname(name) / f"seed-{seed}", progress=False)
    found = detect(run)
    best = found.neurons.iloc[0]
    keep = [
        "unit",
        "peak_effect",
        "peak_low",
        "peak_step",
        "needed_checkpoints",
        "settle_step",
        "final_effect",
        "final_high",
        "margin_fraction",
        "final_selectivity",
        "selectivity_baseline",
        "preferred_class",
        "final_matched_selectivity",
        "matched_baseline",
        "failed",
    ]
    evals = run.metrics.query("split == 'eval'")
    return {
        "variant": name,
        "seed": seed,
        "caught": found.vestigial is not None,
        "init_floor": found.init_floor,
        "transition": transition_step(run),
        "final_loss": float(evals["loss"].iloc[-1]),
        "best": {k: _plain(best[k]) for k in keep},
    }


def _plain(value):
    if isinstance(value, list):
        return value
    return value.item() if hasattr(value, "item") else value


def _dirname(name: str) -> str:
    return name.replace("=", "-").replace("+", "_").replace("/", "-")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("100-103"))
    parser.add_argument("--out", default="runs/search")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    for name in args.variants:
        variant(name)  # fail fast on a bad variant
    jobs = [(name, seed) for name in args.variants for seed in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, name, seed, Path(args.out)) for name, seed in jobs]
        for future in as_completed(futures):
            result = future.result()
            with RESULTS.open("a") as f:
                f.write(json.dumps(result) + "\n")
            b = result["best"]
            print(
                f"{result['variant']} seed {result['seed']}: caught={result['caught']} "
                f"{b['unit']} peak {b['peak_effect']:.3f}@{b['peak_step']} final "
                f"{b['final_effect']:.3f} SI {b['final_selectivity']:.2f}/{b['selectivity_baseline']:.2f} "
                f"tokSI {b['final_matched_selectivity']:.2f}/{b['matched_baseline']:.2f} "
                f"failed {b['failed']}",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
