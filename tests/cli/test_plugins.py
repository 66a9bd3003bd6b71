"""Plugins end to end: the three documented example files (docs/examples/) through
`acct train --code FILE.py`, `acct list`, ACCT_CODE, the run's copy and --resume's sha256 check,
and evaluate asking for --code instead of importing a run's code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from acct.cli import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
STRATEGY, WEIGHTING, SOURCE = (EXAMPLES / f"{n}.py" for n in ("favour_first", "task_scaled", "capitals"))
TRAIN = ["train", "--preset", "tiny", "--device", "cpu", "--seed", "1"]
# A one-layer encoder, through the environment as a user would set it.
ONE_LAYER_ENV = {"ACCT_MODEL__TINY__HIDDEN_SIZE": "32", "ACCT_MODEL__TINY__NUM_HIDDEN_LAYERS": "1",
                 "ACCT_MODEL__TINY__INTERMEDIATE_SIZE": "64"}


def _events(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def _train(args: list[str], env: dict[str, str] | None = None) -> None:
    result = runner.invoke(app, [*TRAIN, *args], env=env)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_strategy_example_drives_the_sampler_and_the_run_keeps_its_code(tmp_path):
    run_dir = tmp_path / "run"
    env = {"ACCT_CURRICULUM__WARMUP_EPOCHS": "0", "ACCT_CURRICULUM__OPTIONS": '{"favourite": "odd_number"}',
           **ONE_LAYER_ENV}  # what is tested is the sampler, not what the encoder learns
    _train(["--code", str(STRATEGY), "--strategy", "favour_first", "--max-steps", "60", "--eval-every-n-steps", "60",
            "--output-dir", str(run_dir)], env)
    updates = _events(run_dir, "curriculum")
    assert [u["step"] for u in updates] == [20, 40, 60]
    # 10 : 1 over 8 tasks, then the 0.1 floor: 0.9 * 10/17 + 0.1/8.
    expected = 0.9 * 10 / 17 + 0.1 / 8
    for u in updates:
        assert u["weights"]["odd_number"] == pytest.approx(expected)
        assert sum(u["sampled"].values()) == 20 * 16
    # The questions drawn after an update follow its weights (uniform would give 1/8).
    for u in updates[1:]:
        share = u["sampled"]["odd_number"] / sum(u["sampled"].values())
        assert share > 0.4, u["sampled"]

    saved = json.loads((run_dir / "config.json").read_text())
    (plugin,) = saved["plugins"]
    digest = hashlib.sha256(STRATEGY.read_bytes()).hexdigest()
    assert plugin == {"path": str(STRATEGY), "sha256": digest, "copy_path": "code/favour_first.py"}
    assert hashlib.sha256((run_dir / "code" / "favour_first.py").read_bytes()).hexdigest() == digest
    assert saved["curriculum"]["options"] == {"favourite": "odd_number"}

    # --resume re-imports the run's copy after checking it; a changed copy is refused.
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    with open(run_dir / "code" / "favour_first.py", "a") as f:
        f.write("\nprint('changed')\n")
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 1 and "sha256" in result.output and "refusing" in result.output, result.output
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--code", str(STRATEGY)])
    assert result.exit_code == 2 and "remove --code" in result.output


# A different weight for every task of the synthetic suite, so any first batch is reweighted.
SCALES = {t: float(i + 1) for i, t in enumerate(
    ["animal_word", "color_word", "even_number", "fruit_word", "large_number", "odd_number", "small_number", "tool_word"])}


@pytest.mark.slow
def test_loss_weighting_example_changes_the_loss(tmp_path):
    def first_step(name: str, options: dict | None) -> dict:
        config = tmp_path / f"{name}.yaml"
        loss = {"task_weighting": "task_scaled", "task_weighting_options": options} if options is not None else {}
        config.write_text(yaml.safe_dump({"loss": loss, "log_every_n_steps": 1}))
        _train(["--code", str(WEIGHTING), "--config", str(config), "--max-steps", "2", "--eval-every-n-steps", "2",
                "--output-dir", str(tmp_path / name)])
        return _events(tmp_path / name, "train")[0]

    equal, ones, scaled = first_step("equal", None), first_step("ones", {}), first_step("scaled", {"scales": SCALES})
    # Same model, same first batch: scales of 1 give the mean cross-entropy, other scales another loss.
    assert ones["cls_loss"] == pytest.approx(equal["cls_loss"], abs=1e-6)
    assert abs(scaled["cls_loss"] - equal["cls_loss"]) > 1e-4
    assert scaled["contrastive_loss"] == pytest.approx(equal["contrastive_loss"], abs=1e-6)
    saved = json.loads((tmp_path / "scaled" / "config.json").read_text())
    assert saved["loss"]["task_weighting"] == "task_scaled"


@pytest.mark.slow
def test_data_source_example_is_trained_on_and_evaluate_asks_for_its_code(tmp_path):
    run_dir = tmp_path / "run"
    _train(["--data-source", "capitals", "--max-steps", "20", "--eval-every-n-steps", "20", "--output-dir", str(run_dir)],
           {"ACCT_CODE": str(SOURCE)})
    meta = json.loads((run_dir / "checkpoints" / "last" / "acct.json").read_text())
    assert meta["tasks"] == ["capital_asia", "capital_europe"]
    assert meta["task_categories"] == {"capital_asia": "geography", "capital_europe": "geography"}
    train = json.loads((run_dir / "split.json").read_text())["train"]
    assert train and all(uid.startswith("capital_") for uid in train)
    assert sum(sum(u["sampled"].values()) for u in _events(run_dir, "curriculum")) == 20 * 16

    result = runner.invoke(app, ["evaluate", str(run_dir), "--json"], env={"ACCT_CODE": ""})
    assert result.exit_code == 0 or "needs its plugin" in result.output  # registered already in this process
    from acct import registry

    registered = registry.data_sources._items.pop("capitals")
    try:
        result = runner.invoke(app, ["evaluate", str(run_dir), "--json"], env={"ACCT_CODE": ""})
        assert result.exit_code == 2, result.output
        assert "needs its plugin" in result.output and "--code" in result.output
        assert len(result.output.strip().splitlines()) <= 3  # one (wrapped) line
    finally:
        registry.data_sources._items["capitals"] = registered
    result = runner.invoke(app, ["evaluate", str(run_dir), "--json", "--code", str(SOURCE)])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["tasks"]) == {"capital_asia", "capital_europe"}


def test_list_shows_builtins_and_plugins():
    result = runner.invoke(app, ["list", "--json", "--code", str(STRATEGY), "--code", str(WEIGHTING), "--code", str(SOURCE)])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    names = {kind: {row["name"]: row for row in rows} for kind, rows in listing.items()}
    assert {"uniform", "difficulty", "uncertainty_gradient", "favour_first"} <= set(names["strategies"])
    assert {"equal", "task_scaled"} <= set(names["task_weightings"])
    assert {"entropy", "uniform"} <= set(names["anchor_weightings"])
    assert {"hub", "csv", "synthetic", "capitals"} <= set(names["data_sources"])
    # acct's own first (alphabetically), then the plugins'
    own = [n for n, row in names["strategies"].items() if row["origin"] == "acct"]
    assert list(names["strategies"])[:len(own)] == own == sorted(own) and "favour_first" not in own
    assert list(names["ablation_arms"])[:3] == ["baseline", "contrastive", "dwa"]
    assert names["strategies"]["favour_first"]["description"].startswith("Ten times more weight")
    assert names["strategies"]["favour_first"]["origin"] == str(STRATEGY)
    # Every component acct ships and every --code file's has a description (other tests of this
    # process may have registered their own throwaway components; they are not checked here).
    mine = {"acct", str(STRATEGY), str(WEIGHTING), str(SOURCE)}
    assert all(row["description"] for rows in listing.values() for row in rows if row["origin"] in mine)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "favour_first" in result.stdout and "uncertainty_gradient" in result.stdout


@pytest.mark.parametrize(
    "args, env, where",
    [
        (["--strategy", "nope"], {}, "curriculum.strategy (--strategy"),
        (["--data-source", "nope"], {}, "data.source (--data-source"),
        ([], {"ACCT_LOSS__TASK_WEIGHTING": "nope"}, "loss.task_weighting"),
        ([], {"ACCT_LOSS__ANCHOR_WEIGHTING": "nope"}, "loss.anchor_weighting"),
    ],
)
def test_unknown_names_list_the_registered_ones(tmp_path, args, env, where):
    result = runner.invoke(app, [*TRAIN, *args, "--output-dir", str(tmp_path / "r")], env=env)
    assert result.exit_code == 2, result.output
    assert where in result.output and "registered:" in result.output
    assert not (tmp_path / "r").exists()


def test_bad_code_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nraise RuntimeError('boom')\n")
    for path, expected in ((tmp_path / "missing.py", "no such file"), (broken, "line 2")):
        result = runner.invoke(app, [*TRAIN, "--code", str(path), "--output-dir", str(tmp_path / "r")])
        assert result.exit_code == 2 and expected in result.output, result.output
    result = runner.invoke(app, ["ablate", "--preset", "tiny", "--arms", "baseline,nope", "--output-dir", str(tmp_path / "a")])
    assert result.exit_code == 2 and "registered: baseline, contrastive, dwa, full" in result.output, result.output


def test_extending_md_shows_each_example_file_whole():
    doc = (EXAMPLES.parent / "extending.md").read_text()
    assert doc.index("## Module map") < doc.index("## Task-sampling strategy")
    for example in (STRATEGY, WEIGHTING, SOURCE):
        assert example.read_text().rstrip() in doc, example.name
