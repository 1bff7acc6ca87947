"""Synthetic token tasks with known structure and per-position class labels.

A task is built from its parameters and a seed. Every batch is a pure function of
(seed, step), so a resumed run sees exactly the data an uninterrupted one saw, and the
evaluation batch is a fixed function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

_TRAIN, _EVAL = 0, 1


@dataclass(frozen=True)
class Batch:
    """Tokens and what to do with each position.

    tokens:    [batch, seq] token ids.
    loss_mask: [batch, seq] True where predicting tokens[:, t + 1] from position t counts.
    labels:    [batch, seq] class index of position t (see `Task.class_names`), used for
               selectivity and for ablation effects restricted to a class.
    """

    tokens: torch.Tensor
    loss_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(self.tokens[start:stop], self.loss_mask[start:stop], self.labels[start:stop])


def _generator(seed: int, step: int, stream: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, stream, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class Task:
    """Base class: subclasses set `defaults`, `class_names` and implement `_sample`."""

    defaults: ClassVar[dict[str, Any]] = {}
    class_names: ClassVar[tuple[str, ...]] = ()
    # The class of positions where the task's early heuristic applies: ablation effects are
    # judged there. None: on the positions of each neuron's preferred class.
    focus_class: ClassVar[str | None] = None
    # The class whose loss drop marks the transition to the later mechanism.
    transition_class: ClassVar[str | None] = None

    def __init__(self, params: dict[str, Any], seed: int):
        self.validate_params(params)
        self.params = {**self.defaults, **params}
        self.seed = seed

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            raise ValueError(
                f"task.params has unknown keys {unknown}; {cls.__name__} takes {sorted(cls.defaults)}"
            )
        cls._check({**cls.defaults, **params})

    @classmethod
    def _check(cls, params: dict[str, Any]) -> None:
        """Raise ValueError naming a bad parameter."""

    @property
    def vocab(self) -> int:
        return int(self.params["vocab"])

    @property
    def seq_len(self) -> int:
        return int(self.params["seq_len"])

    def train_batch(self, step: int, batch_size: int) -> Batch:
        """The batch for training step `step` (the same every time it is asked for)."""
        return self._sample(_generator(self.seed, step, _TRAIN), batch_size)

    def eval_batch(self, size: int) -> Batch:
        """The fixed evaluation batch of this seed."""
        return self._sample(_generator(self.seed, 0, _EVAL), size)

    def _sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        raise NotImplementedError


class TriggerCopy(Task):
    """Random tokens with a segment repeated at a random offset; loss on the repeat only.

    Inside the segment a trigger pair (A, B) is followed by C with probability `p_follow`.
    Two mechanisms lower the loss: a crutch that predicts C after the pair (learned early)
    and induction, which copies the whole repeat (learned later). Decoys put B after other
    tokens and A before other tokens, so only the conjunction A-then-B predicts C.
    Tokens 0, 1, 2 are A, B, C; ordinary tokens are drawn from the rest.
    """

    A, B, C = 0, 1, 2
    defaults: ClassVar[dict[str, Any]] = {
        "vocab": 64,
        "seq_len": 40,
        "segment": 10,
        "p_follow": 0.9,
        "p_decoy": 0.5,
    }
    class_names: ClassVar[tuple[str, ...]] = ("other", "trigger", "copy")
    focus_class = "trigger"
    transition_class = "copy"

    @classmethod
    def _check(cls, p: dict[str, Any]) -> None:
        if not 8 <= p["vocab"] <= 4096:
            raise ValueError(f"task.params.vocab must be in [8, 4096], got {p['vocab']!r}")
        if not 3 <= p["segment"]:
            raise ValueError(f"task.params.segment must be >= 3, got {p['segment']!r}")
        if p["seq_len"] < 2 * p["segment"] + 2:
            raise ValueError(
                f"task.params.seq_len must be >= 2 * segment + 2 = {2 * p['segment'] + 2}, "
                f"got {p['seq_len']!r}"
            )
        for key in ("p_follow", "p_decoy"):
            if not 0 <= p[key] <= 1:
                raise ValueError(f"task.params.{key} must be in [0, 1], got {p[key]!r}")

    def _sample(self, gen: torch.Generator, n: int) -> Batch:
        p = self.params
        vocab, seq_len, seg_len = p["vocab"], p["seq_len"], p["segment"]
        rows = torch.arange(n)[:, None]

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=gen)

        def randint(low: torch.Tensor | int, high: torch.Tensor | int, size: int) -> torch.Tensor:
            return (low + uniform(size) * (high - low)).long()

        tokens = torch.randint(3, vocab, (n, seq_len), generator=gen)

        # Decoys first, so the segment never gets overwritten by them.
        decoy_b = randint(1, seq_len, n)
        decoy_a = randint(0, seq_len - 1, n)
        use_b, use_a = uniform(n) < p["p_decoy"], uniform(n) < p["p_decoy"]
        tokens[use_b, decoy_b[use_b]] = self.B
        tokens[use_a, decoy_a[use_a]] = self.A

        segment = torch.randint(3, vocab, (n, seg_len), generator=gen)
        j = randint(0, seg_len - 2, n)
        segment[rows[:, 0], j] = self.A
        segment[rows[:, 0], j + 1] = self.B
        has_next = j + 2 < seg_len
        follows = has_next & (uniform(n) < p["p_follow"])
        segment[rows[follows, 0], j[follows] + 2] = self.C

        first = randint(0, seq_len - 2 * seg_len + 1, n)
        second = randint(first + seg_len, seq_len - seg_len + 1, n)
        offsets = torch.arange(seg_len)
        tokens[rows, first[:, None] + offsets] = segment
        tokens[rows, second[:, None] + offsets] = segment

        position = torch.arange(seq_len)[None, :]
        loss_mask = (position >= second[:, None]) & (position < second[:, None] + seg_len - 1)
        after_a = torch.zeros_like(tokens, dtype=torch.bool)
        after_a[:, 1:] = tokens[:, :-1] == self.A
        trigger = (tokens == self.B) & after_a
        labels = torch.where(trigger, 1, torch.where(loss_mask, 2, 0))
        return Batch(tokens, loss_mask, labels)


TASKS: dict[str, type[Task]] = {"trigger_copy": TriggerCopy}


def make_task(name: str, params: dict[str, Any], seed: int) -> Task:
    """Build the task `name` for `seed`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](params, seed)
