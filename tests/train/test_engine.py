"""The training loop and evaluation, driven without the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from acct import engine
from acct.scoring import score as evaluation
from acct.train import loop
from acct.train import step as step_module
from acct.config.commands import EvaluateSettings
from acct.errors import AcctError, UsageError
from tests.conftest import ONE_LAYER, logged_outcomes, run_to_end, tiny_settings


def test_tiny_run_learns_and_writes_a_complete_run_dir(tiny_run):
    for name in ("config.json", "split.json", "metrics.jsonl"):
        assert (tiny_run / name).is_file(), name
    for tag in ("best", "last"):
        ckpt = tiny_run / "checkpoints" / tag
        for name in ("acct.json", "model.safetensors", "encoder/config.json", "state.json", "state.safetensors", "optimizer.pt"):
            assert (ckpt / name).exists(), f"{tag}/{name}"
        assert list((ckpt / "tokenizer").iterdir())
    assert not list(tiny_run.rglob("*.bin")) and not list(tiny_run.rglob("*.pkl"))
    meta = json.loads((tiny_run / "checkpoints" / "last" / "acct.json").read_text())
    assert meta["tasks"] == sorted(meta["tasks"]) and len(meta["tasks"]) == 8
    assert len(meta["confusion"]) == 8 and all(len(row) == 8 for row in meta["confusion"])
    assert abs(sum(meta["curriculum_weights"]) - 1) < 1e-6

    result = engine.evaluate(EvaluateSettings(run_dir=tiny_run, split="test", device="cpu"))
    assert result.n == 200 and result.chance == pytest.approx(0.25)
    # Every synthetic pair shares its question text: above 0.85 is only reachable if the task
    # embedding reaches the encoder and separates e.g. "even" from "odd".
    assert result.accuracy > 0.85, result
    for pair in (("even_number", "odd_number"), ("animal_word", "fruit_word")):
        for task in pair:
            assert result.tasks[task]["accuracy"] > 0.75, (task, result.tasks[task])
    assert set(result.categories) == {"numbers", "words"}
    assert json.loads((tiny_run / "eval-test.json").read_text())["accuracy"] == result.accuracy


def test_curriculum_updates_are_logged_and_leave_uniform_after_warmup(tiny_run):
    lines = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    updates = [e for e in lines if e["event"] == "curriculum"]
    # tiny preset: 100 steps per epoch, 1 warm-up epoch, update every 20 steps.
    assert [u["step"] for u in updates] == list(range(20, 241, 20))
    for u in updates:
        assert abs(sum(u["weights"].values()) - 1) < 1e-9
        spread = max(u["weights"].values()) - min(u["weights"].values())
        assert (spread < 1e-12) == (u["step"] < 100), u
    assert any(e["event"] == "validation" for e in lines)


def test_evaluate_never_scores_a_training_example(tiny_run):
    manifest = json.loads((tiny_run / "split.json").read_text())
    train, val, test = (set(manifest[k]) for k in ("train", "val", "test"))
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)


@pytest.mark.slow
def test_same_seed_same_numbers(tmp_path):
    def metrics(name):
        run_to_end(tiny_settings(tmp_path / name, **ONE_LAYER, **{"optim.max_steps": 30, "eval_every_n_steps": 30}))
        return logged_outcomes(tmp_path / name / "metrics.jsonl")

    a, b = metrics("a"), metrics("b")
    assert a == b
    from safetensors.torch import load_file

    wa = load_file(str(tmp_path / "a" / "checkpoints" / "last" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_length_grouping_pads_less_and_both_switches_can_be_turned_off(tmp_path, monkeypatch):
    shares: list[float] = []

    def recording_collate(*args, **kwargs):
        batch = real_collate(*args, **kwargs)
        # Validation batches are recorded too; they are the same in both runs.
        shares.append(batch.num_tokens / batch.input_ids.numel())
        return batch

    real_collate = loop.collate
    monkeypatch.setattr(loop, "collate", recording_collate)  # training batches
    monkeypatch.setattr(evaluation, "collate", recording_collate)  # validation batches

    def real_token_share(name, **flags):
        shares.clear()
        settings = tiny_settings(tmp_path / name, **ONE_LAYER, **{"optim.max_steps": 30, "eval_every_n_steps": 30, **flags})
        assert isinstance(run_to_end(settings)[-1], engine.Finished)
        config = json.loads((tmp_path / name / "config.json").read_text())
        return sum(shares) / len(shares), config

    grouped, config = real_token_share("grouped")
    assert config["batch"]["group_by_length"] and config["model"]["attention"] == "auto"
    plain, config = real_token_share("plain", **{"batch.group_by_length": False, "model.attention": "hf"})
    assert not config["batch"]["group_by_length"] and config["model"]["attention"] == "hf"
    assert grouped > plain + 0.05, (grouped, plain)  # measured: 0.90 vs 0.76


@pytest.mark.slow
def test_compile_setting_trains_through_torch_compile(tmp_path, monkeypatch):
    # The "eager" backend traces the model with dynamo (graph breaks, guards, dynamic shapes)
    # without the minutes of code generation that inductor needs on a CPU.
    compiled = []
    real_compile = torch.compile

    def compile_eagerly(module, **kwargs):
        compiled.append(kwargs)
        return real_compile(module, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    from torch._dynamo.utils import counters

    counters.clear()
    # One encoder layer: each layer traces the same code, so a graph break in one is a break in all.
    settings = tiny_settings(tmp_path / "c", **{"optim.max_steps": 4, "eval_every_n_steps": 4, "log_every_n_steps": 2,
                                                 "model.compile": True, "model.tiny.num_hidden_layers": 1})
    events = run_to_end(settings)
    assert compiled == [{"dynamic": True}]
    # One graph per mode: the faster attention's caches and host-side helpers stay out of the trace.
    assert not counters["graph_break"], dict(counters["graph_break"])
    logged = [e for e in events if isinstance(e, engine.StepLogged)]
    assert isinstance(events[-1], engine.Finished) and len(logged) == 2
    assert all(math.isfinite(e.loss) and e.loss > 0 for e in logged)
    # The checkpoint holds the plain module's keys (no compile wrapper prefix) and loads as usual.
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "c" / "checkpoints" / "last" / "model.safetensors"))
    run = engine.load_run(tmp_path / "c", "last")
    assert set(saved) == set(run.model.state_dict()) and not any("_orig_mod" in k for k in saved)


@pytest.mark.slow
def test_existing_run_is_refused_without_overwrite(tmp_path):
    settings = tiny_settings(tmp_path / "r", **{"optim.max_steps": 2, "eval_every_n_steps": 2})
    run_to_end(settings)
    with pytest.raises(UsageError, match="already holds a run"):
        run_to_end(settings)
    events = run_to_end(settings.model_copy(update={"overwrite": True}))
    assert isinstance(events[-1], engine.Finished)


@pytest.mark.slow
def test_baseline_configuration_skips_the_contrastive_loss(tmp_path):
    settings = tiny_settings(tmp_path / "b", **{"optim.max_steps": 10, "eval_every_n_steps": 10, "loss.lambda_contrastive": 0.0,
                                                 "curriculum.strategy": "uniform", "log_every_n_steps": 5})
    logged = [e for e in run_to_end(settings) if isinstance(e, engine.StepLogged)]
    assert logged and all(e.contrastive_loss == 0.0 for e in logged)
    assert all(e.loss == pytest.approx(0.7 * e.cls_loss, rel=1e-5) for e in logged)


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = engine.lr_lambda(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)


def test_no_weight_decay_on_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    opt = engine.build_optimizer(model, 1e-3, 0.1, torch.device("cpu"))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def _poison(monkeypatch, bad_steps):
    """Make the loss NaN on the given (0-based) forward calls."""
    original = step_module.forward_losses
    calls = {"n": 0}

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        if calls["n"] in bad_steps:
            out.loss = out.loss * float("nan")
        calls["n"] += 1
        return out

    monkeypatch.setattr(step_module, "forward_losses", forward)


@pytest.mark.slow
def test_a_non_finite_step_is_skipped_and_counted(tmp_path, monkeypatch):
    _poison(monkeypatch, {3})
    settings = tiny_settings(tmp_path / "r", **{"optim.max_steps": 10, "eval_every_n_steps": 10, "log_every_n_steps": 5})
    events = run_to_end(settings)
    logged = [e for e in events if isinstance(e, engine.StepLogged)]
    assert [e.skipped_steps for e in logged] == [1, 1]
    assert all(math.isfinite(e.loss) for e in logged[1:])
    assert isinstance(events[-1], engine.Finished)
    run = engine.load_run(tmp_path / "r", "last")
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


@pytest.mark.slow
def test_consecutive_non_finite_steps_stop_training(tmp_path, monkeypatch):
    _poison(monkeypatch, set(range(2, 100)))
    settings = tiny_settings(tmp_path / "r", **{"optim.max_steps": 50, "log_every_n_steps": 1, "max_nonfinite_steps": 3})
    with pytest.raises(AcctError, match=r"3 consecutive steps up to step 5 .*fp32 or a lower learning rate"):
        run_to_end(settings)
