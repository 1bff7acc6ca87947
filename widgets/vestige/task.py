"""Synthetic token tasks with known structure and per-position class labels.

A task is built from its parameters and a seed. Every batch is a pure function of
(seed, step), so a resumed run sees exactly the data an uninterrupted one saw, and the
evaluation batch is a fixed function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

_TRAIN, _EVAL, _POOL = 0, 1, 2


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
    # The classes of positions where the task's early heuristics apply (one per crutch):
    # each neuron's ablation effects are judged on one of them, its own (see
    # `vestige.analysis.own_focus`). Empty: on the positions of each neuron's preferred class.
    focus_classes: ClassVar[tuple[str, ...]] = ()
    # The class whose loss drop marks the transition to the later mechanism.
    transition_class: ClassVar[str | None] = None

    def __init__(self, params: dict[str, Any], seed: int, train_pool: int = 0):
        self.validate_params(params)
        self.params = {**self.defaults, **params}
        self.seed = seed
        self.train_pool = train_pool

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
    def focus_metric(self) -> str | None:
        """The metrics column of the loss on the focus positions (every crutch's together)."""
        if not self.focus_classes:
            return None
        return f"loss_{self.focus_classes[0]}" if len(self.focus_classes) == 1 else "loss_focus"

    @property
    def vocab(self) -> int:
        return int(self.params["vocab"])

    @property
    def seq_len(self) -> int:
        return int(self.params["seq_len"])

    def train_batch(self, step: int, batch_size: int) -> Batch:
        """The batch for training step `step` (the same every time it is asked for): fresh
        sequences, or with `train_pool` sequences drawn (with replacement) from that many."""
        gen = _generator(self.seed, step, _TRAIN)
        if not self.train_pool:
            return self._sample(gen, batch_size)
        pick = torch.randint(0, self.train_pool, (batch_size,), generator=gen)
        pool = self.pool
        return Batch(pool.tokens[pick], pool.loss_mask[pick], pool.labels[pick])

    @cached_property
    def pool(self) -> Batch:
        """The finite training set (`train_pool` sequences, drawn once from the seed)."""
        return self._sample(_generator(self.seed, 0, _POOL), self.train_pool)

    def eval_batch(self, size: int) -> Batch:
        """The fixed evaluation batch of this seed."""
        return self._sample(_generator(self.seed, 0, _EVAL), size)

    def _sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        raise NotImplementedError

    def stages(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int | torch.Tensor]]:
        """The task's stage curves: name -> (positions [batch, seq], the token whose predicted
        probability there tells which stage the model is in: one id, or one per position
        [batch, seq]). None by default."""
        return {}


def stage_probabilities(logits: torch.Tensor, stages: dict) -> dict[str, float]:
    """The mean predicted probability of each stage's token on its positions (a task's
    `stages`: name -> (positions, one token id or one per position)). Off its positions a
    stage's token may be any id, even one past the vocabulary (C_k = B_k + 1 of a filler)."""
    probs = logits.softmax(-1)
    out = {}
    for name, (mask, token) in stages.items():
        target = torch.as_tensor(token).expand(mask.shape)[mask]
        out[name] = float(probs[mask].gather(-1, target[:, None]).mean())
    return out


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
    focus_classes = ("trigger",)
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


