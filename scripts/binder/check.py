#!/usr/bin/env python3
"""`make binder-check`: build `binder/` the way repo2docker does, then run every notebook under
Binder's limits and say whether each fits.

Build (this script, standard library only, under any Python 3):

1. the repository's files (what git tracks or would track; ``--committed``: ``git archive
   HEAD``, what Binder would clone) are laid out as repo2docker lays them: the repository
   folder is also ``$HOME`` (``DIR/home``);
2. a fresh environment (``DIR/env``) of the Python that ``binder/runtime.txt`` names, holding
   the notebook environment repo2docker installs before it reads ``binder/``
   (``scripts/binder/repo2docker-base.txt``);
3. ``pip install --no-cache-dir -r binder/requirements.txt`` with only that file in place
   (repo2docker's pre-assemble step). When an index that file names is unreachable, the same
   requirements without the index and with the machine's local CPU torch (``--torch``);
4. the rest of the repository is copied in, then ``./binder/postBuild`` runs in it;
5. time per step and installed sizes.

Measure (re-executed with the built environment's Python, so that the kit's own
``vestige.course.timing`` and ``sandbox`` do the work): a self-test proving the memory limit
kills a notebook that exceeds it; a JupyterLab server started the way the image starts it
(landing page, settings, trust, its memory); then every learner notebook, unsolved
(``notebooks/``) and solved (``course/solutions/``, executed from ``notebooks/`` so relative
paths resolve the same), one at a time on one CPU under the memory limit. Per notebook: wall
and CPU time, peak memory of the kernel and of the process tree, the longest silence, and
whether it fits. Exit status 1 when one does not fit: killed over the limit, failed (a solution
raising), less than ``--min-headroom`` memory left once the server's memory is added, or a
silence longer than Binder's 10-minute cull.

Writes ``DIR/report.json`` and ``DIR/report.md``; executed notebooks and logs under ``DIR``.
A run over the whole course (no ``--only``) writes its table into ``course/syllabus.md`` and
``course/instructor_guide.md`` (between the ``timings`` markers): the figures they state.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MB = 1 << 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--dir", default="build/binder", help="where the build and results go")
    parser.add_argument(
        "--torch",
        default="torch==2.13.0",
        help="the local CPU torch used when requirements.txt's index is unreachable",
    )
    parser.add_argument(
        "--committed",
        action="store_true",
        help="build from `git archive HEAD` instead of the working tree",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=(
            "keep an environment this script built before, with its precomputed runs; the "
            "repository is copied in again and its notebooks rebuilt and signed"
        ),
    )
    parser.add_argument("--build-only", action="store_true", help="build, do not run notebooks")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="a solution notebook failing in postBuild's precompute does not stop "
        "the build (it is reported); for a course still being written",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only notebooks whose name starts with this (repeatable)",
    )
    parser.add_argument("--variants", default="learner,solution")
    parser.add_argument("--memory-mb", type=float, default=2048, help="Binder's memory limit")
    parser.add_argument("--min-headroom", type=float, default=0.25)
    parser.add_argument("--cull-seconds", type=float, default=600)
    parser.add_argument(
        "--wall-seconds",
        type=float,
        default=3600,
        help="kill a notebook still running after this long",
    )
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU notebooks run on")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- build (standard library only) -------------------------------------------------------------


class Build:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dir = Path(args.dir).resolve()
        self.home = self.dir / "home"
        self.env_dir = self.dir / "env"
        self.logs = self.dir / "logs"
        self.steps: list[dict] = []
        self.notes: list[str] = []

    def environ(self) -> dict[str, str]:
        """What repo2docker's image sets (paths moved under DIR), minus this user's settings."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                (
                    "JUPYTER",
                    "XDG_",
                    "VIRTUAL_ENV",
                    "PYTHON",
                    "CONDA",
                    "IPYTHON",
                    "MPLCONFIGDIR",
                    "VESTIGE_",
                )
            )
        }
        keep.update(
            HOME=str(self.home),
            REPO_DIR=str(self.home),
            USER=keep.get("USER", "jovyan"),
            NB_PYTHON_PREFIX=str(self.env_dir),
            KERNEL_PYTHON_PREFIX=str(self.env_dir),
            VIRTUAL_ENV=str(self.env_dir),
            SHELL="/bin/bash",
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            PYTHONUNBUFFERED="1",
            PATH=f"{self.env_dir}/bin:{self.home}/.local/bin:{os.environ['PATH']}",
        )
        if self.args.keep_going:
            keep["VESTIGE_PRECOMPUTE_KEEP_GOING"] = "1"
        return keep

    def step(self, name: str, cmd: list[str], cwd: Path, log: str) -> float:
        self.logs.mkdir(parents=True, exist_ok=True)
        print(f"binder-check: {name}: {' '.join(cmd)}", flush=True)
        started = time.monotonic()
        with open(self.logs / log, "w") as sink:
            process = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=self.environ(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in process.stdout:
                sink.write(line)
                if not line.startswith("WARNING: Location 'file://"):  # this machine's pip config
                    print(f"    {line}", end="", flush=True)
            process.wait()
        seconds = time.monotonic() - started
        self.steps.append({"step": name, "seconds": round(seconds, 1), "log": str(self.logs / log)})
        if process.returncode:
            raise SystemExit(
                f"binder-check: {name} failed ({process.returncode}); log: {self.logs / log}"
            )
        return seconds

    def python(self) -> tuple[str, str]:
        """The interpreter binder/runtime.txt names, as repo2docker reads it."""
        runtime = (ROOT / "binder/runtime.txt").read_text().strip()
        name, _, version = runtime.partition("-")
        if name != "python" or not version:
            raise SystemExit(f"binder-check: runtime.txt says {runtime!r}; expected python-X.Y")
        major_minor = ".".join(version.split(".")[:2])
        for candidate in (f"python{major_minor}", f"python{version}"):
            exe = shutil.which(candidate)
            if not exe:
                continue
            found = subprocess.run(
                [
                    exe,
                    "-c",
                    (
                        "import sys, platform; print(sys.executable); "
                        "print(platform.python_version())"
                    ),
                ],
                capture_output=True,
                text=True,
            )
            if found.returncode == 0:
                real, full = found.stdout.split()
                if full.startswith(version):
                    return real, full
        raise SystemExit(
            f"binder-check: binder/runtime.txt asks for {runtime}; no python{major_minor} here"
        )

    def copy_repository(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        if self.args.committed:
            archive = subprocess.run(
                ["git", "archive", "--format=tar", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            import io

            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(dest, filter="tar")
            return
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        for name in filter(None, listed.decode().split("\0")):
            source = ROOT / name
            if source.is_file() and not source.is_symlink():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)

    def refresh(self) -> None:
        """Bring a reused build up to today's repository: copy it in again (the kit is an
        editable install) and redo postBuild's steps that depend on nothing else, building
        the notebooks and signing them. The precomputed runs are kept: after a change to a
        preset or a notebook's seeds, build again without --reuse."""
        self.copy_repository(self.home)
        bin_dir = self.env_dir / "bin"
        build = [str(bin_dir / "vestige"), "course", "build"]
        self.step("vestige course build", build, self.home, "refresh-build.log")
        notebooks = sorted(self.home.glob("notebooks/*.ipynb"))
        notebooks += sorted(self.home.glob("course/solutions/*.ipynb"))
        trust = [str(bin_dir / "jupyter"), "trust", *map(str, notebooks)]
        self.step("trust the notebooks", trust, self.home, "refresh-trust.log")

    def unreachable_indexes(self, requirements: Path) -> list[str]:
        problems = []
        words = requirements.read_text().split()
        for option, url in zip(words, words[1:]):
            if option not in ("--index-url", "-i", "--extra-index-url"):
                continue
            host = urllib.parse.urlparse(url).hostname
            try:
                socket.create_connection((host, 443), timeout=10).close()
            except OSError as exc:
                problems.append(f"{url}: {exc}")
        return problems

    def fallback_requirements(self, requirements: Path) -> Path:
        """requirements.txt without its index options, torch pinned to the local CPU build."""
        lines, skip = [], False
        for line in requirements.read_text().splitlines():
            words = line.split("#")[0].split()
            if skip or not words:
                skip = False
                continue
            if words[0] in ("--index-url", "-i", "--extra-index-url"):
                skip = len(words) == 1
                continue
            if words[0].startswith(("--index-url=", "--extra-index-url=")):
                continue
            if words[0].split("==")[0].split(">")[0].split("<")[0].strip().lower() == "torch":
                lines.append(self.args.torch)
                continue
            lines.append(line)
        path = self.dir / "requirements.fallback.txt"
        path.write_text(
            "# binder/requirements.txt, its index unreachable here: local CPU torch\n"
            + "\n".join(lines)
            + "\n"
        )
        return path

    def run(self) -> dict:
        started = time.monotonic()
        for path in (self.home, self.env_dir, self.logs):
            if path.exists():
                shutil.rmtree(path)
        exe, version = self.python()
        self.notes.append(
            f"runtime.txt -> Python {version} ({exe}); repo2docker would install "
            "conda-forge's latest 3.11 patch release"
        )
        self.step("fresh environment", [exe, "-m", "venv", str(self.env_dir)], self.dir, "venv.log")
        pip = [str(self.env_dir / "bin/python"), "-m", "pip"]
        self.step(
            "repo2docker's notebook environment",
            [*pip, "install", "--no-cache-dir", "-r", str(HERE / "repo2docker-base.txt")],
            self.dir,
            "base-env.log",
        )
        # pre-assemble: only binder/requirements.txt is in the image yet
        (self.home / "binder").mkdir(parents=True)
        shutil.copy2(ROOT / "binder/requirements.txt", self.home / "binder/requirements.txt")
        requirements = self.home / "binder/requirements.txt"
        unreachable = self.unreachable_indexes(requirements)
        if unreachable:
            fallback = self.fallback_requirements(requirements)
            self.notes.append(
                "index unreachable (" + "; ".join(unreachable) + "): installed "
                f"{fallback.name} instead (same lines, no index, {self.args.torch})"
            )
            self.step(
                "binder/requirements.txt (fallback: local CPU torch)",
                [*pip, "install", "--no-cache-dir", "-r", str(fallback)],
                self.home,
                "requirements.log",
            )
        else:
            self.step(
                "binder/requirements.txt",
                [*pip, "install", "--no-cache-dir", "-r", "binder/requirements.txt"],
                self.home,
                "requirements.log",
            )
        copy_started = time.monotonic()
        self.copy_repository(self.home)
        self.steps.append(
            {"step": "copy the repository", "seconds": round(time.monotonic() - copy_started, 1)}
        )
        post_build = self.home / "binder/postBuild"
        post_build.chmod(post_build.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.step("binder/postBuild", ["./binder/postBuild"], self.home, "postBuild.log")
        failed = [
            line.split("FAILED: ", 1)[1].strip()
            for line in (self.logs / "postBuild.log").read_text().splitlines()
            if line.startswith("precompute: ") and " FAILED: " in line
        ]
        self.notes += [f"postBuild precompute failed (--keep-going): {f}" for f in failed]
        build = {
            "python": version,
            "steps": self.steps,
            "notes": self.notes,
            "seconds": round(time.monotonic() - started, 1),
            "source": "git archive HEAD" if self.args.committed else "working tree",
            "sizes_mb": sizes(self.env_dir, self.home),
        }
        (self.dir / "build.json").write_text(json.dumps(build, indent=1) + "\n")
        return build


def disk_usage(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


def sizes(env_dir: Path, home: Path) -> dict:
    site = next(env_dir.glob("lib/python*/site-packages"))
    biggest = sorted(((disk_usage(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)
    return {
        "environment": round(disk_usage(env_dir) / MB),
        "runs": round(disk_usage(home / "runs") / MB),
        "repository_and_home": round((disk_usage(home) - disk_usage(home / "runs")) / MB),
        "largest_packages": {name: round(size / MB) for size, name in biggest[:6]},
    }


# --- measure (the built environment's Python) --------------------------------------------------


def hog_notebook(path: Path) -> None:
    """A notebook that allocates (and touches) 128 MB blocks until 5 GB."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import numpy as np\nblocks = []"),
        nbformat.v4.new_code_cell("for _ in range(40):\n    blocks.append(np.ones(2**24))"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def check_server(build: Build) -> dict:
    """Start the Jupyter server as Binder does, check its landing page, JupyterLab settings
    and trust, and measure its memory once it has served the course's landing notebook."""
    import secrets
    import urllib.request

    import psutil

    first = sorted((build.home / "notebooks").glob("[0-9][0-9]_*.ipynb"))[0].name
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    # On Binder, jupyterhub-singleuser starts a jupyter_server ServerApp with the JupyterLab
    # extension; `jupyter server` is the same app without the hub's authentication.
    cmd = [
        str(build.env_dir / "bin/jupyter"),
        "server",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # Binder runs it as the notebook user, not as root
    log = open(build.logs / "jupyterlab.log", "w")
    server = subprocess.Popen(
        cmd,
        cwd=build.home,
        env=build.environ(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    result: dict = {"problems": []}

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    def get(path: str, follow: bool = True):
        opener = urllib.request.build_opener(*(() if follow else (NoRedirect,)))
        request = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if get("/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start; see {build.logs / 'jupyterlab.log'}")
            time.sleep(1)
        status, headers, _ = get("/", follow=False)
        landing = urllib.parse.urlparse(headers.get("Location", "")).path
        result["landing"] = landing
        if landing != f"/lab/tree/notebooks/{first}":
            result["problems"].append(f"/ redirects to {landing!r}, not the first notebook {first}")
        status, _, _ = get(f"/lab/tree/notebooks/{first}")
        if status != 200:
            result["problems"].append(f"the landing notebook's page answered {status}")
        overrides = json.loads((build.home / "binder/lab-overrides.json").read_text())
        applied = {}
        for plugin, values in overrides.items():
            status, _, body = get(f"/lab/api/settings/{plugin}")
            schema = json.loads(body).get("schema", {}) if status == 200 else {}
            for key, value in values.items():
                default = (
                    schema.get("properties", {}).get(key, {}).get("default", "(no such setting)")
                )
                applied[f"{plugin} {key}"] = default
                if default != value:
                    result["problems"].append(
                        f"setting {plugin} {key} is {default!r}, not {value!r}"
                    )
        result["settings"] = applied
        status, _, body = get("/api/contents/notebooks")
        listed = sorted(item["name"] for item in json.loads(body).get("content", []))
        result["notebooks_listed"] = listed
        time.sleep(3)
        proc = psutil.Process(server.pid)
        tree = [proc, *proc.children(recursive=True)]
        result["server_rss_mb"] = round(sum(p.memory_info().rss for p in tree) / MB)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    result["trusted"] = check_trust(build)
    untrusted = [name for name, ok in result["trusted"].items() if not ok]
    if untrusted:
        result["problems"].append(f"not trusted: {untrusted}")
    return result


def check_trust(build: Build) -> dict:
    """Which of the image's notebooks its user's Jupyter trusts (postBuild signs them)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(build.home)  # the signature database lives under $HOME
    try:
        notary = NotebookNotary()
        trusted = {}
        for path in [
            *sorted((build.home / "notebooks").glob("*.ipynb")),
            *sorted((build.home / "course/solutions").glob("*.ipynb")),
        ]:
            nb = nbformat.read(path, as_version=4)
            trusted[str(path.relative_to(build.home))] = bool(notary.check_signature(nb))
        return trusted
    finally:
        if old_home is not None:
            os.environ["HOME"] = old_home


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            info = path.stat()
            found[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns)
    return found


def written(before: dict, after: dict) -> list[str]:
    """Run folders (runs/<name>/seed-K) with files new or changed between two snapshots."""
    changed = [name for name, meta in after.items() if before.get(name) != meta]
    return sorted({"runs/" + "/".join(name.split("/")[:2]) for name in changed})


def measure(args: argparse.Namespace) -> int:
    from vestige.course import timing
    from vestige.course.sandbox import Limits

    build = Build(args)
    os.environ.update(build.environ())
    built = json.loads((build.dir / "build.json").read_text())
    limits = Limits(wall_seconds=args.wall_seconds, memory_bytes=int(args.memory_mb * MB))
    report: dict = {
        "build": built,
        "limits": {
            "memory_mb": args.memory_mb,
            "cpu": args.cpu,
            "min_headroom": args.min_headroom,
            "cull_seconds": args.cull_seconds,
        },
    }
    failures = [note for note in built["notes"] if note.startswith("postBuild precompute failed")]

    hog = build.dir / "selftest/memory_hog.ipynb"
    hog_notebook(hog)
    print(
        f"binder-check: self-test: a notebook allocating 5 GB under the {args.memory_mb:.0f} MB limit",
        flush=True,
    )
    t = timing.execute_limited(
        hog, hog.with_suffix(".out.ipynb"), hog.parent, "selftest", limits=limits, cpu=args.cpu
    )
    report["selftest"] = {"limit": t.limit, "tree_peak_mb": t.tree_peak_mb, "seconds": t.seconds}
    print(
        f"    killed by: {t.limit or 'nothing'}; tree peak when killed {t.tree_peak_mb} MB",
        flush=True,
    )
    if t.limit != "memory":
        failures.append("self-test: the memory limit did not kill a notebook that exceeds it")

    print("binder-check: the Jupyter server as Binder starts it", flush=True)
    server = check_server(build)
    report["server"] = server
    print(
        f"    landing {server.get('landing')}; RSS {server.get('server_rss_mb')} MB; "
        f"problems: {server['problems'] or 'none'}",
        flush=True,
    )
    failures += [f"server: {p}" for p in server["problems"]]
    server_mb = server.get("server_rss_mb", 0)

    folders = {"learner": build.home / "notebooks", "solution": build.home / "course/solutions"}
    timings = []
    for variant in args.variants.split(","):
        for path in sorted(folders[variant].glob("[0-9][0-9]_*.ipynb")):
            if args.only and not any(path.stem.startswith(o) for o in args.only):
                continue
            print(f"binder-check: {path.stem} ({variant})", flush=True)
            before = snapshot(build.home / "runs")
            t = timing.execute_limited(
                path,
                build.dir / "executed" / variant / path.name,
                build.home / "notebooks",
                variant,
                limits=limits,
                cpu=args.cpu,
            )
            made = written(before, snapshot(build.home / "runs"))
            timings.append(t)
            entry = {
                **t.__dict__,
                "runs_written": made,
                "verdict": timing.verdict(t, server_mb, args.min_headroom, args.cull_seconds),
            }
            report.setdefault("notebooks", []).append(entry)
            print(
                f"    {t.seconds:.0f} s wall, {t.cpu_seconds:.0f} s CPU; kernel {t.kernel_peak_mb:.0f} MB, "
                f"tree {t.tree_peak_mb:.0f} MB; silence {t.silence_cpu_seconds:.0f} s CPU "
                f"({t.silence_seconds:.0f} s wall); fits: {entry['verdict']}"
                + (f"; error: {t.error}" if t.error else "")
                + (f"; wrote runs: {made}" if made else ""),
                flush=True,
            )
            if entry["verdict"] != "yes":
                failures.append(f"{t.notebook} ({variant}): {entry['verdict']}")
    report["failures"] = failures
    table = timing.limited_table(timings, server_mb, args.min_headroom, args.cull_seconds)
    steps = "\n".join(f"| {s['step']} | {s['seconds']:.0f} |" for s in built["steps"])
    size = built["sizes_mb"]
    markdown = (
        f"## Binder check ({time.strftime('%Y-%m-%d')}, {built['source']})\n\n"
        f"Limits: 1 CPU (CPU {args.cpu}), {args.memory_mb:.0f} MB for the process tree "
        f"(watchdog, RSS/PSS every 0.1 s, SIGKILL), idle cull {args.cull_seconds:.0f} s; fits = "
        f"not killed, no error in a solution, >= {args.min_headroom:.0%} headroom after adding the "
        f"JupyterLab server ({server_mb} MB), longest silence under the cull.\n\n{table}\n\n"
        f"Build: {built['seconds']:.0f} s in all.\n\n| step | seconds |\n|---|---|\n{steps}\n\n"
        f"Installed: environment {size['environment']} MB (largest: "
        + ", ".join(f"{k} {v} MB" for k, v in size["largest_packages"].items())
        + f"), runs {size['runs']} MB, repository {size['repository_and_home']} MB.\n\n"
        + "".join(f"- {note}\n" for note in built["notes"])
        + ("\nFailures:\n" + "".join(f"- {f}\n" for f in failures) if failures else "\nAll fit.\n")
    )
    (build.dir / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (build.dir / "report.md").write_text(markdown)
    print("\n" + markdown)
    if not args.only and args.variants == "learner,solution":
        documented = (
            f"{table}\n\nMeasured by `make binder-check` on {time.strftime('%Y-%m-%d')}: "
            f"1 CPU, {args.memory_mb:.0f} MB, JupyterLab server {server_mb} MB added; "
            f"image build {built['seconds'] / 60:.0f} min, environment "
            f"{size['environment']} MB, runs {size['runs']} MB."
        )
        for document in ("course/syllabus.md", "course/instructor_guide.md"):
            if timing.insert_table(ROOT / document, documented):
                print(f"binder-check: table written into {document}")
    return 1 if failures else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    build = Build(args)
    if args.measure:
        return measure(args)
    build.dir.mkdir(parents=True, exist_ok=True)
    if (
        args.reuse
        and (build.dir / "build.json").exists()
        and (build.env_dir / "bin/python").exists()
    ):
        print(f"binder-check: reusing the build in {build.dir}", flush=True)
        build.refresh()
    else:
        built = build.run()
        print(
            f"binder-check: built in {built['seconds']:.0f} s; sizes {built['sizes_mb']}",
            flush=True,
        )
    if args.build_only:
        return 0
    rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--reuse"]
    return subprocess.run(
        [
            str(build.env_dir / "bin/python"),
            str(Path(__file__).resolve()),
            "--measure",
            *rest,
            "--dir",
            str(build.dir),
        ],
        env=build.environ(),
        cwd=build.home,
    ).returncode


if __name__ == "__main__":
    sys.exit(main())
