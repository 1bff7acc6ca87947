"""Benchmark the checkpoint explorer: kernel side without a frontend, then in a real browser.

Kernel side: widget messages go through a comm that packs them exactly as a kernel does
(jupyter_client's ``json_packer``) and counts bytes, so the timings include the widget sync
work. Browser side (``benchmarks/browser_explorer.py``): JupyterLab headless and Debian's
Chromium (Playwright), the explorer on synthetic tables of the reference size, 50 slider
moves, each timed from the keydown on the slider to the first frame painted after every
view changed.

    .venv/bin/python benchmarks/bench_explorer.py [--seeds 10] [--baseline-steps 10]
                                                  [--moves 50] [--no-browser]

Prints: first display time, rows and bytes per view, median/p95 ms per step change over all
seeds and checkpoints (targets: median <= 30 ms, p95 <= 100 ms; first display <= 3 s), the same
for the baseline (rebuilding the chart per step) as ratios, seed-change cost, the sizes of
the ways to fit the attention table under altair's 5,000-row limit, and the browser-side
latency from slider input to redrawn views (median and p95; target p95 <= 150 ms).

Then today's explorer against the one before the seed swap and the cached offline bundle
(``--baseline``, a git revision; its ``widgets/`` is extracted to a temporary folder): each
path in fresh processes, interleaved over ``--rounds``, timing the offline JavaScript (the
current path with an empty and a warm cache), the first display, a seed change and the
saved snapshot, in wall and CPU seconds, as ratios baseline / current (targets: first display
with the offline bundle <= 3 s, seed change <= 1 s).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from functools import partial
from pathlib import Path

import altair as alt
import comm
import numpy as np
from comm.base_comm import BaseComm
from jupyter_client.session import json_packer
from vestige import charts
from vestige.explorer import CheckpointExplorer, ExplorerTables

SENT: list[tuple[str, int, tuple[str, ...]]] = []  # (msg_type, bytes, state keys)
REPO = Path(__file__).resolve().parents[1]
BASELINE = "8cdf690"  # the explorer that rebuilt its specs per seed (issue 18)


class PackingComm(BaseComm):
    """A comm that serializes each message like a kernel and records its size."""

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        payload = json_packer({"data": data, "metadata": metadata, "comm_id": self.comm_id})
        SENT.append((msg_type, len(payload), tuple((data or {}).get("state", {}))))


comm.create_comm = PackingComm  # ipywidgets looks it up when a widget opens


def timed(fn) -> tuple[float, int]:
    """Seconds taken by ``fn()`` and the bytes of widget messages it sent."""
    start = len(SENT)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, sum(b for _, b, _ in SENT[start:])


def show(tables: ExplorerTables) -> CheckpointExplorer:
    """Create the explorer and ask for its display bundle, as a notebook cell would."""
    ex = CheckpointExplorer(tables)
    ex._repr_mimebundle_()
    return ex


def spec_sent(start: int) -> bool:
    return any("spec" in keys for _, _, keys in SENT[start:])


def summary(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def bench_steps(ex: CheckpointExplorer) -> tuple[list[float], list[float], list[int], bool]:
    """Drag across every checkpoint of every seed: step-change times, seed-change times,
    bytes per step change, and whether any step change re-sent a spec."""
    step_s, seed_s, step_bytes, resent = [], [], [], False
    for seed in ex.tables.seeds:
        seed_s.append(timed(partial(setattr, ex, "seed", seed))[0])
        for step in ex.tables.steps(seed)[1:] + ex.tables.steps(seed)[:1]:
            start = len(SENT)
            dt, nbytes = timed(partial(setattr, ex, "step", step))
            step_s.append(dt)
            step_bytes.append(nbytes)
            resent |= spec_sent(start)
    return step_s, seed_s, step_bytes, resent


def bench_rebuild(ex: CheckpointExplorer, n: int) -> tuple[list[float], list[int]]:
    """Baseline: rebuild every chart (and re-send its data) per step change."""
    seconds, sizes = [], []
    steps = ex.tables.steps(ex.seed)
    for step in steps[1 : n + 1]:
        dt, nbytes = timed(partial(rebuild, ex, step))
        seconds.append(dt)
        sizes.append(nbytes)
    return seconds, sizes


def rebuild(ex: CheckpointExplorer, step: int) -> None:
    """Move the cursor with no observers, then rebuild and re-send the chart."""
    ex.set_trait("step", step)
    ex.redraw()


def attention_options(tables: ExplorerTables, seed: int) -> list[tuple[str, int, int]]:
    """(option, rows, JSON bytes) for the ways to ship one seed's attention."""
    long = charts.rows(tables.attention, seed)
    head = long[(long["layer"] == 0) & (long["head"] == 0)].drop(columns=["seed", "layer", "head"])
    steps = tables.steps(seed)
    cells, _ = charts.attention_cells(tables, seed, steps)
    per_head = cells.assign(w=[w[: 2 * len(steps)] for w in cells["w"]])
    return [
        ("long rows, one seed", len(long), _json_size(long.drop(columns="seed"))),
        ("long rows, one seed+layer+head", len(head), _json_size(head)),
        ("packed cells, all layers+heads (used)", len(cells), _json_size(cells)),
        ("packed cells, one layer+head", len(per_head), _json_size(per_head)),
    ]


