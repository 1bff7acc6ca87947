"""The charts, as notebooks import them (``from vestige import charts``): the views
(`vestige.views`), their dashboards (`vestige.dashboards`), the data they are drawn from
(`vestige.packing`, `vestige.tables`). Nothing is defined here."""

from vestige.dashboards import dashboard, export_static, filled, standalone, template
from vestige.packing import (
    DATASETS,
    Layout,
    attention_cells,
    class_mean_cells,
    datasets,
    neuron_rows,
    unit_positions,
)
from vestige.tables import VERDICTS, ExplorerTables, as_tables, nearest_step, rows
from vestige.task_chart import sequence_table, task_sequence
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
    "DATASETS",
    "Layout",
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
    "datasets",
    "effects_over_training",
    "export_static",
    "filled",
    "nearest_step",
    "neuron_rows",
    "neuron_timeline",
    "rows",
    "selectivity_vs_effect",
    "sequence_table",
    "standalone",
    "template",
    "step_axis",
    "step_scale",
    "step_x",
    "task_sequence",
    "training_curves",
    "unit_positions",
]
