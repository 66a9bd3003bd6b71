"""The ablation's configurations, plan and reports, without training (the study itself runs in
tests/cli/test_ablate.py)."""

from __future__ import annotations

import json

import pytest

from acct.study.plan import DONE_MARKER, plan
from acct.study.layers import registered_arm_settings, settings_differences, settings_digest
from acct.config.commands import AblateSettings
from acct.errors import UsageError
from tests.conftest import tiny_settings


def test_configurations_differ_only_in_what_the_study_varies(tmp_path):
    base = tiny_settings(tmp_path / "ignored", seed=4)
    runs = {name: registered_arm_settings(base, name, 4, tmp_path / name) for name in ("baseline", "contrastive", "full")}
    assert (runs["baseline"].loss.lambda_contrastive, runs["baseline"].curriculum.strategy) == (0.0, "fixed")
    assert (runs["contrastive"].loss.lambda_contrastive, runs["contrastive"].curriculum.strategy) == (0.3, "fixed")
    assert (runs["full"].loss.lambda_contrastive, runs["full"].curriculum.strategy) == (0.3, "uncertainty_gradient")
    for name, s in runs.items():
        assert s.output_dir == tmp_path / name and s.seed == 4 and not s.resume and not s.overwrite
        same = s.model_dump(exclude={"loss", "curriculum", "output_dir"})
        assert same == base.model_dump(exclude={"loss", "curriculum", "output_dir"})
        assert s.optim.max_steps == 240 and s.loss.lambda_cls == 0.7
    assert settings_digest(runs["contrastive"]) != settings_digest(runs["full"])


def test_contrastive_configurations_need_a_positive_lambda(tmp_path):
    base = tiny_settings(tmp_path, **{"loss.lambda_contrastive": 0.0})
    assert registered_arm_settings(base, "baseline", 0, tmp_path / "b").loss.lambda_contrastive == 0.0
    with pytest.raises(UsageError, match="lambda_contrastive > 0"):
        registered_arm_settings(base, "full", 0, tmp_path / "f")
    base = tiny_settings(tmp_path, **{"loss.lambda_contrastive": 0.5})
    assert registered_arm_settings(base, "contrastive", 0, tmp_path / "c").loss.lambda_contrastive == 0.5


def test_ablate_settings():
    assert AblateSettings().arms == ["baseline", "contrastive", "full"]
    assert AblateSettings().seeds == 3  # the seed is the replicate: three is the least that estimates its variance
    # The order given is kept: the first arm is the reference unless --reference names another.
    assert AblateSettings(arms=["full", "contrastive", "baseline"]).arms == ["full", "contrastive", "baseline"]
    assert AblateSettings(arms=["full", "baseline"], reference="baseline").reference == "baseline"
    for bad, match in ((dict(arms=["full"]), "at least two arms"), (dict(arms=["full", "full"]), "each arm once"),
                       (dict(arms=["full", "baseline"], reference="contrastive"), "not one of the arms")):
        with pytest.raises(Exception, match=match):
            AblateSettings(**bad)
    with pytest.raises(Exception, match="extra"):
        AblateSettings(unknown=1)
    for name, field in AblateSettings.model_fields.items():
        assert field.description, name


