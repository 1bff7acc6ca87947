"""The course's explorer notebook in a real browser: Debian's Chromium driven by Playwright,
JupyterLab headless on a free localhost port.

`20_explorer` (the solution notebook, tiny runs, two seeds) is run in JupyterLab; then the step
slider is moved with the keyboard and by dragging, the seed and neuron pickers are used, and
each time every view must change (its SVG); every request to a host other than localhost is
blocked and counted (must be 0) and console errors are collected (must be 0). Finally the
notebook is saved, its kernel restarted, and reopened: every chart must still be there (the
ordinary charts as vega-lite outputs, the explorer as its snapshot). Screenshots are kept in
``tests/_out/browser/``.

Needs ``/usr/bin/chromium`` (``make browser-deps``; ``make test`` installs it): without it
the tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "_out" / "browser"
sys.path.insert(0, str(REPO / "scripts" / "browser"))

import lab as harness  # noqa: E402 (a script folder, added to the path above)

pytestmark = pytest.mark.slow

NOTEBOOK = "20_explorer.ipynb"
SNAPSHOT_DELAY = 3.0  # vestige.explorer.SNAPSHOT_DELAY (not imported: no torch needed here)
PARAMETERS = {"preset": "tiny", "seeds": [0, 1]}


def _require_browser():
    why = harness.missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """JupyterLab serving a copy of the 20_explorer solution notebook, and a Chromium page
    on which that notebook has been run to the end."""
    _require_browser()
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("lab")
    runs = tmp_path_factory.mktemp("runs")
    nb = load_notebook_node(str(REPO / "course" / "solutions" / NOTEBOOK))
    nb = parameterize_notebook(
        nb, {**PARAMETERS, "runs_dir": str(runs)}, kernel_name="python3", language="python"
    )
    nbformat.write(nb, root / NOTEBOOK)
    with (
        harness.jupyterlab(root, tmp_path_factory.mktemp("lab-state")) as lab,
        sync_playwright() as playwright,
        harness.chromium(playwright) as browser,
    ):
        page = browser.new_page()
        notebook = harness.Notebook(page, lab, NOTEBOOK).open()
        try:
            notebook.run_all(timeout=900)
        finally:
            notebook.screenshot(OUT / "01-run-all.png")
        yield {
            "page": page,
            "notebook": notebook,
            "browser": browser,
            "lab": lab,
            "root": root,
            "runs": runs,
        }
        (OUT / "network-and-console.json").write_text(
            json.dumps(
                {
                    "blocked": browser.blocked,
                    "non_local_websockets": browser.sockets,
                    "console_errors": browser.errors,
                },
                indent=1,
            )
        )


SNAPSHOT = ".jp-OutputArea-child:has(.vestige-live) + .jp-OutputArea-child .jp-RenderedImage img"


def _show_explorer(page):
    page.locator(".vestige-live .vestige-controls").first.scroll_into_view_if_needed()
    page.wait_for_timeout(300)


def _pick_seed(page, label: str) -> None:
    """Pick the seed `label` in the explorer; once the views changed, wait until the kernel
    has redrawn the snapshot the notebook keeps (after SNAPSHOT_DELAY of stillness)."""
    select = page.locator(".vestige-live .vestige-seed select")
    if select.evaluate("s => s.options[s.selectedIndex].text") == label:
        return
    before = harness.view_states(page)
    snapshot = page.locator(SNAPSHOT).get_attribute("src")
    select.select_option(label=label)
    harness.wait_views_changed(page, before, timeout=60)
    page.wait_for_function(
        "([selector, old]) => (img => img && img.getAttribute('src') !== old)("
        "document.querySelector(selector))",
        arg=[SNAPSHOT, snapshot],
        timeout=1000 * (SNAPSHOT_DELAY + 60),
    )


def test_explorer_draws_every_view_and_fits_a_laptop_screen(session):
    page = session["page"]
    _show_explorer(page)
    states = harness.view_states(page)
    assert states is not None, "the explorer's chart is not on the page"
    assert all(states[v] for v in harness.VIEWS), {v: bool(states[v]) for v in harness.VIEWS}
    # 1366x768 with the file browser open: nothing sticks out of the output area.
    overflow = page.evaluate("""() => {
        const output = document.querySelector('.vestige-live').closest('.jp-OutputArea-output');
        const live = document.querySelector('.vestige-live');
        return {output: output.getBoundingClientRect().width,
                explorer: live.scrollWidth, svg: live.querySelector('svg').getBoundingClientRect().width};
    }""")
    assert overflow["explorer"] <= overflow["output"] + 1, overflow
    assert page.locator("#filebrowser").is_visible()  # the left sidebar is open
    # While the widget is alive its static snapshot (the next output) is hidden.
    snapshot = page.locator(SNAPSHOT)
    assert snapshot.count() == 1 and snapshot.is_hidden()
    harness.Notebook(page, session["lab"], NOTEBOOK).screenshot(OUT / "02-explorer.png")


def test_slider_moves_with_the_keyboard_and_every_view_follows(session):
    page = session["page"]
    _show_explorer(page)
    readout = page.locator(harness.READOUT)
    page.locator(harness.HANDLE).focus()
    page.keyboard.press("Home")
    page.wait_for_timeout(1000)
    assert harness.slider_position(page)[1] == 0
    for _ in range(2):
        before, step = harness.view_states(page), readout.inner_text()
        page.keyboard.press("ArrowRight")
        harness.wait_views_changed(page, before)
        assert readout.inner_text() != step
    assert harness.key_latency(page) < 5000  # timed: keydown to every view repainted
    harness.Notebook(page, session["lab"], NOTEBOOK).screenshot(OUT / "03-keyboard.png")


def test_slider_moves_by_dragging_and_every_view_follows(session):
    page = session["page"]
    _show_explorer(page)
    readout = page.locator(harness.READOUT)
    page.locator(harness.HANDLE).focus()
    page.keyboard.press("Home")
    page.wait_for_timeout(500)
    before, step = harness.view_states(page), readout.inner_text()
    box = page.locator(".vestige-live .vestige-step .noUi-target").bounding_box()
    harness.drag_latency(page, box["width"] * 0.6)
    after = harness.wait_views_changed(page, before)
    assert readout.inner_text() != step and after
    harness.Notebook(page, session["lab"], NOTEBOOK).screenshot(OUT / "04-drag.png")


def test_neuron_picker_changes_the_neuron_views(session):
    page = session["page"]
    _show_explorer(page)
    select = page.locator(".vestige-live .vestige-neuron select")
    before = harness.view_states(page)
    options = select.locator("option").all_inner_texts()
    current = select.evaluate("s => s.selectedIndex")
    select.select_option(index=(current + 1) % len(options))
    harness.wait_views_changed(page, before, views=("neurons", "class_means", "timeline"))
    harness.Notebook(page, session["lab"], NOTEBOOK).screenshot(OUT / "05-neuron.png")


def test_seed_picker_redraws_every_view_and_the_snapshot(session):
    page = session["page"]
    _show_explorer(page)
    select = page.locator(".vestige-live .vestige-seed select")
    other = next(
        o
        for o in select.locator("option").all_inner_texts()
        if o != select.evaluate("s => s.options[s.selectedIndex].text")
    )
    _pick_seed(page, other)  # asserts every view changed, then the snapshot
    harness.Notebook(page, session["lab"], NOTEBOOK).screenshot(OUT / "06-seed.png")


def test_static_page_works_from_a_file_with_a_checkpoint_slider(session):
    """The page `export_static` wrote (the notebook's last cell; altair's inline HTML):
    offline, its checkpoint slider and pickers on screen beside the views, every view
    following the slider and naming the checkpoint's step."""
    page = session["browser"].new_page()
    html = session["root"] / "explorer.html"  # written beside the notebook
    page.goto(html.as_uri())
    slider = page.locator("#vis input[type=range]")
    slider.wait_for(timeout=30000)
    assert page.locator("#vis select").count() == 1  # the neuron picker
    spec = json.loads(page.evaluate("JSON.stringify(spec)"))
    step = next(p for p in spec["params"] if p["name"] == "step")
    steps = json.loads(step["expr"].removesuffix("[checkpoint]"))
    assert int(slider.get_attribute("max")) == len(steps) - 1
    before = page.locator("#vis svg").inner_html()
    slider.focus()
    page.keyboard.press("End")
    page.wait_for_function(
        "(s) => document.querySelector('#vis svg').textContent.includes(s)",
        arg=f"training (cursor at step {steps[-1]})",
    )
    assert page.locator("#vis svg").inner_html() != before
    box, view = slider.bounding_box(), page.viewport_size
    assert box["x"] + box["width"] <= view["width"] and box["y"] < view["height"]  # on screen
    page.screenshot(path=str(OUT / "09-static-page.png"))
    page.close()


