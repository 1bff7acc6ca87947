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


def test_many_crutches_give_each_crutch_its_own_focus_class():
    task = make_task("many_crutches", {}, seed=0)
    batch = task.eval_batch(256)
    tokens, mask, labels = batch.tokens, batch.loss_mask, batch.labels
    k = task.params["crutches"]
    assert task.focus_classes == tuple(f"trigger_{i}" for i in range(k))
    assert task.class_names[3:] == task.focus_classes
    previous = torch.nn.functional.pad(tokens[:, :-1], (1, 0), value=-1)
    following = torch.nn.functional.pad(tokens[:, 1:], (0, 1), value=-1)
    for i, name in enumerate(task.focus_classes):
        where = labels == task.class_names.index(name)
        assert where.any() and (mask & where).any()
        assert (tokens[where] == 3 * i + 2).all() and (previous[where] == 3 * i + 1).all()
        assert 0.8 < (following[where & mask] == 3 * i + 3).float().mean() < 0.97
    # a lone B_k is as common as a paired one: B_k -> C_k alone is a poor guess
    is_b = (tokens < task.filler_start) & (tokens % 3 == 2)
    paired = labels >= 3
    assert 0.4 < paired[is_b].float().mean() < 0.6
    assert (labels[is_b & ~paired] == task.class_names.index("decoy")).all()
    # the control removes the crutch: C_k never follows A_k B_k
    control = make_task("many_crutches", {"p_follow": 0.0}, seed=0).eval_batch(256)
    after = torch.nn.functional.pad(control.tokens[:, 1:], (0, 1), value=-1)
    assert not (after[control.labels >= 3] == control.tokens[control.labels >= 3] + 1).any()


def test_lexicon_words_cover_the_segment_and_need_both_tokens():
    task = make_task("lexicon", {}, seed=1)
    batch = task.eval_batch(256)
    tokens, labels = batch.tokens, batch.labels
    rows, cols = task.params["rows"], task.params["cols"]
    assert len(task.focus_classes) == rows * cols
    previous = torch.nn.functional.pad(tokens[:, :-1], (1, 0), value=-1)
    following = torch.nn.functional.pad(tokens[:, 1:], (0, 1), value=-1)
    for i in range(rows):
        for j in range(cols):
            where = labels == task.class_names.index(f"word_{i}_{j}")
            assert (tokens[where] == 1 + rows + j).all() and (previous[where] == 1 + i).all()
            z = 1 + rows + cols + i * cols + j
            assert 0.7 < (following[where] == z).float().mean() < 0.95
    # every y token follows every x: the token alone does not tell the word
    y = tokens == 1 + rows
    assert len(previous[y & (labels >= 2)].unique()) == rows
    # the crutch predicts a third of the segment: every word's z
    words = labels >= 2
    assert words.sum() == 256 * 2 * (task.params["segment"] // 3)


def test_markov_chains_label_majority_contexts_and_the_control_balances_states():
    task = make_task("markov", {}, seed=2)
    batch = task.eval_batch(256)
    tokens, labels = batch.tokens, batch.labels
    states = task.params["vocab"]
    counts = torch.nn.functional.one_hot(tokens, states).cumsum(1)
    share = counts / torch.arange(1, tokens.shape[1] + 1)[None, :, None]
    for s in range(states):
        where = labels == 1 + s
        assert where.any() and (share[where][:, s] >= task.params["majority"]).all()
    assert batch.loss_mask[:, :-1].all() and not batch.loss_mask[:, -1].any()
    balanced = make_task("markov", {"doubly_stochastic": True}, seed=2).eval_batch(256)
    # every state equally frequent in the long run: far fewer clear majorities
    assert (balanced.labels > 0).float().mean() < 0.5 * (labels > 0).float().mean()


def test_a_finite_training_set_draws_batches_from_one_pool():
    task = make_task("trigger_copy", {}, seed=5, train_pool=50)
    pool = {tuple(row) for row in task.pool.tokens.tolist()}
    assert len(task.pool) == 50
    seen = {tuple(row) for step in range(20) for row in task.train_batch(step, 16).tokens.tolist()}
    assert seen <= pool and len(seen) > 40
    fresh = make_task("trigger_copy", {}, seed=5).train_batch(0, 16)
    assert not {tuple(row) for row in fresh.tokens.tolist()} <= pool


def test_stage_probabilities_read_only_their_positions():
    """Off a stage's positions its token may be any id (ManyCrutches' C_k = B_k + 1 is one
    past the vocabulary after the last filler): only the positions are read."""
    from vestige.task import stage_probabilities

    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))
    mask = torch.tensor([[True, False]])
    token = torch.tensor([[1, 3]])  # 3 is out of range, at an unread position
    assert stage_probabilities(logits, {"s": (mask, token)}) == pytest.approx({"s": 0.25})
    both = torch.tensor([[True, True]])
    assert stage_probabilities(logits, {"s": (both, 1)}) == pytest.approx({"s": 0.525})
    task = make_task("many_crutches", {}, seed=0)
    batch = task.eval_batch(64)
    batch.tokens[0, 0] = task.vocab - 1  # a filler whose "C" would be past the vocabulary
    got = stage_probabilities(torch.zeros(*batch.tokens.shape, task.vocab), task.stages(batch))
    assert got == pytest.approx(dict.fromkeys(got, 1 / task.vocab))