class ManyCrutches(Task):
    """K independent crutches, then induction: more chances per seed.

    Like `TriggerCopy`, each sequence is filler with a segment written twice at random
    offsets, and the model is scored on the second copy, which induction predicts. The
    segment is cut into slots of three tokens; `pairs` slots hold a crutch (A_k, B_k, then
    C_k with probability `p_follow`, k drawn per slot from `crutches`), `lone_b` slots a B_k
    after filler and `lone_a` slots an A_k before filler. A lone B_k is as common as a paired
    one by default, so "B_k -> C_k" is a poor guess and only the conjunction "A_k then B_k"
    predicts C_k. Each crutch has its own focus class (`trigger_k`), and each neuron is judged
    on the crutch it served. Tokens 1 .. 3K are A_k, B_k, C_k = 3k + 1, 3k + 2, 3k + 3; filler
    is 3K + 1 and up (0 is unused).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "vocab": 128,
        "seq_len": 40,
        "segment": 12,
        "crutches": 8,
        "pairs": 2,
        "lone_b": 2,
        "lone_a": 0,
        "p_follow": 0.9,
    }
    transition_class = "copy"

    def __init__(self, params: dict[str, Any], seed: int, train_pool: int = 0):
        super().__init__(params, seed, train_pool)
        k = int(self.params["crutches"])
        self.class_names = ("other", "decoy", "copy", *(f"trigger_{i}" for i in range(k)))
        self.focus_classes = self.class_names[3:]

    @classmethod
    def _check(cls, p: dict[str, Any]) -> None:
        if not (isinstance(p["crutches"], int) and 1 <= p["crutches"] <= 64):
            raise ValueError(
                f"task.params.crutches must be an integer in [1, 64], got {p['crutches']!r}"
            )
        if not 3 * p["crutches"] + 8 <= p["vocab"] <= 4096:
            raise ValueError(
                f"task.params.vocab must be in [3 * crutches + 8 = {3 * p['crutches'] + 8}, 4096], "
                f"got {p['vocab']!r}"
            )
        slots = p["segment"] // 3
        used = p["pairs"] + p["lone_b"] + p["lone_a"]
        if not (p["segment"] >= 3 and p["pairs"] >= 1 and min(p["lone_b"], p["lone_a"]) >= 0):
            raise ValueError("task.params: segment >= 3, pairs >= 1, lone_b and lone_a >= 0")
        if used > slots:
            raise ValueError(
                f"task.params.pairs + lone_b + lone_a = {used} must fit the segment's "
                f"{slots} slots of three (segment // 3)"
            )
        if p["seq_len"] < 2 * p["segment"] + 2:
            raise ValueError(
                f"task.params.seq_len must be >= 2 * segment + 2 = {2 * p['segment'] + 2}, "
                f"got {p['seq_len']!r}"
            )
        if not 0 <= p["p_follow"] <= 1:
            raise ValueError(f"task.params.p_follow must be in [0, 1], got {p['p_follow']!r}")

    @property
    def filler_start(self) -> int:
        return 3 * int(self.params["crutches"]) + 1

    def _sample(self, gen: torch.Generator, n: int) -> Batch:
        p = self.params
        seq_len, seg_len, k = p["seq_len"], p["segment"], p["crutches"]
        rows = torch.arange(n)

        def filler(*shape: int) -> torch.Tensor:
            return torch.randint(self.filler_start, p["vocab"], shape, generator=gen)

        segment = filler(n, seg_len)
        kind = torch.zeros(n, seg_len, dtype=torch.long)  # 0 other, 1 decoy, 2 trigger
        crutch = torch.zeros(n, seg_len, dtype=torch.long)
        slots = torch.rand(n, seg_len // 3, generator=gen).argsort(1) * 3
        which = torch.randint(0, k, (n, slots.shape[1]), generator=gen)
        follows = torch.rand(n, slots.shape[1], generator=gen) < p["p_follow"]
        layout = ["pair"] * p["pairs"] + ["lone_b"] * p["lone_b"] + ["lone_a"] * p["lone_a"]
        for i, what in enumerate(layout):
            start, c = slots[:, i], which[:, i]
            a, b = 3 * c + 1, 3 * c + 2
            if what == "pair":
                segment[rows, start] = a
                segment[rows, start + 1] = b
                segment[rows, start + 2] = torch.where(
                    follows[:, i], 3 * c + 3, segment[rows, start + 2]
                )
                kind[rows, start + 1], crutch[rows, start + 1] = 2, c
            elif what == "lone_b":
                segment[rows, start + 1] = b
                kind[rows, start + 1] = 1
            else:
                segment[rows, start] = a
                kind[rows, start] = 1

        tokens = filler(n, seq_len)
        first = (torch.rand(n, generator=gen) * (seq_len - 2 * seg_len + 1)).long()
        room = seq_len - 2 * seg_len - first + 1
        second = first + seg_len + (torch.rand(n, generator=gen) * room).long()
        offsets = torch.arange(seg_len)
        labels = torch.zeros(n, seq_len, dtype=torch.long)
        for start in (first, second):
            at = start[:, None] + offsets
            tokens[rows[:, None], at] = segment
        position = torch.arange(seq_len)[None, :]
        in_second = (position >= second[:, None]) & (position < second[:, None] + seg_len)
        loss_mask = in_second & (position < second[:, None] + seg_len - 1)
        labels[in_second] = 2
        for start in (first, second):
            at = start[:, None] + offsets
            seg_labels = torch.where(
                kind == 2, 3 + crutch, torch.where(kind == 1, 1, labels[rows[:, None], at])
            )
            labels[rows[:, None], at] = seg_labels
        return Batch(tokens, loss_mask, labels)

    def stages(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int | torch.Tensor]]:
        """P(C_k) after A_k B_k in the first copy (the crutch alone), after A_k B_k in the
        second copy (crutch or copying), and after a lone B_k (the crude B_k -> C_k)."""
        trigger = batch.labels >= 3
        decoy_b = (
            (batch.labels == 1) & ((batch.tokens - 1) % 3 == 1) & (batch.tokens < self.filler_start)
        )
        c_of_b = batch.tokens + 1  # C_k = B_k + 1
        return {
            "P(C | A B), first copy": (trigger & ~batch.loss_mask, c_of_b),
            "P(C | A B), second copy": (trigger & batch.loss_mask, c_of_b),
            "P(C | lone B)": (decoy_b, c_of_b),
        }


class Lexicon(Task):
    """A crutch that covers the segment: factorial three-token words, then induction.

    Each sequence is filler with a segment written twice; the model is scored on the second
    copy, which induction predicts. The segment is made of words (x_i, y_j, z_ij) with i <
    `rows` and j < `cols` drawn at random: every y_j occurs after every x_i, so z_ij follows
    from the pair only (with probability `p_follow`; else a random z), and this crutch
    predicts a third of the segment before induction arrives. One focus class per word
    (`word_i_j`, the y_j after x_i), so each neuron is judged on the word it served; the
    same-token contrast of word_i_j is y_j after another x. Tokens: x_i = 1 + i, y_j = 1 +
    rows + j, z_ij = 1 + rows + cols + i * cols + j; filler after them (0 is unused).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "vocab": 64,
        "seq_len": 40,
        "segment": 12,
        "rows": 3,
        "cols": 3,
        "p_follow": 0.8,
    }
    transition_class = "copy"

    def __init__(self, params: dict[str, Any], seed: int, train_pool: int = 0):
        super().__init__(params, seed, train_pool)
        words = [
            f"word_{i}_{j}" for i in range(self.params["rows"]) for j in range(self.params["cols"])
        ]
        self.class_names = ("other", "copy", *words)
        self.focus_classes = tuple(words)

    @classmethod
    def _check(cls, p: dict[str, Any]) -> None:
        for key in ("rows", "cols"):
            if not (isinstance(p[key], int) and 1 <= p[key] <= 16):
                raise ValueError(f"task.params.{key} must be an integer in [1, 16], got {p[key]!r}")
        special = p["rows"] + p["cols"] + p["rows"] * p["cols"]
        if not special + 8 <= p["vocab"] <= 4096:
            raise ValueError(
                f"task.params.vocab must be in [rows + cols + rows * cols + 8 = {special + 8}, "
                f"4096], got {p['vocab']!r}"
            )
        if not (p["segment"] >= 3 and p["segment"] % 3 == 0):
            raise ValueError(f"task.params.segment must be a multiple of 3, got {p['segment']!r}")
        if p["seq_len"] < 2 * p["segment"] + 2:
            raise ValueError(
                f"task.params.seq_len must be >= 2 * segment + 2 = {2 * p['segment'] + 2}, "
                f"got {p['seq_len']!r}"
            )
        if not 0 <= p["p_follow"] <= 1:
            raise ValueError(f"task.params.p_follow must be in [0, 1], got {p['p_follow']!r}")

    def _sample(self, gen: torch.Generator, n: int) -> Batch:
        p = self.params
        seq_len, seg_len, a, b = p["seq_len"], p["segment"], p["rows"], p["cols"]
        first_z, filler_start = 1 + a + b, 1 + a + b + a * b
        words = seg_len // 3
        i = torch.randint(0, a, (n, words), generator=gen)
        j = torch.randint(0, b, (n, words), generator=gen)
        z = first_z + i * b + j
        random_z = torch.randint(first_z, filler_start, (n, words), generator=gen)
        z = torch.where(torch.rand(n, words, generator=gen) < p["p_follow"], z, random_z)
        segment = torch.stack([1 + i, 1 + a + j, z], -1).reshape(n, seg_len)
        word_label = torch.zeros(n, seg_len, dtype=torch.long)
        word_label[:, 1::3] = 2 + i * b + j  # the y of each word: where z_ij is predicted

        rows = torch.arange(n)
        tokens = torch.randint(filler_start, p["vocab"], (n, seq_len), generator=gen)
        first = (torch.rand(n, generator=gen) * (seq_len - 2 * seg_len + 1)).long()
        room = seq_len - 2 * seg_len - first + 1
        second = first + seg_len + (torch.rand(n, generator=gen) * room).long()
        offsets = torch.arange(seg_len)
        labels = torch.zeros(n, seq_len, dtype=torch.long)
        position = torch.arange(seq_len)[None, :]
        in_second = (position >= second[:, None]) & (position < second[:, None] + seg_len)
        labels[in_second] = 1
        for start in (first, second):
            at = start[:, None] + offsets
            tokens[rows[:, None], at] = segment
            labels[rows[:, None], at] = torch.where(
                word_label > 0, word_label, labels[rows[:, None], at]
            )
        loss_mask = in_second & (position < second[:, None] + seg_len - 1)
        return Batch(tokens, loss_mask, labels)

    def stages(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int | torch.Tensor]]:
        """P(z_ij) after x_i y_j in the first copy (the crutch alone) and the second."""
        p = self.params
        a, b = p["rows"], p["cols"]
        word = batch.labels >= 2
        previous = torch.nn.functional.pad(batch.tokens[:, :-1], (1, 0), value=1)
        z = 1 + a + b + (previous - 1).clamp(0, a - 1) * b + (batch.tokens - 1 - a).clamp(0, b - 1)
        return {
            "P(z | x y), first copy": (word & ~batch.loss_mask, z),
            "P(z | x y), second copy": (word & batch.loss_mask, z),
        }


