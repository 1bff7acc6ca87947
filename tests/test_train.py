import dataclasses
import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import vestige
from vestige.config import SelectivityPenalty, Suppress, SuppressHeads
from vestige.hooks import cache_activations, mlp_post
from vestige.metrics import class_means, selectivity_index


def digests(run_dir: Path) -> dict[str, str]:
    files = sorted((run_dir / "checkpoints").glob("*.safetensors"))
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_a_run_has_checkpoints_metrics_and_models(tiny_run):
    assert tiny_run.steps == tiny_run.config.checkpoint_steps
    assert len(tiny_run.steps) >= 3 and tiny_run.complete
    metrics = tiny_run.metrics
    train = metrics[metrics.split == "train"]
    assert list(train.step) == list(range(0, 60, 5))
    assert train.loss.iloc[-1] < train.loss.iloc[0]
    assert set(metrics[metrics.split == "eval"].step) == set(tiny_run.steps)
    assert tiny_run.model_at(60) is tiny_run.model_at(60)
    assert not any(p.name.endswith(".tmp") for p in tiny_run.path.rglob("*"))


def test_same_config_and_seed_are_bit_identical(tiny_run, tmp_path):
    again = vestige.train(vestige.preset("tiny"), 0, tmp_path / "again", progress=False)
    assert digests(again.path) == digests(tiny_run.path)
    other = vestige.train(vestige.preset("tiny"), 1, tmp_path / "other", progress=False)
    assert digests(other.path) != digests(tiny_run.path)


def test_stopped_and_resumed_run_equals_uninterrupted(tiny_run, tmp_path):
    config = vestige.preset("tiny")
    vestige.train(config, 0, tmp_path / "r", progress=False, stop_after=7)
    vestige.train(config, 0, tmp_path / "r", progress=False, stop_after=19, resume=True)
    run = vestige.train(config, 0, tmp_path / "r", progress=False, resume=True)
    assert digests(run.path) == digests(tiny_run.path)
    assert (run.path / "metrics.jsonl").read_text() == (tiny_run.path / "metrics.jsonl").read_text()


def test_existing_run_is_not_overwritten(tiny_run):
    before = digests(tiny_run.path)
    with pytest.raises(vestige.RunError, match="--resume"):
        vestige.train(vestige.preset("tiny"), 0, tiny_run.path, progress=False)
    with pytest.raises(vestige.RunError, match="another config or seed"):
        vestige.train(vestige.preset("tiny"), 5, tiny_run.path, progress=False, resume=True)
    assert digests(tiny_run.path) == before


def slow_tiny() -> vestige.RunConfig:
    config = vestige.preset("tiny")
    return dataclasses.replace(config, train=dataclasses.replace(config.train, steps=600))


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(slow_tiny().to_json())
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "vestige",
        "train",
        "--config",
        str(config_file),
        "--seed",
        "0",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 600  # a loaded machine may take minutes to start the process
    while len(list((out / "checkpoints").glob("*.safetensors"))) < 2 and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((out / "checkpoints").glob("*.safetensors")))
    assert 2 <= done < len(slow_tiny().checkpoint_steps), "the kill came too late to test resuming"
    subprocess.run(cmd + ["--resume"], check=True)
    clean = vestige.train(slow_tiny(), 0, tmp_path / "clean", progress=False)
    assert digests(out) == digests(clean.path)
    assert (out / "metrics.jsonl").read_text() == (clean.path / "metrics.jsonl").read_text()


def test_suppressed_neuron_gets_no_gradient(tmp_path):
    config = vestige.preset("tiny").replace(interventions=(Suppress(layer=0, neurons=(2,)),))
    run = vestige.train(config, 0, tmp_path / "s", progress=False)
    start, end = (run.model_at(s).state_dict()["blocks.0.mlp.in.weight"] for s in (0, 60))
    assert torch.equal(start[2], end[2])
    assert not torch.equal(start[3], end[3])


