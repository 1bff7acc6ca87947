import json
import shutil

import pytest
import vestige
from vestige.runs import checkpoint_path


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    return vestige.Run.open(tmp_path / "run")


def test_truncated_checkpoint_error_names_the_file_and_what_to_do(run_copy):
    path = checkpoint_path(run_copy.path, 11)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(vestige.CheckpointError) as err:
        run_copy.model_at(11)
    assert str(path) in str(err.value) and "retrain" in str(err.value)
    assert run_copy.model_at(26) is not None  # the others still open


def test_corrupt_and_missing_checkpoints(run_copy):
    path = checkpoint_path(run_copy.path, 5)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(vestige.CheckpointError, match="corrupt"):
        run_copy.model_at(5)
    path.unlink()
    with pytest.raises(
        vestige.RunError, match="not a checkpoint.*nearest checkpoints: \\[0, 11, 26\\]"
    ):
        run_copy.model_at(5)


def test_run_from_another_format_version_is_refused(run_copy):
    config = json.loads((run_copy.path / "config.json").read_text())
    config["format_version"] = 99
    (run_copy.path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        vestige.RunError, match="format_version is 99.*vestige version that wrote it"
    ):
        vestige.Run.open(run_copy.path)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(vestige.RunError, match="vestige train"):
        vestige.Run.open(tmp_path)
    with pytest.raises(vestige.RunError, match="--seeds"):
        vestige.Runs.open(tmp_path)


def test_several_seeds_open_together(tmp_path):
    for seed in (0, 2):
        vestige.train(vestige.preset("tiny"), seed, tmp_path / f"seed-{seed}", progress=False)
    runs = vestige.Runs.open(tmp_path)
    assert runs.seeds == [0, 2] and len(runs) == 2
    assert runs[2].seed == 2 and runs.config == vestige.preset("tiny")
    with pytest.raises(KeyError, match="seeds: \\[0, 2\\]"):
        runs[1]


def test_a_folder_of_seeds_lists_its_run_directories_in_seed_order(tiny_run, tmp_path):
    """`seed_dirs` is how the kit and the graders find seeds: numeric order (seed-10 after
    seed-2), only `seed-<digits>/`, and only those holding the file asked for."""
    from vestige.runs import manifest_path, metrics_path, seed_dir, seed_dirs

    for seed in (10, 2):
        shutil.copytree(tiny_run.path, seed_dir(tmp_path, seed))
    (tmp_path / "seed-x").mkdir()
    seed_dir(tmp_path, 7).mkdir()  # an empty run directory: no config.json
    (tmp_path / ".seed-3.lock").touch()
    assert seed_dirs(tmp_path) == {2: tmp_path / "seed-2", 10: tmp_path / "seed-10"}
    assert list(seed_dirs(tmp_path, holding=metrics_path)) == [2, 10]
    assert list(seed_dirs(tmp_path, holding=lambda d: d)) == [2, 7, 10]
    for seed in (2, 10):
        shutil.rmtree(manifest_path(seed_dir(tmp_path, seed)).parent, ignore_errors=True)
    manifest_path(seed_dir(tmp_path, 10)).parent.mkdir()
    manifest_path(seed_dir(tmp_path, 10)).write_text("{}")
    assert list(seed_dirs(tmp_path, holding=manifest_path)) == [10]  # the analysed ones
    assert seed_dirs(tmp_path / "nowhere") == {}


def test_atomic_write_leaves_the_mode_a_plain_open_would(tmp_path):
    """Files the kit writes are readable by the group and others as the umask allows (a
    shared runs folder, a sandbox reading them as another user), not mkstemp's 0600."""
    import os
    import stat

    from vestige.runs import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        with open(tmp_path / "b.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    modes = [stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.json", "b.json")]
    assert modes == [0o644, 0o644]
    assert (tmp_path / "a.json").read_text() == "{}"
    assert not list(tmp_path.glob(".*.tmp"))
