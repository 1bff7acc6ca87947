"""Run directories on disk and the `Run` / `Runs` objects that open them.

    runs/<name>/seed-<k>/
      config.json                          RunConfig + seed, versioned
      metrics.jsonl                        one line per logged step
      checkpoints/step-000512.safetensors  weights only
      state/step-000512.safetensors        optimiser + RNG state at each checkpoint (forks)
      state/latest.safetensors             optimiser + RNG state, for resuming
      analysis/*.parquet                   derived tables, recomputable
      analysis/manifest.json               what the tables were computed from (analysed runs)
    runs/<name>/.seed-<k>.lock             held by the one task writing seed-<k>/ (`lock_path`)
    runs/<name>/.shared/                   derived files every seed shares (untrained baselines)

Every path above is built by a function of this module (`seed_dir`, `seed_dirs`,
`config_path`, `checkpoint_path`, ...); nothing else spells the layout.

Every file is written atomically (temporary file, then `os.replace`), so a run killed at
any moment leaves only complete files. Weights are safetensors; nothing is unpickled.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from vestige.config import RunConfig
from vestige.device import resolve_device
from vestige.memory import release_free_memory
from vestige.task import Batch, Task, make_task

CHECKPOINT_RE = re.compile(r"^step-(\d+)\.safetensors$")


class RunError(ValueError):
    """A run directory that cannot be read as asked; the message says what to do."""


class CheckpointError(RunError):
    """A checkpoint file that is missing, truncated or corrupt."""


class DiskFull(RunError):
    """The disk (or the quota) filled up while writing; what was saved before is intact."""


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part.
    A full disk raises `DiskFull`, whose message says what to do."""
    path = Path(path)
    with _full_disk_says_what_to_do(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open would not
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _full_disk_says_what_to_do(path: Path):
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(
            f"the disk is full: cannot write {path}. Free some space, then run the same "
            "command again: with --resume, `vestige train` continues where it stopped "
            "(nothing saved before is lost)"
        ) from err


def config_path(run_dir: Path) -> Path:
    """The run's config.json; a directory that holds one is a run directory."""
    return Path(run_dir) / "config.json"


def metrics_path(run_dir: Path) -> Path:
    """The run's metrics.jsonl: one line per logged step."""
    return Path(run_dir) / "metrics.jsonl"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """The weights at checkpoint `step`."""
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}.safetensors"


def state_path(run_dir: Path, step: int) -> Path:
    """The training state saved at checkpoint `step` (what `fork` starts from)."""
    return Path(run_dir) / "state" / f"step-{step:06d}.safetensors"


def latest_state_path(run_dir: Path) -> Path:
    """The latest training state, for resuming an interrupted run."""
    return Path(run_dir) / "state" / "latest.safetensors"


def analysis_dir(run_dir: Path, prefix: str = "") -> Path:
    """Where a run's derived tables are cached (`prefix`: a subfolder, e.g. a mechanism's)."""
    return Path(run_dir) / "analysis" / prefix


def manifest_path(run_dir: Path, prefix: str = "") -> Path:
    """What the cached tables in `analysis_dir(run_dir, prefix)` were computed from; a run
    whose manifest exists has been analysed."""
    return analysis_dir(run_dir, prefix) / "manifest.json"


SEED_PREFIX = "seed-"  # a folder of seeds holds one run directory per seed: seed-<k>/


def seed_dir(folder: Path, seed: int) -> Path:
    """The run directory of `seed` in a folder of seeds (what `Runs.open` reads)."""
    return Path(folder) / f"{SEED_PREFIX}{seed}"


def seed_dirs(folder: Path, holding: Callable[[Path], Path] = config_path) -> dict[int, Path]:
    """The run directories of a folder of seeds whose file `holding(run_dir)` exists (e.g.
    `manifest_path`: the analysed ones), by seed in increasing order; {} for no folder."""
    found = {}
    for p in Path(folder).glob(f"{SEED_PREFIX}*"):
        seed = p.name.removeprefix(SEED_PREFIX)
        if seed.isdigit() and holding(p).exists():
            found[int(seed)] = p
    return dict(sorted(found.items()))


def lock_path(run_dir: Path) -> Path:
    """The lock file of a run directory: beside it, hidden, so `Runs.open` never sees it."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def shared_path(run_dir: Path, name: str) -> Path:
    """A file shared by every run beside `run_dir` (e.g. a configuration's untrained
    baseline): `<parent>/.shared/<name>`, hidden so `Runs.open` never takes it for a run."""
    return Path(run_dir).resolve().parent / ".shared" / name


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write `tensors` (from any device: they are saved from the CPU) and `meta` atomically."""
    data = save_tensors(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        metadata={"vestige": json.dumps(meta)},
    )
    atomic_write(path, data)


