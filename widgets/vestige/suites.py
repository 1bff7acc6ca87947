"""Training histories the kit did not train: a Hugging Face causal LM's checkpoints as Runs.

A *suite* is one or more seeds of a model, each with checkpoints along training:

* on the hub, one model name per seed and one revision per checkpoint: Pythia's
  ``EleutherAI/pythia-14m`` at revisions ``step0``, ``step1``, ..., ``step143000``, and
  PolyPythias' ``EleutherAI/pythia-14m-seed1`` ... ``-seed9`` (`polypythias`);
* in a folder, checkpoints written by ``save_pretrained``: ``<folder>/step<N>/`` (or
  ``checkpoint-<N>/``, as the Trainer names them), one subfolder ``seed-<k>/`` per seed or
  the checkpoints directly in ``<folder>`` for one seed.

`open_hub` and `open_folder` give the kit's `Runs`, holding one `SuiteRun` per seed. A
`SuiteRun` has what analysis, `detect`, the mechanism tables and the explorer read from a
run (see `vestige.runs.RunProtocol`): ``steps``, ``model_at(step)`` (the HF model booted
through ``TransformerBridge.boot_transformers``), ``seed``, ``config`` (where it came from),
``task`` and ``eval_batch`` (a `Probe`), ``metrics``, and a ``path``: a local folder where
the analysis is cached (for a folder suite the seed's folder itself, unless ``cache=``).

Lazy and bounded: opening a suite reads folder names only; the HF config is read when
``config`` is first asked for, a checkpoint when ``model_at`` is; at most ``cache_size``
models (default 1) are kept. Nothing here touches the network unless a hub checkpoint that is
not in the local Hugging Face cache is asked for; offline (``HF_HUB_OFFLINE=1``) or without
network, that raises a `SuiteError` naming the revision and the command that downloads it.

The evaluation set is a `Probe`: `induction_probe` (repeated random tokens, no corpus) or a
researcher's own `vestige.task.Batch` with its class names (`Probe` itself). Where a piece of
the kit needs the toy task's structure it says so and steps aside: a suite cannot be forked
or retrained (`vestige.training`, `vestige.study` need a kit run), and a custom probe has no
stage curves unless given some.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from vestige.device import batch_on, resolve_device
from vestige.runs import RunError, Runs, read_metrics, seed_dir, seed_dirs
from vestige.task import Batch, Task

PYTHIA_SEED = 1234  # the seed of the original Pythia models (PolyPythias' naming convention)
STEP_DIR = re.compile(r"^(?:step|checkpoint-)(\d+)$")
WEIGHTS = ("*.safetensors", "*.bin")
SUITE_FILE = "suite.json"  # optional, in a folder suite: how it was made, its default probe
EVAL_VERSION = 1
HUB_HELP = (
    "Download it where there is network with `hf download {name} --revision {revision}` "
    "(`huggingface-cli download ...` with huggingface_hub < 1.0), then set HF_HUB_OFFLINE=1 "
    "so that nothing is asked of the hub"
)


class SuiteError(RunError):
    """A checkpoint of a suite that cannot be opened; the message says which and what to do."""


# ----------------------------------------------------------------------------- evaluation sets


@dataclass(frozen=True, eq=False)
class Probe:
    """An evaluation set for a model the kit did not train: a `Batch` (tokens, loss mask,
    per-position labels) and what its labels mean (the role `vestige.task.Task` plays for a
    kit run). `focus_classes` are the classes each neuron's ablation effect is judged on
    (with intervals; none: on each neuron's preferred class, without), `transition_class`
    the class whose loss drop marks the transition. `description` (plain JSON) says what made
    it; it keys the caches. `stage_curves` (optional) gives the stage curves the mechanism
    tables draw (`Task.stages`); without it there are none. `reseed(seed)` (optional) makes
    the same kind of probe from another seed, for the untrained baseline; without it the
    baseline uses this batch."""

    batch: Batch
    class_names: tuple[str, ...]
    focus_classes: tuple[str, ...] = ()
    transition_class: str | None = None
    description: dict = field(default_factory=dict)
    stage_curves: Callable[[Batch], dict] | None = None
    reseed: Callable[[int], Probe] | None = None

    focus_metric = Task.focus_metric  # one definition: the metrics column of the focus loss

    def __post_init__(self) -> None:
        b = self.batch
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "focus_classes", tuple(self.focus_classes))
        if not (b.tokens.shape == b.loss_mask.shape == b.labels.shape) or b.tokens.dim() != 2:
            raise ValueError("a probe's tokens, loss_mask and labels must all be [batch, seq]")
        if b.loss_mask.dtype != torch.bool:
            raise ValueError("a probe's loss_mask must be a bool tensor")
        if bool(b.loss_mask[:, -1].any()):
            raise ValueError("a probe's last position predicts nothing: loss_mask[:, -1] is True")
        if b.labels.numel() and not 0 <= int(b.labels.min()) <= int(b.labels.max()) < len(
            self.class_names
        ):
            raise ValueError(f"a probe's labels must index its class names {self.class_names}")
        unknown = [c for c in (*self.focus_classes, self.transition_class) if c is not None]
        unknown = [c for c in unknown if c not in self.class_names]
        if unknown:
            raise ValueError(f"classes {unknown} are not among {self.class_names}")
        if not self.description:
            object.__setattr__(self, "description", {"name": "custom", "digest": _digest(b)})

    def stages(self, batch: Batch) -> dict:
        """Stage curves as `vestige.task.Task.stages`; empty when the probe has none."""
        return {} if self.stage_curves is None else self.stage_curves(batch)

    def untrained(self, seed: int) -> Probe:
        """The probe untrained models are measured on: made from `seed`, or this one."""
        return self if self.reseed is None else self.reseed(seed)

    def eval_batch(self, size: int | None = None) -> Batch:
        return self.batch


def _digest(batch: Batch) -> str:
    h = hashlib.sha256()
    for t in (batch.tokens, batch.loss_mask, batch.labels):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:16]


INDUCTION_CLASSES = ("first_half", "second_half")


def repeated_tokens(
    gen: torch.Generator, n: int, half: int, tokens: tuple[int, int], bos: int | None = None
) -> torch.Tensor:
    """`n` sequences of `half` distinct random tokens from [low, high), written twice (after
    `bos` if given): [n, half * 2 (+ 1)]. Distinct within a sequence, so each token of the
    second copy has one right answer that only copying from the first copy can give."""
    low, high = tokens
    if high - low < half:
        raise ValueError(f"need at least half={half} tokens in [{low}, {high})")
    first = torch.stack([torch.randperm(high - low, generator=gen)[:half] + low for _ in range(n)])
    parts = [first, first]
    if bos is not None:
        parts.insert(0, torch.full((n, 1), bos, dtype=first.dtype))
    return torch.cat(parts, dim=1)


def induction_batch(
    gen: torch.Generator, n: int, half: int, tokens: tuple[int, int], bos: int | None = None
) -> Batch:
    """`repeated_tokens` as a `Batch`: every position but the last scored, labelled
    ``first_half`` (0) before the second copy and ``second_half`` (1) from its first token on
    (see `induction_probe`)."""
    ids = repeated_tokens(gen, n, half, tokens, bos)
    start = half + (bos is not None)  # the first position of the second copy
    position = torch.arange(ids.shape[1]).expand_as(ids)
    return Batch(ids, position < ids.shape[1] - 1, (position >= start).to(torch.long))


def induction_probe(
    tokens: int | tuple[int, int],
    half: int = 16,
    n_sequences: int = 32,
    bos: int | None = None,
    seed: int = 0,
) -> Probe:
    """The standard induction probe, no corpus needed: `n_sequences` of `half` distinct random
    tokens (from [0, tokens) or [low, high)) written twice, after `bos` if given. Positions
    whose next token is in the first copy (unpredictable: ~log(#tokens) nats) are
    ``first_half``; the second copy's positions, whose next token the first copy shows, are
    ``second_half``: the second half's drop in loss marks induction (Olsson et al. 2022). Every
    position but the last is scored; ``second_half`` is the focus and the transition class.
    Stage curves: the probability of the right next token in each half."""
    span = (0, int(tokens)) if isinstance(tokens, int) else (int(tokens[0]), int(tokens[1]))
    gen = torch.Generator().manual_seed(int(seed))
    description = {
        "name": "induction",
        "tokens": list(span),
        "half": half,
        "n_sequences": n_sequences,
        "bos": bos,
        "seed": int(seed),
    }
    return Probe(
        induction_batch(gen, n_sequences, half, span, bos),
        INDUCTION_CLASSES,
        focus_classes=("second_half",),
        transition_class="second_half",
        description=description,
        stage_curves=_next_token_stages,
        reseed=lambda s: induction_probe(span, half, n_sequences, bos, s),
    )


def _next_token_stages(batch: Batch) -> dict:
    """P(the right next token) on the scored positions of each half (induction probe)."""
    following = torch.nn.functional.pad(batch.tokens[:, 1:], (0, 1))
    return {
        f"P(next token), {name.replace('_', ' ')}": (
            batch.loss_mask & (batch.labels == i),
            following,
        )
        for i, name in enumerate(INDUCTION_CLASSES)
    }


def probe_from_description(description: dict) -> Probe:
    """The induction probe a `description` (as in `Probe.description`) names."""
    d = dict(description)
    if d.pop("name", None) != "induction":
        raise ValueError(
            f"only an induction probe can be rebuilt from a description: {description}"
        )
    return induction_probe(tuple(d.pop("tokens")), **d)


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SuiteModel:
    """The shape of a suite's model, from its Hugging Face config (what the analysis loops
    over: layers, heads, MLP neurons)."""

    architecture: str
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    d_vocab: int
    act_fn: str | None = None


@dataclass(frozen=True)
class SuiteConfig:
    """Where a suite's seed came from: `name` (hub name, or the folder), `source` ("hub" or
    "folder"), its checkpoints as {step: revision or folder}, the model's shape, and the
    probe it is evaluated on."""

    name: str
    source: str
    seed: int
    revisions: dict[int, str]
    model: SuiteModel
    probe: dict

    def to_dict(self) -> dict:
        return asdict(self)


def model_shape(hf_config) -> SuiteModel:
    """`SuiteModel` from a transformers config (standard attribute names; an MLP width of
    None means 4 x d_model, as GPT-2's ``n_inner``)."""
    d_model = int(hf_config.hidden_size)
    d_mlp = getattr(hf_config, "intermediate_size", None) or getattr(hf_config, "n_inner", None)
    return SuiteModel(
        architecture=(getattr(hf_config, "architectures", None) or [type(hf_config).__name__])[0],
        n_layers=int(hf_config.num_hidden_layers),
        d_model=d_model,
        n_heads=int(hf_config.num_attention_heads),
        d_mlp=int(d_mlp or 4 * d_model),
        d_vocab=int(hf_config.vocab_size),
        act_fn=getattr(hf_config, "hidden_act", None)
        or getattr(hf_config, "activation_function", None),
    )


# ----------------------------------------------------------------------------- one seed


class SuiteRun:
    """One seed of a suite: its checkpoints as a run of the kit (see the module docstring).
    Build with `open_hub` or `open_folder`."""

    def __init__(
        self,
        name: str,
        seed: int,
        revisions: Mapping[int, str],
        path: str | os.PathLike,
        probe: Probe | Callable[[SuiteRun], Probe],
        hub: bool,
        log: str | os.PathLike | None = None,  # a folder holding metrics.jsonl
        tokenizer: Any = None,
        cache_size: int = 1,
        device: str | torch.device = "cpu",
    ):
        if not revisions:
            raise SuiteError(f"{name} (seed {seed}) has no checkpoints")
        self.name, self.seed, self.hub = str(name), int(seed), hub
        self.revisions = dict(sorted((int(s), str(r)) for s, r in revisions.items()))
        self.path = Path(path)
        self._probe = probe
        self._log = None if log is None else Path(log)
        self._tokenizer_source = tokenizer
        self._models: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self.device = resolve_device(device)  # where its checkpoints are booted

    def __repr__(self) -> str:
        first, last = self.steps[0], self.steps[-1]
        return (
            f"SuiteRun({self.name!r}, seed={self.seed}, {len(self.steps)} checkpoints "
            f"{first}..{last}, cache {str(self.path)!r})"
        )

    @property
    def steps(self) -> list[int]:
        return list(self.revisions)

    def revision(self, step: int) -> str:
        """The hub revision (or the folder) of checkpoint `step`."""
        if step not in self.revisions:
            nearest = sorted(self.steps, key=lambda s: (abs(s - step), s))[:3]
            raise SuiteError(
                f"step {step} is not a checkpoint of {self.name} (seed {self.seed}); nearest "
                f"checkpoints: {sorted(nearest)} (all: run.steps)"
            )
        return self.revisions[step]

    # -- what the analysis reads ---------------------------------------------------------

    @cached_property
    def hf_config(self):
        """The transformers config of the last checkpoint (read once, a small file)."""
        from transformers import AutoConfig

        step = self.steps[-1]
        where, revision = self._where(step)
        with self._says_what_to_do(step):
            return AutoConfig.from_pretrained(where, revision=revision)

    @cached_property
    def task(self) -> Probe:
        """The probe the suite is evaluated on (class names, focus classes, the batch)."""
        probe = self._probe
        return probe if isinstance(probe, Probe) else probe(self)

    @property
    def eval_batch(self) -> Batch:
        return self.task.batch

    @cached_property
    def config_shape(self) -> SuiteModel:
        """The model's shape (layers, heads, MLP neurons, vocabulary) from its config."""
        return model_shape(self.hf_config)

    @cached_property
    def config(self) -> SuiteConfig:
        return SuiteConfig(
            name=self.name,
            source="hub" if self.hub else "folder",
            seed=self.seed,
            revisions=dict(self.revisions),
            model=self.config_shape,
            probe=self.task.description,
        )

    @property
    def metrics(self) -> pd.DataFrame:
        """The training log where the suite has one (a ``metrics.jsonl`` in the kit's format:
        split "train" rows, and "eval" rows at checkpoints, as `vestige.tiny_suite` writes
        it); else, as for Pythia, the probe's loss, accuracy and loss per class at every
        checkpoint (split "eval"; one forward pass per checkpoint the first time, then cached
        in the analysis folder)."""
        logged = read_metrics(self._log) if self._log is not None else []
        if logged:
            return pd.DataFrame(logged)
        from vestige.analysis import cached_tables

        settings = {"version": EVAL_VERSION, "probe": self.task.description}
        return cached_tables(self, "eval", settings, ("metrics",), self._eval_rows)["metrics"]

    def _eval_rows(self) -> dict[str, pd.DataFrame]:
        from vestige.metrics import per_position_loss
        from vestige.training import summaries

        batch, rows = batch_on(self.eval_batch, self.device), []
        for step in self.steps:
            with torch.no_grad():
                logits = self.model_at(step)(batch.tokens)
            loss, correct = per_position_loss(logits, batch.tokens)
            rows.append(
                {"split": "eval", "step": step, **summaries(loss, correct, batch, self.task)}
            )
        return {"metrics": pd.DataFrame(rows)}

    def checkpoint_id(self, step: int) -> list:
        """What identifies checkpoint `step`'s weights (the analysis caches are recomputed when
        it changes): a hub checkpoint by its name and revision (Pythia's step branches do not
        move; give a commit hash as the revision to pin one), a folder's by the size and
        modification time of its weight files."""
        where, revision = self._where(step)
        if self.hub:
            return [self.name, revision]
        files = sorted(p for pattern in WEIGHTS for p in Path(where).glob(pattern))
        if not files:
            raise SuiteError(f"checkpoint folder {where} holds no weights ({', '.join(WEIGHTS)})")
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]

    # -- models ----------------------------------------------------------------------------

    def model_at(self, step: int):
        """The model at checkpoint `step`: the HF model booted through TransformerLens's
        bridge, in eval mode (the last `cache_size` are kept)."""
        if step in self._models:
            self._models.move_to_end(step)
            return self._models[step]
        where, revision = self._where(step)
        while len(self._models) >= self._cache_size:  # free memory before loading the next
            self._models.popitem(last=False)
        from transformers import AutoModelForCausalLM

        with self._says_what_to_do(step), quiet_transformers():
            hf_model = AutoModelForCausalLM.from_pretrained(
                where, revision=revision, dtype=torch.float32, attn_implementation="eager"
            )
        model = self._boot(hf_model)
        self._models[step] = model
        return model

    @cached_property
    def tokenizer(self):
        """The tokenizer the bridge is booted with (the last checkpoint's, else the folder's)."""
        from transformers import AutoTokenizer, PreTrainedTokenizerBase

        source = self._tokenizer_source
        if isinstance(source, PreTrainedTokenizerBase):
            return source
        step = self.steps[-1]
        if source is None:
            source, revision = self._where(step)
        else:
            revision = None
        # add_bos_token=True: what the bridge would otherwise reload the tokenizer to get
        with self._says_what_to_do(step):
            return AutoTokenizer.from_pretrained(source, revision=revision, add_bos_token=True)

    def _boot(self, hf_model):
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            self.name, hf_model=hf_model, tokenizer=self.tokenizer, device=str(self.device)
        )
        shape, cfg = self.config.model, bridge.cfg
        got = (cfg.n_layers, cfg.n_heads, cfg.d_mlp)
        if got != (shape.n_layers, shape.n_heads, shape.d_mlp):
            raise SuiteError(
                f"{self.name}: the bridge sees (layers, heads, MLP neurons) {got}, the config "
                f"{(shape.n_layers, shape.n_heads, shape.d_mlp)}; the suite cannot be analysed"
            )
        standalone_blocks(bridge)
        return bridge.eval()

    # -- the untrained baseline (vestige.analysis.untrained_baseline) ----------------------

    def untrained_key(self) -> dict:
        """What the untrained baseline of this suite depends on: the model's config (not its
        name, so every seed of a suite shares one) and the probe untrained models see (for a
        probe made again from the untrained seeds, its kind without its own seed)."""
        config = {
            k: v
            for k, v in self.hf_config.to_dict().items()
            if k not in ("_name_or_path", "name_or_path", "transformers_version", "_commit_hash")
        }
        probe = self.task.description
        if self.task.reseed is not None:
            probe = {k: v for k, v in probe.items() if k != "seed"}
        return {
            "hf_config": json.loads(json.dumps(config, sort_keys=True, default=str)),
            "probe": probe,
        }

    def untrained_probe(self, seed: int) -> tuple[Probe, Batch]:
        probe = self.task.untrained(seed)
        return probe, probe.batch

    def untrained_model(self, seed: int):
        """A fresh initialisation of the suite's architecture (``from_config`` under `seed`),
        booted like its checkpoints. It follows transformers' init, which can differ from the
        one the suite was trained from (Pythia's GPT-NeoX used other init schemes): the
        suite's own step-0 checkpoints are the true initialisations."""
        from transformers import AutoModelForCausalLM

        with torch.random.fork_rng(devices=[]), quiet_transformers():
            torch.manual_seed(seed)
            hf_model = AutoModelForCausalLM.from_config(
                self.hf_config, dtype=torch.float32, attn_implementation="eager"
            )
        return self._boot(hf_model)

    # -- where checkpoints are ---------------------------------------------------------------

    def _where(self, step: int) -> tuple[str, str | None]:
        """(what `from_pretrained` opens, revision) for checkpoint `step`."""
        revision = self.revision(step)
        return (self.name, revision) if self.hub else (revision, None)

    def _says_what_to_do(self, step: int):
        return _LoadErrors(self, step)


