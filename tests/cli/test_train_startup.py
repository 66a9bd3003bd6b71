"""What `acct train` says at start and in its log lines: the encoder and tokenizer it loaded, and throughput."""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from acct.cli import app

runner = CliRunner()
BUDGET = ["--preset", "tiny", "--device", "cpu", "--max-steps", "2", "--eval-every-n-steps", "2"]


def _local_encoder(directory):
    """A small DebertaV2 and its tokenizer saved as a local pretrained checkpoint."""
    from transformers import AutoModel

    from acct.config.train import ModelSettings
    from acct.model.encoder import tiny_encoder_config
    from acct.data.synthetic import generate_suite
    from acct.data.tiny_tokenizer import train_tiny_tokenizer

    torch.manual_seed(0)
    suite = generate_suite(examples_per_task=20, seed=0)
    tokenizer = train_tiny_tokenizer((ex.question + " " + c for exs in suite.values() for ex in exs for c in ex.choices),
                                     400)
    encoder = AutoModel.from_config(tiny_encoder_config(ModelSettings(name_or_path="tiny"), len(tokenizer)))
    encoder.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return sum(p.numel() for p in encoder.parameters()), len(tokenizer)


def test_a_run_on_a_local_encoder_names_it_and_its_tokenizer(tmp_path):
    local = tmp_path / "my-encoder"
    parameters, vocab = _local_encoder(local)
    result = runner.invoke(app, ["train", *BUDGET, "--model", str(local), "--tokenizer", str(local),
                                 "--output-dir", str(tmp_path / "run")], env={"ACCT_LOG_EVERY_N_STEPS": "1"})
    assert result.exit_code == 0, result.output
    # Not a terminal: the plain view, one line that names both, before the first step line.
    lines = result.stderr.splitlines()
    [loaded] = [line for line in lines if line.startswith("encoder: ")]
    from transformers import AutoTokenizer

    size = f"{parameters / 1e6:.3g}M" if parameters >= 1e6 else f"{parameters / 1e3:.3g}k"
    tokenizer_class = type(AutoTokenizer.from_pretrained(str(local))).__name__
    assert loaded == (f"encoder: {local} (DebertaV2Model, {size} parameters); "
                      f"tokenizer: {local} ({tokenizer_class}, {vocab:,} tokens)")
    assert lines.index(loaded) < min(i for i, line in enumerate(lines) if line.startswith("step "))


def test_the_engine_yields_what_it_loaded(tmp_path):
    from acct import engine
    from tests.conftest import tiny_settings

    events = list(engine.train(tiny_settings(tmp_path / "run", **{"optim.max_steps": 1, "eval_every_n_steps": 1})))
    assert isinstance(events[0], engine.RunStarted)
    loaded = events[1]
    assert isinstance(loaded, engine.ModelLoaded)
    run = engine.load_run(tmp_path / "run", "last")
    assert loaded.parameters == sum(p.numel() for p in run.model.encoder.parameters())
    assert (loaded.encoder, loaded.encoder_class, loaded.tokenizer) == ("tiny", "DebertaV2Model", "tiny")
    assert loaded.vocab_size == len(run.tokenizer)


@pytest.mark.parametrize(("rate", "shown"), [(0.4213, "0.421 q/s"), (0.05, "0.05 q/s"), (12.345, "12.3 q/s"),
                                             (845.4, "845 q/s"), (12034.2, "12034 q/s")])
def test_throughput_below_one_question_per_second_is_not_zero(capsys, rate, shown):
    from acct import engine
    from acct.cli.train import render

    step = engine.StepLogged(step=1, total_steps=4, epoch=0.25, loss=1.0, cls_loss=0.9, contrastive_loss=0.1,
                             accuracy=0.5, lr=1e-4, questions_per_s=rate, tokens_per_s=10 * rate, skipped_steps=0)
    render([step], plain=True)
    logged = capsys.readouterr().err
    assert re.search(rf"(?<![\d.]){re.escape(shown)}", logged), logged
