"""course/study/verify.py, the independent check of the detector's verdicts, on tiny runs:
it agrees with the detector where both compute the same thing, rejects a false claim and
finds a neuron the detector passed over."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import pytest
import vestige
from vestige.detect import detect

SCRIPT = Path(__file__).resolve().parents[1] / "course/study/verify.py"
# the clauses whose thresholds do not depend on the untrained bar (verify.py builds its bar
# from the runs' step-0 models, the detector from fresh models: those clauses may differ)
SAME_BAR_FREE = ("needed", "above_init", "sustained", "faded", "prefers_focus")


@pytest.fixture
def verify():
    """verify.py as a fresh module (its thresholds can be patched per test)."""
    spec = importlib.util.spec_from_file_location("verify", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny(course_runs):
    return [vestige.Run.open(course_runs / "tiny" / f"seed-{s}") for s in range(4)]


@pytest.mark.slow
def test_verify_recomputes_the_detectors_clauses_and_confirms_no_miss(
    verify, tiny, capsys, tmp_path
):
    bar = verify.bars(tiny)
    for run in tiny:
        found = detect(run)
        best = found.neurons.iloc[0]
        unit = (int(best.layer), int(best.neuron), best.positions)
        final = verify.activations(run, run.steps[-1])
        (mine,) = verify.judged(run, [unit], bar, final)
        assert mine["peak_step"] == best.peak_step, run.seed
        assert mine["peak"] == pytest.approx(best.peak_effect, abs=1e-3), run.seed
        assert mine["init_floor"] == pytest.approx(best.init_floor, abs=1e-3), run.seed
        assert mine["si"] == pytest.approx(best.final_selectivity, abs=0.01), run.seed
        for clause in SAME_BAR_FREE:
            assert bool(mine[clause]) == bool(best[clause]), (run.seed, clause)
    caught = sum(detect(run).vestigial is not None for run in tiny)
    folder, record = tiny[0].path.parent, tmp_path / "verify.json"
    record.write_text(json.dumps({"other": {"folder": "elsewhere", "results": []}}))
    assert verify.main([str(folder), "--json", str(record)]) == 0
    assert f"{folder}: {caught} of 4 seeds with a catch that holds up" in capsys.readouterr().out
    records = json.loads(record.read_text())  # this preset's verdicts added, others kept
    assert records["other"]["folder"] == "elsewhere"
    mine = records[tiny[0].config.name]
    assert mine["folder"] == str(folder)
    assert [r["seed"] for r in mine["results"]] == [0, 1, 2, 3]
    assert all(r["holds"] and r["missed"] == [] for r in mine["results"])


@pytest.mark.slow
def test_verify_rejects_a_false_claim(verify, tiny, monkeypatch, capsys):
    """A detector that claims seed 1's best candidate (its peak is not 2x the init floor):
    the claim does not hold up, and the script exits 1."""
    run = tiny[1]
    best = detect(run).neurons.iloc[0]
    monkeypatch.setattr(verify, "detect", lambda r: types.SimpleNamespace(vestigial=best))
    result = verify.verify(run, verify.bars(tiny))
    assert result["claimed"] == best.unit
    assert not result["above_init"] and not result["holds"]
    assert verify.main([str(run.path.parent)]) == 1


@pytest.mark.slow
def test_verify_finds_a_neuron_the_detector_missed(verify, tiny, monkeypatch):
    """With the verdict's thresholds loosened in the script only, some neuron of the tiny
    seeds passes every clause while the (strict) detector claims none: the script reports
    it as missed and exits 1."""
    monkeypatch.setattr(verify, "MIN_PEAK", 0.01)
    monkeypatch.setattr(verify, "FLOOR_RATIO", 0.0)
    monkeypatch.setattr(verify, "FINAL_FRACTION", 100.0)
    monkeypatch.setattr(verify, "QUANTILE", 0.0)
    bar = verify.bars(tiny)
    results = [verify.verify(run, bar) for run in tiny]
    assert all(r["claimed"] is None for r in results)
    missed = [(r["seed"], m) for r in results for m in r["missed"]]
    assert missed, results
    assert verify.main([str(tiny[0].path.parent)]) == 1


def test_verify_says_what_to_do_with_a_folder_without_runs(verify, tmp_path, capsys):
    assert verify.main([str(tmp_path)]) == 2
    assert "no seed-* runs here: train them first" in capsys.readouterr().err
