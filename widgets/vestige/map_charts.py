"""Pictures of a training map (`vestige.maps`): each seed's state over (log) steps with its
copy transition marked, the transition graph as a small diagram, and the model choice (BIC
and held-out log likelihood against the number of states). Ordinary altair charts;
`save_map_charts` writes each as vega-lite JSON with a PNG beside it (drawn by vl-convert),
in the kit's theme like its other figures.

States keep one colour everywhere (`STATE_COLORS[state]`); states are numbered by when they
occur, so state 0 is the earliest phase.
"""

from __future__ import annotations

import math
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from vestige import theme
from vestige.maps import TrainingMap

# Colour-blind-safe (Okabe & Ito), in the order states are numbered; 8 = maps.MAX_STATES.
STATE_COLORS = [
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#000000",
]
# The state number's colour on each state's node: black on the light ones.
TEXT_ON = ["white", "black", "white", "black", "black", "white", "black", "white"]
TRANSITION = "firebrick"  # as vestige.charts marks the transition


def state_scale(n_states: int) -> alt.Scale:
    return alt.Scale(domain=list(range(n_states)), range=STATE_COLORS[:n_states])


def _step_scale(steps: list[int]) -> alt.Scale:
    # The same symlog axis as vestige.charts.step_scale; not imported from there because the
    # report, which draws these figures, sits above the explorer's charts in the package.
    first = next((s for s in steps if s > 0), 1)
    return alt.Scale(type="symlog", constant=first, domain=[steps[0], steps[-1]], nice=False)


def states_chart(
    training: TrainingMap, transitions: dict[int, float] | None = None, width: int = 420
) -> alt.LayerChart:
    """One row per seed (sorted by copy-transition step, held-out seeds marked), a square per
    checkpoint coloured by its Viterbi state, a red tick at the seed's copy transition
    (`transitions`, default the map's own)."""
    transitions = training.transitions if transitions is None else transitions
    data = training.states.copy()

    def when(seed: int) -> float:
        step = transitions.get(seed, math.nan)
        return step if math.isfinite(step) else math.inf

    order = sorted(training.seeds, key=lambda s: (when(s), s))
    label = {s: f"{s}*" if s in training.held_out_seeds else str(s) for s in order}
    data["seed_label"] = data["seed"].map(label)
    steps = sorted(data["step"].unique().tolist())
    y = alt.Y(
        "seed_label:N",
        sort=[label[s] for s in order],
        title="seed",
    )
    x = alt.X(
        "step:Q",
        scale=_step_scale(steps),
        axis=alt.Axis(
            values=steps, labelOverlap="greedy", labelSeparation=4, grid=False, labelFontSize=9
        ),
        title="step (log scale)",
    )
    squares = (
        alt.Chart(data)
        .mark_square(size=70, opacity=1)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "state:N",
                scale=state_scale(training.n_states),
                legend=alt.Legend(orient="top", direction="horizontal", title="state"),
            ),
            tooltip=["seed", "step", "state", "split"],
        )
    )
    marks = pd.DataFrame(
        [
            {"seed_label": label[s], "step": float(transitions[s])}
            for s in order
            if math.isfinite(transitions.get(s, math.nan))
        ],
        columns=["seed_label", "step"],
    )
    ticks = (
        alt.Chart(marks)
        .mark_tick(color=TRANSITION, thickness=2, size=16)
        .encode(x=x, y=y, tooltip=[alt.Tooltip("step:Q", title="copy transition")])
    )
    return alt.layer(squares, ticks).properties(
        width=width,
        height=16 * len(order),
        title=alt.Title(
            f"Training map: {training.n_states} states (Gaussian HMM, chosen by BIC)",
            subtitle=["seeds sorted by copy transition (red tick); * held out of the fit"]
            + (
                [
                    f"BIC still falling at {training.n_states}, the most tried: a floor, not a finding"
                ]
                if training.at_ceiling
                else []
            ),
            anchor="start",
        ),
    )


