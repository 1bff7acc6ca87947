"""Benchmark the training loop and the ablation sweep against baselines run in the same process.

    .venv/bin/python benchmarks/bench_core.py [--steps 300] [--no-rss]

Prints three figures, all on one thread (as on Binder):
1. kit training steps/s against a plain PyTorch transformer of the same shape and batch,
   trained on the same batches (target: ratio >= 0.8);
2. the batched ablation sweep (all neurons of every layer) against one hooked forward pass
   per neuron (target: >= 10x);
3. peak RSS and wall time of `vestige train --preset reference` in a fresh process, then of
   `vestige analyze` on that run (Binder's hard limit is 2 GB; targets: 90 s, 0.8 GB to train).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import vestige
from vestige.hooks import cache_activations, mlp_post, set_neurons
from vestige.metrics import ablated_losses, ablation_values, per_position_loss
from vestige.model import build_model
from vestige.task import make_task


class PlainBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int, n_ctx: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d_model))
        self.register_buffer("mask", torch.triu(torch.ones(n_ctx, n_ctx, dtype=torch.bool), 1))

    def forward(self, x):
        h = self.ln1(x)
        n = x.shape[1]
        x = x + self.attn(h, h, h, attn_mask=self.mask[:n, :n], need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class PlainTransformer(nn.Module):
    """The baseline: the same shape as the kit's model, written directly in PyTorch."""

    def __init__(self, vocab: int, n_ctx: int, d_model: int, n_heads: int, d_mlp: int, n_layers: int):
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(n_ctx, d_model)
        self.blocks = nn.ModuleList(PlainBlock(d_model, n_heads, d_mlp, n_ctx) for _ in range(n_layers))
        self.ln, self.unembed = nn.LayerNorm(d_model), nn.Linear(d_model, vocab, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln(x))


def bench_training(steps: int) -> None:
    config = vestige.preset("reference")
    config = config.replace(train=config.train.__class__(**{**config.train.__dict__, "steps": steps}))
    task = make_task(config.task.name, config.task.params, 0)
    m = config.model
    plain = PlainTransformer(task.vocab, task.seq_len, m.d_model, m.n_heads, m.d_mlp, m.n_layers)
    native = build_model(config, 0).original_model  # TransformerLens's module, no bridge
    rates = {
        "plain PyTorch (nn.MultiheadAttention)": bare_loop(plain, task, config, steps),
        "TransformerLens native model, bare loop": bare_loop(native, task, config, steps),
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        vestige.train(config, 0, Path(tmp) / "run", progress=False)
        kit = steps / (time.perf_counter() - start)
    print(f"1. training, reference shape, batch {config.train.batch_size}, {steps} steps "
          f"(the kit's loop includes {len(config.checkpoint_steps)} checkpoints, evals and state saves):")
    print(f"   kit {kit:.1f} steps/s")
    for name, rate in rates.items():
        print(f"   {name}: {rate:.1f} steps/s, kit ratio {kit / rate:.2f}")
    print("   (target: kit / plain PyTorch >= 0.8)")


def bare_loop(model: nn.Module, task, config, steps: int) -> float:
    """Steps/s of the simplest loop: same batches, masked loss, AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    start = time.perf_counter()
    for step in range(steps):
        batch = task.train_batch(step, config.train.batch_size)
        loss_at, _ = per_position_loss(model(batch.tokens), batch.tokens)
        loss = loss_at[batch.loss_mask].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def bench_ablation() -> None:
    config = vestige.preset("reference")
    model = build_model(config, 0).eval()
    batch = make_task(config.task.name, config.task.params, 0).eval_batch(config.task.eval_size)
    layers, d_mlp = config.model.n_layers, config.model.d_mlp
    values = {}
    for layer in range(layers):
        _, acts = cache_activations(model, batch.tokens, [mlp_post(layer)])
        values[layer] = ablation_values(acts[mlp_post(layer)], "mean")
    start = time.perf_counter()
    for layer in range(layers):
        ablated_losses(model, batch, layer, range(d_mlp), values[layer])
    batched = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        for layer in range(layers):
            for neuron in range(d_mlp):
                hook = set_neurons([neuron], values[layer][neuron])
                per_position_loss(model.run_with_hooks(batch.tokens, fwd_hooks=[(mlp_post(layer), hook)]), batch.tokens)
    loop = time.perf_counter() - start
    print(f"2. ablation sweep, {layers} layers x {d_mlp} neurons on {len(batch)} sequences:")
    print(f"   batched {batched:.2f} s, one forward per neuron {loop:.2f} s, "
          f"speed-up {loop / batched:.1f}x (target >= 10x)")


def bench_rss() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for label, args in [
            ("training the reference preset", ["train", "--preset", "reference", "--seed", "0",
                                               "--out", f"{tmp}/run", "--quiet"]),
            ("analysing its checkpoints", ["analyze", f"{tmp}/run", "--quiet"]),
        ]:
            wall, peak_mb = run_measured(args)
            print(f"3. {label} (one seed, fresh process, one thread): {wall:.0f} s, "
                  f"peak RSS {peak_mb:.0f} MB")
    print("   (targets for training: <= 90 s, <= 800 MB)")


def run_measured(args: list[str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of `vestige ARGS` in a child process on one thread."""
    code = ("import resource, sys, torch; torch.set_num_threads(1); from vestige.cli import main; "
            "main(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - start, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--no-rss", action="store_true", help="skip the full reference run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_training(args.steps)
    bench_ablation()
    if not args.no_rss:
        bench_rss()


if __name__ == "__main__":
    main()