def load_safetensors(path: Path, retrain_hint: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file; a missing or damaged one raises CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} is missing. {retrain_hint}")
    data = path.read_bytes()
    try:
        tensors = load_tensors(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header.get("__metadata__", {}).get("vestige", "{}"))
    except (SafetensorError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"checkpoint file {path} is truncated or corrupt ({err}). {retrain_hint}"
        ) from err
    return tensors, meta


def write_config(
    run_dir: Path, config: RunConfig, seed: int, forked_from: dict | None = None
) -> None:
    """The run's config.json: the config, the seed, and where it came from (versions; for a
    fork, the parent run and step)."""
    from vestige import __version__

    provenance = {
        "vestige": __version__,
        "torch": torch.__version__,
        "transformer_lens": _version("transformer-lens"),
    }
    if forked_from is not None:
        provenance["forked_from"] = forked_from
    data = {**config.to_dict(), "seed": seed, "provenance": provenance}
    atomic_write(config_path(run_dir), json.dumps(data, indent=2, sort_keys=True))


def read_config(run_dir: Path) -> tuple[RunConfig, int]:
    path = config_path(run_dir)
    if not path.exists():
        raise RunError(
            f"{run_dir} is not a run directory (no config.json); "
            "create one with `vestige train --preset NAME --seed N --out DIR`"
        )
    text = path.read_text()
    try:
        seed = json.loads(text).get("seed")
        config = RunConfig.from_json(text)  # the one check of the format version
    except ValueError as err:
        raise RunError(
            f"{path}: {err}; or open the run with the vestige version that wrote it"
        ) from err
    if seed is None:
        raise RunError(f"{path} has no seed; it is a config, not a run: train it with --config")
    return config, int(seed)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = metrics_path(run_dir)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    atomic_write(metrics_path(run_dir), "".join(json.dumps(r) + "\n" for r in records))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


@runtime_checkable
class RunProtocol(Protocol):
    """What analysis, `detect`, the mechanism tables and the explorer read from a run: the
    kit's own `Run` (a run directory) and a checkpoint suite (`vestige.suites.SuiteRun`)
    both have it. `path` is a local folder where derived tables are cached; `task` names the
    classes of `eval_batch`'s labels (`class_names`, `focus_classes`, `transition_class`,
    `focus_metric`, `stages(batch)`); `config.model` has `n_layers`, `n_heads`, `d_mlp`."""

    path: Path
    seed: int
    config: Any
    task: Any
    eval_batch: Batch

    @property
    def steps(self) -> list[int]: ...

    @property
    def metrics(self) -> pd.DataFrame: ...

    def model_at(self, step: int): ...

    def checkpoint_id(self, step: int) -> list:
        """What identifies the weights of checkpoint `step` (plain JSON): when it changes,
        tables derived from the checkpoint are stale."""

    def untrained_key(self) -> dict:
        """What the untrained baseline depends on (plain JSON; its cache key)."""

    def untrained_probe(self, seed: int) -> tuple[Any, Batch]:
        """(task, evaluation batch) untrained models are measured on, made from `seed`."""

    def untrained_model(self, seed: int):
        """A fresh initialisation of the run's model from `seed` (a TransformerBridge)."""


