"""Shared fixtures: one tiny run trained once per test session."""

from __future__ import annotations

import os

import pytest
import torch
import vestige

# Tiny models run fastest on one thread, and CI machines are shared.
torch.set_num_threads(1)
os.environ.setdefault("VESTIGE_STRICT_CHECKS", "1")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> vestige.Run:
    """A finished run of the `tiny` preset, seed 0 (do not modify it)."""
    return vestige.train(
        vestige.preset("tiny"), 0, tmp_path_factory.mktemp("runs") / "tiny", progress=False
    )
