"""Where a study's runs are trained: local processes, or an existing Dask cluster.

A study is cut into tasks: one per seed (train or reuse the unsuppressed run, judge it with
the detector, read its mechanism) and, once that is done, one per seed and condition (train
or reuse the suppressed run and measure its outcome). A condition's interventions depend on
its seed's result (the target neuron, its control, the transition step), so condition tasks
are submitted when their seed's task returns. The results are assembled into exactly what
`vestige.study.study_seed` returns for the seed with all its conditions; the study passes
its functions in (`Steps`), so this module never imports it.

The same tasks run on `workers` local processes or on a Dask cluster (`scheduler`: an
address such as tcp://HOST:PORT, a scheduler file, or a `distributed.Client`). On a cluster
the run directories must be on a filesystem every worker mounts at the same path. A task
whose worker dies is run again by the scheduler elsewhere and resumes its run from the
run's saved state (`vestige.training` saves it atomically and resumes bit-identically);
local processes do the same when the process pool breaks.

Two tasks never write one run directory at once: a task holds `RunLock` on its run directory
while it runs, a kernel lock (flock, through `filelock`) on a file beside the directory that
goes away with the process holding it. A retry of a killed task therefore gets the lock at
once, and a task whose first copy is somehow still alive (a worker the scheduler lost contact
with) waits for it and then reuses the finished run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from vestige.config import RunConfig
from vestige.runs import lock_path, seed_dir

log = logging.getLogger(__name__)

#: Environment variables read (in this order) for the scheduler when none is given.
SCHEDULER_ENV = ("VESTIGE_SCHEDULER", "DASK_SCHEDULER_ADDRESS")
#: `--scheduler local` runs on local processes even when an environment variable names one.
LOCAL = "local"
INSTALL_HINT = "install it with: pip install 'vestige[cluster]' (dask[distributed])"


class ClusterError(ValueError):
    """The cluster cannot run the study as asked; the message says what to do."""


def scheduler_from_env(value: str | None = None, environ=os.environ) -> str | None:
    """The scheduler to use: `value` (e.g. from --scheduler), else the first of
    SCHEDULER_ENV that is set, else None (local processes). "local" means None."""
    for candidate in (value, *(environ.get(name) for name in SCHEDULER_ENV)):
        if candidate:
            return None if candidate.strip().lower() == LOCAL else candidate.strip()
    return None


# ----------------------------------------------------------------------------- run locks

_ONE_TASK = threading.Lock()  # torch's RNG and thread count are per process: one task at a time
#: what flock says on a filesystem without (working) locks
NO_LOCKS = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)


class RunLock:
    """Exclusive right to write `run_dir`, across threads, processes and (on a shared
    filesystem with locking: NFSv4, Lustre, GPFS, CephFS) machines: a `filelock.FileLock`
    (flock) on `lock_path(run_dir)`. Waits, polling every `poll` seconds, while another
    holder is alive; the kernel drops the lock when its holder dies, so a killed task's run
    is free for its retry at once. The file holds the current (or last) holder: host, pid,
    since."""

    def __init__(self, run_dir: str | os.PathLike, poll: float = 0.5):
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self.poll = poll
        # no soft (lock-file) fallback: a killed holder's marker would block its retry
        self._lock = FileLock(self.path, fallback_to_soft=False)

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                log.warning(
                    "%s is being written by %s; waiting for it",
                    self.run_dir,
                    holder(self.run_dir) or "another task",
                )
                self._lock.acquire(poll_interval=self.poll)
        except OSError as err:
            if err.errno not in NO_LOCKS:
                raise
            log.warning(
                "cannot lock %s (%s): this filesystem has no file locks, so "
                "nothing stops two tasks writing the run at once",
                self.path,
                err,
            )
            return self
        record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        try:
            self.path.write_text(json.dumps(record))
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds (or last held) the lock of `run_dir`: {"host", "pid", "since"}, or None."""
    try:
        return json.loads(lock_path(run_dir).read_text() or "null")
    except (OSError, ValueError):
        return None


@contextmanager
def _writing(run_dir: Path) -> Iterator[None]:
    with _ONE_TASK, RunLock(run_dir):
        yield


# ----------------------------------------------------------------------------- the tasks