def fake_run(run_dir, settings, *, last=True, marker=None):
    """A run directory with the files plan() reads (no weights: plan never loads them)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(settings.model_dump_json())
    if last:
        (run_dir / "checkpoints" / "step-1").mkdir(parents=True)
        (run_dir / "checkpoints" / "last").symlink_to("step-1")
    if marker is not None:
        (run_dir / DONE_MARKER).write_text(json.dumps(marker))


def test_plan_reuses_resumes_trains_and_refuses(tmp_path):
    base = tiny_settings(tmp_path / "x")
    study = AblateSettings(output_dir=tmp_path / "study", seeds=1)
    want = {n: registered_arm_settings(base, n, 0, tmp_path / "study" / f"{n}-seed0") for n in ("baseline", "contrastive", "full")}
    fake_run(want["baseline"].output_dir, want["baseline"],
             marker={"status": "finished", "step": 240, "settings_sha256": settings_digest(want["baseline"])})
    fake_run(want["contrastive"].output_dir, want["contrastive"])  # interrupted: a last checkpoint, no marker
    fake_run(want["full"].output_dir, want["full"], last=False, marker={"status": "finished"})  # no checkpoint
    actions = {r.config: r.action for r in plan(study, base)}
    assert actions == {"baseline": "reuse", "contrastive": "resume", "full": "train"}
    assert {r.action for r in plan(study.model_copy(update={"overwrite": True}), base)} == {"train"}

    changed = tiny_settings(tmp_path / "x", **{"optim.max_steps": 241})
    with pytest.raises(UsageError, match=r"trained with other settings \(optim.max_steps\).*--overwrite"):
        plan(study, changed)
    # A setting added to acct after a run was saved counts as unchanged at its default.
    older = json.loads(want["full"].model_dump_json())
    del older["loss"]["gradient"]
    assert settings_differences(older, want["full"]) == []
    assert settings_differences(older, want["full"].model_copy(update={"loss": want["full"].loss.model_copy(
        update={"gradient": "pcgrad"})})) == ["loss.gradient"]
    # Where the run is written and which device it ran on are not what it trained.
    assert settings_differences(json.loads(want["full"].model_dump_json()),
                                want["full"].model_copy(update={"device": "auto", "output_dir": tmp_path})) == []


def test_plan_names_runs_by_config_and_seed(tmp_path):
    base = tiny_settings(tmp_path / "x", seed=3)
    runs = plan(AblateSettings(output_dir=tmp_path / "s", seeds=2), base)
    assert [r.run_dir.name for r in runs] == [
        "baseline-seed3", "contrastive-seed3", "full-seed3", "baseline-seed4", "contrastive-seed4", "full-seed4",
    ]
    assert [r.settings.seed for r in runs] == [3, 3, 3, 4, 4, 4]


def three_arm_plan(tmp_path, max_steps, **study):
    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": max_steps})
    return plan(AblateSettings(output_dir=tmp_path / "study", **{"seeds": 1, **study}), base)


def test_schedule_mirrors_the_engine(tmp_path):
    """The guard's step plan is the one the engine announces when it starts."""
    from acct import engine
    from acct.study.guard import train_questions
    from acct.train.plan import make_plan

    settings = tiny_settings(tmp_path / "run", **{"optim.max_steps": None, "optim.epochs": 2.5})
    started = next(engine.train(settings))
    sched = make_plan(settings, train_questions(settings))
    assert (sched.train_questions, sched.steps_per_epoch, sched.total_steps) == (
        started.num_train, started.steps_per_epoch, started.total_steps)
    assert sched.warmup_steps == round(settings.curriculum.warmup_epochs * started.steps_per_epoch)


def test_guard_refuses_arms_that_would_train_identically(tmp_path):
    # Tiny preset: 100 steps per epoch, one epoch of warm-up, updates every 20 steps: the full arm's
    # curriculum first acts on the batch of step 101.
    with pytest.raises(UsageError) as caught:
        three_arm_plan(tmp_path, 100)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("arms contrastive and full would train identically")
    assert "after step 100 (warm-up 100 steps, updates every 20)" in message and "ends at step 100" in message
    assert "smallest --max-steps that separates them is 101" in message and "--allow-identical" in message
    runs = three_arm_plan(tmp_path, 101)
    assert [r.planned_identical for r in runs] == [[], [], []]
    assert runs[2].schedule.first_update == 100 and runs[2].schedule.adapts
    runs = three_arm_plan(tmp_path, 100, allow_identical=True)
    assert [bool(r.planned_identical) for r in runs] == [False, True, True]
    assert runs[1].planned_identical[0].startswith("full: ")


def test_guard_sees_a_curriculum_that_can_never_act(tmp_path):
    base = tiny_settings(tmp_path / "x", **{"curriculum.floor": 1.0})
    with pytest.raises(UsageError, match="floor 1, which keeps the weights at the proportional prior; no --max-steps separates them"):
        plan(AblateSettings(output_dir=tmp_path / "study", seeds=1), base)
    # The baseline differs from both in its loss, so a two-arm study is fine.
    assert len(plan(AblateSettings(output_dir=tmp_path / "study", seeds=1, arms=["baseline", "full"]), base)) == 2


def test_effective_settings_ignore_what_cannot_act(tmp_path):
    from acct.study.guard import effective_settings
    from acct.train.plan import make_plan

    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": 60})
    a = registered_arm_settings(base, "contrastive", 0, tmp_path / "a")
    b = registered_arm_settings(base, "full", 0, tmp_path / "b")
    assert effective_settings(a, make_plan(a, 800)) == effective_settings(b, make_plan(b, 800))
    longer = base.model_copy(update={"optim": base.optim.model_copy(update={"max_steps": 101})})
    a, b = registered_arm_settings(longer, "contrastive", 0, tmp_path / "a"), registered_arm_settings(longer, "full", 0, tmp_path / "b")
    assert effective_settings(a, make_plan(a, 800)) != effective_settings(b, make_plan(b, 800))
    # A different seed is a different run even when nothing else differs.
    c = registered_arm_settings(base, "full", 1, tmp_path / "c")
    assert effective_settings(c, make_plan(c, 800)) != effective_settings(b, make_plan(b, 800))


