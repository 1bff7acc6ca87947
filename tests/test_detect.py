import pandas as pd
import pytest
from vestige.detect import Criteria, detect, judge


def line(effects, selectivity_end=0.9, p99=0.2):
    steps = [0, 10, 20, 40, 80, 160]
    sel = [0.1] * (len(steps) - 1) + [selectivity_end]
    return pd.DataFrame({"step": steps, "unit": "L0N1", "positions": "trigger", "effect": effects,
                         "selectivity": sel, "p99": p99})


@pytest.mark.parametrize(
    "effects, selectivity_end, vestigial, reason, settle",
    [
        ([0.0, 0.3, 0.4, 0.1, 0.02, 0.01], 0.9, True, "fell from 0.400 nats at step 20", 40),
        ([0.0, 0.3, 0.4, 0.3, 0.3, 0.3], 0.9, False, "still needed", None),
        ([0.0, 0.05, 0.1, 0.02, 0.0, 0.0], 0.9, False, "never needed much", 40),
        ([0.0, 0.3, 0.4, 0.1, 0.02, 0.01], 0.1, False, "not selective at the end", 40),
        ([0.9, 0.1, 0.05, 0.02, 0.0, 0.0], 0.9, False, "never needed much", 40),  # step 0 is noise
        ([0.0, 0.4, 0.1, 0.3, 0.02, 0.01], 0.9, True, "fell from 0.400", 80),  # relapse delays settling
    ],
)
def test_judge(effects, selectivity_end, vestigial, reason, settle):
    verdict = judge(line(effects, selectivity_end), Criteria())
    assert verdict["vestigial"] is vestigial
    assert reason in verdict["reason"]
    assert verdict["settle_step"] == settle


def test_detect_on_a_run_names_a_reason_for_every_neuron(tiny_run):
    found = detect(tiny_run)
    assert len(found.neurons) == 8 and found.neurons["reason"].str.len().gt(10).all()
    assert found.init_floor >= found.timelines.query("step == 0").effect.max() - 1e-12
    assert found.summary().startswith("seed 0:")
