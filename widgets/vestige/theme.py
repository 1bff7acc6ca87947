"""The kit's altair theme, registered once on import: the font sizes, titles and view outline
every chart of the kit shares, so no chart sets a font size of its own.

`vestige.notebook.setup` enables it for a notebook's charts; code that draws a chart outside
a notebook (the explorer's widget and snapshot, saved pages and figures) does it inside
``with theme.enabled():`` and leaves the active theme as it found it.
"""

from __future__ import annotations

import altair as alt

NAME = "vestige"
SMALL = 9  # axis and legend labels, marks' text, subtitles (px)


@alt.theme.register(NAME, enable=False)
def vestige_theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "title": {
                "anchor": "start",
                "fontSize": 12,
                "subtitleFontSize": SMALL,
                "subtitleColor": "#666",
            },
            "axis": {"labelFontSize": SMALL},
            "legend": {"labelFontSize": SMALL},
            "text": {"fontSize": SMALL},
            "view": {"strokeWidth": 0.5},
        }
    }


def enabled():
    """Enable the theme: for good when called, until the block ends as ``with enabled():``."""
    return alt.theme.enable(NAME)