def run_dir(out: str | os.PathLike, name: str, seed: int) -> Path:
    """Where `vestige.study.study_seed` puts a seed's run: OUT/<base|condition>/seed-K."""
    return seed_dir(Path(out) / name, seed)


@dataclass(frozen=True)
class Steps:
    """What a study computes, passed in so that this module does not import the study: `base`
    (config, seed, out, *rest) -> the seed's result; `plan` (config, seed, out, conditions,
    base) -> {condition: (config, run dir, interventions)}; `record` (outcome, interventions) ->
    the condition's entry; `measure` (run) -> its outcome. Module-level functions, so they
    pickle for worker processes and Dask."""

    base: Callable
    plan: Callable
    record: Callable
    measure: Callable


class Job(NamedTuple):
    """One seed of a study: its config, the folder its runs go in, the conditions it trains
    again, the torch threads and device its runs use, and whether its record needs the
    mechanism pass (a control's or a perturbed copy's does not: only verdicts are compared)."""

    config: RunConfig
    seed: int
    out: Path
    conditions: tuple = ()
    threads: int = 1
    device: str = "cpu"
    mechanism: bool = True


def seed_task(steps: Steps, config: RunConfig, seed: int, out: Path, *rest) -> dict[str, Any]:
    """The seed's unchanged run, judged (runs on a worker)."""
    with _writing(run_dir(out, "base", seed)):
        return steps.base(config, seed, Path(out), *rest)


def condition_task(
    steps: Steps, config: RunConfig, seed: int, path: Path, device: str = "cpu"
) -> dict[str, float]:
    """Train (or resume, or reuse) one suppressed run on `device` and measure its outcome (on
    a worker, which resolves the device)."""
    import torch

    from vestige.training import ensure_run

    torch.set_num_threads(1)
    with _writing(Path(path)):
        return steps.measure(ensure_run(config, seed, path, progress=False, device=device))


# ----------------------------------------------------------------------------- executors


@dataclass
class Task:
    key: str
    fn: Callable
    args: tuple
    job: tuple  # the study job it belongs to
    condition: str | None = None
    interventions: tuple = ()
    shared_with: list = field(default_factory=list)  # other jobs with the same run
    value: Any = None  # the result, once returned
    finished: bool = False

    def receivers(self) -> list[tuple]:
        """(job, condition, interventions) of every job waiting for this task's result."""
        return [(self.job, self.condition, self.interventions), *self.shared_with]


