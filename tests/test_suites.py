"""Checkpoint suites (vestige.suites) on a real training history, offline.

The tiny suite (vestige.tiny_suite: a 2-layer GPT-NeoX trained with transformers on repeated
random tokens, two seeds, Pythia-like checkpoints) is built once per session (~20 s of CPU);
the hub path is tested on it laid out as the Hugging Face cache lays out a downloaded Pythia.
HF_HUB_OFFLINE=1 (tests/conftest.py): nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import asdict

import huggingface_hub
import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge
from vestige import tiny_suite
from vestige.analysis import (
    ANALYSIS_VERSION,
    UNTRAINED_SEED,
    AnalysisSpec,
    analyze,
    transition_step,
    untrained_baseline,
)
from vestige.detect import detect
from vestige.explorer import CheckpointExplorer
from vestige.hooks import (
    EMBED,
    POS_EMBED,
    cache_activations,
    embedding_hooks,
    mlp_out_weight,
    mlp_post,
    resid_post,
    run_from,
    set_neurons,
)
from vestige.mechanism import mechanism, target_subject
from vestige.metrics import ablate_neurons, per_position_loss, wanted_rows
from vestige.runs import RunProtocol, checkpoint_path, shared_path
from vestige.suites import (
    PYTHIA_SEED,
    Probe,
    SuiteError,
    open_folder,
    open_hub,
    polypythias,
    pythia_steps,
    unavailable,
)
from vestige.tables import explorer_tables
from vestige.task import Batch

SPEC = AnalysisSpec(n_untrained=8, n_resamples=200)  # small for tests; same code path


@pytest.fixture(scope="session")
def suite_dir(tmp_path_factory):
    """The tiny suite on disk (do not modify it)."""
    return tiny_suite.build(tmp_path_factory.mktemp("suites") / "tiny-suite")


@pytest.fixture(scope="session")
def suite(suite_dir):
    return open_folder(suite_dir)


def test_the_network_is_off():
    assert huggingface_hub.constants.HF_HUB_OFFLINE


def _protocol_members() -> set[str]:
    return set(RunProtocol.__annotations__) | {
        name for name in vars(RunProtocol) if not name.startswith("_")
    }


@pytest.mark.parametrize("which", ["kit run", "suite"])
def test_a_kit_run_and_a_suite_go_through_one_run_protocol(which, tiny_run, suite):
    run = tiny_run if which == "kit run" else suite[0]
    for name in _protocol_members():
        inspect.getattr_static(run, name)  # defined (read without computing anything)
    assert isinstance(run, RunProtocol)
    steps = run.steps
    assert steps == sorted(steps) and steps[0] == 0
    model = run.model_at(steps[-1])
    assert isinstance(model, TransformerBridge) and not model.training
    shape = run.config.model
    assert (len(model.blocks), model.cfg.n_heads, model.cfg.d_mlp) == (
        shape.n_layers,
        shape.n_heads,
        shape.d_mlp,
    )
    batch, task = run.eval_batch, run.task
    assert batch.tokens.shape == batch.loss_mask.shape == batch.labels.shape
    assert int(batch.labels.max()) < len(task.class_names)
    assert set(task.focus_classes) <= set(task.class_names)
    assert task.transition_class in task.class_names
    assert task.focus_metric == f"loss_{task.focus_classes[0]}"
    logits = model(batch.tokens)
    assert logits.shape == (*batch.tokens.shape, model.cfg.d_vocab)
    assert json.loads(json.dumps(run.checkpoint_id(steps[-1]))) == run.checkpoint_id(steps[-1])
    metrics = run.metrics
    assert {"split", "step", "loss", "accuracy"} <= set(metrics.columns)
    assert set(metrics.split) == {"train", "eval"}
    json.dumps(run.untrained_key())
    fresh_task, fresh = run.untrained_probe(UNTRAINED_SEED)
    assert fresh_task.class_names == task.class_names
    assert fresh.tokens.shape[1] == batch.tokens.shape[1] and not torch.equal(
        fresh.tokens, batch.tokens
    )
    a, b, c = (run.untrained_model(seed) for seed in (5, 5, 6))
    assert torch.equal(mlp_out_weight(a, 0), mlp_out_weight(b, 0))
    assert not torch.equal(mlp_out_weight(a, 0), mlp_out_weight(c, 0))
    assert not torch.equal(mlp_out_weight(a, 0), mlp_out_weight(run.model_at(0), 0))


def test_kit_runs_keep_their_untrained_baseline_cache_and_manifests(tiny_run):
    config = tiny_run.config
    key = {
        "version": ANALYSIS_VERSION,
        "task": asdict(config.task),
        "model": asdict(config.model),
        "n_models": 4,
    }  # the key as it was before runs said how their untrained models are made
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    untrained_baseline(tiny_run, 4)
    assert shared_path(tiny_run.path, f"untrained-{digest}.parquet").is_file()
    stat = checkpoint_path(tiny_run.path, tiny_run.steps[-1]).stat()
    assert tiny_run.checkpoint_id(tiny_run.steps[-1]) == [stat.st_size, stat.st_mtime_ns]


def test_the_tiny_suite_is_a_real_training_history_saved_like_pythias(suite_dir, suite):
    from transformers import AutoConfig

    spec = tiny_suite.TinySuite()
    assert suite.seeds == [0, 1]
    assert spec.schedule()[:7] == [0, 1, 2, 4, 8, 16, 32]  # log-spaced, then every 32
    assert spec.schedule()[6:] == list(range(32, spec.steps + 1, 32))
    for run in suite:
        assert run.steps == spec.schedule()
        folder = suite_dir / f"seed-{run.seed}" / f"step{spec.steps}"
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
            p.name for p in folder.iterdir()
        }
        config = AutoConfig.from_pretrained(folder)
        assert config.model_type == "gpt_neox" and config.use_parallel_residual
        rope = getattr(config, "rope_parameters", None) or {}  # transformers 5; 4.x: rotary_pct
        assert rope.get("partial_rotary_factor", getattr(config, "rotary_pct", None)) == 0.25
        train = run.metrics.query("split == 'train'")
        early, late = train.iloc[:5], train.iloc[-5:]
        chance = math.log(spec.vocab)
        # the second copy's loss drops (induction); the first copy stays near chance
        assert abs(early.loss_second_half.mean() - chance) < 0.2
        assert late.loss_second_half.mean() < 1.0 < 3.5 < late.loss_first_half.mean()
        assert 32 < transition_step(run) < spec.steps
    weights = [mlp_out_weight(run.model_at(0), 0) for run in suite]
    assert not torch.equal(*weights)  # two seeds


def test_the_hook_helpers_know_a_gpt_neox_bridge(suite, tiny_run):
    """Parallel attention and MLP, rotary embeddings: the names and helpers in vestige.hooks
    read what they say, and run_from (blocks called one by one) is exact."""
    run = suite[0]
    model, tokens = run.model_at(run.steps[-1]), run.eval_batch.tokens
    n_layers = run.config.model.n_layers
    layers = model.original_model.gpt_neox.layers
    seen = {}
    handles = [
        layers[i].mlp.dense_4h_to_h.register_forward_pre_hook(
            lambda module, args, i=i: seen.__setitem__(i, args[0])
        )
        for i in range(n_layers)
    ]
    try:
        names = [mlp_post(i) for i in range(n_layers)] + [resid_post(i) for i in range(n_layers)]
        logits, acts = cache_activations(model, tokens, names)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        assert torch.allclose(logits, model.original_model(tokens).logits, atol=1e-5)
    for i in range(n_layers):
        assert torch.equal(acts[mlp_post(i)], seen[i])  # what the output matrix reads
        assert torch.equal(mlp_out_weight(model, i), layers[i].mlp.dense_4h_to_h.weight)
        with torch.no_grad():
            assert torch.equal(run_from(model, i + 1, acts[resid_post(i)]), logits)
            rows = wanted_rows(run.eval_batch.loss_mask)
            at_rows = logits.gather(1, rows[..., None].expand(-1, -1, logits.shape[-1]))
            assert torch.equal(run_from(model, i + 1, acts[resid_post(i)], rows), at_rows)
    assert embedding_hooks(model) == {"embed": EMBED}  # rotary: no position embedding
    assert embedding_hooks(tiny_run.model_at(0)) == {"embed": EMBED, "pos_embed": POS_EMBED}
    # an ablation moved into the residual stream (ablate_neurons) equals one made by a hook
    means = acts[mlp_post(0)].mean(dim=(0, 1))
    ablated = ablate_neurons(model, run.eval_batch, 0, [3, 7], means, cache=acts)
    for k, neuron in enumerate((3, 7)):
        with torch.no_grad():
            hooked = model.run_with_hooks(
                tokens, fwd_hooks=[(mlp_post(0), set_neurons([neuron], means[neuron]))]
            )
        loss, _ = per_position_loss(hooked, tokens)
        assert torch.allclose(ablated.loss[k], loss, atol=1e-5)


def test_the_rank_one_ablation_sweep_leaves_a_suites_model_to_the_passes(suite, tiny_run):
    """GPT-NeoX blocks (parallel attention, input_layernorm) are not the kit's: the fast
    ablation path says so instead of reaching for the kit's `ln1` (which crashed analysis)."""
    from vestige.hooks import RankOneSweep

    run = suite[suite.seeds[0]]
    model = run.model_at(run.steps[-1])
    n = len(model.blocks)
    assert not any(RankOneSweep.covers(model, layer) for layer in range(n + 1))
    kit = tiny_run.model_at(tiny_run.steps[-1])
    assert RankOneSweep.covers(kit, len(kit.blocks))


