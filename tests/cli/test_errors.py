"""Bad input of every kind: one red line, the right exit code, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acct.cli import app

runner = CliRunner()

VALID_ROW = '"What is 1+1?",1,2,3,4,B\n'


def mmlu_dir(root: Path, *, subjects=("alpha", "beta"), rows=None, drop=None) -> Path:
    """A small original-layout MMLU folder; `rows` replaces one file's rows, `drop` removes one file."""
    for split in ("dev", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            path = root / split / f"{subject}_{split}.csv"
            path.write_text(VALID_ROW * 5)
    if rows is not None:
        (root / "test" / f"{subjects[0]}_test.csv").write_text(rows)
    if drop is not None:
        (root / drop).unlink()
    return root


def damaged_run(tiny_run: Path, tmp_path: Path, damage) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir, symlinks=True)
    damage(run_dir / "checkpoints" / "best")
    return run_dir


def truncate_weights(ckpt: Path) -> None:
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])


def drop_task(ckpt: Path) -> None:
    meta = json.loads((ckpt / "acct.json").read_text())
    meta["tasks"] = meta["tasks"][1:]
    (ckpt / "acct.json").write_text(json.dumps(meta))


def widen_encoder(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "encoder" / "config.json").read_text())
    cfg["intermediate_size"] *= 2
    (ckpt / "encoder" / "config.json").write_text(json.dumps(cfg))


def drop_folder(name):
    def damage(ckpt: Path) -> None:
        shutil.rmtree(ckpt / name)
    return damage


def bad_config_json(ckpt: Path) -> None:
    path = ckpt.parent.parent / "config.json"
    cfg = json.loads(path.read_text())
    cfg["optim"]["lr"] = "fast"
    path.write_text(json.dumps(cfg))


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


NOT_UTF8 = b'{"question": "q", "choices": ["a", "b"]}\n{"question": "caf\xe9", "choices": ["a", "b"]}\n'

TRAIN = ["train", "--preset", "tiny", "--max-steps", "1"]