def _json_size(df) -> int:
    return len(json.dumps(df.to_dict(orient="records")))


def max_rows_error(tables: ExplorerTables, seed: int) -> str:
    """What altair says about one seed's long attention rows (the limit left on)."""
    try:
        alt.Chart(charts.rows(tables.attention, seed)).mark_rect().to_dict()
    except alt.MaxRowsError as err:
        return type(err).__name__
    return "accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--baseline-steps", type=int, default=10)
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2, help="0: no comparison")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # one path's timings in this (fresh) process, as JSON
        print(json.dumps(measure_path()))
        return

    t0 = time.perf_counter()
    tables = ExplorerTables.synthetic(n_seeds=args.seeds)
    print(
        f"synthetic tables: {args.seeds} seeds, {len(tables.steps())} checkpoints, "
        f"{len(tables.attention):,} attention rows ({time.perf_counter() - t0:.2f} s)"
    )

    from vestige.explorer import enable_offline  # not in the baseline (see --baseline)

    offline_s, _ = timed(enable_offline)
    shown = []
    first_s, first_bytes = timed(lambda: shown.append(show(tables)))
    ex = shown[0]
    print(
        f"\nfirst display: {first_s:.2f} s (+ {offline_s:.2f} s enable_offline, its bundle cached"
        f" on disk; total {first_s + offline_s:.2f} s; target <= 3 s), {first_bytes / 1e6:.1f} MB"
        " sent"
    )

    print("\nview (one seed)        rows   data KB")
    views = [
        charts.training_curves,
        charts.selectivity_vs_effect,
        charts.class_means,
        charts.neuron_timeline,
        charts.attention_pattern,
    ]
    for view in views:
        spec = view(tables, 0).to_dict()
        datasets = spec.get("datasets", {}).values()
        print(
            f"{view.__name__:<21} {sum(len(v) for v in datasets):>6}   "
            f"{len(json.dumps(list(datasets))) / 1e3:>7.0f}"
        )
    print(
        f"the explorer's one chart (all five, shared data): "
        f"{len(json.dumps(ex.chart.spec)) / 1e3:.0f} KB spec, "
        f"{len(ex.chart._esm) / 1e6:.1f} MB JavaScript (offline, once)"
    )

    step_s, seed_s, step_bytes, resent = bench_steps(ex)
    med, p95 = summary(step_s)
    base_s, base_bytes = bench_rebuild(ex, args.baseline_steps)
    base_med, base_p95 = summary(base_s)
    print(
        f"\nstep change, params only ({len(step_s)} changes over {args.seeds} seeds): "
        f"median {med:.2f} ms, p95 {p95:.2f} ms (targets 30 / 100 ms), "
        f"{statistics.median(step_bytes):.0f} B sent, spec re-sent: {resent}"
    )
    print(
        f"baseline, rebuild charts per step ({len(base_s)} changes): median {base_med:.0f} ms, "
        f"p95 {base_p95:.0f} ms, {statistics.median(base_bytes) / 1e6:.2f} MB sent"
    )
    print(
        f"ratio baseline / params: median x{base_med / med:.0f}, p95 x{base_p95 / p95:.0f}, "
        f"bytes x{statistics.median(base_bytes) / statistics.median(step_bytes):.0f}"
    )
    seed_med, seed_p95 = summary(seed_s)
    print(f"seed change (swaps datasets): median {seed_med:.0f} ms, p95 {seed_p95:.0f} ms")

    print(
        f"\nattention under the 5,000-row limit (seed 0; altair on one seed's long rows: "
        f"{max_rows_error(tables, 0)})"
    )
    for option, rows, nbytes in attention_options(tables, 0):
        print(f"  {option:<40} {rows:>8,} rows {nbytes / 1e3:>8.0f} KB")

    print(f"\nkernel side, step change: median {med:.2f} ms, p95 {p95:.2f} ms (above)")
    if args.rounds:
        compare_paths(args.baseline, args.rounds)
    if args.no_browser:
        return
    from browser_explorer import browser_latency

    browser = browser_latency(moves=args.moves)
    if isinstance(browser, str):
        print(f"browser side: skipped ({browser})")
        return
    b_med, b_p95 = browser["median"], browser["p95"]
    print(
        f"browser side, slider keydown to every view repainted ({browser['moves']} moves, "
        f"JupyterLab + Chromium, reference-size synthetic tables): median {b_med:.0f} ms, "
        f"p95 {b_p95:.0f} ms (target p95 <= 150 ms: {'met' if b_p95 <= 150 else 'NOT met'}); "
        f"drag: median {browser['drag_median']:.0f} ms; blocked requests "
        f"{browser['blocked']}, console errors {browser['errors']}"
    )


