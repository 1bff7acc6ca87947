"""Studies cut into tasks, on local processes and on a Dask cluster: the same results as
`study_seed`, run locks, and a worker killed mid-run that loses nothing."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import vestige
import vestige.training
from vestige.cli import main
from vestige.config import SelectivityPenalty, Suppress
from vestige.distributed import (
    RunLock,
    holder,
    lock_path,
    scheduler_from_env,
)
from vestige.report import json_safe
from vestige.runs import load_safetensors
from vestige.study import CONDITION_NAMES, condition_runs, run_study, study_base, study_seed

SEEDS = [0, 1]
# Both apply to every seed: two condition tasks per seed that depend on the seed's task.
CONDITIONS = ("neuron-whole", "alpha-0.3")
TINY = vestige.preset("tiny")


def without_timing(summary: dict) -> dict:
    """The summary as summary.json holds it (NaN as null), without its timing."""
    return json_safe({k: v for k, v in summary.items() if k != "seconds"})


def run_files(run: Path) -> dict[str, bytes]:
    """A run's checkpoints and metrics (the temporary files of an interrupted write aside)."""
    files = sorted(run.glob("checkpoints/step-*.safetensors")) + [run / "metrics.jsonl"]
    return {p.name: p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def single_machine(tmp_path_factory):
    """The study on this machine's processes, the reference every other way must equal."""
    root = tmp_path_factory.mktemp("single")
    summary = run_study(
        "tiny",
        SEEDS,
        root / "runs",
        root / "report",
        workers=2,
        progress=False,
        conditions=CONDITIONS,
    )
    return summary, root


# ----------------------------------------------------------------------------- the tasks


def test_tasks_assemble_exactly_what_study_seed_returns(single_machine, tmp_path):
    _, root = single_machine
    expected = [
        {"preset": "tiny", **study_seed(TINY, seed, tmp_path, CONDITIONS)} for seed in SEEDS
    ]
    written = json.loads((root / "report" / "results.json").read_text())
    assert written == json_safe(expected)
    assert [list(r["conditions"]) for r in written] == [list(CONDITIONS)] * len(SEEDS)


def test_controls_and_perturbed_copies_skip_only_the_mechanism_pass(
    single_machine, tmp_path, monkeypatch
):
    """Their summaries compare verdicts only: their records are the study's own without the
    mechanism (and the crutch's head it finds), and `run_study` asks for no more."""
    import vestige.study

    _, root = single_machine
    full = study_base(TINY, 0, root / "runs" / "tiny")
    lean = study_base(TINY, 0, root / "runs" / "tiny", mechanism=False)
    assert "mechanism" in full and "crutch_head" in full
    assert json_safe(lean) == json_safe(
        {k: v for k, v in full.items() if k not in ("mechanism", "crutch_head")}
    )

    class Planned(Exception):
        pass

    def plan(jobs, *args):
        raise Planned({key: job.mechanism for key, job in jobs.items()})

    monkeypatch.setattr(vestige.study, "run_jobs", plan)
    with pytest.raises(Planned) as planned:
        run_study("tiny", [0], tmp_path, conditions=(), control=("tiny", [1]), perturbed_seeds=[0])
    assert planned.value.args[0] == {
        ("study", 0): True,
        ("control", 1): False,
        **{(kind, 0): False for kind in vestige.study.PERTURBATIONS},
    }


def test_condition_runs_are_study_seeds_conditions_in_order(tmp_path):
    base = {"target": {"layer": 0, "neuron": 7}, "control_neuron": 3, "base": {"transition": 40.0}}
    runs = condition_runs(TINY, 4, tmp_path, ("alpha-1", "neuron-0.5T", "control-whole"), base)
    assert list(runs) == ["alpha-1", "neuron-0.5T", "control-whole"]
    config, path, interventions = runs["neuron-0.5T"]
    assert path == tmp_path / "neuron-0.5T" / "seed-4"
    assert interventions == (Suppress(0, (7,), mode="mean", end=20),)
    assert config == TINY.replace(interventions=interventions)
    assert runs["control-whole"][2] == (Suppress(0, (3,), mode="mean"),)
    assert runs["alpha-1"][2] == (SelectivityPenalty(alpha=-1.0),)
    no_target = {"target": None, "control_neuron": None, "base": {"transition": 40.0}}
    assert list(condition_runs(TINY, 4, tmp_path, tuple(CONDITION_NAMES), no_target)) == [
        "alpha-1",
        "alpha-0.3",
        "alpha+0.3",
    ]


def test_jobs_of_more_threads_run_after_the_others_on_fewer_processes(monkeypatch, tmp_path):
    """Locally, two-thread jobs never share the cores with one-thread ones: they run in a
    phase of their own on workers // 2 processes (at least one); a Dask cluster gets every
    job at once."""
    import vestige.distributed
    from vestige.distributed import Job
    from vestige.study import run_jobs

    calls = []

    def record(group, steps, workers, progress, scheduler, desc):
        calls.append((sorted(group), workers))
        bars.append(desc)
        return {key: {"seed": job.seed} for key, job in group.items()}

    bars = []

    monkeypatch.setattr(vestige.distributed, "run_tasks", record)
    jobs = {
        ("threads-2", 0): Job(TINY, 0, tmp_path, (), 2),
        ("study", 0): Job(TINY, 0, tmp_path, (), 1),
        ("study", 1): Job(TINY, 1, tmp_path, (), 1),
    }
    results = run_jobs(jobs, 2, False)
    assert calls == [([("study", 0), ("study", 1)], 2), ([("threads-2", 0)], 1)]
    assert bars == ["runs", "runs on 2 threads"]  # two bars, told apart
    assert results[("threads-2", 0)] == {"preset": "tiny", "seed": 0}
    calls.clear()
    run_jobs(jobs, 1, False)
    assert [workers for _, workers in calls] == [1, 1]
    calls.clear()
    run_jobs(jobs, 2, False, scheduler="tcp://cluster:8786")
    assert calls == [(sorted(jobs), 2)]


def _noise_of(config, seed, out, threads, device, mechanism):
    return {"seed": seed, "noise": config.model.init_noise, "mechanism": mechanism}


def _no_conditions(config, seed, out, conditions, base):
    return {}


def test_runs_of_one_config_name_and_seed_get_distinct_task_keys(tmp_path):
    """Dask hands back the future it already holds for a key: a perturbed copy (the study
    run's config name and seed, another run directory) must not share the study run's key.
    Each job's task asks for the mechanism pass only if its job does."""
    import dataclasses
    from concurrent.futures import Future

    from vestige.distributed import Job, Steps, _run

    keys = []

    class Inline:
        def submit(self, task):
            keys.append(task.key)
            future = Future()
            future.set_result(task.fn(*task.args))
            return future

        def wait(self, futures):
            return set(futures)

        def cancel(self, futures):
            pass

    noisy = TINY.replace(model=dataclasses.replace(TINY.model, init_noise=1e-6))
    jobs = {
        ("study", 0): Job(TINY, 0, tmp_path / "a"),
        ("noise-1e-6", 0): Job(noisy, 0, tmp_path / "b", mechanism=False),
    }
    steps = Steps(base=_noise_of, plan=_no_conditions, record=None, measure=None)
    results = _run(Inline(), jobs, steps, False, "t0", "runs")
    assert len(keys) == 2 and len(set(keys)) == 2
    assert all(key.startswith("vestige-base-tiny-seed-0-t0-") for key in keys)
    assert results[("noise-1e-6", 0)]["noise"] == 1e-6 and results[("study", 0)]["noise"] == 0
    assert results[("study", 0)]["mechanism"] and not results[("noise-1e-6", 0)]["mechanism"]


def test_scheduler_comes_from_the_flag_then_the_environment():
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://dask:8786"}
    assert scheduler_from_env(None, {}) is None
    assert scheduler_from_env(None, env) == "tcp://dask:8786"
    assert scheduler_from_env(None, {**env, "VESTIGE_SCHEDULER": "tcp://v:1"}) == "tcp://v:1"
    assert scheduler_from_env("tcp://flag:2", env) == "tcp://flag:2"
    assert scheduler_from_env("local", env) is None


# ----------------------------------------------------------------------------- run locks


def test_one_writer_per_run_directory_and_a_dead_holder_frees_it(tmp_path, caplog):
    run = tmp_path / "base" / "seed-0"
    # another thread of this process waits for the holder
    entered = threading.Event()

    def second() -> None:
        with RunLock(run, poll=0.05):
            entered.set()

    with RunLock(run):
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.5)
    assert entered.wait(5)
    thread.join()
    # another process holds it: wait; when that process is killed, the lock is free at once
    code = (
        "import sys, time; from vestige.distributed import RunLock\n"
        f"with RunLock({str(run)!r}):\n    print('held', flush=True); time.sleep(60)"
    )
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        assert holder(run)["pid"] == other.pid
        got = threading.Event()
        waiter = threading.Thread(target=lambda: (RunLock(run, poll=0.05).__enter__(), got.set()))
        waiter.daemon = True
        waiter.start()
        assert not got.wait(0.5)
        assert f"'pid': {other.pid}" in caplog.text  # the waiter says whom it waits for
        other.send_signal(signal.SIGKILL)
        assert got.wait(5)
    finally:
        other.kill()
        other.wait()
    assert holder(run)["pid"] == os.getpid()  # the waiter holds it now
    assert lock_path(run) == tmp_path / "base" / ".seed-0.lock"
    assert not run.exists()  # the lock lives beside the run, never in it


