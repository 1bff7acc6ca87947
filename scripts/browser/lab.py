"""A headless JupyterLab and a Chromium driven by Playwright, for the real-browser test and the
browser-side benchmark (``tests/test_browser.py``, ``benchmarks/bench_explorer.py``).

* JupyterLab runs on a free localhost port with a random token, its own settings and
  workspaces folders (no news, no update check), ``--allow-root`` only when running as root.
* Chromium is Debian's (``/usr/bin/chromium``, installed by ``make browser-deps``), launched
  through Playwright's ``executable_path`` (never ``playwright install``), with the flags that
  keep it quiet on a closed network. Every request to a host other than localhost is aborted
  and recorded (``Browser.blocked``); console errors and page errors are recorded too.
* `Notebook` drives one notebook tab: run all, save, restart the kernel, close, reopen.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = os.environ.get("VESTIGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
VIEWPORT = {"width": 1366, "height": 768}  # a workshop laptop
# Settings a fresh JupyterLab would otherwise ask about (news, update checks: both go online).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: run `make browser-deps`"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed: `pip install -e .[dev]`"
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        return "jupyter lab is not installed: `pip install -e .[lab]`"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab serving ``root``."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/lab/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> dict | list:
        request = urllib.request.Request(
            f"{self.base}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else {}


@contextmanager
def jupyterlab(root: Path, workdir: Path, env: dict | None = None, nice: int = 19):
    """Start JupyterLab on ``root`` (settings and logs under ``workdir``); stop it after."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = workdir / "settings"
    for name, value in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    port, token = free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).parent / "jupyter"
    command = [
        "nice",
        "-n",
        str(nice),
        str(jupyter),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # a container or CI runs as root; JupyterLab refuses root otherwise
        command.append("--allow-root")
    log = workdir / "jupyterlab.log"
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
        **(env or {}),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=environment,
            start_new_session=True,
        )
    lab = Lab(root, port, token, process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                lab.api("status")
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start:\n{log.read_text()[-3000:]}"
                    ) from exc
                time.sleep(0.5)
        yield lab
    finally:
        _stop(lab)


def _stop(lab: Lab) -> None:
    try:
        for session in lab.api("sessions"):
            lab.api(f"sessions/{session['id']}", method="DELETE")
    except OSError:
        pass
    lab.process.terminate()
    try:
        lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        lab.process.wait()


@dataclass
class Browser:
    """A Chromium context with its network guard and console log."""

    context: object
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    debug_pending: int = 0  # JupyterLab's debugger requests to a kernel not yet answered

    def new_page(self):
        page = self.context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        page.on("websocket", self._on_websocket)
        return page

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _on_websocket(self, ws) -> None:
        if urlparse(ws.url).hostname not in LOCAL_HOSTS:
            self.sockets.append(ws.url)
        ws.on("framesent", lambda frame: self._count_debug(frame, "debug_request", +1))
        ws.on("framereceived", lambda frame: self._count_debug(frame, "debug_reply", -1))

    def _count_debug(self, frame: str | bytes, msg_type: str, change: int) -> None:
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        if f'"msg_type": "{msg_type}"' in text or f'"msg_type":"{msg_type}"' in text:
            self.debug_pending += change

    def debugger_settled(self) -> bool:
        """Every debugger request sent to a kernel has its reply. Closing a notebook before
        then makes JupyterLab log "Could not restore the debugger state" (its own race)."""
        return self.debug_pending <= 0

    def _route(self, route) -> None:
        url = urlparse(route.request.url)
        if url.hostname in LOCAL_HOSTS or url.scheme in ("file", "data", "blob"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("blockedbyclient")


@contextmanager
def chromium(playwright, viewport: dict | None = None):
    """Debian's Chromium (headless) with every non-local request blocked and counted."""
    args = list(CHROMIUM_ARGS)
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox cannot start as root
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    context = browser.new_context(viewport=viewport or VIEWPORT, device_scale_factor=1)
    guard = Browser(context)
    context.route("**/*", guard._route)
    try:
        yield guard
    finally:
        context.close()
        browser.close()


class Notebook:
    """One notebook open in JupyterLab."""

    def __init__(self, page, lab: Lab, path: str):
        self.page, self.lab, self.path = page, lab, path

    def open(self, timeout: float = 120) -> Notebook:
        self.page.goto(self.lab.url(self.path))
        self.page.wait_for_selector(
            ".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout * 1000
        )
        self.wait_idle(timeout)
        return self

    def wait_idle(self, timeout: float = 120) -> None:
        self.page.wait_for_selector(
            '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=timeout * 1000
        )

    def menu(self, top: str, item: str) -> None:
        self.page.locator(".lm-MenuBar-item", has_text=top).first.click()
        entry = self.page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-disabled)").filter(
            has=self.page.locator(".lm-Menu-itemLabel", has_text=item)
        )
        entry.first.wait_for(state="visible", timeout=10000)
        entry.first.click()

    def run_all(self, timeout: float = 900) -> None:
        """Run > Run All Cells, retried until a cell has started (a click can land while
        JupyterLab is still settling), then wait until every cell has run."""
        started = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                         .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""
        for attempt in range(4):
            self.page.locator(".jp-NotebookPanel .jp-Notebook").first.click(
                position={"x": 5, "y": 5}
            )
            self.page.keyboard.press("Escape")
            self.menu("Run", "Run All Cells")
            try:
                self.page.wait_for_function(started, timeout=20000, polling=250)
                break
            except Exception:  # Playwright's TimeoutError: try again
                if attempt == 3:
                    raise
        self.wait_done(timeout)

    def wait_done(self, timeout: float = 900) -> None:
        """Every code cell has run (no "[*]" or empty prompt left) and the kernel is idle."""
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=timeout * 1000,
            polling=500,
        )
        self.wait_idle(timeout)

    def save(self) -> None:
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(
            "() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=30000
        )

    def restart_kernel(self, settled=lambda: True, timeout: float = 60) -> None:
        """Restart and wait until the kernel is idle and ``settled()`` holds (for example
        `Browser.debugger_settled`: the debugger's requests on the new kernel answered)."""
        self.menu("Kernel", "Restart Kernel")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.wait_for_timeout(1500)
        self.wait_idle()
        deadline = time.monotonic() + timeout
        while not settled():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not settle {timeout:.0f} s after a restart")
            self.page.wait_for_timeout(100)

    def close(self) -> None:
        self.menu("File", "Close Tab")
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count():
            dialog.get_by_role("button", name="Save").click()
        self.page.wait_for_timeout(500)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


