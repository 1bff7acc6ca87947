"""Seed batching (`vestige.batched.train_seeds`) against one seed at a time, on the CPU."""

import pandas as pd
import pytest
import torch
import vestige
from vestige.batched import train_seeds
from vestige.config import Suppress
from vestige.model import build_model
from vestige.runs import checkpoint_path, load_safetensors, state_path

# The key bias gets no gradient (softmax ignores a constant added to every key's score):
# its value is rounding noise that AdamW's normalised steps amplify, in either path.
NO_GRADIENT = "attn.k.bias"


def close(batched: dict, single: dict, skip: set[str]) -> None:
    assert batched.keys() == single.keys()
    for key in single.keys() - skip:
        torch.testing.assert_close(batched[key], single[key], rtol=1e-4, atol=1e-5, msg=key)


def test_batched_seeds_equal_one_seed_at_a_time(tiny_run, tmp_path):
    config = vestige.preset("tiny")
    runs = train_seeds(config, [0, 1], tmp_path / "batched")
    singles = {0: tiny_run, 1: vestige.train(config, 1, tmp_path / "one", progress=False)}
    # parameter names (the optimiser's order) without the bridge's wrapper segments
    names = [
        n.replace("._original_component", "") for n, _ in build_model(config, 0).named_parameters()
    ]
    skip_weights = {f"blocks.{n.split('.')[1]}.{NO_GRADIENT}" for n in names if NO_GRADIENT in n}
    skip_state = {f"model.{n}" for n in skip_weights}
    skip_state |= {
        f"optim.{i}.{k}"
        for i, n in enumerate(names)
        if NO_GRADIENT in n
        for k in ("exp_avg", "exp_avg_sq")
    }
    assert len(skip_weights) == config.model.n_layers
    for seed, single in singles.items():
        batched = runs[seed]
        assert batched.steps == single.steps == config.checkpoint_steps
        for step in single.steps:
            ours, theirs = (
                load_safetensors(checkpoint_path(r.path, step), "")[0] for r in (batched, single)
            )
            close(ours, theirs, skip_weights)
            ours, theirs = (
                load_safetensors(state_path(r.path, step), "")[0] for r in (batched, single)
            )
            close(ours, theirs, skip_state)
            assert torch.equal(ours["rng"], theirs["rng"])
        pd.testing.assert_frame_equal(batched.metrics, single.metrics, rtol=1e-5, atol=1e-5)
    # its training state is the kit's: a fork from it continues as the single-seed run
    at, end = config.checkpoint_steps[2], config.train.steps
    forked = vestige.fork(runs[1], at, (), tmp_path / "fork", progress=False)
    ours, theirs = (
        load_safetensors(checkpoint_path(r.path, end), "")[0] for r in (forked, singles[1])
    )
    close(ours, theirs, skip_weights)
    assert not torch.equal(
        load_safetensors(checkpoint_path(runs[0].path, 60), "")[0]["embed.weight"],
        load_safetensors(checkpoint_path(runs[1].path, 60), "")[0]["embed.weight"],
    )


def test_interventions_are_refused(tmp_path):
    config = vestige.preset("tiny")
    config = config.replace(interventions=(Suppress(layer=0, neurons=(1,), start=0),))
    with pytest.raises(ValueError, match="without interventions"):
        train_seeds(config, [0], tmp_path)