class _LoadErrors:
    """Turn a failed transformers load into a SuiteError saying which checkpoint and what to
    do (a context manager)."""

    def __init__(self, run: SuiteRun, step: int):
        self.run, self.step = run, step

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or not isinstance(err, (OSError, ValueError)) or isinstance(err, SuiteError):
            return False
        from huggingface_hub import constants

        run, revision = self.run, self.run.revision(self.step)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if not run.hub:
            raise SuiteError(
                f"cannot open checkpoint {revision} (step {self.step} of {run.name}, seed "
                f"{run.seed}): {first}. A folder suite needs what save_pretrained writes "
                "(config.json and the weights; a tokenizer in it or passed as tokenizer=)"
            ) from err
        offline = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "unreachable"
        raise SuiteError(
            f"cannot load {run.name} at revision {revision} (step {self.step}, seed {run.seed}): "
            f"{first}. If it is not in the local Hugging Face cache and the hub is {offline}: "
            + HUB_HELP.format(name=run.name, revision=revision)
            + ". If the revision does not exist, list the model's revisions on its hub page "
            f"(Pythia's: {_pythia_revisions()})"
        ) from err


def _pythia_revisions() -> str:
    return "step0, step1, step2, step4, ..., step512, step1000, step2000, ..., step143000"


@contextmanager
def quiet_transformers():
    """transformers without its progress bars (one per checkpoint loaded or saved)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def standalone_blocks(bridge) -> None:
    """Make each block of `bridge` callable on its own (``block(resid)``), as
    `vestige.hooks.run_from` calls them: a rotary model's parent forward computes the
    position embeddings (cos, sin) and hands them to every attention layer; alone, a block
    would run without them (no rotation: wrong logits, silently). A forward pre-hook on each
    attention supplies them when they are missing (positions 0..seq-1, the batch
    `run_from` sees); in the full forward they are there and it does nothing. Models without
    a rotary embedding are left as they are."""
    rotary = getattr(bridge, "rotary_emb", None)
    if rotary is None:
        return

    def supply(module, args, kwargs):
        if kwargs.get("position_embeddings") is not None:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        positions = torch.arange(hidden.shape[1], device=hidden.device)[None]
        return args, {**kwargs, "position_embeddings": rotary(hidden, positions)}

    for block in bridge.blocks:
        block.attn.register_forward_pre_hook(supply, with_kwargs=True)


# ----------------------------------------------------------------------------- opening suites


def pythia_steps() -> list[int]:
    """Pythia's (and PolyPythias') 154 checkpoint steps: 0, 1, 2, 4, ..., 512, then every
    1,000 to 143,000 (TransformerLens's record of the schedule)."""
    from transformer_lens.tools.model_registry.checkpoints import PYTHIA_CHECKPOINTS

    return list(PYTHIA_CHECKPOINTS)


def polypythias(size: str = "14m", seeds: Sequence[int] = range(1, 10), original: bool = True):
    """{seed: hub name} of PolyPythias (van der Wal et al., ICLR 2025): ``pythia-<size>-seed<k>``
    for k in `seeds` (1-9 exist for 14m, 31m, 70m, 160m, 410m), and the original
    ``pythia-<size>`` as seed 1234 (`PYTHIA_SEED`) when `original`."""
    names = {PYTHIA_SEED: f"EleutherAI/pythia-{size}"} if original else {}
    names.update({int(k): f"EleutherAI/pythia-{size}-seed{k}" for k in seeds})
    return names


def open_hub(
    names: str | Mapping[int, str],
    steps: Sequence[int] | None = None,
    revision: str = "step{step}",
    probe: Probe | None = None,
    cache: str | os.PathLike | None = None,
    cache_size: int = 1,
    device: str | torch.device = "cpu",
) -> Runs:
    """A hub suite as `Runs`: `names` is one model name (seed `PYTHIA_SEED`) or {seed: name};
    `steps` its checkpoints (default: Pythia's 154, `pythia_steps`), each the revision
    `revision.format(step=...)`. `probe` defaults to `induction_probe` over the tokenizer's
    tokens (read lazily). Analyses are cached under `cache` (default
    ``runs/hub/<first name>``), one ``seed-<k>`` folder per seed. Checkpoints are booted on
    `device` ("auto", "cpu", "cuda"). Nothing is downloaded here."""
    names = {PYTHIA_SEED: names} if isinstance(names, str) else dict(names)
    steps = pythia_steps() if steps is None else sorted(int(s) for s in steps)
    root = (
        Path(cache) if cache is not None else Path("runs", "hub", _slug(next(iter(names.values()))))
    )
    default = probe if probe is not None else _default_probe
    runs = {
        int(seed): SuiteRun(
            name,
            seed,
            {s: revision.format(step=s) for s in steps},
            seed_dir(root, seed),
            default,
            hub=True,
            cache_size=cache_size,
            device=device,
        )
        for seed, name in names.items()
    }
    return Runs(root, runs)


def open_folder(
    path: str | os.PathLike,
    steps: Sequence[int] | None = None,
    probe: Probe | None = None,
    cache: str | os.PathLike | None = None,
    tokenizer: Any = None,
    cache_size: int = 1,
    device: str | torch.device = "cpu",
) -> Runs:
    """A folder of ``save_pretrained`` checkpoints as `Runs`: ``path/seed-<k>/step<N>/`` (or
    ``checkpoint-<N>/``) for several seeds, or ``path/step<N>/`` for one (seed 0). A seed's
    ``metrics.jsonl`` (the kit's format) is its training log. `probe`: default the one named
    in ``path/suite.json`` (as `vestige.tiny_suite` writes it), else `induction_probe` over
    the tokenizer's tokens. `steps`: only these checkpoints (default: every one found). Analyses are
    cached in each seed's folder, or under `cache`. Checkpoints are booted on `device`."""
    path = Path(path)
    if not path.is_dir():
        raise SuiteError(f"{path} is not a folder of checkpoints")
    seeds = seed_dirs(path, holding=lambda folder: folder)  # each seed-<k>/ holds checkpoints
    if not seeds and _checkpoints(path):
        seeds = {0: path}
    if not seeds:
        raise SuiteError(
            f"{path} holds no checkpoints: expected step<N>/ (or checkpoint-<N>/) folders "
            "written by save_pretrained, in it or in seed-<k>/ subfolders"
        )
    if probe is None:
        made = path / SUITE_FILE
        probe = (
            probe_from_description(json.loads(made.read_text())["probe"])
            if made.is_file()
            else _default_probe
        )
    runs = {}
    for seed, folder in sorted(seeds.items()):
        found = _checkpoints(folder)
        if not found:
            raise SuiteError(f"{folder} holds no step<N>/ checkpoint folders")
        if steps is not None:
            missing = sorted(set(steps) - set(found))
            if missing:
                raise SuiteError(f"{folder} has no checkpoints {missing}; it has {list(found)}")
            found = {step: found[step] for step in sorted(set(steps))}
        runs[seed] = SuiteRun(
            str(folder),
            seed,
            {step: str(p) for step, p in found.items()},
            folder if cache is None else seed_dir(cache, seed),
            probe,
            hub=False,
            log=folder,
            tokenizer=tokenizer,
            cache_size=cache_size,
            device=device,
        )
    return Runs(path, runs)


def _checkpoints(folder: Path) -> dict[int, Path]:
    found = {}
    for p in folder.iterdir():
        m = STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "config.json").is_file():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def _default_probe(run: SuiteRun) -> Probe:
    """`induction_probe` over the tokenizer's tokens (not the embedding's rows: Pythia pads
    its 50,277 tokens to 50,304 rows, and the padding rows were never trained)."""
    return induction_probe(min(len(run.tokenizer), run.config_shape.d_vocab))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/"))


def unavailable(name: str, revisions: Sequence[str]) -> str | None:
    """None when `name` at every one of `revisions` can be loaded: in the local Hugging Face
    cache, or the hub is reachable; else why not and what to do (for notebook cells that run
    only where a network, or a filled cache, exists)."""
    from huggingface_hub import constants, try_to_load_from_cache

    missing = [
        r
        for r in revisions
        if not isinstance(try_to_load_from_cache(name, "config.json", revision=r), str)
    ]
    if not missing:
        return None
    where = f"{name} at {missing[0]}" + (
        f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    )
    if constants.HF_HUB_OFFLINE:
        return f"offline (HF_HUB_OFFLINE=1) and {where} is not cached. " + HUB_HELP.format(
            name=name, revision=missing[0]
        )
    import socket
    from urllib.parse import urlparse

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return f"no network ({host}: {err}) and {where} is not cached. " + HUB_HELP.format(
            name=name, revision=missing[0]
        )
    return None