class Run:
    """One seed of one config, opened from its directory. Use `Run.open(path)`; its models
    are loaded onto `device` (see `vestige.device.resolve_device`)."""

    def __init__(
        self,
        path: Path,
        config: RunConfig,
        seed: int,
        cache_size: int = 4,
        device: str | torch.device = "cpu",
    ):
        self.path = Path(path)
        self.config = config
        self.seed = seed
        self.device = resolve_device(device)
        self._models: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def open(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
        path = Path(path)
        config, seed = read_config(path)
        return cls(path, config, seed, device=device)

    def __repr__(self) -> str:
        return (
            f"Run({str(self.path)!r}, preset={self.config.name!r}, seed={self.seed}, "
            f"{len(self.steps)}/{len(self.config.checkpoint_steps)} checkpoints)"
        )

    @property
    def steps(self) -> list[int]:
        """The checkpoint steps on disk, ascending."""
        folder = self.path / "checkpoints"
        if not folder.is_dir():
            return []
        found = (CHECKPOINT_RE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    @property
    def complete(self) -> bool:
        """True when training reached its last step."""
        return self.config.train.steps in self.steps

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per logged step: `split` is "train" (minibatch) or "eval" (checkpoints)."""
        return pd.DataFrame(read_metrics(self.path))

    @cached_property
    def task(self) -> Task:
        task = self.config.task
        return make_task(task.name, task.params, self.seed, task.train_pool)

    @cached_property
    def eval_batch(self) -> Batch:
        return self.task.eval_batch(self.config.task.eval_size)

    def retrain_hint(self) -> str:
        return (
            f"Move the run away and retrain it: `vestige train --config {self.path / 'config.json'} "
            f"--seed {self.seed} --out NEW_DIR`."
        )

    def checkpoint_id(self, step: int) -> list:
        """The checkpoint file's size and modification time (see `RunProtocol`)."""
        stat = checkpoint_path(self.path, step).stat()
        return [stat.st_size, stat.st_mtime_ns]

    def untrained_key(self) -> dict:
        """The task and model configs: every seed of a configuration shares its baseline."""
        return {"task": asdict(self.config.task), "model": asdict(self.config.model)}

    def untrained_probe(self, seed: int) -> tuple[Task, Batch]:
        task = make_task(self.config.task.name, self.config.task.params, seed)
        return task, task.eval_batch(self.config.task.eval_size)

    def untrained_model(self, seed: int):
        from vestige.model import build_model

        return build_model(self.config, seed, self.device)

    def model_at(self, step: int):
        """The model as it was at checkpoint `step` on `self.device` (in eval mode, cached).
        Loading one first gives the C heap's free memory back (`vestige.memory`): loops over
        checkpoints would otherwise grow the process by fragments of the ones before."""
        if step in self._models:
            self._models.move_to_end(step)
            return self._models[step]
        steps = self.steps
        if step not in steps:
            if not steps:
                raise RunError(f"{self.path} has no checkpoints yet; train it first")
            nearest = sorted(steps, key=lambda s: (abs(s - step), s))[:3]
            raise RunError(
                f"step {step} is not a checkpoint of {self.path}; nearest checkpoints: "
                f"{sorted(nearest)} (all: run.steps)"
            )
        release_free_memory()
        model = self._load(step)
        self._models[step] = model
        if len(self._models) > self._cache_size:
            self._models.popitem(last=False)
        return model

    def _load(self, step: int):
        from vestige.model import build_model

        tensors, _ = load_safetensors(checkpoint_path(self.path, step), self.retrain_hint())
        model = build_model(self.config, self.seed, self.device)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint file {checkpoint_path(self.path, step)} does not fit this run's "
                f"model ({err}). {self.retrain_hint()}"
            ) from err
        return model.eval()


class Runs:
    """Several seeds of one config: the `seed-<k>` subdirectories of a directory."""

    def __init__(self, path: Path, runs: dict[int, Run]):
        self.path = Path(path)
        self.runs = dict(sorted(runs.items()))

    @classmethod
    def open(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Runs:
        """The runs in `path` (seed-<k>/ folders, or one run directory), on `device`."""
        path = Path(path)
        dirs = list(seed_dirs(path).values())
        if not dirs:
            if config_path(path).exists():
                run = Run.open(path, device)
                return cls(path, {run.seed: run})
            raise RunError(
                f"{path} holds no runs (no seed-*/config.json); "
                "train some with `vestige train --preset NAME --seeds 0-9 --out DIR`"
            )
        runs = {}
        for d in dirs:
            run = Run.open(d, device)
            runs[run.seed] = run
        first = next(iter(runs.values())).config
        for run in runs.values():
            if run.config.replace(interventions=()) != first.replace(interventions=()):
                raise RunError(
                    f"{run.path} has a different config from the other seeds in {path}; "
                    "put runs of different configs in different directories"
                )
        return cls(path, runs)

    def __repr__(self) -> str:
        return f"Runs({str(self.path)!r}, seeds={self.seeds})"

    def __iter__(self):
        return iter(self.runs.values())

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, seed: int) -> Run:
        if seed not in self.runs:
            raise KeyError(f"no run for seed {seed} in {self.path}; seeds: {self.seeds}")
        return self.runs[seed]

    @property
    def seeds(self) -> list[int]:
        return list(self.runs)

    @property
    def config(self) -> RunConfig:
        return next(iter(self.runs.values())).config