# ----------------------------------------------------------------------------- the explorer

VIEWS = ("training", "neurons", "class_means", "timeline", "attention")  # vestige.charts.VIEWS
EXPLORER_SVG = ".vestige-live .vega-embed svg"
HANDLE = ".vestige-live .vestige-step .noUi-handle"
READOUT = ".vestige-live .vestige-step .widget-readout"

_VIEW_STATES = """(names) => {
    const svg = document.querySelector('SVG');
    if (!svg) return null;
    return Object.fromEntries(names.map(n => {
        const g = svg.querySelector('g.' + n + '_group');
        return [n, g ? g.innerHTML : null];
    }));
}""".replace("SVG", EXPLORER_SVG)

# Resolves with the ms from the next keydown (or pointerdown) on the slider handle to the
# first frame painted after every view's SVG changed.
_ARM_LATENCY = """(names) => {
    const svg = document.querySelector('SVG');
    const groups = names.map(n => svg.querySelector('g.' + n + '_group'));
    const handle = document.querySelector('HANDLE');
    window.__vestigeLatency = new Promise((resolve, reject) => {
        let t0 = null;
        const changed = new Set();
        const start = (event) => { if (t0 === null) t0 = performance.now(); };
        handle.addEventListener('keydown', start, {capture: true, once: true});
        handle.addEventListener('pointerdown', start, {capture: true, once: true});
        const observer = new MutationObserver((records) => {
            if (t0 === null) return;
            for (const r of records) groups.forEach((g, i) => { if (g.contains(r.target)) changed.add(i); });
            if (changed.size === groups.length) {
                observer.disconnect();
                requestAnimationFrame(() => resolve(performance.now() - t0));
            }
        });
        observer.observe(svg, {subtree: true, childList: true, attributes: true, characterData: true});
        setTimeout(() => { observer.disconnect(); reject(new Error('views did not all change: ' + [...changed])); }, 10000);
    });
}""".replace("SVG", EXPLORER_SVG).replace("HANDLE", HANDLE)


def view_states(page) -> dict[str, str | None] | None:
    """Each explorer view's SVG markup (None if that view is missing)."""
    return page.evaluate(_VIEW_STATES, list(VIEWS))


def wait_views_changed(page, before: dict, views=VIEWS, timeout: float = 15) -> dict:
    """Wait until each of ``views`` differs from ``before``; return the new states."""
    deadline = time.monotonic() + timeout
    while True:
        now = view_states(page)
        if now and all(now[v] is not None and now[v] != before[v] for v in views):
            return now
        if time.monotonic() > deadline:
            same = [v for v in views if not now or now[v] == before[v]]
            raise AssertionError(f"views did not change: {same}")
        page.wait_for_timeout(50)


def slider_position(page) -> tuple[float, float, float]:
    """(min, value, max) of the step slider's handle (checkpoint indices)."""
    handle = page.locator(HANDLE)
    return tuple(float(handle.get_attribute(f"aria-value{k}")) for k in ("min", "now", "max"))


def key_latency(page, key: str | None = None) -> float:
    """Milliseconds from a key press on the step slider (ArrowRight, or ArrowLeft at the last
    checkpoint) to all views redrawn (painted)."""
    if key is None:
        _, now, top = slider_position(page)
        key = "ArrowLeft" if now >= top else "ArrowRight"
    page.evaluate(_ARM_LATENCY, list(VIEWS))
    page.locator(HANDLE).press(key)
    return float(page.evaluate("window.__vestigeLatency"))


def drag_latency(page, dx: float) -> float:
    """Milliseconds from pressing the slider handle, dragging it by ``dx`` px and releasing,
    to all views redrawn."""
    page.evaluate(_ARM_LATENCY, list(VIEWS))
    box = page.locator(HANDLE).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=4)
    page.mouse.up()
    return float(page.evaluate("window.__vestigeLatency"))


def summary(ms: list[float]) -> tuple[float, float]:
    """(median, p95) of ``ms``."""
    import statistics

    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return statistics.median(ordered), p95
