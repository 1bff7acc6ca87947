"""`--device` and `device=`: resolved with a clear error, threaded through training, opening
runs and analysis, and bit-identical on the CPU (this machine has no GPU)."""

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import vestige
from vestige import cli, model, runs
from vestige.analysis import AnalysisSpec, Positions, analyze
from vestige.device import batch_on, model_device, resolve_device

SPEC = AnalysisSpec(n_untrained=2, n_resamples=50)


def files(run_dir: Path) -> dict[str, str]:
    """sha256 of every checkpoint, state and metrics file of a run."""
    found = [*run_dir.glob("checkpoints/*"), *run_dir.glob("state/*"), run_dir / "metrics.jsonl"]
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in found}


def test_auto_is_cuda_only_where_there_is_one(monkeypatch):
    assert resolve_device("auto") == torch.device("cpu") == resolve_device()
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cuda_without_one_and_unknown_names_say_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu"):
        resolve_device("cuda")
    for name in ("tpu", "gpu", "auto:0", ""):
        with pytest.raises(ValueError, match="one of auto, cpu, cuda"):
            resolve_device(name)


def test_train_on_cpu_by_cli_and_python_is_the_default_bit_for_bit(tiny_run, tmp_path):
    """tiny_run (conftest) was trained with the default device."""
    python = vestige.train(vestige.preset("tiny"), 0, tmp_path / "py", progress=False, device="cpu")
    auto = vestige.train(
        vestige.preset("tiny"), 0, tmp_path / "auto", progress=False, device="auto"
    )
    argv = ["train", "--preset", "tiny", "--seed", "0", "--out", str(tmp_path / "cli")]
    assert cli.main([*argv, "--device", "cpu", "--quiet"]) == 0
    expected = files(tiny_run.path)
    assert len(expected) > 5
    for path in (python.path, auto.path, tmp_path / "cli"):
        assert files(path) == expected
    assert python.device == torch.device("cpu")


def test_cuda_without_one_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert cli.main(["train", "--preset", "tiny", "--out", str(out), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("command", ["train", "analyze", "fork", "study"])
def test_every_work_command_takes_device(command):
    required = {"train": ["--out", "x"], "analyze": ["x"], "fork": ["x", "--out", "y"]}
    argv = [command, *required.get(command, ["--out", "x"])]
    parser = cli.build_parser()
    assert parser.parse_args(argv).device == "cpu"
    assert parser.parse_args([*argv, "--device", "auto"]).device == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--device", "tpu"])


def test_analysis_on_cpu_equals_the_default(tiny_run, tmp_path):
    for name in ("default", "cpu"):
        shutil.copytree(tiny_run.path, tmp_path / name / "seed-0")
        shutil.rmtree(tmp_path / name / "seed-0" / "analysis", ignore_errors=True)
    default = analyze(runs.Run.open(tmp_path / "default" / "seed-0"), SPEC)
    on_cpu = analyze(runs.Run.open(tmp_path / "cpu" / "seed-0", device="cpu"), SPEC)
    assert set(default) == set(on_cpu)
    for name, table in default.items():
        pd.testing.assert_frame_equal(table, on_cpu[name], check_exact=True)
    assert len(default["neurons"]) > 0


@pytest.mark.filterwarnings("ignore:.*meta parameter")
def test_a_checkpoint_opens_onto_the_requested_device(tiny_run, monkeypatch):
    """A GPU is stood in for by the meta device: weights go where the run says."""
    assert model_device(runs.Run.open(tiny_run.path, device="cpu").model_at(60)).type == "cpu"
    meta = lambda name="auto": torch.device("meta")
    monkeypatch.setattr(runs, "resolve_device", meta)
    monkeypatch.setattr(model, "resolve_device", meta)
    run = runs.Run.open(tiny_run.path, device="cuda")
    assert run.device.type == "meta"
    assert {p.device.type for p in run.model_at(60).parameters()} == {"meta"}
    assert model_device(run.untrained_model(5)).type == "meta"
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        runs.Runs.open(tiny_run.path, device="cuda")


def test_batches_and_masks_move_only_when_they_must(tiny_run):
    batch = tiny_run.eval_batch
    assert batch_on(batch, torch.device("cpu")) is batch
    positions = Positions.of(tiny_run)
    assert positions.on(torch.device("cpu")) is positions
    moved = batch_on(batch, torch.device("meta"))
    assert moved.tokens.device.type == moved.labels.device.type == "meta"
    assert moved.tokens.shape == batch.tokens.shape
    on_meta = positions.on(torch.device("meta"))
    assert {m.device.type for m in on_meta.classes.values()} == {"meta"}
    assert on_meta.classes.keys() == positions.classes.keys()


def test_checkpoints_are_saved_from_cpu_tensors(tmp_path, monkeypatch):
    """Whatever device the weights are on, the file holds CPU tensors (here: checked by
    seeing .cpu() called on every tensor written)."""
    seen = []

    class Tracked(torch.Tensor):
        def cpu(self, *args, **kwargs):
            seen.append(True)
            return super().cpu(*args, **kwargs)

    tensors = {"a": torch.ones(3).as_subclass(Tracked), "b": torch.zeros(2).as_subclass(Tracked)}
    runs.save_safetensors(tmp_path / "x.safetensors", tensors, {"step": 1})
    loaded, meta = runs.load_safetensors(tmp_path / "x.safetensors", "")
    assert len(seen) == 2 and meta == {"step": 1} and loaded["a"].device.type == "cpu"
