import subprocess
import sys

import pytest
import vestige
from vestige.cli import main, parse_seeds


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5,0-1") == [0, 1, 5]
    with pytest.raises(Exception, match="0-9"):
        parse_seeds("a-b")


def test_train_seeds_and_analyze(tmp_path, capsys):
    assert (
        main(["train", "--preset", "tiny", "--seeds", "0-1", "--out", str(tmp_path), "--quiet"])
        == 0
    )
    assert vestige.Runs.open(tmp_path).seeds == [0, 1]
    assert main(["analyze", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "seed-1" / "analysis" / "neurons.parquet").exists()


def test_fork_goes_on_past_a_refused_seed_and_says_which(course_runs, tmp_path, capsys):
    """Tiny seed 0's target peaks after its copy transition (refused); seed 1 is forked."""
    runs = tmp_path / "tiny"
    runs.mkdir()
    for seed in (0, 1):
        (runs / f"seed-{seed}").symlink_to(course_runs / "tiny" / f"seed-{seed}")
    assert main(["fork", str(runs), "--out", str(tmp_path / "forks"), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "seed-0: not forked: seed 0's target" in err
    assert "1 run(s) not forked" in err and "Traceback" not in err
    assert "seed-1 -> hold-target" in out
    assert vestige.Run.open(tmp_path / "forks/tiny/seed-1/hold-control").steps


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vestige analyze: error:") and "Traceback" not in err


def test_python_dash_m(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vestige", "train", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--resume" in out.stdout


def test_course_help_lists_only_its_commands(capsys):
    with pytest.raises(SystemExit):
        main(["course", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: vestige course [-h] {build,grade} ...") and "time" not in out
