"""The search for a phenomenon that passes the strict detector (the report's appendix).

Each variant is a family's base config with some fields changed. A variant is trained on
tuning seeds only; the seeds the report's figures come from are never used here (see
preregistration.md for the seeds and the decision rule).

    python course/study/search.py VARIANT [VARIANT ...] --why "REASON" --seeds 100-107

appends one JSON line per (variant, seed) to course/study/search.jsonl: which neuron was the
best candidate, which clauses it failed, its evidence, and why the variant was tried. A
variant is `FAMILY` or `FAMILY+key=value+...` with keys `task.<param>`, `model.<field>`,
`train.<field>` (e.g. `many_crutches+model.d_mlp=32`); `FAMILY/control` is the family's
control (its crutch removed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from vestige.cli import parse_seeds
from vestige.config import CheckpointConfig, ModelConfig, RunConfig, TaskConfig, TrainConfig, preset

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "search.jsonl"
_TRAIN = TrainConfig(steps=1500, batch_size=64, lr=1e-3, weight_decay=0.01)
_CHECKPOINTS = CheckpointConfig(first=25, n_log=20)
_MODEL = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_mlp=64)
# Each family's base, and the task parameters that remove its crutch (the control).
FAMILIES: dict[str, tuple[RunConfig, dict]] = {
    "trigger_copy": (preset("trigger_copy"), {"p_follow": 0.0}),
    "many_crutches": (
        RunConfig(
            task=TaskConfig(name="many_crutches"),
            model=_MODEL,
            train=_TRAIN,
            checkpoints=_CHECKPOINTS,
        ),
        {"p_follow": 0.0},
    ),
    "lexicon": (
        RunConfig(
            task=TaskConfig(name="lexicon"), model=_MODEL, train=_TRAIN, checkpoints=_CHECKPOINTS
        ),
        {"p_follow": 0.0},
    ),
    "markov": (
        RunConfig(
            task=TaskConfig(name="markov"), model=_MODEL, train=_TRAIN, checkpoints=_CHECKPOINTS
        ),
        {"doubly_stochastic": True},
    ),
}


def variant(name: str) -> RunConfig:
    """The config `name` names (see the module docstring)."""
    family, *parts = name.split("+")
    family, _, control = family.partition("/")
    if family not in FAMILIES or control not in ("", "control"):
        raise ValueError(f"unknown family {family!r} in {name!r}; known: {', '.join(FAMILIES)}")
    config, removed = FAMILIES[family]
    task, model, train = dict(config.task.params), {}, {}
    if control:
        task.update(removed)
    for part in parts:
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


def run_one(name: str, seed: int, out: Path, why: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from vestige.analysis import transition_step
    from vestige.detect import Criteria, detect
    from vestige.runs import seed_dir
    from vestige.training import ensure_run

    run = ensure_run(variant(name), seed, seed_dir(out / _dirname(name), seed), progress=False)
    found = detect(run)
    best = found.neurons.iloc[0]
    keep = [
        "unit",
        "positions",
        "init_floor",
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
        "family": name.split("+")[0],
        "variant": name,
        "why": why,
        "seed": seed,
        "caught": found.vestigial is not None,
        "caught_floor_all": detect(run, Criteria(floor="all")).vestigial is not None,
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
    parser.add_argument("--why", required=True, help="why these variants are tried (logged)")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("100-103"))
    parser.add_argument("--out", default="runs/search")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    for name in args.variants:
        variant(name)  # fail fast on a bad variant
    jobs = [(name, seed) for name in args.variants for seed in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(run_one, name, seed, Path(args.out), args.why) for name, seed in jobs
        ]
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
