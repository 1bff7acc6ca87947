"""Command line: `vestige train`, `analyze`, `fork`, `study`, `report`, `course`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vestige.config import PRESETS, RunConfig, preset
from vestige.device import DEVICE_HELP, DEVICES, resolve_device

THREADS_HELP = (
    "torch threads (default 1: the toy models run fastest on one, and extra threads slow "
    "everything down when other jobs share the cores)"
)


def parse_seeds(text: str) -> list[int]:
    """'0-9' -> 0..9; '0,3,5-7' -> [0, 3, 5, 6, 7]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must look like '0-9' or '0,3,5-7', got {text!r}"
        ) from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}")
    return sorted(set(seeds))


def _config(args: argparse.Namespace) -> RunConfig:
    if args.config:
        return RunConfig.from_json(Path(args.config).read_text())
    return preset(args.preset)


def cmd_train(args: argparse.Namespace) -> None:
    from vestige.runs import seed_dir
    from vestige.training import train

    config = _config(args)
    if args.seeds is None:
        train(
            config,
            args.seed,
            args.out,
            resume=args.resume,
            progress=not args.quiet,
            device=args.device,
        )
        return
    for seed in args.seeds:
        train(
            config,
            seed,
            seed_dir(args.out, seed),
            resume=args.resume,
            progress=not args.quiet,
            device=args.device,
        )


def cmd_analyze(args: argparse.Namespace) -> None:
    from vestige.analysis import AnalysisSpec, analyze
    from vestige.runs import Runs

    spec = AnalysisSpec(modes=tuple(args.modes.split(",")))
    for run in Runs.open(args.dir, device=args.device):
        tables = analyze(run, spec, progress=not args.quiet)
        print(f"{run.path}: {len(tables['neurons'])} neuron rows in {run.path / 'analysis'}")
        if args.mechanism:
            from vestige.detect import detect
            from vestige.mechanism import mechanism, target_subject

            subject = target_subject(detect(run))
            mechanism(run, subject, progress=not args.quiet)
            print(f"{run.path}: mechanism tables of {subject.unit}")


def cmd_fork(args: argparse.Namespace) -> None:
    from vestige.counterfactual import ForkRefused, run_forks
    from vestige.runs import Runs

    refused = []
    for path in args.runs:
        for run in Runs.open(path, device=args.device):
            try:
                forks = run_forks(run, args.out, not args.quiet, args.device)
            except ForkRefused as why:  # the other seeds are still forked
                print(f"{run.path}: not forked: {why}", file=sys.stderr)
                refused.append(str(run.path))
                continue
            for name, forked in forks.items():
                print(f"{run.path} -> {name}: {forked.path}")
    if refused:
        raise ValueError(f"{len(refused)} run(s) not forked (see above): {', '.join(refused)}")


def cmd_study(args: argparse.Namespace) -> None:
    from vestige.conditions import CONDITION_NAMES
    from vestige.distributed import scheduler_from_env
    from vestige.study import run_study

    conditions = (
        tuple(CONDITION_NAMES)
        if args.conditions == "all"
        else tuple(c for c in args.conditions.split(",") if c)
    )
    control = (args.control_preset, args.control_seeds) if args.control_seeds else None
    summary = run_study(
        args.preset,
        args.seeds,
        args.out,
        args.report,
        args.workers,
        not args.quiet,
        conditions,
        control,
        args.search,
        scheduler=scheduler_from_env(args.scheduler),
        condition_seeds=args.condition_seeds,
        perturbed_seeds=args.perturbed_seeds,
        pool=(args.pool, args.pool_seeds) if args.pool_seeds else None,
        device=args.device,
    )
    print(
        f"vestigial neuron caught in {summary['caught']} of {summary['n_seeds']} seeds; "
        f"report in {Path(args.report or args.out) / 'report.md'}"
    )