class Processes:
    """Tasks on `workers` local processes; a pool broken by a killed process is replaced and
    its unfinished tasks submitted again, at most `retries` times."""

    name = "local processes"

    def __init__(self, workers: int, retries: int):
        self.workers, self.retries, self.restarts = max(1, workers), retries, 0
        self.pool = ProcessPoolExecutor(max_workers=self.workers)

    def submit(self, task: Task):
        try:
            return self.pool.submit(task.fn, *task.args)
        except BrokenProcessPool as error:  # broke since the last wait: lost like the others
            failed: Future = Future()
            failed.set_exception(error)
            return failed

    def wait(self, futures) -> set:
        return wait_futures(futures, return_when=FIRST_COMPLETED).done

    def lost(self, error: BaseException) -> bool:
        return isinstance(error, BrokenProcessPool)

    def restart(self, error: BaseException) -> None:
        if self.restarts >= self.retries:
            raise error
        self.restarts += 1
        log.warning("a worker process died (%s); restarting the pool and resuming its runs", error)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = ProcessPoolExecutor(max_workers=self.workers)

    def cancel(self, futures) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class Dask:
    """Tasks on a Dask cluster. A task whose worker dies is rescheduled by the scheduler (up
    to `distributed.scheduler.allowed-failures` times); a task that raises is run again up
    to `retries` times."""

    def __init__(self, scheduler, retries: int):
        try:
            import distributed
        except ImportError as err:
            raise ClusterError(f"--scheduler needs dask.distributed; {INSTALL_HINT}") from err
        self.distributed, self.retries, self.own = distributed, retries, False
        if isinstance(scheduler, distributed.Client):
            self.client = scheduler
        else:
            self.client = connect(str(scheduler))
            self.own = True
        self.name = f"Dask scheduler {self.client.scheduler.address}"

    def submit(self, task: Task):
        return self.client.submit(
            task.fn, *task.args, key=task.key, retries=self.retries, pure=False
        )

    def wait(self, futures) -> set:
        with self.client.as_current():  # our client is not the default one
            return self.distributed.wait(futures, return_when="FIRST_COMPLETED").done

    def lost(self, error: BaseException) -> bool:
        return False  # the scheduler retries lost workers' tasks itself

    def restart(self, error: BaseException) -> None:
        raise error

    def cancel(self, futures) -> None:
        self.client.cancel(list(futures))

    def close(self) -> None:
        if self.own:
            self.client.close()

    def check(self, folders: list[Path]) -> str:
        """Fail early when a worker cannot import vestige or cannot see the run folders;
        warn when workers have several threads. Returns a line describing the cluster."""
        workers = self.client.scheduler_info().get("workers", {})
        if not workers:
            return f"{self.name}: no workers yet (tasks wait for them)"
        token = uuid.uuid4().hex
        markers = []
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            marker = folder / f".vestige-shared-{token}"
            marker.write_text(socket.gethostname())
            markers.append(str(marker))
        try:
            seen = self.client.run(_worker_sees, markers, on_error="return")
        finally:
            for marker in markers:
                Path(marker).unlink(missing_ok=True)
        for address, answer in seen.items():
            if isinstance(answer, BaseException):
                raise ClusterError(
                    f"Dask worker {address} cannot run vestige tasks ({answer!r}): install the "
                    "same vestige (and torch) on every worker"
                )
            missing = [m for m, ok in zip(markers, answer["sees"]) if not ok]
            if missing:
                raise ClusterError(
                    f"Dask worker {address} (host {answer['host']}) does not see "
                    f"{Path(missing[0]).parent}: run directories must be on a filesystem every "
                    "worker mounts at the same path as this machine (see docs/cluster.md)"
                )
        from vestige import __version__

        versions = {a: s["vestige"] for a, s in seen.items() if s["vestige"] != __version__}
        if versions:
            log.warning(
                "workers run another vestige version than this one (%s): %s", __version__, versions
            )
        threads = {a: w.get("nthreads", 1) for a, w in workers.items()}
        if max(threads.values()) > 1:
            log.warning(
                "some Dask workers have several threads (%s); vestige runs one task "
                "per worker process at a time, so start workers with --nthreads 1 "
                "(and --nworkers N for N per machine)",
                threads,
            )
        return f"{self.name}: {len(workers)} workers"


def _worker_sees(markers: list[str]) -> dict[str, Any]:
    from vestige import __version__

    return {
        "host": socket.gethostname(),
        "vestige": __version__,
        "sees": [os.path.exists(m) for m in markers],
    }