def graph_layout(n_states: int) -> pd.DataFrame:
    """Fixed node positions: states on a circle, state 0 at the left, in order clockwise."""
    angle = math.pi - 2 * math.pi * np.arange(n_states) / max(n_states, 1)
    radius = 0.0 if n_states == 1 else 1.0
    return pd.DataFrame(
        {"state": range(n_states), "x": radius * np.cos(angle), "y": radius * np.sin(angle)}
    )


def graph_chart(
    training: TrainingMap, min_probability: float = 0.02, size: int = 260
) -> alt.LayerChart:
    """The transition graph: a node per state (its colour; below it, how many seeds visit it
    and P(stay)), an edge per transition between different states with probability at least
    `min_probability` (width and label: the probability), an arrowhead near its target."""
    nodes = graph_layout(training.n_states)
    visits = training.visited().sum()
    n_seeds = len(training.seeds)
    # Each node's note sits outside the circle, clear of the edges inside it.
    spread = 1.0 if training.n_states > 1 else 0.0
    nodes["note_x"] = nodes["x"] * 1.3 * spread
    nodes["note_y"] = nodes["y"] * 1.3 * spread - (0.0 if spread else 0.3)
    nodes["note"] = [
        f"{int(visits[s])}/{n_seeds} seeds · stay {training.transmat[s, s]:.2f}"
        for s in nodes["state"]
    ]
    edges = training.edges(min_probability)
    edges = edges[(edges["source"] != edges["target"]) & (edges["probability"] >= min_probability)]
    rows = []
    for _, e in edges.iterrows():
        a, b = nodes.loc[int(e["source"])], nodes.loc[int(e["target"])]
        dx, dy = b["x"] - a["x"], b["y"] - a["y"]
        length = math.hypot(dx, dy)
        # Shift each direction to its own side so that i -> j and j -> i do not overlap.
        ox, oy = -dy / length * 0.06, dx / length * 0.06
        rows.append(
            {
                "edge": f"{int(e['source'])}->{int(e['target'])}",
                "x": a["x"] + ox,
                "y": a["y"] + oy,
                "x2": b["x"] + ox,
                "y2": b["y"] + oy,
                "hx": a["x"] + ox + 0.75 * dx,
                "hy": a["y"] + oy + 0.75 * dy,
                "mx": a["x"] - ox * 1.8 + 0.5 * dx,
                "my": a["y"] - oy * 1.8 + 0.5 * dy,
                # vega's angle: degrees clockwise from up; the data's y axis points up.
                "angle": math.degrees(math.atan2(dx, dy)) % 360,
                "probability": round(float(e["probability"]), 3),
                "text": f"{e['probability']:.2f}",
                "seeds": int(e["seeds"]),
            }
        )
    lines = pd.DataFrame(
        rows,
        columns=["edge", "x", "y", "x2", "y2", "hx", "hy", "mx", "my", "angle"]
        + ["probability", "text", "seeds"],
    )
    domain = [-1.9, 1.9]
    x = alt.X("x:Q", scale=alt.Scale(domain=domain), axis=None)
    y = alt.Y("y:Q", scale=alt.Scale(domain=domain), axis=None)
    tooltip = ["edge", "probability", alt.Tooltip("seeds:Q", title="seeds taking it")]
    edge_layer = (
        alt.Chart(lines)
        .mark_rule(color="#555", opacity=0.7)
        .encode(
            x=x,
            y=y,
            x2="x2:Q",
            y2="y2:Q",
            strokeWidth=alt.StrokeWidth(
                "probability:Q", scale=alt.Scale(domain=[0, 1], range=[0.5, 6]), legend=None
            ),
            tooltip=tooltip,
        )
    )
    # Every layer names its position x, y (vega-lite fails on layers sharing a hidden axis
    # under different field names).
    heads = (
        alt.Chart(lines[["hx", "hy", "angle"]].rename(columns={"hx": "x", "hy": "y"}))
        .mark_point(shape="triangle-up", filled=True, color="#555", size=60)
        .encode(x=x, y=y, angle=alt.Angle("angle:Q", scale=None))
    )
    edge_text = (
        alt.Chart(lines[["mx", "my", "text"]].rename(columns={"mx": "x", "my": "y"}))
        .mark_text(fontSize=9, color="#333")
        .encode(x=x, y=y, text="text:N")
    )
    node_layer = (
        alt.Chart(nodes)
        .mark_circle(size=500, opacity=1, stroke="white", strokeWidth=1.5)
        .encode(
            x=x,
            y=y,
            color=alt.Color("state:N", scale=state_scale(training.n_states), legend=None),
            tooltip=["state", "note"],
        )
    )
    nodes["ink"] = [TEXT_ON[s] for s in nodes["state"]]
    node_text = (
        alt.Chart(nodes)
        .mark_text(fontSize=11, fontWeight="bold")
        .encode(x=x, y=y, text="state:N", color=alt.Color("ink:N", scale=None))
    )
    notes = nodes[["note_x", "note_y", "note"]].rename(columns={"note_x": "x", "note_y": "y"})
    side = np.sign(notes["x"].round(2))
    node_notes = [  # text grows away from the circle: left of left nodes, right of right ones
        alt.Chart(notes[side == sign])
        .mark_text(fontSize=9, color="#333", align=align)
        .encode(x=x, y=y, text="note:N")
        for sign, align in ((-1, "right"), (0, "center"), (1, "left"))
        if (side == sign).any()
    ]
    return alt.layer(edge_layer, heads, edge_text, node_layer, node_text, *node_notes).properties(
        width=size,
        height=size,
        title=alt.Title(
            "Transitions between states",
            subtitle=[f"edges: P(next state) >= {min_probability:g}, width by probability"],
            anchor="start",
        ),
    )


