"""The phenomenon itself: a change that stops the detector catching the vestigial neuron in
the reference preset fails here."""

import json

import pytest
from vestige.study import run_study


@pytest.mark.slow
def test_reference_study_catches_the_vestigial_neuron(tmp_path):
    # Seeds 0 and 3 are caught in the committed 10-seed study (course/study/report.md).
    summary = run_study("reference", [0, 3], tmp_path / "runs", tmp_path / "report",
                        workers=2, progress=False, conditions=("suppress-whole",))
    assert summary["seeds"] == 2
    assert summary["vestigial_found"] == 2, (tmp_path / "report" / "report.md").read_text()
    saved = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert saved["vestigial_found"] == 2 and len(saved["transition_step"]) == 2
    assert saved["comparisons"]["suppress-whole"]["delta_loss"]["n"] == 2
    report = (tmp_path / "report" / "report.md").read_text()
    assert "caught in 2 of 2 seeds" in report
    png = (tmp_path / "report" / "vestigial_timelines.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