class MarkovChains(Task):
    """In-context Markov chains (Edelman et al., NeurIPS 2024): each sequence walks its own
    random chain over `vocab` states, with rows of the transition matrix drawn from a
    Dirichlet(`alpha`) distribution, so only the context tells the statistics. Models go
    from uniform to in-context unigram (predict the states frequent so far) to in-context
    bigram (what followed the current state so far). The unigram solution is the crutch: one
    focus class per state (`majority_s`: positions where state s makes up at least
    `majority` of a context of at least `min_context` tokens). `doubly_stochastic` makes
    every state equally frequent (Sinkhorn-balanced rows and columns), which removes the
    unigram signal: the control. Every position but the last is scored.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "vocab": 4,
        "seq_len": 64,
        "alpha": 0.5,
        "majority": 0.5,
        "min_context": 8,
        "doubly_stochastic": False,
    }
    transition_class = None

    def __init__(self, params: dict[str, Any], seed: int, train_pool: int = 0):
        super().__init__(params, seed, train_pool)
        states = [f"majority_{s}" for s in range(self.params["vocab"])]
        self.class_names = ("other", *states)
        self.focus_classes = tuple(states)

    @classmethod
    def _check(cls, p: dict[str, Any]) -> None:
        if not (isinstance(p["vocab"], int) and 2 <= p["vocab"] <= 64):
            raise ValueError(f"task.params.vocab must be an integer in [2, 64], got {p['vocab']!r}")
        if not p["alpha"] > 0:
            raise ValueError(f"task.params.alpha must be > 0, got {p['alpha']!r}")
        if not 0 < p["majority"] <= 1:
            raise ValueError(f"task.params.majority must be in (0, 1], got {p['majority']!r}")
        if not 1 <= p["min_context"] < p["seq_len"]:
            raise ValueError("task.params.min_context must be in [1, seq_len)")

    def _sample(self, gen: torch.Generator, n: int) -> Batch:
        p = self.params
        states, seq_len = p["vocab"], p["seq_len"]
        # numpy's Dirichlet, seeded from `gen` (torch's samplers take no generator)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        matrix = torch.from_numpy(rng.dirichlet([p["alpha"]] * states, size=(n, states))).float()
        if p["doubly_stochastic"]:
            for _ in range(50):  # Sinkhorn: rows and columns sum to one
                matrix = matrix / matrix.sum(-2, keepdim=True)
                matrix = matrix / matrix.sum(-1, keepdim=True)
        tokens = torch.zeros(n, seq_len, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, states, (n,), generator=gen)
        rows = torch.arange(n)
        for t in range(1, seq_len):
            probs = matrix[rows, tokens[:, t - 1]]
            tokens[:, t] = torch.multinomial(probs, 1, generator=gen)[:, 0]
        counts = torch.nn.functional.one_hot(tokens, states).cumsum(1)  # [n, seq, states]
        length = torch.arange(1, seq_len + 1)[None, :, None]
        share = counts / length
        top, state = share.max(-1)
        clear = (top >= p["majority"]) & (length[..., 0] >= p["min_context"])
        labels = torch.where(clear, 1 + state, 0)
        loss_mask = torch.ones(n, seq_len, dtype=torch.bool)
        loss_mask[:, -1] = False
        return Batch(tokens, loss_mask, labels)

    def stages(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int | torch.Tensor]]:
        """P(the majority state) at majority positions (the unigram stage), and P(the state
        that most often followed the current one so far) (the bigram stage)."""
        states = self.params["vocab"]
        majority = batch.labels >= 1
        tokens = batch.tokens
        pairs = torch.zeros(*tokens.shape, states, states)
        prev, nxt = tokens[:, :-1], tokens[:, 1:]
        step = torch.zeros(tokens.shape[0], tokens.shape[1] - 1, states, states)
        step.scatter_(-1, nxt[..., None, None].expand(-1, -1, states, 1), 1.0)
        step = step * torch.nn.functional.one_hot(prev, states)[..., None]
        pairs[:, 1:] = step.cumsum(1)
        seen = pairs.gather(2, tokens[..., None, None].expand(-1, -1, 1, states))[:, :, 0]
        bigram = seen.argmax(-1)
        known = seen.sum(-1) > 0
        return {
            "P(majority state)": (majority, (batch.labels - 1).clamp(min=0)),
            "P(most frequent successor)": (batch.loss_mask & known, bigram),
        }


TASKS: dict[str, type[Task]] = {
    "trigger_copy": TriggerCopy,
    "many_crutches": ManyCrutches,
    "lexicon": Lexicon,
    "markov": MarkovChains,
}


def make_task(name: str, params: dict[str, Any], seed: int, train_pool: int = 0) -> Task:
    """Build the task `name` for `seed` (training on a pool of `train_pool` sequences if > 0)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](params, seed, train_pool)