def cmd_report(args: argparse.Namespace) -> None:
    from vestige.report import load, write_report

    folder = Path(args.folder)
    if not (folder / "summary.json").is_file():
        raise FileNotFoundError(
            f"{folder / 'summary.json'} not found: `vestige study --report {folder}` writes it"
        )
    if args.search and not Path(args.search).is_file():
        raise FileNotFoundError(f"search log {args.search} not found")
    summary, results = load(folder)
    write_report(summary, results, folder, args.search)
    print(f"report in {folder / 'report.md'}")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """`--device {auto,cpu,cuda}` on a subcommand that trains or analyses."""
    parser.add_argument("--device", choices=DEVICES, default="cpu", help=DEVICE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vestige", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one seed or several seeds of a config")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    source.add_argument(
        "--config", help="a config.json (e.g. of an existing run) instead of a preset"
    )
    seeds = train.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="train this seed into --out")
    seeds.add_argument("--seeds", type=parse_seeds, help="e.g. 0-9: one --out/seed-K per seed")
    train.add_argument("--out", required=True, help="run directory (or parent, with --seeds)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    add_device_argument(train)
    train.set_defaults(func=cmd_train)

    analyze = sub.add_parser("analyze", help="compute and cache the analysis tables of runs")
    analyze.add_argument("dir", help="a run directory or a directory of seed-K runs")
    analyze.add_argument("--modes", default="mean", help="ablations, e.g. mean,zero,resample")
    analyze.add_argument(
        "--mechanism",
        action="store_true",
        help="also the mechanism tables of the detector's target neuron",
    )
    analyze.add_argument("--quiet", action="store_true")
    analyze.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    add_device_argument(analyze)
    analyze.set_defaults(func=cmd_analyze)

    fork = sub.add_parser(
        "fork",
        help="train the course's counterfactual forks of runs "
        "(vestige.counterfactual.standard_forks)",
    )
    fork.add_argument("runs", nargs="+", help="run directories or directories of seed-K runs")
    fork.add_argument("--out", required=True, help="forks go to OUT/<preset>/seed-K/<fork>")
    fork.add_argument("--quiet", action="store_true")
    fork.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    add_device_argument(fork)
    fork.set_defaults(func=cmd_fork)

    study = sub.add_parser(
        "study", help="the vestigial-neuron study across seeds, with suppression runs"
    )
    study.add_argument("--preset", default="reference", choices=sorted(PRESETS))
    study.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-9"))
    study.add_argument("--out", required=True, help="runs go to OUT/<condition>/seed-K (reused)")
    study.add_argument("--report", help="where report.md, summary.json, figures go (default OUT)")
    study.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local processes training runs in parallel (without --scheduler)",
    )
    study.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the study's tasks (one per seed, one per seed and condition) on "
        "an existing Dask cluster: its scheduler's address (tcp://HOST:PORT) "
        "or scheduler file; 'local' for local processes. Default: "
        "$VESTIGE_SCHEDULER, else $DASK_SCHEDULER_ADDRESS, else local. OUT "
        "must be on a filesystem every worker mounts at the same path "
        "(docs/cluster.md)",
    )
    study.add_argument(
        "--conditions",
        default="all",
        help="which runs to train again per seed: 'all', '' for none, or names "
        "from vestige.conditions.CONDITIONS, comma-separated",
    )
    study.add_argument(
        "--condition-seeds",
        type=parse_seeds,
        help="train the conditions on these seeds only (default: every seed)",
    )
    study.add_argument(
        "--control-preset",
        default="control",
        choices=sorted(PRESETS),
        help="the negative control: judged by the detector only",
    )
    study.add_argument("--control-seeds", type=parse_seeds, help="seeds of the negative control")
    study.add_argument(
        "--perturbed-seeds",
        type=parse_seeds,
        help="retrain these seeds with 2 threads and with 1e-6 noise on the initial weights, "
        "and judge them again (robustness to numerics)",
    )
    study.add_argument(
        "--pool",
        type=int,
        default=2000,
        help="size of the finite training set for --pool-seeds (default 2000 sequences)",
    )
    study.add_argument(
        "--pool-seeds",
        type=parse_seeds,
        help="train these seeds on a finite training set too, unchanged and under each "
        "selectivity-regulariser strength (a generalisation gap)",
    )
    study.add_argument("--search", help="the search log (JSON lines) for the report's appendix")
    study.add_argument("--quiet", action="store_true")
    add_device_argument(study)
    study.set_defaults(func=cmd_study)

    report = sub.add_parser(
        "report",
        help="write a study's report.md and figures again from its summary.json and "
        "results.json (after the search log or the report's code changed; trains nothing)",
    )
    report.add_argument("folder", help="the study's report folder (e.g. course/study)")
    report.add_argument("--search", help="the search log (JSON lines) for the appendix")
    report.set_defaults(func=cmd_report)

    from vestige.course import add_course_parser

    add_course_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        if getattr(args, "device", None):
            resolve_device(args.device)  # here, not in a worker: "cuda" without one says so
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"vestige {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130
    return 0
