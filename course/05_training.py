# %% [markdown]
# # Train a toy model yourself
#
# Every run in this course is defined by two things: a **config** (the task, the model, how
# to train it, and when to keep snapshots of it) and a **seed** (every random draw: the
# initial weights and each training batch). In this notebook you change a config, work out
# its checkpoint schedule by hand, train two seeds of the `tiny` preset (seconds each, on one
# CPU), and measure how much two runs that differ only in their seed differ.

# %% tags=["parameters"]
student = ""  # your name, for the gradebook
runs_dir = "../runs"  # runs are saved here, and reopened (not retrained) the next time
preset = "tiny"  # seconds per run on one CPU
seed_a = 0  # two seeds of the same config
seed_b = 1

# %%
import dataclasses
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import vestige
from vestige import Checker, charts, setup, transition_step

setup()

# %% tags=["check"]
check = Checker("05_training", runs_dir=runs_dir, preset=preset, seed_a=seed_a, seed_b=seed_b)

# %% [markdown]
# ## 1. A config
#
# `vestige.preset(name)` returns a `RunConfig`, made of frozen dataclasses: `task` (which
# synthetic task), `model` (the transformer's shape), `train` (steps, batch size, learning
# rate...), `checkpoints` (when to save), and a tuple of `interventions` (none here).

# %%
config = vestige.preset(preset)
config.model

# %%
config.train

# %% [markdown]
# A frozen dataclass cannot be changed in place: you make a changed copy.
# `config.replace(...)` swaps whole parts (`train=...`, `model=...`) and validates every
# field; `dataclasses.replace(config.model, ...)` makes the changed part. A bad value is
# refused with a message that names the field:

# %%
try:
    config.replace(model=dataclasses.replace(config.model, n_heads=3))
except ValueError as err:
    print(err)

# %% [markdown]
# ### Exercise 1
# {{pace ex1}}
# Make `longer`: the same config trained for twice as many steps with half the learning
# rate, everything else unchanged.

# %%
### BEGIN SOLUTION
longer = config.replace(
    train=dataclasses.replace(config.train, steps=2 * config.train.steps, lr=config.train.lr / 2)
)
### END SOLUTION
longer.train

# %% tags=["check"]
check("ex1", lambda: longer)

# %% [markdown]
# A config is plain data: `config.to_json()` is written into every run folder, and that file
# alone retrains the run, bit for bit, with the same seed.
#
# ## 2. When to keep a checkpoint
#
# A checkpoint is a snapshot of the weights at one step (with the optimiser's state, so a run
# can be resumed or forked there). `config.checkpoints` sets the schedule: step 0, `n_log`
# steps spaced evenly on a **log scale** from `first` to the end, and the last step. Here is
# the schedule of the course's `reference` preset, on an ordinary step axis:

# %%
reference = vestige.preset("reference")
print(reference.checkpoints)
alt.Chart(pd.DataFrame({"step": reference.checkpoint_steps})).mark_tick(
    thickness=2, size=28
).encode(x=alt.X("step:Q", title="training step")).properties(
    width=520,
    height=40,
    title=f"{len(reference.checkpoint_steps)} checkpoints of the reference preset",
)

# %% [markdown]
# Dense early, sparse late (Pythia's checkpoints are log-spaced up to step 512, then one every
# 1,000 steps): you will see why in section 3.
#
# ### Exercise 2
# {{pace ex2}}
# Write `log_schedule(total, first, n_log)`: the checkpoint steps of a run of `total` steps,
# as `CheckpointConfig(first=first, n_log=n_log).steps(total)` gives them, without calling it.
# That is: step 0; `n_log` values from `first` to `total`, each the previous one times the
# same ratio, rounded to the nearest whole step; and `total`; each step once, in ascending
# order. When `first` is not below `total` there are only 0 and `total`. The check runs your
# function on schedules of its own; the line below compares it with the reference preset's.


# %%
def log_schedule(total: int, first: int, n_log: int) -> list[int]:
    ### BEGIN SOLUTION
    steps = {0, total}
    if first < total:
        ratio = (total / first) ** (1 / max(n_log - 1, 1))
        steps.update(round(first * ratio**i) for i in range(n_log))
    return sorted(steps)
    ### END SOLUTION


log_schedule(
    reference.train.steps, reference.checkpoints.first, reference.checkpoints.n_log
) == reference.checkpoint_steps

# %% tags=["check"]
check("ex2", log_schedule)

