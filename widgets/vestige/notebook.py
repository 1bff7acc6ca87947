"""One call at the top of every course notebook: charts that stay in the saved notebook, torch
threads, and a version line.

Charts are ordinary altair charts. The "vestige" renderer that `setup` enables gives each one
a mimebundle that every viewer can show from the saved file, without a kernel or internet:

* ``application/vnd.vegalite.v5+json``: the spec, drawn by JupyterLab's (and Notebook 7's)
  built-in, offline vega renderer. JupyterLab 4 draws Vega-Lite 5 mimetypes only, so the
  spec (written by altair 6) is labelled Vega-Lite 5; the kit's charts use nothing newer.
* ``image/png``: the same chart drawn by vl-convert, for GitHub, nbviewer, nbconvert and any
  viewer without a vega renderer.

No chart is a widget (a widget shows "model not found" once its kernel is gone); only the
explorer is, and it leaves its own static snapshot (see `vestige.explorer`). `setup` also
enables the kit's altair theme (`vestige.theme`: font sizes, titles) for every chart.
"""

from __future__ import annotations

import base64
import copy
import platform

RENDERER = "vestige"
VEGALITE_V5 = "application/vnd.vegalite.v5+json"
SCHEMA_V5 = "https://vega.github.io/schema/vega-lite/v5.json"


def chart_bundle(spec: dict, png: bool = True, scale: float = 1.0) -> dict:
    """The mimebundle of one chart spec: vega-lite (v5 mimetype) and, if ``png``, a PNG."""
    import vl_convert as vlc

    v5 = copy.copy(spec)
    v5["$schema"] = SCHEMA_V5
    bundle = {VEGALITE_V5: v5, "text/plain": "<altair chart: vega-lite, PNG beside it>"}
    if png:
        bundle["image/png"] = base64.b64encode(vlc.vegalite_to_png(spec, scale=scale)).decode()
    return bundle


def _renderer(spec: dict, **options) -> dict:
    return chart_bundle(spec, png=options.get("png", True), scale=options.get("scale", 1.0))


def enable_charts(png: bool = True, scale: float = 1.0) -> None:
    """Make altair render every chart as `chart_bundle` does (no widget, no CDN)."""
    import altair as alt

    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, _renderer)
    alt.renderers.enable(RENDERER, png=png, scale=scale)


def setup(threads: int = 1) -> dict[str, str]:
    """Render altair charts as saved, offline vega-lite outputs with a PNG beside them in the
    kit's theme, run torch on `threads` threads (the toy models are fastest on one; Binder has one CPU), and
    print the versions that matter. Returns them."""
    from importlib.metadata import version

    import altair as alt
    import torch

    import vestige
    from vestige import theme

    enable_charts()
    theme.enabled()
    torch.set_num_threads(threads)
    versions = {
        "python": platform.python_version(),
        "vestige": vestige.__version__,
        "torch": torch.__version__,
        "transformer_lens": version("transformer-lens"),
        "altair": alt.__version__,
    }
    print("  ".join(f"{k} {v}" for k, v in versions.items()))
    return versions
