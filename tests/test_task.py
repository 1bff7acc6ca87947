import pytest
import torch

from vestige.task import TASKS, TriggerCopy, make_task


def test_batches_are_a_pure_function_of_seed_and_step():
    task = make_task("trigger_copy", {}, seed=3)
    a, b = task.train_batch(17, 8), make_task("trigger_copy", {}, seed=3).train_batch(17, 8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.tokens, task.train_batch(18, 8).tokens)
    assert not torch.equal(a.tokens, make_task("trigger_copy", {}, seed=4).train_batch(17, 8).tokens)


def test_trigger_copy_structure():
    task = make_task("trigger_copy", {}, seed=0)
    batch = task.eval_batch(256)
    tokens, mask, labels = batch.tokens, batch.loss_mask, batch.labels
    assert tokens.shape == mask.shape == labels.shape == (256, 40)
    assert not mask[:, -1].any()
    assert (mask.sum(1) == task.params["segment"] - 1).all()
    # every masked position predicts a token copied from the first occurrence of the segment
    for row in range(8):
        pos = mask[row].nonzero().flatten()
        first = pos[0].item()
        window = tokens[row, first : first + task.params["segment"]].tolist()
        assert any(tokens[row, s : s + len(window)].tolist() == window for s in range(first))
    # "trigger" is exactly B right after A
    trig = labels == TASKS["trigger_copy"].class_names.index("trigger")
    assert (tokens[trig] == TriggerCopy.B).all()
    assert (tokens[:, :-1][trig[:, 1:]] == TriggerCopy.A).all()
    # after the pair, C follows most of the time
    follows = tokens[:, 1:][trig[:, :-1]]
    assert 0.7 < (follows == TriggerCopy.C).float().mean() < 1.0


def test_bad_task_params_are_named():
    with pytest.raises(ValueError, match="seq_len"):
        make_task("trigger_copy", {"seq_len": 10, "segment": 10}, seed=0)
    with pytest.raises(ValueError, match="known tasks: trigger_copy"):
        make_task("nope", {}, seed=0)
