"""Browser-side latency of the checkpoint explorer: JupyterLab headless, Debian's Chromium
driven by Playwright (``scripts/browser/lab.py``), the explorer on synthetic tables of the
reference size (2 layers x 16 neurons, 4 heads, 40 tokens, 20 checkpoints).

Each move is timed in the page from the keydown on the step slider to the first frame
painted after every one of the five views changed (a MutationObserver on the chart's SVG):
the whole path, browser to kernel (the slider's value) and back (the chart's param), then
vega's redraw. Run by ``benchmarks/bench_explorer.py``; alone:

    .venv/bin/python benchmarks/browser_explorer.py [--moves 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts" / "browser"))

import lab as harness  # noqa: E402 (a script folder, added to the path above)

NOTEBOOK = "bench_explorer.ipynb"
CODE = [
    "from vestige.notebook import setup\nsetup()",
    (
        "from vestige.explorer import CheckpointExplorer\nfrom vestige.tables import ExplorerTables\n"
        "explorer = CheckpointExplorer(ExplorerTables.synthetic(n_seeds=2))\nexplorer"
    ),
]


def browser_latency(moves: int = 50, out: Path | None = None) -> dict | str:
    """{"median", "p95", "moves", "drag_median", "blocked", "errors", "ms"}, or why not."""
    why = harness.missing()
    if why:
        return why
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(c) for c in CODE],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )
        nbformat.write(nb, root / NOTEBOOK)
        with (
            harness.jupyterlab(root, Path(tmp) / "state") as lab,
            sync_playwright() as playwright,
            harness.chromium(playwright) as browser,
        ):
            page = browser.new_page()
            notebook = harness.Notebook(page, lab, NOTEBOOK).open()
            notebook.run_all(timeout=600)
            page.locator(".vestige-live .vestige-controls").first.scroll_into_view_if_needed()
            page.locator(harness.HANDLE).focus()
            page.keyboard.press("Home")
            page.wait_for_timeout(1500)
            for _ in range(3):  # warm up: first draws compile vega's dataflow paths
                harness.key_latency(page)
                page.wait_for_timeout(200)
            ms, direction = [], "ArrowRight"
            for _ in range(moves):
                low, now, high = harness.slider_position(page)
                if now >= high:
                    direction = "ArrowLeft"
                elif now <= low:
                    direction = "ArrowRight"
                ms.append(harness.key_latency(page, direction))
                page.wait_for_timeout(150)
            width = page.locator(".vestige-live .vestige-step .noUi-target").bounding_box()["width"]
            drags = []
            for i in range(6):
                page.keyboard.press("Home")
                page.wait_for_timeout(600)
                drags.append(harness.drag_latency(page, width * (0.2 + 0.1 * i)))
                page.wait_for_timeout(300)
            if out is not None:
                notebook.screenshot(out)
            median, p95 = harness.summary(ms)
            return {
                "median": median,
                "p95": p95,
                "moves": len(ms),
                "ms": ms,
                "drag_median": harness.summary(drags)[0],
                "blocked": len(browser.blocked),
                "errors": len(browser.errors),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=50)
    args = parser.parse_args()
    result = browser_latency(args.moves)
    if isinstance(result, str):
        print(f"skipped: {result}")
        return
    print(
        f"slider keydown to every view repainted, {result['moves']} moves: median "
        f"{result['median']:.0f} ms, p95 {result['p95']:.0f} ms (target p95 <= 150 ms); "
        f"drag median {result['drag_median']:.0f} ms; blocked requests {result['blocked']}, "
        f"console errors {result['errors']}"
    )


if __name__ == "__main__":
    main()
