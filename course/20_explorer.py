# %% [markdown]
# # The checkpoint explorer
#
# Drag the **step** slider through training and watch, for the picked neuron, how its
# selectivity and its ablation effect change, while the loss curves show where you are.
# The slider moves from checkpoint to checkpoint; they are log-spaced, dense early and sparse
# late, because most of what changes, changes early. The **seed** menu switches between
# training runs that differ only in their random seed: a story that holds in one seed only
# is an anecdote.
#
# Views: training curves with the transition marked; selectivity against ablation effect for
# every neuron (shaded: selective but not needed); the picked neuron's mean activation per
# class; its selectivity and effect over training; an attention pattern for one example.

# %% tags=["parameters"]
student = ""
runs_dir = "../runs"
preset = "reference"
seeds = [0, 1, 2]        # trained if missing (about a minute each), then reopened

# %%
from pathlib import Path

import vestige
from vestige.analysis import explorer_tables
from vestige.charts import export_static
from vestige.course import Checker
from vestige.detect import detect
from vestige.notebook import setup

setup()
check = Checker("20_explorer")

# %%
root = Path(runs_dir) / preset
for seed in seeds:
    vestige.ensure_run(vestige.preset(preset), seed, root / f"seed-{seed}")
runs = vestige.Runs.open(root)
runs

# %% [markdown]
# The first time, the analysis of every checkpoint is computed (a progress bar shows it) and
# cached next to the runs; after that the explorer opens in a second or two.

# %%
tables = explorer_tables(runs, progress=True)
explorer = vestige.CheckpointExplorer(tables, seed=seeds[0])
explorer

# %% [markdown]
# The explorer can also be driven from code: `explorer.seed`, `explorer.step` and
# `explorer.neuron` are live.
#
# ### Exercise 1
# Pick the vestigial neuron of the first seed (the detector names it below), then move the
# step slider to the checkpoint where its ablation effect is largest. Set `peak_step` to
# `explorer.step` once you are there (or set `explorer.step` from code).

# %%
found = detect(runs[seeds[0]])
print(found.summary())
if found.vestigial is not None:
    explorer.neuron = found.vestigial.unit

# %%
### BEGIN SOLUTION
explorer.step = int(found.vestigial.peak_step)
### END SOLUTION
peak_step = explorer.step
peak_step

# %%
check(
    "ex1",
    lambda: found.vestigial is not None and peak_step == int(found.vestigial.peak_step),
    points=1,
    hint="Watch the timeline view (effect over training): move the slider until the cursor "
         "sits on the highest point of the effect line.",
    success="At that checkpoint the model leaned on this neuron most.",
)

# %% [markdown]
# Every view follows the same cursor:

# %%
explorer.state()

# %% [markdown]
# ## Without a kernel
#
# The same views can be saved as a self-contained HTML page with its own slider (it works on
# nbviewer or a course web page, offline), or as a PNG for slides.

# %%
html = export_static(tables, root / "explorer.html", seed=seeds[0],
                     neuron=explorer.neuron)
png = export_static(tables, root / "explorer.png", seed=seeds[0],
                    step=explorer.step, neuron=explorer.neuron)
print(html, png)
