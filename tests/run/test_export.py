"""`acct export`: the Hugging Face round trip, the heads, the model card, and predict/evaluate from the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from acct.cli import app
from tests.conftest import run_to_end, tiny_settings

runner = CliRunner()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """A short tiny run with a validation result written by `acct evaluate`."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    run_to_end(tiny_settings(run_dir, **{"optim.max_steps": 20, "eval_every_n_steps": 10}))
    result = runner.invoke(app, ["evaluate", str(run_dir), "--split", "val", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def exported(short_run, tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("exported") / "model"
    result = runner.invoke(app, ["export", str(short_run), str(out_dir)])
    assert result.exit_code == 0, result.output
    assert str(out_dir) in " ".join(result.stdout.split())
    return out_dir


def _cpu():
    return torch.device("cpu")


@pytest.mark.slow
def test_the_folder_holds_only_safetensors_and_json_besides_the_card(exported):
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file())
    assert {"README.md", "acct_config.json", "acct_heads.safetensors", "acct_split.json", "encoder/config.json",
            "encoder/model.safetensors"} <= set(files)
    assert any(f.startswith("encoder/tokenizer") for f in files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl", ".py"))]


@pytest.mark.slow
def test_automodel_round_trip_gives_the_hidden_states_of_acct(short_run, exported):
    from transformers import AutoModel, AutoTokenizer

    from acct import engine

    run = engine.load_run(short_run, "best", _cpu())
    encoder = AutoModel.from_pretrained(str(exported / "encoder")).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(exported / "encoder"))
    text = "Which of these numbers is even? 3 8 11"
    assert tokenizer(text)["input_ids"] == run.tokenizer(text)["input_ids"]
    batch = tokenizer([text, "is 12 a multiple of 3"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = run.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        theirs = encoder(**batch).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    # The library's model holds exactly the checkpoint's encoder weights.
    saved = load_file(str(run.checkpoint / "model.safetensors"))
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, saved[f"encoder.{name}"]), name


@pytest.mark.slow
def test_heads_and_config_carry_the_rest_of_the_model(short_run, exported):
    from acct import engine

    run = engine.load_run(short_run, "best", _cpu())
    saved = load_file(str(run.checkpoint / "model.safetensors"))
    heads = load_file(str(exported / "acct_heads.safetensors"))
    assert heads.keys() == {k for k in saved if not k.startswith("encoder.")}
    assert {"task_embedding.weight", "scorer.0.weight", "projector.2.weight"} <= heads.keys()
    assert all(torch.equal(heads[k], saved[k]) for k in heads)
    config = json.loads((exported / "acct_config.json").read_text())
    assert config["format"] == "acct-export" and config["tasks"] == run.tasks
    assert config["task_categories"] == run.categories and config["head"] == run.meta["head"]
    assert config["tokenizer"] == "encoder" and config["source"]["step"] == run.meta["step"]

    # acct rebuilds the same model from the folder: every weight, the tasks and the tokenizer.
    again = engine.load_run(exported, device=_cpu())
    assert again.tasks == run.tasks and again.categories == run.categories
    a, b = again.model.state_dict(), run.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_model_card_metadata_results_and_honesty(exported, short_run):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["metrics"] == ["accuracy"]
    assert "base_model" not in meta  # a random-init encoder has none
    assert "random weights" in card and "Random-init encoder" in card
    assert "even_number" in card and "| 0 |" in card
    val = json.loads((short_run / "eval-val.json").read_text())
    assert f"{100 * val['accuracy']:.2f}%" in card
    assert "synthetic suite" in card and "```yaml" in card and "max_steps: 20" in card
    assert "## Provenance" in card


def test_model_card_of_a_pretrained_mmlu_run_warns_about_its_protocol():
    from acct.config.train import TrainSettings
    from acct.run.model_card import model_card

    settings = json.loads(TrainSettings().model_dump_json())  # deberta-v3-base on cais/mmlu, subject-split
    config = {"settings": settings, "tasks": ["anatomy"], "task_categories": {"anatomy": "STEM"}, "acct_version": "x",
              "source": {"run_dir": "/r/run", "checkpoint": "best", "step": 10, "val_accuracy": 0.5},
              "evaluations": {"test": {"n": 10, "accuracy": 0.4, "macro_accuracy": 0.4, "chance": 0.25,
                                       "majority_baseline": 0.3}}}
    card = model_card(config)
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["base_model"] == "microsoft/deberta-v3-base" and meta["datasets"] == ["cais/mmlu"]
    assert "not comparable to the MMLU leaderboard" in card and "40.00%" in card
    assert "random weights" not in card
    settings["data"]["protocol"] = "standard"
    assert "not comparable" not in model_card({**config, "settings": settings})


@pytest.mark.slow
def test_predict_from_the_exported_folder_matches_the_run(short_run, exported, tmp_path):
    rows = [{"question": "Which of these numbers is even?", "choices": ["3", "8", "11", "15"], "task": "even_number"},
            {"question": "Which of these is a multiple of 3?", "choices": ["4", "9", "10"], "answer": 1}]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outputs = []
    for source in (short_run, exported):
        target = tmp_path / f"{source.name}.jsonl"
        result = runner.invoke(app, ["predict", str(source), "--input", str(questions), "--output", str(target), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs.append([json.loads(line) for line in target.read_text().splitlines()])
    assert outputs[0] == outputs[1] and len(outputs[0]) == 2
    result = runner.invoke(app, ["predict", str(exported), "--question", "Which is even?", "--choices", "3", "8",
                                 "--task", "even_number", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["probabilities"]) == 2


@pytest.mark.slow
def test_evaluate_from_the_exported_folder_matches_the_run(short_run, exported):
    reports = []
    for source in (short_run, exported):
        result = runner.invoke(app, ["evaluate", str(source), "--split", "test", "--device", "cpu", "--json"])
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.stdout))
    assert reports[0] == reports[1] and reports[0]["n"] > 0


@pytest.mark.slow
def test_export_refusals_are_one_line(short_run, exported, tmp_path):
    cases = [
        (["export", str(short_run), str(exported)], "not an empty directory"),
        (["export", str(tmp_path / "missing"), str(tmp_path / "o1")], "not found"),
        (["export", str(short_run), str(tmp_path / "o2"), "--checkpoint", "worst"], "best or last"),
        (["export", str(exported), str(tmp_path / "o3")], "already an exported folder"),
        (["export", str(short_run), str(short_run / "inside")], "inside the run directory"),
        (["export", str(short_run), str(tmp_path / "o4"), "--private"], "--push-to-hub"),
    ]
    for argv, words in cases:
        result = runner.invoke(app, argv)
        assert result.exit_code != 0, argv
        assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_push_to_hub_uploads_the_exported_folder(short_run, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw["repo_id"], kw))
            assert (Path(kw["folder_path"]) / "encoder" / "model.safetensors").is_file()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out_dir = tmp_path / "pushed"
    result = runner.invoke(app, ["export", str(short_run), str(out_dir), "--push-to-hub", "me/acct-tiny", "--private"])
    assert result.exit_code == 0, result.output
    assert [c[:2] for c in calls] == [("create_repo", "me/acct-tiny"), ("upload_folder", "me/acct-tiny")]
    assert calls[0][2]["private"] is True and calls[1][2]["folder_path"] == str(out_dir)
    assert "pushed to https://huggingface.co/me/acct-tiny" in result.stdout

    class OfflineApi(FakeApi):
        def create_repo(self, repo_id, **kw):
            raise OSError("offline mode is enabled")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    result = runner.invoke(app, ["export", str(short_run), str(tmp_path / "offline"), "--push-to-hub", "me/x"])
    assert result.exit_code == 1 and "cannot push" in result.output and "offline mode" in result.output
    assert (tmp_path / "offline" / "acct_config.json").is_file()  # the folder is kept for a later push