# %% [markdown]
# ## 3. Two seeds
#
# The seed fixes every random draw, so the same config and seed give the same run, bit for
# bit, and another seed gives another run of the same recipe. `vestige.ensure_run` trains a
# run (a progress bar shows), resumes it if it was interrupted, or reopens it if it is done.

# %%
root = Path(runs_dir) / f"training-{preset}"
run_a = vestige.ensure_run(config, seed_a, vestige.seed_dir(root, seed_a))
run_b = vestige.ensure_run(config, seed_b, vestige.seed_dir(root, seed_b))
print(run_a)
print(run_b)
print("checkpoints:", run_a.steps)

# %%
both = pd.concat(
    [run_a.metrics.assign(seed=f"seed {seed_a}"), run_b.metrics.assign(seed=f"seed {seed_b}")]
)
train = both[both.split == "train"]
alt.Chart(train).mark_line().encode(
    x=alt.X("step:Q"),
    y=alt.Y("loss:Q", title="training loss (nats)"),
    color=alt.Color("seed:N", title=None),
).properties(width=520, height=220, title=f"Two seeds of the {preset} preset")

# %% [markdown]
# Why log-spaced? Compare how much the training loss falls between consecutive checkpoints
# with this run's schedule, and with an evenly spaced one of as many checkpoints (read off
# the logged training loss, lightly smoothed):

# %%
logged = (
    run_a.metrics.query("split == 'train'")
    .set_index("step")["loss"]
    .rolling(3, center=True, min_periods=1)
    .mean()
)


def falls(steps) -> np.ndarray:
    """How much the logged training loss falls between consecutive `steps`."""
    at = np.interp(steps, logged.index, logged.to_numpy())
    return -np.diff(at)


even = np.linspace(0, config.train.steps, len(run_a.steps)).round().astype(int)
schedules = pd.DataFrame(
    {
        "log-spaced: interval": [f"{a}-{b}" for a, b in zip(run_a.steps, run_a.steps[1:])],
        "log-spaced: fall": falls(run_a.steps).round(3),
        "even: interval": [f"{a}-{b}" for a, b in zip(even, even[1:])],
        "even: fall": falls(even).round(3),
    }
)
first_share = falls(even)[0] / falls(even).sum()
print(
    f"With even spacing, {first_share:.0%} of the whole fall happens before the second "
    f"checkpoint (step {even[1]})."
)
schedules

# %% [markdown]
# Where the model changes fastest, at the start, evenly spaced snapshots are too far apart
# to show *how* it changes; late, where little changes, they are spent on almost nothing.
# Log spacing puts them where the changes are, at no extra cost.
#
# ## 4. The task, position by position
#
# The model reads a sequence of tokens and, at every position, predicts the next one; its
# loss is the cross-entropy of that prediction in **nats** (natural logarithm: a uniform guess
# among all tokens costs the logarithm of the vocabulary's size, printed below; a sure right
# guess costs 0). Each sequence of this task is random tokens with a segment written twice.
# In the second copy, **induction** predicts every token: find where the current token
# occurred before and copy what followed it. Inside the segment a trigger pair A B is usually
# followed by C, a shortcut (a *crutch*) a model can learn long before it can copy; A or B
# alone (*decoys*) do not predict C; outside the segment, D E is followed by F (*live*:
# copying cannot help there). Each position has one class: `trigger` (the B of an A B pair),
# `decoy`, `copy` (the rest of the second copy), `live` and `other`. One evaluation sequence,
# each token coloured by its class (an outlined cell is a position the loss scores):

# %%
print(f"a uniform guess costs ln {run_a.task.vocab} = {np.log(run_a.task.vocab):.2f} nats")
charts.task_sequence(run_a, index=0)

# %% [markdown]
# ## 5. How much do two seeds differ?
#
# Both runs learn the same task from the same recipe; only chance differs. Each run's
# metrics table has, for every evaluation row, the loss on each class of position (columns
# `loss_trigger`, `loss_copy`, ...). Before you look at them:

# %% [markdown]
# ### Predict first
# {{pace predict}}
# Which training loss falls half way to its final value first: on `trigger` positions (the
# crutch) or on `copy` positions (induction), or both together?
# Set `predicted_first` to one of `"trigger"`, `"copy"`, `"together"`.
# Any choice earns the point; the check records it and tells you what your run shows, and
# the next cells show why.

# %%
### BEGIN SOLUTION
predicted_first = "trigger"
### END SOLUTION

# %% tags=["check"]
check("predict", lambda: predicted_first)