def test_analysis_detect_mechanism_and_the_explorer_run_on_a_suite(suite):
    tables = explorer_tables(suite, spec=SPEC)
    shape = suite[0].config.model
    for seed in suite.seeds:
        steps = tables.steps(seed)
        assert steps == suite[seed].steps
        neurons = tables.neurons.query("seed == @seed")
        assert len(neurons) == len(steps) * shape.n_layers * shape.d_mlp
        assert len(tables.verdicts.query("seed == @seed")) == shape.n_layers * shape.d_mlp
        assert 32 < tables.transition(seed) < steps[-1]  # from the suite's training log
    found = detect(suite[0], spec=SPEC)
    assert found.focus == ("second_half",)
    assert set(found.neurons.positions) == {"second_half"}
    explorer = CheckpointExplorer(tables)
    explorer.step = 150
    assert explorer.step == 160  # snapped to a checkpoint
    explorer.seed = 1
    assert explorer.snapshot()[:2] == b"\xff\xd8"  # a JPEG of the five views

    mech = mechanism(suite[0], target_subject(found))
    heads = mech["heads"]
    first, last = heads[heads.step == 0], heads[heads.step == suite[0].steps[-1]]
    # induction heads formed in the second layer: attention to the token after the earlier
    # occurrence of the current one
    assert last.query("layer == 1").attn_induction.max() > 0.5 > first.attn_induction.max()
    stages = mech["stages"].pivot(index="step", columns="stage", values="probability")
    second = stages["P(next token), second half"]
    assert second.iloc[-1] > 0.5 > 0.1 > second.iloc[0]
    assert "pos_embed" not in set(mech["attribution"].component)


