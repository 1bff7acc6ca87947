# %% [markdown]
# # Welcome to vestige
#
# This kit studies **how** a small language model was trained, not only what it ended up as.
# You will train a toy transformer, keep snapshots (*checkpoints*) of it as it learns, and
# look back through them, the way a biologist reads a fossil record.
#
# This first notebook checks that everything works: it prints versions, trains the `tiny`
# preset (a few seconds), plots its loss and opens one of its checkpoints. Run the cells
# from top to bottom (Shift+Enter).

# %% tags=["parameters"]
student = ""  # your name, for the gradebook
preset = "tiny"  # a named configuration: "tiny" (seconds) or "reference" (the course's runs)
seed = 0
runs_dir = "../runs"  # where runs are saved; a killed kernel loses nothing saved there

# %%
from pathlib import Path

import altair as alt
import torch
import vestige
from vestige import Checker, setup

setup()

# %% tags=["check"]
check = Checker("00_welcome", runs_dir=runs_dir, preset=preset, seed=seed)

# %% [markdown]
# ## Train (or reopen) a run
#
# `vestige.ensure_run` trains the run if it is not on disk yet, resumes it if it was
# interrupted, and simply opens it if it is finished. A progress bar shows while it trains.

# %%
config = vestige.preset(preset)
run = vestige.ensure_run(config, seed, vestige.seed_dir(Path(runs_dir) / f"welcome-{preset}", seed))
run

# %% [markdown]
# Checkpoints are dense early and sparse late, because most of what changes, changes early:

# %%
run.steps

# %% [markdown]
# ### Predict first
# {{pace predict}}
# Before you plot anything: what is the loss of this model at step 0, before any training?
# (The loss is cross-entropy in nats: how surprised the model is by the true next token.)
# Set `predicted_loss` to one of `"about 0"`, `"about 1"`, `"about ln(vocabulary size)"`.
# Any choice earns the point; the check records it and tells you what your run shows, and
# the next cells show why.

# %%
### BEGIN SOLUTION
predicted_loss = "about ln(vocabulary size)"
### END SOLUTION

# %% tags=["check"]
check("predict", lambda: predicted_loss)

# %% [markdown]
# ## Plot the loss
#
# `run.metrics` is a table with one row per logged step. Rows with `split == "train"` are
# measured on the training minibatch; rows with `split == "eval"` on a fixed evaluation
# batch at each checkpoint.

# %%
metrics = run.metrics
alt.Chart(metrics[metrics.split == "train"]).mark_line().encode(
    x="step:Q", y=alt.Y("loss:Q", title="loss (nats)")
).properties(width=500, height=220, title=f"{preset} preset, seed {seed}")

# %% [markdown]
# ## Exercise 1: open a checkpoint
# {{pace ex1}}
#
# A checkpoint is the model exactly as it was at one step: `run.model_at(0)` is the untrained
# model, `run.model_at(run.steps[-1])` the trained one. `run.eval_batch` is the fixed
# evaluation batch: `tokens` ([batch, seq] token ids) and `loss_mask` ([batch, seq], True at
# position t where predicting `tokens[:, t + 1]` is scored). The model maps tokens to logits
# ([batch, seq, vocabulary]); `logits.softmax(-1)` turns them into probabilities.
#
# Set `p_true` to the average probability that the **untrained** model (step 0) gives to the
# true next token, over the scored positions of the evaluation batch (a float). Mind the
# shift: the logits at position t are the model's bet on the token at t + 1.

# %%
model = run.model_at(0)
batch = run.eval_batch
### BEGIN SOLUTION
with torch.no_grad():
    probs = model(batch.tokens).softmax(-1)
p_next = probs[:, :-1].gather(-1, batch.tokens[:, 1:, None])[..., 0]  # P(token t + 1) at t
p_true = float(p_next[batch.loss_mask[:, :-1]].mean())
### END SOLUTION
p_true

# %% tags=["check"]
check("ex1", lambda: p_true)

# %% [markdown]
# Each check tells you at once whether you got it. If not, it says what it expected and what
# it got, and each new try shows a more specific hint.
#
# ## Exercise 2: for any run
# {{pace ex2}}
#
# Write `last_eval_loss(metrics)`: the evaluation loss at the last checkpoint of *any* run's
# metrics table, returned as a float. The check runs your function on tables it makes up,
# and their rows are not always in order.


# %%
def last_eval_loss(metrics):
    """The evaluation loss at the last checkpoint (largest step) of a metrics table."""
    ### BEGIN SOLUTION
    evals = metrics[metrics.split == "eval"]
    return float(evals.loc[evals.step.idxmax(), "loss"])
    ### END SOLUTION


# %% tags=["check"]
check("ex2", last_eval_loss)

# %% [markdown]
# You are set up. Next: `05_training.ipynb`, where you configure and train a toy model
# yourself and see how much two seeds differ; then `10_vestigial.ipynb`, where you look for a
# neuron that looks important and turns out to be left over from an earlier stage of training.