def test_a_filesystem_without_locks_is_said_and_never_blocks(tmp_path, monkeypatch, caplog):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = tmp_path / "seed-0"
    with RunLock(run, poll=0.05), RunLock(run, poll=0.05):  # nothing to wait for
        pass
    assert "this filesystem has no file locks" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] in ([], [".seed-0.lock"])  # no soft marker left


# ----------------------------------------------------------------------------- killed workers


def slowed(train_step, seconds: float):
    """`train_step` taking `seconds` longer (timing only: the results do not change), so that a
    test can catch a run half-trained."""

    def slow(session, step):
        time.sleep(seconds)
        return train_step(session, step)

    slow.slowed = True
    return slow


def slow_steps(seconds: float) -> None:
    """Slow every training step of this process (a Dask worker) down."""
    if not getattr(vestige.training.train_step, "slowed", False):
        vestige.training.train_step = slowed(vestige.training.train_step, seconds)


class Killer(threading.Thread):
    """Watches OUT's run directories; kills (SIGKILL) the process writing the first one it
    finds half-trained (some checkpoints and a saved state, not all), once, and records the
    files that run had then."""

    def __init__(self, out: Path, allowed_pids=None, timeout: float = 300):
        super().__init__(daemon=True)
        self.out, self.allowed, self.timeout = out, allowed_pids, timeout
        self.stop, self.killed = threading.Event(), None
        self.total = len(TINY.checkpoint_steps)

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            for run in sorted(self.out.glob("*/*/seed-*")):
                if self.try_kill(run):
                    return
            time.sleep(0.02)

    def try_kill(self, run: Path) -> bool:
        checkpoints = sorted(run.glob("checkpoints/step-*.safetensors"))
        latest = vestige.runs.latest_state_path(run)
        if not 2 <= len(checkpoints) < self.total or not latest.exists():
            return False
        owner = holder(run)
        allowed = self.allowed() if callable(self.allowed) else self.allowed
        if (
            owner is None
            or owner["pid"] == os.getpid()
            or (allowed is not None and owner["pid"] not in allowed)
        ):
            return False
        step = load_safetensors(latest, "")[1]["step"]
        if step == 0:  # nothing to resume from yet
            return False
        files = {
            p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in checkpoints
            if int(p.stem.split("-")[1]) <= step
        }
        os.kill(owner["pid"], signal.SIGKILL)
        self.killed = {"run": run, "pid": owner["pid"], "step": step, "files": files}
        return True


