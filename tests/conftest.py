"""Shared fixtures: one tiny run, and the runs the course's checks are tested on, each
trained once per test session."""

from __future__ import annotations

import os

import pytest
import torch
import vestige

# Tiny models run fastest on one thread, and CI machines are shared.
torch.set_num_threads(1)
os.environ.setdefault("VESTIGE_STRICT_CHECKS", "1")
# Tests never reach the Hugging Face hub (set before anything imports huggingface_hub, which
# reads it once; notebook kernels inherit it): a suite is opened from local files only.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> vestige.Run:
    """A finished run of the `tiny` preset, seed 0 (do not modify it)."""
    return vestige.train(
        vestige.preset("tiny"), 0, tmp_path_factory.mktemp("runs") / "tiny", progress=False
    )


@pytest.fixture(scope="session")
def course_runs(tmp_path_factory):
    """A runs folder as the checks modules read it, with tiny runs (do not modify them):
    seeds 0-3 in `tiny/` (also seen as `welcome-tiny/` and `training-tiny/`, the folders
    of 00_welcome and 05_training) and the course's forks of seed 1 in `forks/` (seed 0's
    target peaks after its copy transition: `standard_forks` refuses it)."""
    from vestige.counterfactual import run_forks

    root = tmp_path_factory.mktemp("course-runs")
    parents = [
        vestige.train(vestige.preset("tiny"), seed, root / "tiny" / f"seed-{seed}", progress=False)
        for seed in (0, 1, 2, 3)
    ]
    run_forks(parents[1], root / "forks", progress=False)
    for alias in ("welcome-tiny", "training-tiny"):
        (root / alias).symlink_to("tiny", target_is_directory=True)
    return root
