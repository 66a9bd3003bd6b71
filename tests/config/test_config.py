"""Settings resolution: defaults < preset < YAML < environment < flags, and strict validation."""

from __future__ import annotations

import pytest

from acct.config.train import TrainSettings
from acct.config.notes import contrastive_notice
from acct.config.resolve import resolve_train
from acct.config.environment import unknown_env_warnings
from acct.errors import UsageError


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lr: 0.5\n  epochs: 7\nseed: 4\ncurriculum:\n  floor: 0.2\n")
    monkeypatch.setenv("ACCT_OPTIM__EPOCHS", "9")
    monkeypatch.setenv("ACCT_SEED", "5")
    s = resolve_train({"seed": 6}, preset="tiny", config_file=cfg)
    assert s.model.name_or_path == "tiny"  # preset over default
    assert s.optim.lr == 0.5 and s.curriculum.floor == 0.2  # YAML over preset / default
    assert s.optim.epochs == 9  # environment over YAML
    assert s.seed == 6  # flag over environment
    assert s.optim.weight_decay == 0.01 and s.curriculum.temperature == 2.0


def test_default_settings_are_the_design_hyper_parameters():
    s = TrainSettings()
    assert s.model.name_or_path == "microsoft/deberta-v3-base" and s.data.source == "hub"
    assert (s.optim.lr, s.optim.epochs, s.optim.warmup_ratio, s.optim.weight_decay, s.optim.max_grad_norm) == (2e-5, 10, 0.1, 0.01, 1.0)
    assert (s.loss.lambda_cls, s.loss.lambda_contrastive, s.loss.tau) == (0.7, 0.3, 0.07)
    assert (s.curriculum.temperature, s.curriculum.update_every_n_steps, s.curriculum.warmup_epochs, s.curriculum.floor) == (2.0, 100, 2.0, 0.1)
    assert s.batch.questions_per_batch == 16 and s.model.max_length == 256 and s.data.protocol == "subject-split"


@pytest.mark.parametrize(
    ("flags", "yaml_text", "env", "message"),
    [
        ({"optim": {"lr": -1}}, None, {}, "optim.lr (--lr)"),  # a flag: named as typed
        ({}, "optim:\n  lr: -1\n", {}, "optim.lr (--lr / ACCT_OPTIM__LR)"),
        ({"curriculum": {"strategy": "random"}}, None, {}, "curriculum.strategy"),
        ({"batch": {"batch_size": 10, "tasks_per_batch": 4, "examples_per_task": 4}}, None, {},
         "must equal tasks_per_batch x examples_per_task"),
        ({"batch": {"batch_size": 10}}, None, {}, "batch_size 10 does not divide into tasks_per_batch 4"),
        ({"loss": {"lambda_contrastive": 1.5}}, None, {}, "loss.lambda_contrastive"),
        ({"curriculum": {"temperature": 0}}, None, {}, "curriculum.temperature"),
        ({}, "optim:\n  learning_rate: 1\n", {}, "c.yaml: unknown setting optim.learning_rate"),
        ({}, "optim: [1, 2\n", {}, "malformed YAML"),
        ({}, None, {"ACCT_OPTIM__LR": "fast"}, "optim.lr"),
        ({"data": {"source": "csv"}}, None, {}, "--data-dir"),
        ({"optim": {"lr": 0.1}}, "optim: [1, 2]\n", {}, "optim (in"),
        ({"optim": {"lr": 0.1}}, "optim: 3\n", {}, "a section must be a mapping of settings"),
        ({}, "model:\n  tiny: [64]\n", {}, "model.tiny (in"),
        ({"model": {"tiny": {"hidden_size": 32}}}, "model:\n  tiny: fast\n", {}, "got a str"),
    ],
)
def test_invalid_settings_are_one_clear_error(tmp_path, monkeypatch, flags, yaml_text, env, message):
    import acct.cli.train  # noqa: F401  (registers flag names used in messages)

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = None
    if yaml_text is not None:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml_text)
    with pytest.raises(UsageError) as info:
        resolve_train(flags, preset="tiny", config_file=cfg)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_yaml_section_keeps_its_values_next_to_a_flag(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  epochs: 3\n")
    s = resolve_train({"optim": {"lr": 0.1}}, preset="tiny", config_file=cfg)
    assert (s.optim.lr, s.optim.epochs, s.optim.warmup_ratio) == (0.1, 3, 0.05)


def test_unknown_environment_variables_name_the_closest_setting():
    env = {
        "ACCT_OPTIM_LR": "1", "acct_batch__tasks_per_bach": "2", "ACCT_ZZZZZZZZZZZZ": "3",
        # read by some command or by acct itself: no warning
        "ACCT_OPTIM__LR": "1", "ACCT_SPLIT": "val", "ACCT_SEEDS": "2", "ACCT_CACHE_DIR": "/c", "ACCT_DEBUG": "1",
        "ACCT_MODEL__TINY__HIDDEN_SIZE": "8", "ACCT_LOSS": "{}", "acct_seed": "1", "PATH": "/bin",
    }
    warnings = unknown_env_warnings(env)
    assert len(warnings) == 3, warnings
    assert "environment variable ACCT_OPTIM_LR matches no setting and is ignored; did you mean ACCT_OPTIM__LR?" in warnings
    assert any("acct_batch__tasks_per_bach" in w and "ACCT_BATCH__TASKS_PER_BATCH" in w for w in warnings)
    assert any("ACCT_ZZZZZZZZZZZZ" in w and "ACCT_SECTION__FIELD" in w for w in warnings)


@pytest.mark.parametrize(
    ("flags", "world_size", "num_tasks", "expected"),
    [
        ({"batch": {"tasks_per_batch": 1, "examples_per_task": 1}}, 1, 8, "always 0"),
        ({"batch": {"tasks_per_batch": 4, "examples_per_task": 1}}, 1, 8, "0 except when two task slots"),
        ({"batch": {"tasks_per_batch": 4, "examples_per_task": 1}}, 1, 1, None),  # one task: every pair is positive
        ({"batch": {"tasks_per_batch": 1, "examples_per_task": 2}}, 1, 8, None),
        ({"batch": {"tasks_per_batch": 1, "examples_per_task": 1}, "loss": {"lambda_contrastive": 0}}, 1, 8, None),
        ({"batch": {"tasks_per_batch": 2, "examples_per_task": 2}}, 4, 8, "always 0"),  # one question per process
        ({"batch": {"tasks_per_batch": 2, "examples_per_task": 2}}, 2, 8, "0 except when"),  # a slot's two rows split
        ({"batch": {"tasks_per_batch": 2, "examples_per_task": 2}, "loss": {"gather_negatives": True}}, 2, 8, None),
        ({}, 1, 8, None),
    ],
)
def test_contrastive_notice_when_no_positives_can_exist(flags, world_size, num_tasks, expected):
    notice = contrastive_notice(resolve_train(flags, preset="tiny"), world_size, num_tasks)
    if expected is None:
        assert notice is None
    else:
        assert notice is not None and f"InfoNCE is {expected}" in notice


def test_field_defaults_read_no_environment_variable(monkeypatch):
    from acct.config.train import field_defaults

    plain = field_defaults()
    monkeypatch.setenv("ACCT_OPTIM__LR", "0.5")
    monkeypatch.setenv("ACCT_MODEL__TRUST_REMOTE_CODE", "")
    assert field_defaults() == plain
    assert plain["optim.lr"] == 2e-5 and plain["model.trust_remote_code"] is False
