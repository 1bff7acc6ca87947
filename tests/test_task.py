import pytest
import torch
from vestige.task import TASKS, TriggerCopy, make_task


def test_batches_are_a_pure_function_of_seed_and_step():
    task = make_task("trigger_copy", {}, seed=3)
    a, b = task.train_batch(17, 8), make_task("trigger_copy", {}, seed=3).train_batch(17, 8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.tokens, task.train_batch(18, 8).tokens)
    assert not torch.equal(
        a.tokens, make_task("trigger_copy", {}, seed=4).train_batch(17, 8).tokens
    )


def test_trigger_copy_structure():
    task = make_task("trigger_copy", {}, seed=0)
    batch = task.eval_batch(256)
    tokens, mask, labels = batch.tokens, batch.loss_mask, batch.labels
    names = TASKS["trigger_copy"].class_names
    assert tokens.shape == mask.shape == labels.shape == (256, 40)
    assert not mask[:, -1].any()
    copy = (labels == names.index("copy")) | (labels == names.index("trigger"))
    # the repeated segment: every scored copy position predicts the token that followed it before
    for row in range(16):
        for t in (copy[row] & mask[row]).nonzero().flatten().tolist():
            earlier = [
                s
                for s in range(t)
                if tokens[row, s] == tokens[row, t] and tokens[row, s + 1] == tokens[row, t + 1]
            ]
            assert earlier, (row, t)
    # "trigger" is exactly B right after A inside a segment; C follows it about 90% of the time
    trig = labels == names.index("trigger")
    assert (tokens[trig] == TriggerCopy.B).all()
    assert (tokens[:, :-1][trig[:, 1:]] == TriggerCopy.A).all()
    assert 0.8 < (tokens[:, 1:][trig[:, :-1]] == TriggerCopy.C).float().mean() < 0.97
    # the live rule: E right after D in the background, scored, followed by F mostly
    live = labels == names.index("live")
    assert live.any() and mask[live].all()
    assert (tokens[live] == TriggerCopy.E).all()
    assert 0.8 < (tokens[:, 1:][live[:, :-1]] == TriggerCopy.F).float().mean() < 0.97


def test_bad_task_params_are_named():
    with pytest.raises(ValueError, match="seq_len"):
        make_task("trigger_copy", {"seq_len": 10, "segment": 10}, seed=0)
    with pytest.raises(ValueError, match="known tasks: .*trigger_copy"):
        make_task("nope", {}, seed=0)
