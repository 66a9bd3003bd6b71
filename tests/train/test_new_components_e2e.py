"""The sampling strategies, the dwa weighting and the ablation arms of the field: listed by
`acct list`, resolved as arms, and trained end to end (tiny budgets)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from acct.study.layers import registered_arm_settings
from acct.run.checkpoint import load_state
from acct.cli import app
from acct.errors import UsageError
from tests.conftest import SMALL_MODEL, SMALL_MODEL_YAML, run_to_end, tiny_settings

runner = CliRunner()
STRATEGIES = ("proportional", "temperature", "learning_progress", "phased")
ARMS = ("uniform_tasks", "temperature", "learning_progress", "phased", "dwa", "infonce_unweighted",
        "uncertainty_weighting", "pcgrad", "upgrad")
SMALL = {
    "data.synthetic_examples_per_task": 24,
    "model.tiny": SMALL_MODEL,
    "optim.max_steps": 8,
    "eval_every_n_steps": 8,
    "curriculum.update_every_n_steps": 2,
    "curriculum.warmup_epochs": 0.0,
}


def test_acct_list_shows_every_new_component() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    names = {kind: {item["name"] for item in items} for kind, items in json.loads(result.output).items()}
    assert set(STRATEGIES) <= names["strategies"]
    assert {"dwa", "uncertainty"} <= names["task_weightings"]
    assert {"mean", "pcgrad", "upgrad"} <= names["gradients"]
    assert set(ARMS) <= names["ablation_arms"]


def _events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_engine_trains_each_strategy_and_dwa(tmp_path) -> None:
    sizes = {"even_number": 60, "odd_number": 12}
    phases = [{"categories": ["numbers"], "fraction": 0.5}, {"categories": ["words", "noise"], "fraction": 0.5}]
    runs = {
        "proportional": {"curriculum.strategy": "proportional", "data.options": {"task_sizes": sizes}},
        "temperature": {"curriculum.strategy": "temperature", "data.options": {"task_sizes": sizes}},
        "learning_progress": {"curriculum.strategy": "learning_progress", "data.options": {"noise_task": True}},
        "phased": {"curriculum.strategy": "phased", "curriculum.options": {"phases": phases},
                   "data.options": {"noise_task": True}},
        "dwa": {"curriculum.strategy": "uniform", "loss.task_weighting": "dwa",
                "loss.task_weighting_options": {"window": 2}},
    }
    for name, flags in runs.items():
        run_dir = tmp_path / name
        run_to_end(tiny_settings(run_dir, **{**SMALL, **flags}))
        events = _events(run_dir)
        curriculum = [e for e in events if e["event"] == "curriculum"]
        assert curriculum and any(e["event"] == "validation" for e in events), name
        weights = curriculum[0]["weights"]
        if name == "proportional":
            # About 80% of each task's questions train: 48 and 10 against 19 or 20 for the others.
            assert weights["even_number"] > 2 * weights["color_word"]
            assert weights["color_word"] > 1.5 * weights["odd_number"]
        if name == "phased":
            assert weights["random_answer"] == 0 and weights["animal_word"] == 0 and weights["even_number"] > 0
            assert curriculum[-1]["weights"]["even_number"] == 0 and curriculum[-1]["weights"]["random_answer"] > 0
        if name == "learning_progress":
            state = load_state(run_dir / "checkpoints" / "last", "state")
            assert any(state["curriculum"]["strategy_state"]["rewarded"])
        if name == "dwa":
            state = load_state(run_dir / "checkpoints" / "last", "state")
            assert state["weightings"]["task"]["has_previous"] == [True] * 8


@pytest.mark.slow
def test_acct_train_cli_with_a_new_strategy_and_dwa(tmp_path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(
        "data: {synthetic_examples_per_task: 24, options: {noise_task: true}}\n"
        + SMALL_MODEL_YAML +
        "curriculum: {warmup_epochs: 0, update_every_n_steps: 2}\n"
        "loss: {task_weighting: dwa, task_weighting_options: {window: 2}}\n"
        "eval_every_n_steps: 6\n"
    )
    result = runner.invoke(app, ["train", "--preset", "tiny", "--config", str(config), "--strategy", "learning_progress",
                                 "--max-steps", "6", "--device", "cpu", "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["curriculum"]["strategy"] == "learning_progress" and saved["loss"]["task_weighting"] == "dwa"
    bad = runner.invoke(app, ["train", "--preset", "tiny", "--strategy", "phased", "--max-steps", "2",
                              "--device", "cpu", "--output-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "phased" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("arm", ARMS)
def test_each_arm_resolves_to_baseline_plus_one_component(arm, tmp_path) -> None:
    base = tiny_settings(tmp_path / "base", **{"data.options": {"noise_task": True}})
    reference = registered_arm_settings(base, "baseline", 0, tmp_path / "b")
    settings = registered_arm_settings(base, arm, 0, tmp_path / "a")
    differs = {
        (section, key)
        for section in ("curriculum", "loss")
        for key, value in getattr(settings, section).model_dump().items()
        if getattr(reference, section).model_dump()[key] != value
    }
    expected = {
        "uniform_tasks": {("curriculum", "prior")},  # uniform instead of the default proportional prior
        "temperature": {("curriculum", "strategy")},
        "learning_progress": {("curriculum", "strategy")},
        "phased": {("curriculum", "strategy"), ("curriculum", "options")},
        "dwa": {("loss", "task_weighting")},
        "infonce_unweighted": {("loss", "lambda_contrastive"), ("loss", "anchor_weighting")},
        "uncertainty_weighting": {("loss", "task_weighting"), ("loss", "task_weighting_options")},
        "pcgrad": {("loss", "gradient")},
        "upgrad": {("loss", "gradient")},
    }[arm]
    assert differs == expected
    values = {
        "temperature": ("curriculum", "strategy", "temperature"),
        "learning_progress": ("curriculum", "strategy", "learning_progress"),
        "phased": ("curriculum", "strategy", "phased"),
        "dwa": ("loss", "task_weighting", "dwa"),
        "infonce_unweighted": ("loss", "anchor_weighting", "uniform"),
        "uncertainty_weighting": ("loss", "task_weighting", "uncertainty"),
        "pcgrad": ("loss", "gradient", "pcgrad"),
        "upgrad": ("loss", "gradient", "upgrad"),
    }
    if arm in values:
        section, key, value = values[arm]
        assert getattr(getattr(settings, section), key) == value
    if arm == "phased":
        phases = settings.curriculum.options["phases"]
        assert [p["categories"] for p in phases] == [["numbers"], ["noise", "words"]]
        assert sum(p["fraction"] for p in phases) == pytest.approx(1.0)


def test_phased_arm_on_mmlu_and_on_an_unknown_source(tmp_path) -> None:
    from acct.study.arms.phased import default_phases

    base = tiny_settings(tmp_path / "base")
    mmlu = base.model_copy(update={"data": base.data.model_copy(update={"source": "hub"})})
    phases = default_phases(mmlu)
    assert phases[0] == {"categories": ["STEM"], "fraction": pytest.approx(18 / 57)}
    assert phases[1]["categories"] == ["humanities", "social sciences", "other"]
    other = base.model_copy(update={"data": base.data.model_copy(update={"source": "capitals"})})
    with pytest.raises(UsageError, match="curriculum.options.phases"):
        default_phases(other)