def test_a_researchers_own_batch_with_its_class_names(suite_dir, tmp_path):
    base = tiny_suite.TinySuite().probe().batch
    parity = base.tokens % 2  # a made-up class per position: the current token's parity
    probe = Probe(Batch(base.tokens, base.loss_mask, parity), ("even", "odd"))
    assert probe.description["name"] == "custom" and probe.stages(probe.batch) == {}
    runs = open_folder(suite_dir, steps=[0, 160, 320], probe=probe, cache=tmp_path)
    run = runs[0]
    assert run.steps == [0, 160, 320] and run.path == tmp_path / "seed-0"
    tables = analyze(run, SPEC)
    assert set(tables["class_means"].cls) == {"even", "odd"}
    found = detect(run, spec=SPEC)
    assert found.focus == () and found.vestigial is None  # no focus class: no intervals
    mech = mechanism(run, target_subject(found))
    assert mech["stages"].empty  # a custom probe has no stage curves: none are drawn

    with pytest.raises(ValueError, match="last position"):
        Probe(Batch(base.tokens, torch.ones_like(base.loss_mask), parity), ("even", "odd"))
    with pytest.raises(ValueError, match="class names"):
        Probe(Batch(base.tokens, base.loss_mask, parity + 1), ("even", "odd"))
    with pytest.raises(ValueError, match="not among"):
        Probe(probe.batch, ("even", "odd"), focus_classes=("copy",))


