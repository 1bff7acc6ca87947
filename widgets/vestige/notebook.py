"""One call at the top of every course notebook: offline charts and a version line."""

from __future__ import annotations

import platform


def setup(threads: int = 1) -> dict[str, str]:
    """Render altair charts as offline widgets (no CDN: works without internet), run torch
    on `threads` threads (the toy models are fastest on one; Binder has one CPU), and print
    the versions that matter. Returns them."""
    from importlib.metadata import version

    import altair as alt
    import torch

    import vestige

    alt.renderers.enable("jupyter", offline=True)
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