# %%
classes = [c for c in run_a.metrics.columns if c.startswith("loss_")]
curves = train.melt(["step", "seed"], classes, var_name="positions", value_name="nats")
alt.Chart(curves).mark_line().encode(
    x="step:Q",
    y=alt.Y("nats:Q", title="training loss (nats)"),
    color=alt.Color("seed:N", title=None),
    facet=alt.Facet("positions:N", columns=3, title=None),
).properties(width=170, height=120)

# %% [markdown]
# ### Exercise 3
# {{pace ex3}}
# Set `class_gaps` to seed B's (`run_b`) evaluation loss at the last checkpoint minus seed A's
# (`run_a`), for each class of position: a pandas Series or a dict, keyed by the class
# (`"trigger"` or `"loss_trigger"` both do).

# %%
### BEGIN SOLUTION
last_a = run_a.metrics.query("split == 'eval'").sort_values("step").iloc[-1]
last_b = run_b.metrics.query("split == 'eval'").sort_values("step").iloc[-1]
class_gaps = (last_b[classes] - last_a[classes]).astype(float)
### END SOLUTION
class_gaps

# %% tags=["check"]
check("ex3", lambda: class_gaps)

# %% [markdown]
# ### Exercise 4
# {{pace ex4}}
# Where in training do the two runs differ most? Write `largest_gap_step(metrics_a,
# metrics_b)`: the step of the checkpoint (the `eval` rows) at which the two runs'
# evaluation losses differ most, in absolute value, among the steps both tables have. Do not
# assume the rows are in order, or that both runs have the same checkpoints (one may have
# stopped early).


# %%
def largest_gap_step(metrics_a: pd.DataFrame, metrics_b: pd.DataFrame) -> int:
    ### BEGIN SOLUTION
    a = metrics_a[metrics_a.split == "eval"][["step", "loss"]]
    b = metrics_b[metrics_b.split == "eval"][["step", "loss"]]
    paired = a.merge(b, on="step", suffixes=("_a", "_b"))
    gap = (paired.loss_b - paired.loss_a).abs()
    return int(paired.step[gap.idxmax()])
    ### END SOLUTION


largest_gap_step(run_a.metrics, run_b.metrics)

# %% tags=["check"]
check("ex4", largest_gap_step)

# %% [markdown]
# The evaluation loss of both runs at every checkpoint, and the gap between them:

# %%
evals = both[both.split == "eval"]
table = evals.pivot(index="step", columns="seed", values="loss")
gap = (table[f"seed {seed_b}"] - table[f"seed {seed_a}"]).rename("gap").reset_index()
lines = (
    alt.Chart(evals)
    .mark_line(point=True)
    .encode(
        x=alt.X("step:Q"),
        y=alt.Y("loss:Q", title="evaluation loss (nats)"),
        color=alt.Color("seed:N", title=None),
    )
    .properties(width=300, height=200, title="Evaluation loss")
)
bars = (
    alt.Chart(gap)
    .mark_bar()
    .encode(x=alt.X("step:O"), y=alt.Y("gap:Q", title=f"seed {seed_b} minus seed {seed_a} (nats)"))
    .properties(width=200, height=200, title="Gap at each checkpoint")
)
lines | bars

# %%
before, after = gap.set_index("step")["gap"].iloc[[0, -1]]
print(
    f"Seed {seed_b} minus seed {seed_a}: {before:+.3f} nats at step 0 (two random "
    f"initialisations), {after:+.3f} nats at the end of training."
)

# %% [markdown]
# ## 6. The copy transition
#
# The course's task has a stage change: the loss on *copy* positions drops sharply once the
# model learns to copy. `transition_step(run)` dates it: the first logged step at which the
# smoothed training loss on copy positions is below the midpoint of its early plateau and its
# final value; NaN when that loss never falls by a quarter of its plateau (a `tiny` run is
# short, and may stop before it gets there).

# %%
for seed, run in ((seed_a, run_a), (seed_b, run_b)):
    step = transition_step(run)
    final_loss = run.metrics.query("split == 'eval'").sort_values("step")["loss"].iloc[-1]
    when = f"at step {step:.0f}" if np.isfinite(step) else "not within its training steps"
    print(f"seed {seed}: final evaluation loss {final_loss:.3f}; copy transition {when}")

# %% [markdown]
# Two seeds of one recipe already differ: in their final losses, class by class, and in
# when they change. So a difference between *one* changed run and *one* unchanged run says
# little until you know how large these seed-to-seed differences are. The study behind the
# course trains many seeds of each condition and compares them seed by seed:
# `40_many_seeds.ipynb` reads it.