def mean_selectivity(run: vestige.Run) -> float:
    model = run.model_at(run.steps[-1])
    _, acts = cache_activations(model, run.eval_batch.tokens, [mlp_post(0)])
    means = class_means(acts[mlp_post(0)], run.eval_batch.labels, len(run.task.class_names))
    return selectivity_index(means).mean().item()


def test_selectivity_regulariser_moves_selectivity_its_way(tmp_path):
    config = vestige.preset("tiny")
    runs = {
        alpha: vestige.train(
            config.replace(interventions=(SelectivityPenalty(alpha),)),
            0,
            tmp_path / str(alpha),
            progress=False,
        )
        for alpha in (-3.0, 3.0)
    }
    assert mean_selectivity(runs[-3.0]) + 0.1 < mean_selectivity(runs[3.0])
    logged = runs[3.0].metrics.query("split == 'train'").selectivity
    assert logged.notna().all() and logged.between(0, 1).all()


def test_normal_use_warns_nothing_deprecated(tiny_run, tmp_path):
    import warnings

    from vestige.analysis import AnalysisSpec, analyze

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        run = vestige.train(vestige.preset("tiny"), 3, tmp_path / "w", progress=False)
        analyze(run, AnalysisSpec(modes=("mean", "resample")))


def test_ensure_run_reuses_a_finished_run_but_never_one_of_another_config(tiny_run):
    before = digests(tiny_run.path)
    assert (
        vestige.ensure_run(vestige.preset("tiny"), 0, tiny_run.path, progress=False).steps
        == tiny_run.steps
    )
    other = vestige.preset("tiny").replace(interventions=(Suppress(layer=0, neurons=(1,)),))
    with pytest.raises(vestige.RunError, match="another config or seed"):
        vestige.ensure_run(other, 0, tiny_run.path, progress=False)
    assert digests(tiny_run.path) == before


def test_fork_shares_the_history_and_equals_training_the_fork_from_scratch(tiny_run, tmp_path):
    held = (Suppress(layer=0, neurons=(2,), start=26, end=40),)
    forked = vestige.fork(tiny_run, 26, held, tmp_path / "fork", progress=False)
    assert forked.config.interventions == held
    shared = {
        name: digest for name, digest in digests(tiny_run.path).items() if int(name[5:11]) <= 26
    }
    assert shared.items() <= digests(forked.path).items()
    assert digests(forked.path) != digests(tiny_run.path)  # it diverged after step 26
    scratch = vestige.train(
        tiny_run.config.replace(interventions=held), 0, tmp_path / "scratch", progress=False
    )
    assert digests(forked.path) == digests(scratch.path)
    assert (forked.path / "metrics.jsonl").read_text() == (
        scratch.path / "metrics.jsonl"
    ).read_text()
    assert vestige.fork(tiny_run, 26, held, tmp_path / "fork", progress=False).steps == forked.steps


def test_fork_refuses_to_rewrite_the_shared_history(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="before the fork at step 26"):
        vestige.fork(tiny_run, 26, (Suppress(0, (2,), start=5),), tmp_path / "f", progress=False)
    with pytest.raises(vestige.RunError, match="not a checkpoint.*nearest"):
        vestige.fork(tiny_run, 27, (Suppress(0, (2,), start=30),), tmp_path / "g", progress=False)
    assert not (tmp_path / "f").exists() and not (tmp_path / "g").exists()


def test_suppressed_heads_are_held_and_learn_nothing_through_their_output(tmp_path):
    config = vestige.preset("tiny").replace(
        interventions=(SuppressHeads(layer=0, heads=(1,), mode="zero"),)
    )
    run = vestige.train(config, 0, tmp_path / "h", progress=False)
    d_head = run.config.model.d_model // run.config.model.n_heads
    start, end = (run.model_at(s).state_dict()["blocks.0.attn.o.weight"] for s in (0, 60))
    assert torch.equal(
        start[:, d_head : 2 * d_head], end[:, d_head : 2 * d_head]
    )  # head 1 writes nothing
    assert not torch.equal(start[:, :d_head], end[:, :d_head])