def test_learning_progress_needs_a_second_update_before_it_can_act(tmp_path):
    from acct.train.plan import make_plan

    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": 1000})
    lp = registered_arm_settings(base, "learning_progress", 0, tmp_path / "lp")
    full = registered_arm_settings(base, "full", 0, tmp_path / "f")
    # 800 questions, 16 per step: 50 steps per epoch, one epoch of warm-up, updates every 20; the bandit's
    # first update (step 60) records the losses, its first reward is at the next (step 80).
    assert make_plan(full, 800).first_update == 60 and make_plan(lp, 800).first_update == 80


def test_fixed_task_distributions_are_compared_by_value(tmp_path):
    from acct.study.guard import effective_settings
    from acct.train.plan import make_plan

    base = tiny_settings(tmp_path / "x", **{"optim.max_steps": 500})
    arms = {n: registered_arm_settings(base, n, 0, tmp_path / n) for n in ("baseline", "temperature", "uniform_tasks", "learning_progress")}
    equal, unequal = [50, 50, 50], [90, 40, 10]
    probs = {n: make_plan(s, unequal).sampling for n, s in arms.items()}
    assert probs["baseline"] == pytest.approx([90 / 140, 40 / 140, 10 / 140])
    assert probs["temperature"] == pytest.approx([r / sum(roots) for roots in [[90 ** 0.5, 40 ** 0.5, 10 ** 0.5]] for r in roots])
    assert probs["uniform_tasks"] == pytest.approx([1 / 3] * 3) and probs["learning_progress"] is None
    eff = {n: {k: effective_settings(s, make_plan(s, sizes)) for k, sizes in (("eq", equal), ("uneq", unequal))}
           for n, s in arms.items()}
    assert eff["baseline"]["eq"] == eff["temperature"]["eq"] == eff["uniform_tasks"]["eq"]
    assert len({json.dumps(eff[n]["uneq"], sort_keys=True) for n in ("baseline", "temperature", "uniform_tasks")}) == 3
    assert eff["learning_progress"]["eq"] != eff["baseline"]["eq"]


def test_plain_multitask_names_what_a_reference_adds(tmp_path):
    from acct.study.guard import plain_multitask

    base = tiny_settings(tmp_path / "x")
    arm = lambda n: registered_arm_settings(base, n, 0, tmp_path / n)  # noqa: E731
    assert plain_multitask(arm("baseline")) is None
    assert plain_multitask(arm("uniform_tasks")) == "fixed sampling with the uniform prior"
    assert plain_multitask(arm("uniform_tasks"), [20] * 8) is None  # equal sizes: uniform is proportional
    assert plain_multitask(arm("full")) == "lambda_contrastive = 0.3, uncertainty_gradient sampling"
    assert plain_multitask(arm("dwa")) == "dwa task-loss weighting"


def test_trained_identical_by_weights_or_by_the_curriculum_weights_that_drew_batches(tmp_path):
    from acct.study.plan import PlannedRun
    from acct.study.history import trained_identical

    base = tiny_settings(tmp_path / "x")
    runs = [PlannedRun(c, 0, tmp_path / c, registered_arm_settings(base, c, 0, tmp_path / c), "reuse", {"step": 40})
            for c in ("baseline", "contrastive", "full")]
    uniform, moved = {"a": 0.5, "b": 0.5}, {"a": 0.7, "b": 0.3}
    facts = {
        ("baseline", 0): {"weights": {"best": "b1", "last": "b2"}, "curriculum": [(20, uniform), (40, uniform)]},
        ("contrastive", 0): {"weights": {"best": "c1", "last": "c2"}, "curriculum": [(20, uniform), (40, uniform)]},
        # full moved its weights only after its last step: no batch was drawn from them.
        ("full", 0): {"weights": {"best": "f1", "last": "f2"}, "curriculum": [(20, uniform), (40, moved)]},
    }
    found = trained_identical(runs, facts)
    assert [(a, b) for a, b, _, _ in found] == [("contrastive", "full")]  # baseline differs in its loss
    assert "logged curriculum weights" in found[0][3]
    facts["full", 0]["curriculum"] = [(20, moved), (40, moved)]
    assert trained_identical(runs, facts) == []
    facts["baseline", 0]["weights"]["last"] = "c2"
    [(a, b, seed, what)] = trained_identical(runs, facts)
    assert (a, b, seed) == ("baseline", "contrastive", 0)
    assert what.startswith("trained identically (byte-identical model weights, last checkpoint)")
    # Best checkpoints picked before the arms diverged are the same, while their last ones differ:
    # the comparison is empty, but the arms did not train identically.
    facts["baseline", 0]["weights"] = {"best": "c1", "last": "b2"}
    [(a, b, _, what)] = trained_identical(runs, facts)
    assert (a, b) == ("baseline", "contrastive")
    assert "compared best checkpoints are byte-identical" in what and "last checkpoints differ" in what
    assert "trained identically" not in what
