"""One evaluation sequence drawn token by token, each token coloured by its position class, so
a learner sees the task (the two copies, the trigger pairs, the decoys) before the classes
are used. The classes and the scored mask come from the run's task (`vestige.task`)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from vestige.runs import Run

ROW = 32  # tokens per row of the chart
# Colours by class name; a many-crutch task's trigger_k classes share the trigger colour.
CLASS_COLORS = {
    "other": "#e0e0e0",
    "decoy": "#fdb863",
    "copy": "#92c5de",
    "live": "#b2abd2",
    "trigger": "#d95f02",
}


def sequence_table(run: Run, index: int = 0) -> pd.DataFrame:
    """One row per position of evaluation sequence `index`: its token, class and whether the
    loss scores the prediction made there (of the next token)."""
    batch = run.eval_batch
    if not 0 <= index < batch.tokens.shape[0]:
        raise IndexError(
            f"sequence {index}: the evaluation batch has {batch.tokens.shape[0]} sequences"
        )
    names = run.task.class_names
    labels = batch.labels[index].tolist()
    return pd.DataFrame(
        {
            "position": range(len(labels)),
            "token": batch.tokens[index].tolist(),
            "class": [names[label] for label in labels],
            "scored": batch.loss_mask[index].tolist(),
        }
    ).assign(row=lambda t: t.position // ROW, column=lambda t: t.position % ROW)


def _color(name: str) -> str:
    return CLASS_COLORS.get(name, CLASS_COLORS["trigger"] if name.startswith("trigger") else "#999")


def task_sequence(run: Run, index: int = 0) -> alt.LayerChart:
    """Evaluation sequence `index` of `run`, token by token, coloured by class (an outlined
    cell: a position the loss scores)."""
    table = sequence_table(run, index)
    names = [n for n in run.task.class_names if n in set(table["class"])]
    color = alt.Color(
        "class:N",
        title="position class",
        scale=alt.Scale(domain=names, range=[_color(n) for n in names]),
    )
    base = alt.Chart(table).encode(x=alt.X("column:O", axis=None), y=alt.Y("row:O", axis=None))
    cells = base.mark_rect(stroke="black").encode(
        color=color,
        strokeWidth=alt.condition("datum.scored", alt.value(1.2), alt.value(0)),
        tooltip=["position:Q", "token:Q", "class:N", "scored:N"],
    )
    text = base.mark_text(fontSize=9).encode(text="token:Q")
    return (cells + text).properties(
        width=22 * min(len(table), ROW),
        height=22 * int(table["row"].max() + 1),
        title=f"Evaluation sequence {index}: each token coloured by its class (outlined: scored)",
    )