# ----------------------------------------------------------------------------- paths


def measure_path(seeds: int = 3) -> dict[str, list[float]]:
    """The explorer on reference-size synthetic tables, timed in this process: the offline
    bundle, the first display, each seed change, a snapshot; {name: [wall s, CPU s]}."""
    import vestige.explorer as explorer

    tables = ExplorerTables.synthetic(n_seeds=seeds)
    offline = getattr(explorer, "enable_offline", alt.JupyterChart.enable_offline)
    times = {"offline": clocked(offline)}
    shown = []
    times["first display"] = clocked(lambda: shown.append(show(tables)))
    ex = shown[0]
    changes = [clocked(partial(setattr, ex, "seed", s)) for s in tables.seeds[1:]]
    times["seed change"] = [statistics.median(c[i] for c in changes) for i in (0, 1)]
    times["snapshot"] = clocked(ex.snapshot)
    return times


def clocked(fn) -> list[float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return [time.perf_counter() - wall, time.process_time() - cpu]


def compare_paths(baseline: str, rounds: int) -> None:
    """Each path in fresh processes, interleaved: the baseline revision, then today's with an
    empty offline cache and with a warm one; medians over rounds and ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        try:
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", baseline, "widgets"],
                capture_output=True,
                check=True,
            ).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            print(f"\npaths: skipped (no git revision {baseline}: {err})")
            return
        old.mkdir()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        warm = Path(tmp) / "warm-cache"
        paths = {
            f"baseline {baseline}": (old / "widgets", None),
            "current, empty cache": (REPO / "widgets", "empty"),
            "current, warm cache": (REPO / "widgets", warm),
        }
        measure_once(REPO / "widgets", warm)  # warms the cache
        runs: dict[str, list[dict]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, (package, cache) in paths.items():
                empty = Path(tempfile.mkdtemp(dir=tmp)) if cache == "empty" else cache
                runs[name].append(measure_once(package, empty))
    print(f"\npaths, fresh processes interleaved over {rounds} rounds (median; wall s / CPU s):")
    names = list(runs[next(iter(runs))][0])
    print(f"{'':<28}" + "".join(f"{n:>22}" for n in [*names, "offline + display"]))
    medians = {}
    for name, found in runs.items():
        m = {n: [statistics.median(r[n][i] for r in found) for i in (0, 1)] for n in names}
        m["offline + display"] = [m["offline"][i] + m["first display"][i] for i in (0, 1)]
        medians[name] = m
        print(f"{name:<28}" + "".join(f"{v[0]:>11.2f} / {v[1]:>7.2f}" for v in m.values()))
    base = medians[f"baseline {baseline}"]
    for name in list(paths)[1:]:
        ratios = "".join(
            f"{base[n][0] / max(v[0], 1e-9):>10.1f}x /{base[n][1] / max(v[1], 1e-9):>7.1f}x"
            for n, v in medians[name].items()
        )
        print(f"{'ratio vs ' + name:<28}{ratios}")


def measure_once(package: Path, cache: Path | None) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(package), "OMP_NUM_THREADS": "1"}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    done = subprocess.run(
        [sys.executable, __file__, "--measure"],
        env=env,
        cwd=package,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
