"""A disk that fills up during training: one line that says what to do, nothing saved is
lost, and `--resume` once there is space again ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import vestige
from vestige.cli import main
from vestige.runs import DiskFull

DISK = 1 << 20  # a 1 MB tmpfs
FREE = 160 << 10  # about half of what the tiny run writes


def digests(run_dir: Path) -> dict[str, str]:
    files = sorted((run_dir / "checkpoints").glob("*.safetensors"))
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def same_run(run_dir: Path, reference: vestige.Run) -> bool:
    return digests(run_dir) == digests(reference.path) and (
        (run_dir / "metrics.jsonl").read_text() == (reference.path / "metrics.jsonl").read_text()
    )


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (mounting one needs root: skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_and_resume_after_freeing_space_is_bit_identical(
    small_disk, tiny_run, capsys
):
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (DISK - FREE))
    out = small_disk / "run"
    argv = ["train", "--preset", "tiny", "--seed", "0", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("vestige train: error: the disk is full: cannot write ")
    assert "Free some space" in err and "--resume" in err
    assert 0 < len(digests(out)) < len(tiny_run.steps)  # stopped part way
    assert not list(out.rglob("*.tmp"))
    ballast.unlink()
    assert main([*argv, "--resume"]) == 0
    assert same_run(out, tiny_run)


def test_a_write_that_hits_a_full_disk_leaves_what_was_saved(tiny_run, tmp_path, monkeypatch):
    """The same without a tmpfs: the sixth fsync of the run reports ENOSPC."""
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "run"
    with pytest.raises(DiskFull, match=r"the disk is full: cannot write .*--resume"):
        vestige.train(vestige.preset("tiny"), 0, out, progress=False)
    assert not list(out.rglob("*.tmp"))
    saved = digests(out)
    assert saved and saved.items() <= digests(tiny_run.path).items()
    monkeypatch.setattr(os, "fsync", real)
    vestige.train(vestige.preset("tiny"), 0, out, progress=False, resume=True)
    assert same_run(out, tiny_run)