def assert_resumed_not_restarted(killed: dict, reference: Path) -> None:
    """The killed run was finished by another process, from its saved state: the checkpoints
    saved before the kill are the same files, and the run equals the uninterrupted one."""
    run = killed["run"]
    assert 0 < killed["step"] < TINY.train.steps
    assert holder(run)["pid"] != killed["pid"]
    for p in run.glob("checkpoints/step-*.safetensors"):
        if p.name in killed["files"]:
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == killed["files"][p.name], p
    assert run_files(run) == run_files(reference / run.relative_to(run.parents[2]))


@pytest.mark.slow
def test_local_pool_resumes_a_killed_process(single_machine, tmp_path, monkeypatch):
    summary, root = single_machine
    # the pool forks this process: its workers are slowed too
    monkeypatch.setattr(vestige.training, "train_step", slowed(vestige.training.train_step, 0.04))
    out = tmp_path / "runs"
    killer = Killer(out)
    killer.start()
    try:
        again = run_study(
            "tiny",
            SEEDS,
            out,
            tmp_path / "report",
            workers=2,
            progress=False,
            conditions=CONDITIONS,
        )
    finally:
        killer.stop.set()
    assert killer.killed is not None, "no run was caught half-trained"
    assert without_timing(again) == without_timing(summary)
    assert_resumed_not_restarted(killer.killed, root / "runs")


@pytest.mark.slow
def test_study_on_dask_survives_a_killed_worker(single_machine, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    summary, root = single_machine
    out = tmp_path / "runs"

    class SlowSteps(distributed.WorkerPlugin):
        def setup(self, worker):
            slow_steps(0.05)

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            local_directory=str(tmp_path / "dask"),
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.register_plugin(SlowSteps())

        def worker_pids():
            return set(client.run(os.getpid).values())

        assert len(worker_pids()) == 2
        killer = Killer(out, worker_pids())
        killer.start()
        try:
            on_dask = run_study(
                "tiny",
                SEEDS,
                out,
                tmp_path / "report",
                progress=False,
                conditions=CONDITIONS,
                scheduler=cluster.scheduler_address,
            )
        finally:
            killer.stop.set()
        assert killer.killed is not None, "no run was caught half-trained"
        assert without_timing(on_dask) == without_timing(summary)
        assert_resumed_not_restarted(killer.killed, root / "runs")
        for run in out.glob("*/*/seed-*"):
            assert run_files(run) == run_files(root / "runs" / run.relative_to(out))

        # the command line, with the scheduler from the environment: every run is reused
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        report = tmp_path / "cli"
        assert (
            main(
                [
                    "study",
                    "--preset",
                    "tiny",
                    "--seeds",
                    "0-1",
                    "--out",
                    str(out),
                    "--report",
                    str(report),
                    "--conditions",
                    ",".join(CONDITIONS),
                    "--quiet",
                ]
            )
            == 0
        )
        cli = json.loads((report / "summary.json").read_text())
        assert without_timing(cli) == without_timing(summary)


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(
            [
                "study",
                "--preset",
                "tiny",
                "--seeds",
                "0",
                "--out",
                str(tmp_path),
                "--conditions",
                "",
                "--quiet",
                "--scheduler",
                "tcp://127.0.0.1:9",
            ]
        )
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
