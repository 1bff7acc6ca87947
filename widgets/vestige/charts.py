"""The charts, as notebooks import them (``from vestige import charts``): the views
(`vestige.views`), their dashboards (`vestige.dashboards`), the data they are drawn from
(`vestige.packing`, `vestige.tables`). Nothing is defined here."""

from vestige.dashboards import dashboard, export_static, standalone, static_html
from vestige.packing import attention_cells, class_mean_cells, neuron_rows, unit_positions
from vestige.tables import VERDICTS, ExplorerTables, as_tables, nearest_step, rows
from vestige.views import (
    CONTEXT,
    CURSOR,
    SERIES_COLORS,
    SIZES,
    TRANSITION,
    VERDICT_COLORS,
    VIEWS,
    attention_pattern,
    class_means,
    cursor,
    effects_over_training,
    neuron_timeline,
    selectivity_vs_effect,
    step_axis,
    step_scale,
    step_x,
    training_curves,
)

__all__ = [
    "CONTEXT",
    "CURSOR",
    "SERIES_COLORS",
    "SIZES",
    "TRANSITION",
    "VERDICTS",
    "VERDICT_COLORS",
    "VIEWS",
    "ExplorerTables",
    "as_tables",
    "attention_cells",
    "attention_pattern",
    "class_mean_cells",
    "class_means",
    "cursor",
    "dashboard",
    "effects_over_training",
    "export_static",
    "nearest_step",
    "neuron_rows",
    "neuron_timeline",
    "rows",
    "selectivity_vs_effect",
    "standalone",
    "static_html",
    "step_axis",
    "step_scale",
    "step_x",
    "training_curves",
    "unit_positions",
]