def test_no_request_left_the_machine_and_no_console_error(session):
    browser = session["browser"]
    assert browser.blocked == [] and browser.sockets == []
    assert browser.errors == []


def test_reopened_after_a_kernel_restart_the_notebook_still_shows_its_charts(session):
    page, notebook, browser = session["page"], session["notebook"], session["browser"]
    _show_explorer(page)
    _pick_seed(page, "1")  # the live state the saved snapshot must show
    live_errors = len(browser.errors)
    notebook.save()
    notebook.restart_kernel(settled=browser.debugger_settled)
    notebook.save()
    notebook.close()
    reopened = harness.Notebook(page, session["lab"], NOTEBOOK).open()
    page.wait_for_timeout(3000)
    saved = nbformat.read(session["root"] / NOTEBOOK, as_version=4)
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    vega = [o for o in outputs if "application/vnd.vegalite.v5+json" in o.get("data", {})]
    snapshots = [o for o in outputs if "image/jpeg" in o.get("data", {})]
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert vega and all("image/png" in o["data"] for o in vega)
    assert len(snapshots) == 1
    assert "seed 1" in "".join(snapshots[0]["data"]["text/plain"])  # the last live state
    # On the page: every vega-lite output drawn by JupyterLab's own renderer and the
    # explorer's snapshot visible.
    drawn = _drawn_outputs(page)
    for selector, name in (
        (".jp-RenderedImage img", "07-reopened-snapshot.png"),
        (".jp-RenderedVegaCommon5", "08-reopened-chart.png"),
    ):
        page.locator(selector).first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        reopened.screenshot(OUT / name)
    assert drawn["vega"] == len(vega), drawn
    assert drawn["snapshot_visible"], drawn
    assert browser.blocked == []
    # A widget output outlives its kernel only as an id: JupyterLab logs "widget model not
    # found" once per such output (the explorer's and the progress bars'); nothing else.
    reopen_errors = browser.errors[live_errors:]
    assert all("widget model not found" in e for e in reopen_errors), reopen_errors
    assert len(reopen_errors) <= len(widgets)


def _drawn_outputs(page) -> dict:
    """Scroll through the notebook (it renders lazily) counting drawn vega outputs and the
    visible explorer snapshot. Vega draws asynchronously (its bundle loads on first use), so a
    cell holding a vega output gets up to 20 s to draw."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen_vega, snapshot = set(), False
    cells = page.locator(".jp-Notebook .jp-Cell")
    for i in range(cells.count()):
        cell = cells.nth(i)
        cell.scroll_into_view_if_needed()
        page.wait_for_timeout(150)
        if cell.locator(".jp-RenderedVegaCommon5").count():
            drawn = cell.locator(".jp-RenderedVegaCommon5 svg, .jp-RenderedVegaCommon5 canvas")
            try:
                drawn.first.wait_for(state="attached", timeout=20000)
                seen_vega.add(i)
            except PlaywrightTimeout:
                pass
        image = cell.locator(".jp-RenderedImage img")
        snapshot = snapshot or (image.count() > 0 and image.first.is_visible())
    return {"vega": len(seen_vega), "snapshot_visible": snapshot}