# (id, argv builder(tmp_path, tiny_run) -> argv, env, exit code, message fragment)
CASES = [
    ("negative-lr", lambda t, r: [*TRAIN, "--lr", "-1"], {}, 2, "optim.lr (--lr): Input should be greater than 0"),
    ("zero-lr-env", lambda t, r: TRAIN, {"ACCT_OPTIM__LR": "0"}, 2, "optim.lr"),
    ("unknown-strategy", lambda t, r: [*TRAIN, "--strategy", "random"], {}, 2, "curriculum.strategy (--strategy"),
    ("batch-product", lambda t, r: [*TRAIN, "--batch-size", "10"], {}, 2, "batch_size 10 does not divide into tasks_per_batch 4"),
    ("lambda-range", lambda t, r: [*TRAIN, "--lambda-contrastive", "1.5"], {}, 2, "loss.lambda_contrastive"),
    ("temperature", lambda t, r: TRAIN, {"ACCT_CURRICULUM__TEMPERATURE": "0"}, 2, "curriculum.temperature"),
    ("wrong-env-type", lambda t, r: TRAIN, {"ACCT_SEED": "many"}, 2, "seed (--seed / ACCT_SEED)"),
    ("unknown-yaml-key", lambda t, r: [*TRAIN, "--config", str(_yaml(t, "optim:\n  momentum: 0.9\n"))], {}, 2, "optim.momentum"),
    ("malformed-yaml", lambda t, r: [*TRAIN, "--config", str(_yaml(t, "optim: {lr: 1\n"))], {}, 2, "malformed YAML"),
    ("missing-yaml", lambda t, r: [*TRAIN, "--config", str(t / "none.yaml")], {}, 2, "config file not found"),
    ("unknown-preset", lambda t, r: ["train", "--preset", "huge"], {}, 2, "unknown preset"),
    ("missing-data-dir", lambda t, r: [*TRAIN, "--data-source", "csv", "--data-dir", str(t / "nowhere")], {}, 2, "nowhere"),
    ("missing-subject", lambda t, r: [*TRAIN, "--data-source", "csv", "--data-dir", str(mmlu_dir(t / "d", drop="val/beta_val.csv"))],
     {}, 2, "beta"),
    ("csv-field-count", lambda t, r: [*TRAIN, "--data-source", "csv", "--data-dir",
                                      str(mmlu_dir(t / "d", rows=VALID_ROW * 2 + '"Q",1,2,3,B\n'))], {}, 2, "alpha_test.csv line 3"),
    ("csv-answer-letter", lambda t, r: [*TRAIN, "--data-source", "csv", "--data-dir",
                                        str(mmlu_dir(t / "d", rows=VALID_ROW + '"Q",1,2,3,4,E\n'))], {}, 2, "alpha_test.csv line 2"),
    ("standard-without-aux", lambda t, r: [*TRAIN, "--data-source", "csv", "--protocol", "standard", "--data-dir",
                                           str(mmlu_dir(t / "d"))], {}, 2, "auxiliary_train"),
    ("model-is-a-file", lambda t, r: [*TRAIN, "--model", str(_yaml(t, "x: 1\n"))], {}, 2, "is a file"),
    ("run-exists", lambda t, r: [*TRAIN, "--output-dir", str(r)], {}, 2, "already holds a run; pass --overwrite"),
    ("resume-not-a-run", lambda t, r: ["train", "--resume", str(t)], {}, 2, "is not an acct run directory"),
    ("resume-with-flags", lambda t, r: ["train", "--resume", str(r), "--lr", "1"], {}, 2,
     "remove --lr, or start a new run from its weights with other settings: acct train --init-from"),
    ("fp16-on-cpu", lambda t, r: [*TRAIN, "--device", "cpu", "--precision", "fp16", "--output-dir", str(t / "o")], {}, 2, "fp16 needs CUDA"),
    ("eval-missing-run", lambda t, r: ["evaluate", str(t / "nope")], {}, 2, "run directory not found"),
    ("eval-not-a-run", lambda t, r: ["evaluate", str(t)], {}, 2, "not an acct run directory"),
    ("eval-bad-split", lambda t, r: ["evaluate", str(r), "--split", "train"], {}, 2, "split (--split)"),
    ("eval-bad-checkpoint", lambda t, r: ["evaluate", str(r), "--checkpoint", "first"], {}, 2, "checkpoint"),
    ("eval-truncated-weights", lambda t, r: ["evaluate", str(damaged_run(r, t, truncate_weights))], {}, 1, "truncated or corrupted"),
    ("eval-task-list-mismatch", lambda t, r: ["evaluate", str(damaged_run(r, t, drop_task))], {}, 1, "tasks"),
    ("name-too-long", lambda t, r: [*TRAIN, "--output-dir", str(t / ("x" * 300))], {}, 2, "File name too long"),
    ("predict-not-utf8-jsonl", lambda t, r: ["predict", str(r), "--input", str(_file(t, "q.jsonl", NOT_UTF8))], {}, 2,
     "q.jsonl line 2: not UTF-8 text"),
    ("predict-not-utf8-csv", lambda t, r: ["predict", str(r), "--input", str(_file(t, "q.csv", b'"q",a,b\n"\xff",a,b\n'))],
     {}, 2, "q.csv line 2: not UTF-8 text"),
    ("eval-missing-tokenizer-folder", lambda t, r: ["evaluate", str(damaged_run(r, t, drop_folder("tokenizer")))], {}, 1,
     "the tokenizer/ folder is missing"),
    ("eval-missing-encoder-folder", lambda t, r: ["evaluate", str(damaged_run(r, t, drop_folder("encoder")))], {}, 1,
     "the encoder/ folder is missing"),
    ("eval-invalid-config-json", lambda t, r: ["evaluate", str(damaged_run(r, t, bad_config_json))], {}, 1,
     "config.json does not hold valid settings: invalid settings: optim.lr"),
    ("yaml-key-suggestion", lambda t, r: [*TRAIN, "--config", str(_yaml(t, "optim:\n  epoch: 3\n"))], {}, 2,
     "settings.yaml: unknown setting optim.epoch; did you mean optim.epochs?"),
    ("missing-argument", lambda t, r: ["evaluate"], {}, 2, "Missing argument"),
    ("mistyped-flag", lambda t, r: ["train", "--epoch", "3"], {}, 2, "No such option: --epoch (Possible options: --epochs)"),
    ("bad-flag-value", lambda t, r: ["train", "--lr", "fast"], {}, 2, "Invalid value for '--lr'"),
    # The tiny run reads the synthetic suite: a data directory would go unread.
    ("eval-data-dir-unread", lambda t, r: ["evaluate", str(r), "--data-dir", str(t)], {}, 2,
     "the run's data source 'synthetic' reads no data directory"),
    ("inspect-data-dir-unread", lambda t, r: ["inspect-confusion", str(r), "--recompute", "--data-dir", str(t)], {}, 2,
     "the run's data source 'synthetic' reads no data directory"),
    ("eval-architecture-mismatch", lambda t, r: ["evaluate", str(damaged_run(r, t, widen_encoder))], {}, 1,
     "do not match the model architecture"),
]


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("argv", "env", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(tmp_path, tiny_run, monkeypatch, argv, env, code, message):
    monkeypatch.chdir(tmp_path)  # runs that would start write under ./runs here
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ACCT_DEBUG", raising=False)
    result = runner.invoke(app, argv(tmp_path, tiny_run))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "(unexpected" not in result.output
    assert "╭" not in result.output and "Value error" not in result.output and "ACCT_SETTINGS" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert message in errors[0], result.output
    assert not result.output.startswith("\n")


def test_acct_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCT_DEBUG", "1")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "Traceback" in result.output


def test_model_level_errors_drop_the_pydantic_prefixes(tiny_run):
    result = runner.invoke(app, ["predict", str(tiny_run), "--question", "q"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: single-question mode needs both --question and --choices"


def test_read_only_file_system_is_a_user_error(tmp_path, monkeypatch):
    import errno
    import os

    from acct.run import checkpoint

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "o" / "checkpoints"))

    monkeypatch.setattr(checkpoint.os, "replace", read_only)  # the first checkpoint cannot be written
    monkeypatch.setattr(checkpoint.os, "rename", read_only, raising=False)
    result = runner.invoke(app, [*TRAIN, "--device", "cpu", "--output-dir", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: Read-only file system: {tmp_path / 'o' / 'checkpoints'}"], result.output
    assert "\n\nerror:" not in result.output  # no blank line before an error raised after training started


@pytest.mark.parametrize("name", ["br[/]ack", "exp[lr=1e-3]"])
def test_paths_with_brackets_print_literally(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*TRAIN, "--device", "cpu", "--output-dir", f"runs/{name}"])
    assert result.exit_code == 0, result.output
    assert f"run runs/{name}:" in result.output and f"acct evaluate runs/{name} --split test" in result.output
    result = runner.invoke(app, ["evaluate", f"runs/{name}", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"runs/{name} — test (best checkpoint)" in result.output
