# %% [markdown]
# # The checkpoint explorer
#
# Drag the **step** slider through training and watch, for the picked neuron, how its
# selectivity and its ablation effect change, while the loss curves show where you are.
# The slider moves from checkpoint to checkpoint; they are log-spaced, dense early and sparse
# late, because most of what changes, changes early (the step axes are logarithmic, with a
# tick at every checkpoint). The **seed** menu switches between training runs that differ
# only in their random seed: a story that holds in one seed only is an anecdote.
#
# Views: training curves with the transition marked (dashed red); every neuron at the
# cursor step, selectivity against its ablation effect on its own positions, coloured by the
# detector's verdict, with each layer's untrained selectivity bar dashed; the picked neuron's
# mean activation per class (dark: the positions its effect is measured on); its
# selectivity and effect over training (the other neurons in grey); an attention pattern for
# one example. Nothing here re-defines "vestigial": the colours are the detector's verdicts.

# %% tags=["parameters"]
student = ""
runs_dir = "../runs"
preset = "reference"  # the course's runs (eight crutches); tests also use "tiny" (seconds)
seeds = [3006, 3007]  # study seeds: caught, then not (precomputed by `make runs`)

# %%
from pathlib import Path

import vestige
from vestige import Checker, charts, explorer_tables, setup
from vestige.detect import detect

setup()

# %% tags=["check"]
check = Checker("20_explorer", runs_dir=runs_dir, preset=preset, seeds=seeds)

# %%
root = Path(runs_dir) / preset
for seed in seeds:
    vestige.ensure_run(vestige.preset(preset), seed, vestige.seed_dir(root, seed))
runs = vestige.Runs.open(root)
runs

# %% [markdown]
# The first time, the analysis of every checkpoint is computed (a progress bar shows it) and
# cached next to the runs; after that the explorer opens in a few seconds.

# %%
tables = explorer_tables(runs, progress=True)
explorer = vestige.CheckpointExplorer(tables, seed=seeds[0])
explorer

# %% [markdown]
# The explorer can also be driven from code: `explorer.seed`, `explorer.step` and
# `explorer.neuron` are live. The cell below picks the neuron the detector ranks first in the
# first seed: its vestigial neuron, or, in a seed where no neuron passes every clause, its
# best candidate.
#
# ### Exercise 1
# {{pace ex1}}
# Move the step slider to the checkpoint (after step 0) where the picked neuron's ablation
# effect is largest: the highest point of the black line in the lower timeline. Set
# `peak_step` to `explorer.step` once you are there (or set `explorer.step` from code).

# %%
explorer.seed = seeds[0]
explorer.neuron = tables.default_neuron(seeds[0])
verdict = tables.verdict(seeds[0], explorer.neuron)
print(
    f"picked {explorer.neuron}: the detector calls it {verdict.verdict}"
    + (f" (clauses failed: {verdict.failed})" if verdict.failed else "")
)

# %%
### BEGIN SOLUTION
seed, unit = seeds[0], explorer.neuron
mine = tables.neurons.query("seed == @seed and unit == @unit and step > 0")
explorer.step = int(mine.loc[mine.effect.idxmax(), "step"])
### END SOLUTION
peak_step = explorer.step
peak_step

# %% tags=["check"]
check("ex1", lambda: peak_step)

# %% [markdown]
# What the detector says about this seed (its verdict names the peak too):

# %%
found = detect(runs[seeds[0]])
print(found.summary())

# %% [markdown]
# ### Predict first
# {{pace predict}}
# Before you switch to the second seed: the same recipe, another random seed. Will the
# detector catch a vestigial neuron there too? Set `predicted_catch` to `"yes"` or `"no"`.
# Any choice earns the point; the check records it and tells you the second seed's verdict.

# %%
### BEGIN SOLUTION
predicted_catch = "yes"
### END SOLUTION

# %% tags=["check"]
check("predict", lambda: predicted_catch)

# %% [markdown]
# The detector on the second seed. The course's two seeds differ on purpose: in the study
# many seeds have no catch, and a seed without one shows what the detector refuses and why
# (the clauses its best candidate fails).

# %%
print(detect(runs[seeds[1]]).summary())

# %% [markdown]
# ### Exercise 2
# {{pace ex2}}
# Switch the **seed** picker to the second seed and compare the dashed transition lines of
# the training curves. Set `transition_gap` to the second seed's copy transition minus the
# first seed's, in steps (`tables.transition(seed)` reads the step the explorer marks).

# %%
### BEGIN SOLUTION
transition_gap = tables.transition(seeds[1]) - tables.transition(seeds[0])
### END SOLUTION
transition_gap

# %% tags=["check"]
check("ex2", lambda: transition_gap)

# %% [markdown]
# Every neuron's effect over the whole of training, in one static chart: the detector's
# picks in colour, the rest in grey.

# %%
charts.effects_over_training(tables, seeds[0])

# %% [markdown]
# Every view follows the same cursor:

# %%
explorer.state()

# %% [markdown]
# ## Without a kernel
#
# A saved notebook keeps a snapshot of the explorer (below its live view); the same views
# can be saved as a self-contained HTML page with its own slider (it works on nbviewer or a
# course web page, offline), or as a PNG for slides.

# %%
html = charts.export_static(tables, Path("explorer.html"), seed=seeds[0], neuron=explorer.neuron)
png = charts.export_static(
    tables, Path("explorer.png"), seed=seeds[0], step=explorer.step, neuron=explorer.neuron
)
print(html, png)
