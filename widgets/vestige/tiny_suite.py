"""A real training history in seconds, offline: a tiny model of the Pythia family, trained with
`transformers` on repeated random tokens, saved at a Pythia-like schedule.

`build(out)` trains `TinySuite` (a 2-layer GPT-NeoX, Pythia's architecture: rotary
embeddings on a quarter of each head, attention and MLP in parallel; ReLU where Pythia has
GELU, see `TinySuite.act_fn`) from two seeds
and writes, per seed, ``out/seed-<k>/step<N>/`` with ``save_pretrained`` (config, weights,
the tokenizer: as a Pythia revision holds them) and ``metrics.jsonl``, the training log in the
kit's format. The tokenizer is built here with `tokenizers` (a word-level vocabulary: nothing
is downloaded). Checkpoints follow Pythia's shape: step 0, log-spaced steps (1, 2, 4, ...),
then evenly spaced ones. The task is `vestige.suites.induction_batch`: each sequence's second
half repeats its first, so only copying (induction) predicts it, and the second half's loss
drops when the model learns to copy. `ensure(out)` builds it if missing and opens it with
`vestige.suites.open_folder`. Everything else reads it as it would read Pythia.

The loop is written here, not with `transformers.Trainer`: the Trainer saves at evenly
spaced steps (a callback would be needed for the log-spaced ones) into ``checkpoint-N/``
folders with optimiser state, and logs one loss, where the kit wants the loss per class of
position; the weights still go through ``save_pretrained`` and the schedule through
`transformers.get_cosine_schedule_with_warmup`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vestige.runs import seed_dir, write_metrics
from vestige.suites import (
    SUITE_FILE,
    SuiteError,
    induction_batch,
    induction_probe,
    open_folder,
    quiet_transformers,
)

BOS = "<|endoftext|>"  # id 0: begins every sequence (Pythia's end-of-text token)
FORMAT = 1


@dataclass(frozen=True)
class TinySuite:
    """What `build` trains. `vocab` content tokens (ids 1..vocab; 0 is `BOS`), sequences of
    `half` distinct tokens written twice; checkpoints at 0, 1, 2, 4, ... below `interval`,
    then every `interval` steps to `steps`."""

    vocab: int = 64
    half: int = 16
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 128
    rotary_pct: float = 0.25  # Pythia's
    # Not Pythia's GELU: the kit's selectivity index (vestige.metrics) is defined for
    # non-negative activations; under GELU a class mean can be <= 0 and the index leaves [0, 1].
    act_fn: str = "relu"
    steps: int = 320
    interval: int = 32
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 16
    weight_decay: float = 0.01
    log_every: int = 4
    probe_sequences: int = 16

    def schedule(self) -> list[int]:
        """The checkpoint steps: Pythia's shape (0, then powers of two, then evenly spaced)."""
        log = [0] + [2**k for k in range(32) if 2**k < self.interval]
        return sorted({*log, *range(self.interval, self.steps + 1, self.interval), self.steps})

    def probe(self):
        """The suite's evaluation set: `induction_probe` over its tokens (a fixed seed)."""
        return induction_probe((1, self.vocab + 1), self.half, self.probe_sequences, bos=0, seed=0)


def tokenizer(vocab: int):
    """A word-level tokenizer for ids 0..vocab ("<|endoftext|>", "t1", ..., "t<vocab>"), built
    locally with `tokenizers` and wrapped for transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {BOS: 0, **{f"t{i}": i for i in range(1, vocab + 1)}}
    backend = Tokenizer(models.WordLevel(vocab=words, unk_token=BOS))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=BOS, unk_token=BOS, pad_token=BOS
    )


def model_config(spec: TinySuite):
    """A GPT-NeoX config of the Pythia family, tiny."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=spec.vocab + 1,
        hidden_size=spec.d_model,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        intermediate_size=spec.d_mlp,
        max_position_embeddings=2 * spec.half + 1,
        rotary_pct=spec.rotary_pct,
        hidden_act=spec.act_fn,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        architectures=["GPTNeoXForCausalLM"],
        attn_implementation="eager",  # as the bridge runs it (and faster at this size)
    )