def selection_chart(training: TrainingMap, width: int = 220, height: int = 140) -> alt.HConcatChart:
    """BIC on the fitted seeds (lower is better; the chosen size marked) and the log likelihood
    per checkpoint on the fitted and the held-out seeds, against the number of states."""
    table = training.selection.copy()
    table["chosen"] = table["n_states"] == training.n_states
    x = alt.X("n_states:O", title="states", axis=alt.Axis(labelAngle=0))
    base = alt.Chart(table).encode(x=x)
    bic = alt.layer(
        base.mark_line(color="#555").encode(y=alt.Y("bic:Q", title="BIC (fitted seeds)")),
        base.mark_point(filled=True, size=60).encode(
            y="bic:Q",
            color=alt.Color(
                "chosen:N",
                scale=alt.Scale(domain=[False, True], range=["#999", TRANSITION]),
                legend=None,
            ),
        ),
    ).properties(width=width, height=height, title="Model choice: BIC")
    long = table.melt(
        "n_states",
        ["fit_log_likelihood", "held_out_log_likelihood"],
        var_name="seeds",
        value_name="log_likelihood",
    ).dropna()
    long["seeds"] = long["seeds"].map(
        {"fit_log_likelihood": "fitted", "held_out_log_likelihood": "held out"}
    )
    likelihood = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("log_likelihood:Q", title="log likelihood per checkpoint"),
            color=alt.Color(
                "seeds:N",
                scale=alt.Scale(domain=["fitted", "held out"], range=["#555", "#0072b2"]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
        )
        .properties(width=width, height=height, title="Log likelihood, fitted and held-out seeds")
    )
    return alt.hconcat(bic, likelihood).resolve_scale(color="independent")


def save_map_charts(
    training: TrainingMap,
    folder: str | Path,
    transitions: dict[int, float] | None = None,
    prefix: str = "map",
    scale: float = 1.5,
) -> list[str]:
    """Write `<prefix>_states`, `<prefix>_graph` and `<prefix>_selection` into `folder`, each
    as `.vl.json` (vega-lite) and `.png`. Returns the figures' names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    charts = {
        f"{prefix}_states": states_chart(training, transitions),
        f"{prefix}_graph": graph_chart(training),
        f"{prefix}_selection": selection_chart(training),
    }
    with theme.enabled():
        for name, chart in charts.items():
            chart.save(str(folder / f"{name}.vl.json"))
            chart.save(str(folder / f"{name}.png"), scale_factor=scale)
    return list(charts)
