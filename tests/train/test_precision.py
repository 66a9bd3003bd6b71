"""Precision and device-path guarantees: fp32 master weights, fp32 heads, sync-free scoring, quiet loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from acct.cli import app
from acct.config.train import ModelSettings
from acct.model.encoder import HeadConfig, MultipleChoiceModel, build_encoder, tiny_encoder_config


def _save_pretrained_encoder(directory: Path, dtype: torch.dtype, *, dtype_in_config: bool) -> None:
    """A small DebertaV2 saved as a hub checkpoint would be, its weights stored in `dtype`, with a tokenizer."""
    from transformers import AutoModel

    from acct.data.synthetic import generate_suite
    from acct.data.tiny_tokenizer import train_tiny_tokenizer

    torch.manual_seed(0)
    suite = generate_suite(examples_per_task=20, seed=0)
    texts = [ex.question + " " + c for exs in suite.values() for ex in exs for c in ex.choices]
    tokenizer = train_tiny_tokenizer(texts, 400)
    encoder = AutoModel.from_config(tiny_encoder_config(ModelSettings(name_or_path="tiny"), len(tokenizer)))
    encoder.to(dtype).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    config = json.loads((directory / "config.json").read_text())
    if dtype_in_config:
        assert config.get("dtype") == str(dtype).removeprefix("torch."), config.get("dtype")
    else:
        config.pop("dtype", None)
        config.pop("torch_dtype", None)
        (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dtype_in_config", [True, False])
def test_a_half_precision_checkpoint_trains_with_fp32_master_weights(tmp_path, dtype, dtype_in_config):
    pretrained = tmp_path / "pretrained"
    _save_pretrained_encoder(pretrained, dtype, dtype_in_config=dtype_in_config)
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--preset", "tiny", "--model", str(pretrained), "--tokenizer", str(pretrained),
        "--precision", "fp32", "--device", "cpu", "--max-steps", "4", "--eval-every-n-steps", "4",
        "--output-dir", str(run_dir),
    ])
    assert result.exit_code == 0, result.output
    # transformers' own loading bar must not leak into acct's output.
    assert "Loading weights" not in result.output
    ckpt = run_dir / "checkpoints" / "last"
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float32}
    saved = json.loads((ckpt / "encoder" / "config.json").read_text())
    assert saved.get("dtype") == "float32"

    from acct.engine import load_run

    run = load_run(run_dir, "last")
    assert {p.dtype for p in run.model.parameters()} == {torch.float32}
    evaluated = CliRunner().invoke(app, ["evaluate", str(run_dir), "--split", "val", "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert 0.0 <= json.loads(evaluated.stdout)["accuracy"] <= 1.0


def test_build_encoder_keeps_fp32_parameters_from_an_fp16_checkpoint(tmp_path):
    _save_pretrained_encoder(tmp_path, torch.float16, dtype_in_config=True)
    encoder, _ = build_encoder(ModelSettings(name_or_path=str(tmp_path)), vocab_size=10)
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    assert encoder.config.dtype == torch.float32


def _tiny_model(seed: int = 0) -> MultipleChoiceModel:
    torch.manual_seed(seed)
    encoder, _ = build_encoder(ModelSettings(name_or_path="tiny"), vocab_size=60)
    return MultipleChoiceModel(encoder, HeadConfig(num_tasks=3, projection_dim=8, pooling="cls"))


def _tiny_batch():
    """Three questions of 3, 2 and 4 choices, as token ids (no tokenizer needed to collate)."""
    from acct.data.tokenize import EncodedExamples, collate

    questions = [[1, 7, 8, 9, 2], [1, 10, 11, 2], [1, 12, 2]]
    choices = [[[20], [21], [22]], [[23, 24], [25]], [[26], [27], [28], [29, 30]]]
    encoded = EncodedExamples(
        sequences=[[q + c + [2] for c in cs] for q, cs in zip(questions, choices)],
        answers=[0, 1, 3],
        task_ids=[0, 1, 2],
        questions=questions,
    )
    return collate(encoded, [0, 1, 2], 0)


def _grad_fn_names(tensor: torch.Tensor) -> set[str]:
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return names


def test_choice_scores_are_built_without_a_data_dependent_backward():
    # masked_scatter's backward runs masked_select, whose output size waits for the device.
    model = _tiny_model().eval()  # no dropout: the two forwards below must agree exactly
    batch = _tiny_batch()
    out = model(**batch.model_inputs())
    names = _grad_fn_names(out.scores)
    assert not any("MaskedScatter" in n or "MaskedSelect" in n for n in names), names
    assert any("IndexCopy" in n for n in names), names
    # Same scores as placing the logits under the mask.
    derived = model(**{**batch.model_inputs(), "choice_index": None}).scores
    assert torch.equal(out.scores, derived)
    assert torch.isinf(out.scores[~batch.choice_mask]).all() and torch.isfinite(out.scores[batch.choice_mask]).all()
    out.scores[batch.choice_mask].sum().backward()  # the gradient flows through the indexed copy
    assert model.scorer[0].weight.grad is not None


def test_heads_run_in_fp32_under_bf16_autocast():
    model = _tiny_model().eval()
    batch = _tiny_batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch.model_inputs())
    assert out.scores.dtype == torch.float32
    assert out.embeddings.dtype == torch.float32
    # The logits keep more than bf16's precision: not all of them are exactly representable in bf16.
    finite = out.scores[batch.choice_mask]
    assert not torch.equal(finite, finite.to(torch.bfloat16).float())


def test_trackers_moved_inside_inference_mode_can_still_fold():
    # inspect-confusion --recompute observes inside inference mode and folds outside it; state
    # moved to the device there must stay ordinary tensors ("meta" stands in for a GPU).
    from acct.curriculum.signals import ConfusionTracker, TaskStats

    tracker, stats = ConfusionTracker(3), TaskStats(3)
    z = torch.randn(4, 5, device="meta")
    tasks = torch.tensor([0, 1, 2, 0], device="meta")
    u = torch.rand(4, device="meta")
    with torch.inference_mode():
        tracker.observe(z, tasks, u)
        stats.observe(tasks, torch.ones(4, dtype=torch.bool, device="meta"), u)
    tracker.fold()
    stats.fold()
    assert tracker.matrix.device.type == "meta" and not tracker.matrix.is_inference()
    assert not stats.error_rate.is_inference()


def test_attention_scales_the_key_before_the_product_so_fp16_does_not_overflow():
    from acct.model import attention

    encoder, _ = build_encoder(ModelSettings(name_or_path="tiny"), vocab_size=60)
    module = attention._attention_modules(encoder)[0].half().eval()
    hidden = module.query_proj.in_features
    with torch.no_grad():
        for proj in (module.query_proj, module.key_proj, module.value_proj):
            proj.weight.copy_(torch.eye(hidden))
            proj.bias.zero_()
    length = 6
    # q.k = hidden/heads * 60 * 60 per head = 115,200 > fp16's 65,504; q.(k / sqrt(d * 3)) is not.
    x = torch.full((1, length, hidden), 60.0, dtype=torch.float16)
    mask = torch.ones(1, 1, length, length, dtype=torch.long)
    rel = torch.zeros(2 * module.pos_ebd_size, hidden, dtype=torch.float16)
    assert hidden // module.num_attention_heads * 3600 > torch.finfo(torch.float16).max
    context = attention._attend(module, x, mask, None, rel)
    assert torch.isfinite(context).all()


def test_relative_positions_are_built_once_per_length_and_device():
    from acct.model import attention

    encoder, _ = build_encoder(ModelSettings(name_or_path="tiny"), vocab_size=60)
    model = MultipleChoiceModel(encoder, HeadConfig(num_tasks=3, projection_dim=8, pooling="cls"))
    assert model.attention_backend == "acct"
    attention._RELATIVE_POSITIONS.clear()
    ids = torch.randint(5, 60, (2, 9))
    with torch.inference_mode():
        encoder(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert len(attention._RELATIVE_POSITIONS) == 1
    (cached,) = attention._RELATIVE_POSITIONS.values()
    assert not cached.is_inference()  # a training step may reuse what an evaluation cached
    out = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    out.sum().backward()
    assert len(attention._RELATIVE_POSITIONS) == 1


@pytest.mark.slow
def test_throughput_excludes_validation_time(tmp_path, monkeypatch):
    # A fake clock: each optimizer step takes 1 s, each validation 100 s.
    import types

    from acct import engine
    from acct.train import loop
    from tests.conftest import ONE_LAYER, tiny_settings

    now = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    real_step, real_predict = loop.train_step, loop.predict_encoded

    def timed_step(*args, **kwargs):
        now[0] += 1.0
        return real_step(*args, **kwargs)

    def timed_predict(*args, **kwargs):
        now[0] += 100.0
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", timed_step)
    monkeypatch.setattr(loop, "predict_encoded", timed_predict)
    settings = tiny_settings(tmp_path / "run", **ONE_LAYER, **{"optim.max_steps": 30, "eval_every_n_steps": 10,
                                                             "log_every_n_steps": 5})
    rates = {e.step: e.questions_per_s for e in engine.train(settings) if isinstance(e, engine.StepLogged)}
    # Validation (and a checkpoint) runs right after the log of steps 10 and 20, inside the
    # windows that end at 15 and 25: they must still read 16 questions per 1 s step.
    assert rates == {step: pytest.approx(16.0) for step in (5, 10, 15, 20, 25, 30)}


@pytest.mark.slow
def test_deterministic_setting_runs_and_matches_the_default_on_cpu(tmp_path):
    from acct import engine
    from tests.conftest import ONE_LAYER, tiny_settings

    def losses(name, **flags):
        settings = tiny_settings(tmp_path / name, **ONE_LAYER, **{"optim.max_steps": 10, "eval_every_n_steps": 10, **flags})
        events = list(engine.train(settings))
        return [e.loss for e in events if isinstance(e, engine.StepLogged)], torch.are_deterministic_algorithms_enabled()

    plain, plain_flag = losses("plain")
    strict, strict_flag = losses("strict", deterministic=True)
    assert not plain_flag and strict_flag
    torch.use_deterministic_algorithms(False)
    assert plain == strict and all(math.isfinite(v) for v in plain)
    saved = json.loads((tmp_path / "strict" / "checkpoints" / "last" / "acct.json").read_text())
    assert saved["backends"] == {"deterministic": True, "tf32": False}
