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

    def stages(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """The task's stage curves: name -> (positions [batch, seq], the token whose predicted
        probability there tells which stage the model is in). None by default."""
        return {}


class TriggerCopy(Task):
    """A crutch, then induction; plus a rule that stays needed.

    Each sequence is filler tokens with a segment written twice at random offsets; the
    model is scored on the second copy, which induction (copying) predicts.
    Inside the segment a trigger pair (A, B) is followed by C with probability `p_follow`:
    a crutch that can be learned long before induction. A and B are also sprinkled alone
    (`p_decoy`), so only the conjunction "A then B" predicts C. The `live` rule does the
    same with (D, E) -> F in the background, which is never copied, so induction cannot
    replace it: a neuron serving it stays needed (the contrast). Scored positions: the
    predictable positions of the second copy, and every background D or E.
    Tokens 1-6 are A, B, C, D, E, F; filler tokens are 7 and up (0 is unused).
    Measured in course/study (see `vestige study`).
    """

    A, B, C, D, E, F = 1, 2, 3, 4, 5, 6
    FILLER = 7
    defaults: ClassVar[dict[str, Any]] = {
        "vocab": 64,
        "seq_len": 40,
        "segment": 10,
        "p_follow": 0.9,
        "p_decoy": 0.12,
        "live": True,
        "p_live_follow": 0.9,
        "p_live_decoy": 0.08,
        "pairs": 1,
        "decoys": "segment",
    }
    class_names: ClassVar[tuple[str, ...]] = ("other", "trigger", "decoy", "copy", "live")
    focus_class = "trigger"
    transition_class = "copy"

    @classmethod
    def _check(cls, p: dict[str, Any]) -> None:
        if not cls.FILLER + 4 <= p["vocab"] <= 4096:
            raise ValueError(
                f"task.params.vocab must be in [{cls.FILLER + 4}, 4096], got {p['vocab']!r}"
            )
        if not 5 <= p["segment"]:
            raise ValueError(f"task.params.segment must be >= 5, got {p['segment']!r}")
        if p["seq_len"] < 2 * p["segment"] + 3:
            raise ValueError(
                f"task.params.seq_len must be >= 2 * segment + 3 = {2 * p['segment'] + 3}, "
                f"got {p['seq_len']!r}"
            )
        for key in ("p_follow", "p_decoy", "p_live_follow", "p_live_decoy"):
            if not 0 <= p[key] <= 1:
                raise ValueError(f"task.params.{key} must be in [0, 1], got {p[key]!r}")
        if 2 * max(p["p_decoy"], p["p_live_decoy"]) > 1:
            raise ValueError("task.params.p_decoy and p_live_decoy must be <= 0.5")
        slots = (p["segment"] - 2) // 3
        if not (isinstance(p["pairs"], int) and 1 <= p["pairs"] <= slots):
            raise ValueError(
                f"task.params.pairs must be an integer in [1, (segment - 2) // 3 = "
                f"{slots}], got {p['pairs']!r}"
            )
        if p["decoys"] not in ("segment", "background"):
            raise ValueError(
                f"task.params.decoys must be 'segment' or 'background', got {p['decoys']!r}"
            )

    def _sample(self, gen: torch.Generator, n: int) -> Batch:
        p = self.params
        seq_len, seg_len = p["seq_len"], p["segment"]
        rows = torch.arange(n)

        def filler(*shape: int) -> torch.Tensor:
            return torch.randint(self.FILLER, p["vocab"], shape, generator=gen)

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=gen)

        tokens = filler(n, seq_len)
        segment = self._segment(gen, n, filler, rand)
        first = (rand(n) * (seq_len - 2 * seg_len + 1)).long()
        second = first + seg_len + (rand(n) * (seq_len - 2 * seg_len - first + 1)).long()
        offsets = torch.arange(seg_len)
        tokens[rows[:, None], first[:, None] + offsets] = segment
        tokens[rows[:, None], second[:, None] + offsets] = segment

        position = torch.arange(seq_len)[None, :]
        in_first = (position >= first[:, None]) & (position < first[:, None] + seg_len)
        in_second = (position >= second[:, None]) & (position < second[:, None] + seg_len)
        background = ~(in_first | in_second)
        loss_mask = in_second & (position < second[:, None] + seg_len - 1)
        if p["live"]:
            live_positions = self._live_rule(tokens, background, filler, rand)
            loss_mask |= live_positions
            loss_mask[:, -1] = False
        if p["decoys"] == "background":
            self._background_decoys(tokens, background, filler, rand)

        previous = torch.nn.functional.pad(tokens[:, :-1], (1, 0), value=-1)
        following = torch.nn.functional.pad(tokens[:, 1:], (0, 1), value=-1)
        in_segment = in_first | in_second
        trigger = in_segment & (tokens == self.B) & (previous == self.A)
        decoy = (in_segment if p["decoys"] == "segment" else background) & (
            ((tokens == self.B) & (previous != self.A))
            | ((tokens == self.A) & (following != self.B))
        )
        live = background & (tokens == self.E) & (previous == self.D)
        live_decoy = background & (
            ((tokens == self.E) & (previous != self.D))
            | ((tokens == self.D) & (following != self.E))
        )
        labels = torch.zeros_like(tokens)
        labels[in_second] = 3
        labels[decoy | (live_decoy if p["live"] else False)] = 2
        labels[trigger] = 1
        if p["live"]:
            labels[live] = 4
        return Batch(tokens, loss_mask, labels)

    def stages(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """P(C) after A B in the first copy (the crutch alone: copying cannot help there), after
        A B in the second copy (crutch or copying), and after a lone B (the crude B -> C)."""
        trigger = batch.labels == self.class_names.index("trigger")
        lone_b = (batch.tokens == self.B) & (batch.labels == self.class_names.index("decoy"))
        return {
            "P(C | A B), first copy": (trigger & ~batch.loss_mask, self.C),
            "P(C | A B), second copy": (trigger & batch.loss_mask, self.C),
            "P(C | lone B)": (lone_b, self.C),
        }

    def _segment(self, gen, n, filler, rand) -> torch.Tensor:
        """The repeated segment: decoy A/B, one planted (A, B), C after each pair (mostly)."""
        p, seg_len = self.params, self.params["segment"]
        rows = torch.arange(n)
        segment = filler(n, seg_len)
        u = rand(n, seg_len)
        p_decoy = p["p_decoy"] if p["decoys"] == "segment" else 0.0
        segment[u < p_decoy] = self.A
        segment[(u >= p_decoy) & (u < 2 * p_decoy)] = self.B
        # Planted pairs at random slots of three, leaving room for each C.
        slots = (seg_len - 2) // 3
        if p["pairs"] == 1:
            slot = (rand(n) * slots).long()
            jitter = (rand(n) * ((seg_len - 2) - 3 * slots + 1)).long()
            starts = (slot * 3 + jitter)[:, None]
        else:
            starts = rand(n, slots).argsort(1)[:, : p["pairs"]] * 3
        for start in starts.T:
            segment[rows, start] = self.A
            segment[rows, start + 1] = self.B
        ends_in_pair = (segment[:, -2] == self.A) & (segment[:, -1] == self.B)
        segment[:, -1] = torch.where(ends_in_pair, filler(n), segment[:, -1])
        follows = rand(n, seg_len) < p["p_follow"]
        other = filler(n, seg_len)
        for i in range(seg_len - 2):
            pair = (segment[:, i] == self.A) & (segment[:, i + 1] == self.B)
            nxt = torch.where(follows[:, i + 2], self.C, other[:, i + 2])
            segment[:, i + 2] = torch.where(pair, nxt, segment[:, i + 2])
        return segment

    def _background_decoys(self, tokens, background, filler, rand) -> None:
        """Lone A and B in the background (never scored), no A directly before a B."""
        p = self.params
        free = background & (tokens >= self.FILLER)
        u = rand(*tokens.shape)
        tokens[free & (u < p["p_decoy"])] = self.A
        tokens[free & (u >= p["p_decoy"]) & (u < 2 * p["p_decoy"])] = self.B
        previous = torch.nn.functional.pad(tokens[:, :-1], (1, 0), value=-1)
        pair = background & (tokens == self.B) & (previous == self.A)
        tokens[pair] = filler(*tokens.shape)[pair]

    def _live_rule(self, tokens, background, filler, rand) -> torch.Tensor:
        """Write the background (D, E) -> F rule into `tokens`; return the D/E positions."""
        p = self.params
        n, seq_len = tokens.shape
        u = rand(n, seq_len)
        tokens[background & (u < p["p_live_decoy"])] = self.D
        tokens[background & (u >= p["p_live_decoy"]) & (u < 2 * p["p_live_decoy"])] = self.E
        room = background[:, :-2] & background[:, 1:-1] & background[:, 2:]
        start = (rand(n, seq_len - 2) * room).argmax(1)
        planted = room.any(1)
        rows = torch.arange(n)[planted]
        tokens[rows, start[planted]] = self.D
        tokens[rows, start[planted] + 1] = self.E
        follows = rand(n, seq_len) < p["p_live_follow"]
        other = filler(n, seq_len)
        for t in range(seq_len - 1):
            pair = background[:, t] & background[:, t + 1]
            pair &= (tokens[:, t] == self.D) & (tokens[:, t + 1] == self.E)
            if t + 2 < seq_len:
                fits = pair & background[:, t + 2]
                nxt = torch.where(follows[:, t + 2], self.F, other[:, t + 2])
                tokens[:, t + 2] = torch.where(fits, nxt, tokens[:, t + 2])
                broken = pair & ~background[:, t + 2]
            else:
                broken = pair
            tokens[:, t + 1] = torch.where(broken, other[:, t + 1], tokens[:, t + 1])
        return background & ((tokens == self.D) | (tokens == self.E))


TASKS: dict[str, type[Task]] = {"trigger_copy": TriggerCopy}


def make_task(name: str, params: dict[str, Any], seed: int) -> Task:
    """Build the task `name` for `seed`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](params, seed)