def train_seed(spec: TinySuite, seed: int, out: Path, progress: bool = False) -> None:
    """Train one seed and write its checkpoints and log into `out` (a new folder)."""
    from tqdm.auto import tqdm
    from transformers import GPTNeoXForCausalLM, get_cosine_schedule_with_warmup

    from vestige.metrics import per_position_loss
    from vestige.training import summaries

    probe, tok, schedule = spec.probe(), tokenizer(spec.vocab), set(spec.schedule())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(model_config(spec))
    data = torch.Generator().manual_seed(10**6 + seed)  # the data's stream, not the init's
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    lr = get_cosine_schedule_with_warmup(opt, spec.warmup, spec.steps)

    def save(step: int) -> None:
        folder = out / f"step{step}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)

    save(0)
    log = [evaluate(model, probe, 0)]
    for step in tqdm(range(1, spec.steps + 1), disable=not progress, desc=f"seed {seed}"):
        batch = induction_batch(data, spec.batch_size, spec.half, (1, spec.vocab + 1), bos=0)
        loss_at, correct = per_position_loss(model(batch.tokens).logits, batch.tokens)
        loss = loss_at[batch.loss_mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr.step()
        if step % spec.log_every == 0 or step in schedule:
            record = summaries(loss_at.detach(), correct, batch, probe)
            log.append({"split": "train", "step": step, "lr": opt.param_groups[0]["lr"], **record})
        if step in schedule:
            log.append(evaluate(model, probe, step))
            save(step)
    write_metrics(out, log)


@torch.no_grad()
def evaluate(model, probe, step: int) -> dict:
    """The kit's evaluation record at a checkpoint (split "eval"): loss, accuracy and loss per
    class on the probe, as `vestige.training` logs them for a kit run."""
    from vestige.metrics import per_position_loss
    from vestige.training import summaries

    model.eval()
    loss, correct = per_position_loss(model(probe.batch.tokens).logits, probe.batch.tokens)
    model.train()
    return {"split": "eval", "step": step, **summaries(loss, correct, probe.batch, probe)}


def build(
    out: str | os.PathLike,
    seeds=(0, 1),
    spec: TinySuite = TinySuite(),
    progress: bool = False,
) -> Path:
    """Train the tiny suite into `out` (which must not exist): built in a temporary folder
    beside it and moved into place at the end, so a killed build leaves nothing half-made."""
    import transformers

    out = Path(out)
    if out.exists():
        raise SuiteError(f"{out} exists; move it away to build the tiny suite there")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
    try:
        with quiet_transformers():  # save_pretrained's progress bar, once per checkpoint
            for seed in seeds:
                train_seed(spec, int(seed), seed_dir(tmp, int(seed)), progress)
        made = {
            "format": FORMAT,
            "made_by": "vestige.tiny_suite",
            "spec": asdict(spec),
            "seeds": [int(s) for s in seeds],
            "steps": spec.schedule(),
            "probe": spec.probe().description,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        (tmp / SUITE_FILE).write_text(json.dumps(made, indent=1) + "\n")
        try:
            os.replace(tmp, out)
        except OSError:  # another process built it meanwhile: keep theirs
            if not (out / SUITE_FILE).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def ensure(out: str | os.PathLike, seeds=(0, 1), spec: TinySuite = TinySuite(), **open_args):
    """The tiny suite at `out` as `Runs` (`vestige.suites.open_folder`), built first if it is
    missing (some 10-20 s of CPU per seed). A suite built with other settings is an error,
    not silently rebuilt."""
    out = Path(out)
    if not (out / SUITE_FILE).is_file():
        build(out, seeds, spec)
    made = json.loads((out / SUITE_FILE).read_text())
    want = {"spec": asdict(spec), "seeds": [int(s) for s in seeds]}
    if {k: made.get(k) for k in want} != want:
        raise SuiteError(
            f"{out} holds a tiny suite built with other settings ({made.get('spec')}, seeds "
            f"{made.get('seeds')}); move it away, or open it with vestige.suites.open_folder"
        )
    return open_folder(out, **open_args)