def connect(address: str, timeout: float | None = None):
    """A `distributed.Client` of the scheduler at `address` (tcp://HOST:PORT, or the path of a
    scheduler file written by `dask scheduler --scheduler-file`). `timeout` defaults to Dask's
    `distributed.comm.timeouts.connect` (30 s)."""
    try:
        from distributed import Client
    except ImportError as err:
        raise ClusterError(f"--scheduler needs dask.distributed; {INSTALL_HINT}") from err
    options = {"set_as_default": False, **({} if timeout is None else {"timeout": timeout})}
    try:
        if "://" not in address and Path(address).is_file():
            return Client(scheduler_file=address, **options)
        return Client(address, **options)
    except (OSError, TimeoutError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {err}") from err


# ----------------------------------------------------------------------------- a study


def run_tasks(
    jobs: dict[tuple, Job],
    steps: Steps,
    workers: int = 2,
    progress: bool = True,
    scheduler=None,
    retries: int = 2,
    desc: str = "runs",
) -> dict[tuple, dict[str, Any]]:
    """What `vestige.study.study_seed(*job)` computes for every job {key: Job}, with the
    study's `steps`, as one task per seed and one per seed and condition, on `workers` local
    processes or on the Dask cluster `scheduler`. Jobs whose runs are the same run directory
    share its task. `desc` labels the progress bar."""
    jobs = {key: job._replace(out=Path(os.path.abspath(job.out))) for key, job in jobs.items()}
    executor = Dask(scheduler, retries) if scheduler is not None else Processes(workers, retries)
    token = uuid.uuid4().hex[:8]
    try:
        if isinstance(executor, Dask):
            described = executor.check(sorted({job.out for job in jobs.values()}))
            if progress:
                tqdm.write(described)
        return _run(executor, jobs, steps, progress, token, desc)
    finally:
        executor.close()


def _run(
    executor, jobs: dict[tuple, Job], steps: Steps, progress: bool, token: str, desc: str
) -> dict[tuple, dict]:
    bases: dict[tuple, dict] = {}  # job -> its seed_task result
    pieces: dict[tuple, dict] = {}  # job -> {condition: record}
    wanted: dict[tuple, list] = {}  # job -> the conditions it waits for
    pending: dict[Any, Task] = {}
    by_run: dict[str, Task] = {}  # run directory -> its task (shared by jobs)
    results: dict[tuple, dict] = {}
    total = sum(1 + len(job.conditions) for job in jobs.values())
    bar = tqdm(total=total, desc=desc, disable=not progress)

    def submit(task: Task) -> None:
        pending[executor.submit(task)] = task

    def schedule(task: Task, path: Path, config: RunConfig, seed: int) -> None:
        """Submit `task` unless its run directory already has one (then share it). Its key
        ends with a digest of the run's identity: runs of one config name and seed (a
        perturbed copy, a pool run) must not share a key, or Dask returns one's result for
        the other."""
        identity = f"{path}|{seed}|{config.to_json()}|{task.args[4:]!r}"
        first = by_run.get(identity)
        if first is None:
            task.key += "-" + hashlib.sha1(identity.encode()).hexdigest()[:12]
            by_run[identity] = task
            submit(task)
        elif first.finished:
            done(task.job, task.condition, task.interventions, first.value)
        else:
            first.shared_with.append((task.job, task.condition, task.interventions))

    def deliver(task: Task, value: dict) -> None:
        task.value, task.finished = value, True
        for job, condition, interventions in task.receivers():
            done(job, condition, interventions, value)

    def finish(job: tuple) -> None:
        if job in results or job not in bases or len(pieces[job]) < len(wanted[job]):
            return
        result = dict(bases[job])
        result["conditions"] = {name: pieces[job][name] for name in wanted[job]}
        results[job] = result

    def done(job: tuple, condition: str | None, interventions: tuple, value: dict) -> None:
        j = jobs[job]
        config, seed, out, conditions, device = j.config, j.seed, j.out, j.conditions, j.device
        if condition is not None:
            pieces[job][condition] = steps.record(value, interventions)
            bar.update(1)
            finish(job)
            return
        bases[job] = value
        if progress:
            tqdm.write(f"{job[0]} {value['summary']}")
        runs = steps.plan(config, seed, out, conditions, value)
        wanted[job], pieces[job] = list(runs), {}
        bar.update(1 + len(conditions) - len(runs))  # the conditions that do not apply
        for name, (run_config, path, applied) in runs.items():
            schedule(
                Task(
                    f"vestige-{name}-{config.name}-seed-{seed}-{token}",
                    condition_task,
                    (steps, run_config, seed, path, device),
                    job,
                    name,
                    applied,
                ),
                path,
                run_config,
                seed,
            )
        finish(job)

    with bar:
        for key, job in jobs.items():
            schedule(
                Task(
                    f"vestige-base-{job.config.name}-seed-{job.seed}-{token}",
                    seed_task,
                    (steps, job.config, job.seed, job.out, job.threads, job.device, job.mechanism),
                    key,
                ),
                run_dir(job.out, "base", job.seed),
                job.config,
                job.seed,
            )
        try:
            while pending:
                lost: list[Task] = []
                for future in executor.wait(list(pending)):
                    task = pending.pop(future)
                    try:
                        value = future.result()
                    except BaseException as error:
                        if not executor.lost(error):
                            raise
                        lost.append(task)
                        broken = error
                        continue
                    deliver(task, value)
                if lost:
                    _resubmit(executor, pending, lost, broken, deliver, submit)
        except BaseException:
            executor.cancel(list(pending))
            raise
    return results


def _resubmit(
    executor, pending: dict, lost: list[Task], error: BaseException, deliver, submit
) -> None:
    """A broken local pool: keep what finished, run everything else again on a new pool."""
    finished = []
    for future, task in list(pending.items()):
        del pending[future]
        if future.done() and not future.cancelled() and future.exception() is None:
            finished.append((task, future.result()))
        else:
            lost.append(task)
    executor.restart(error)
    for task in lost:
        submit(task)
    for task, value in finished:  # after the restart: this may submit condition tasks
        deliver(task, value)
