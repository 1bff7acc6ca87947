import dataclasses
import json

import pytest
from vestige.config import (
    FORMAT_VERSION,
    CheckpointConfig,
    ModelConfig,
    RunConfig,
    SelectivityPenalty,
    Suppress,
    TrainConfig,
    preset,
)


def test_json_round_trip_keeps_every_field():
    config = preset("reference").replace(
        interventions=(
            Suppress(layer=0, neurons=(3, 5), start=10, end=200),
            SelectivityPenalty(-1.0),
        )
    )
    again = RunConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(model=ModelConfig(d_model=64, n_heads=5)), "model.d_model"),
        (dict(train=TrainConfig(steps=-3)), "train.steps"),
        (dict(train=TrainConfig(lr=2.0)), "train.lr"),
        (dict(checkpoints=CheckpointConfig(first=0)), "checkpoints.first"),
        (dict(interventions=(Suppress(layer=7, neurons=(0,)),)), "suppress.layer"),
        (dict(interventions=(Suppress(layer=0, neurons=(99,)),)), "suppress.neurons"),
    ],
)
def test_invalid_values_name_the_field_and_the_allowed_range(change, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as err:
        dataclasses.replace(preset("tiny"), **change).validate()
    assert "must be" in str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="reference, tiny"):
        preset("huge")


def test_unknown_task_parameter_is_named():
    config = preset("tiny")
    bad = dataclasses.replace(config, task=dataclasses.replace(config.task, params={"vocabb": 3}))
    with pytest.raises(ValueError, match="vocabb"):
        bad.validate()


def test_other_format_version_is_refused():
    data = preset("tiny").to_dict()
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="format_version"):
        RunConfig.from_dict(data)


def test_checkpoints_are_dense_early_sparse_late_and_include_both_ends():
    steps = CheckpointConfig(first=10, n_log=16).steps(2000)
    assert steps[0] == 0 and steps[-1] == 2000
    gaps = [b - a for a, b in zip(steps[1:], steps[2:])]
    assert gaps == sorted(gaps)
    assert len(steps) == 17