def test_a_hub_suite_opens_lazily_and_says_what_to_do_offline(tmp_path):
    name = "vestige-tests/no-such-model"
    runs = open_hub(name, steps=[0, 1000], cache=tmp_path)
    run = runs[PYTHIA_SEED]
    assert run.steps == [0, 1000] and run.revision(1000) == "step1000"
    assert list(tmp_path.iterdir()) == []  # opening reads and writes nothing
    with pytest.raises(SuiteError) as caught:
        run.model_at(1000)
    message = str(caught.value)
    assert "revision step1000" in message and "HF_HUB_OFFLINE=1" in message
    assert f"hf download {name} --revision step1000" in message
    with pytest.raises(SuiteError, match="step 5 is not a checkpoint"):
        run.model_at(5)
    reason = unavailable(name, ["step0", "step1000"])
    assert reason.startswith("offline (HF_HUB_OFFLINE=1)") and "hf download" in reason


def test_pythia_and_polypythias_names_and_steps(tmp_path):
    steps = pythia_steps()
    assert len(steps) == 154 and steps[:11] == [0] + [2**k for k in range(10)]
    assert steps[11:] == list(range(1000, 143001, 1000))
    assert polypythias("70m", seeds=[1, 2]) == {
        PYTHIA_SEED: "EleutherAI/pythia-70m",
        1: "EleutherAI/pythia-70m-seed1",
        2: "EleutherAI/pythia-70m-seed2",
    }
    runs = open_hub(polypythias("14m"), steps=[0, 143000], cache=tmp_path)
    assert runs.seeds == [*range(1, 10), PYTHIA_SEED]
    assert runs[3].name == "EleutherAI/pythia-14m-seed3"
    assert runs[3].revisions == {0: "step0", 143000: "step143000"}
    assert runs[3].path == tmp_path / "seed-3"


def _as_hub_cache(seed_dir, cache, repo: str, steps) -> None:
    """Lay checkpoints out as the Hugging Face cache holds a downloaded model: one branch per
    revision (refs/step<N>) naming a snapshot folder of its files."""
    root = cache / f"models--{repo.replace('/', '--')}"
    for step in steps:
        commit = hashlib.sha1(f"{repo}@{step}".encode()).hexdigest()
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / f"step{step}").write_text(commit)
        snapshot = root / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for file in (seed_dir / f"step{step}").iterdir():
            (snapshot / file.name).symlink_to(file)


def test_the_hub_code_path_on_a_pre_downloaded_cache(suite_dir, suite, tmp_path, monkeypatch):
    """What a researcher does for Pythia offline (download, then HF_HUB_OFFLINE=1), with the
    tiny suite as the hub's model: open_hub loads each revision from the cache."""
    steps = [0, 160, 320]
    names = {seed: f"vestige-tests/tiny-suite-seed{seed}" for seed in suite.seeds}
    for seed, repo in names.items():
        _as_hub_cache(suite_dir / f"seed-{seed}", tmp_path / "hub", repo, steps)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    probe = tiny_suite.TinySuite().probe()
    runs = open_hub(names, steps=steps, probe=probe, cache=tmp_path / "analyses")
    assert unavailable(names[0], [f"step{s}" for s in steps]) is None
    assert "step321" in unavailable(names[0], ["step321"])
    tokens = probe.batch.tokens
    with torch.no_grad():
        assert torch.equal(runs[0].model_at(320)(tokens), suite[0].model_at(320)(tokens))
    assert runs[0].checkpoint_id(320) == [names[0], "step320"]
    assert runs[0].config.source == "hub" and runs[0].config.revisions[160] == "step160"
    metrics = runs[0].metrics  # no training log on the hub: the probe at each checkpoint
    assert list(metrics.split.unique()) == ["eval"] and list(metrics.step) == steps
    found = detect(runs[0], spec=SPEC)
    assert len(found.neurons) == runs[0].config.model.n_layers * runs[0].config.model.d_mlp
    tables = explorer_tables(runs, spec=SPEC)
    assert tables.metrics.step.tolist() == steps * 2  # the checkpoints' losses are drawn
    assert tables.transitions.step.isna().all()  # no training log: no transition is marked
    shared = list((tmp_path / "analyses" / ".shared").glob("untrained-*.parquet"))
    assert len(shared) == 1  # two seeds (two hub names), one untrained baseline
    with pytest.raises(SuiteError, match="revision step321"):
        open_hub(names[0], steps=[321], probe=probe, cache=tmp_path / "x")[PYTHIA_SEED].model_at(
            321
        )
