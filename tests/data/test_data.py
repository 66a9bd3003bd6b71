"""Tests for acct.data: the CSV and hub loaders, the protocols and the split manifest."""

from __future__ import annotations

import csv
import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from acct.data.records import MMLU_CATEGORIES, Example, category_of
from acct.data.protocols import DataSplit, split_counts, standard_split, subject_split
from acct.data.manifests import apply_manifest, build_manifest
from acct.data.dedup import collapse_duplicates, question_key
from acct.data.mmlu_csv import load_csv_source
from acct.data.hub import load_hub_source
from acct.errors import DataError, UsageError

REAL_MMLU = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mmlu"

Row = list[str]


def _write_csv(path: Path, rows: list[Row]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _rows(subject: str, split: str, n: int = 3) -> list[Row]:
    return [[f"{subject} {split} question {i}?", "w", "x", "y", "z", "ABCD"[i % 4]] for i in range(n)]


def _layout(root: Path, subjects: tuple[str, ...] = ("alpha", "beta"), splits=("dev", "val", "test")) -> Path:
    for split in splits:
        for subject in subjects:
            _write_csv(root / split / f"{subject}_{split}.csv", _rows(subject, split))
    return root


def _example(task: str, i: int, split: str = "test") -> Example:
    return Example(f"{task} {split} q{i}", ("a", "b", "c", "d"), i % 4, task, f"{task}/{split}/{i}")


def _source(tasks: dict[str, int]) -> dict[str, list[Example]]:
    return {"test": [_example(task, i) for task, n in tasks.items() for i in range(n)]}


def _uids(examples: list[Example]) -> list[str]:
    return [ex.uid for ex in examples]


# --------------------------------------------------------------------------- categories


def test_categories_cover_57_subjects_in_four_groups() -> None:
    assert len(MMLU_CATEGORIES) == 57
    assert Counter(MMLU_CATEGORIES.values()) == {
        "STEM": 18,
        "humanities": 13,
        "social sciences": 12,
        "other": 14,
    }
    assert category_of("high_school_government_and_politics") == "social sciences"
    assert category_of("anatomy") == "other"
    assert category_of("formal_logic") == "humanities"
    assert category_of("race") == "other"
    assert category_of("even_number", {"even_number": "numbers"}) == "numbers"


# --------------------------------------------------------------------------- CSV loader


def test_csv_quoted_fields_with_newlines_and_commas(tmp_path: Path) -> None:
    root = _layout(tmp_path / "mmlu")
    tricky = [
        ["What is 1,000 + 1?\nAnswer carefully.", "1,001", "007", "line one\nline two", "42", "C"],
        ['He said "hi", then left.', "a", "b", "c", "d", " b "],
    ]
    _write_csv(root / "test" / "alpha_test.csv", tricky)
    source = load_csv_source(root)

    assert set(source) == {"dev", "val", "test"}
    first, second = [ex for ex in source["test"] if ex.task == "alpha"]
    assert first.question == "What is 1,000 + 1?\nAnswer carefully."
    assert first.choices == ("1,001", "007", "line one\nline two", "42")
    assert first.answer == 2
    assert first.uid == "alpha/test/0"
    assert second.question == 'He said "hi", then left.'
    assert second.answer == 1 and second.uid == "alpha/test/1"


def test_csv_auxiliary_train_files_become_tasks(tmp_path: Path) -> None:
    root = _layout(tmp_path / "mmlu")
    _write_csv(root / "auxiliary_train" / "race.csv", _rows("race", "aux", 2))
    _write_csv(root / "auxiliary_train" / "arc_easy_auxiliary_train.csv", _rows("arc", "aux", 1))
    aux = load_csv_source(root)["auxiliary_train"]
    assert [(ex.task, ex.uid) for ex in aux] == [
        ("arc_easy", "arc_easy/auxiliary_train/0"),
        ("race", "race/auxiliary_train/0"),
        ("race", "race/auxiliary_train/1"),
    ]


def test_csv_wrong_field_count_names_file_and_start_line(tmp_path: Path) -> None:
    root = _layout(tmp_path / "mmlu")
    # The multi-line first record occupies physical lines 1-2, so the bad row starts on line 3.
    rows = [["two\nlines", "a", "b", "c", "d", "A"], ["q", "a", "b", "c", "D"]]
    bad = _write_csv(root / "val" / "beta_val.csv", rows)
    with pytest.raises(DataError) as info:
        load_csv_source(root)
    message = str(info.value)
    assert str(bad) in message and "line 3" in message
    assert "expected 6 fields" in message and "got 5" in message
    assert "\n" not in message


def test_csv_bad_answer_letter_names_file_and_line(tmp_path: Path) -> None:
    root = _layout(tmp_path / "mmlu")
    rows = [["q1", "a", "b", "c", "d", "A"], ["q2", "a", "b", "c", "d", "E"]]
    bad = _write_csv(root / "dev" / "alpha_dev.csv", rows)
    with pytest.raises(DataError, match="line 2") as info:
        load_csv_source(root)
    assert str(bad) in str(info.value) and "'E'" in str(info.value)


def test_csv_empty_question_is_rejected(tmp_path: Path) -> None:
    root = _layout(tmp_path / "mmlu")
    bad = _write_csv(root / "test" / "beta_test.csv", [["  ", "a", "b", "c", "d", "A"]])
    with pytest.raises(DataError, match="empty question") as info:
        load_csv_source(root)
    assert f"{bad} line 1" in str(info.value)


def test_csv_subject_missing_from_a_split_is_named(tmp_path: Path) -> None:
    root = _layout(tmp_path / "mmlu")
    (root / "val" / "beta_val.csv").unlink()
    with pytest.raises(DataError, match=r"val/ lacks beta"):
        load_csv_source(root)


def test_csv_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_csv_source(tmp_path / "nowhere")
    with pytest.raises(DataError, match="none of dev/, val/, test/"):
        load_csv_source(tmp_path)
    file = tmp_path / "file.csv"
    file.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_csv_source(file)


def test_real_mmlu_release_loads() -> None:
    if not REAL_MMLU.is_dir():
        pytest.skip(f"the real MMLU CSVs are not at {REAL_MMLU} (only present in the development workspace)")
    source = load_csv_source(REAL_MMLU)
    assert {name: len(part) for name, part in source.items()} == {"dev": 285, "val": 1531, "test": 14042}
    subjects = {ex.task for ex in source["test"]}
    assert len(subjects) == 57
    assert subjects == set(MMLU_CATEGORIES)
    assert all(len(ex.choices) == 4 and 0 <= ex.answer < 4 for part in source.values() for ex in part)


# --------------------------------------------------------------------------- subject split


def test_subject_split_partitions_the_pool() -> None:
    source = _source({"a": 100, "b": 40, "c": 3})
    source["dev"] = [_example("a", i, "dev") for i in range(5)]
    source["auxiliary_train"] = [_example("aux", i, "auxiliary_train") for i in range(7)]
    split = subject_split(source, seed=1)

    train, val, test = set(_uids(split.train)), set(_uids(split.val)), set(_uids(split.test))
    assert not (train & val or train & test or val & test)
    pooled = {ex.uid for name in ("test", "dev") for ex in source[name]}
    assert train | val | test == pooled
    assert split.tasks() == ["a", "b", "c"]


def test_subject_split_fractions_per_task() -> None:
    split = subject_split(_source({"a": 100, "b": 40, "c": 3}), fractions=(0.8, 0.1, 0.1))
    counts = {
        name: Counter(ex.task for ex in getattr(split, name)) for name in ("train", "val", "test")
    }
    assert (counts["train"]["a"], counts["val"]["a"], counts["test"]["a"]) == (80, 10, 10)
    assert (counts["train"]["b"], counts["val"]["b"], counts["test"]["b"]) == (32, 4, 4)
    # A small task still gets one held-out example on each side.
    assert (counts["train"]["c"], counts["val"]["c"], counts["test"]["c"]) == (1, 1, 1)


@pytest.mark.parametrize("n", range(0, 30))
def test_split_counts_invariants(n: int) -> None:
    cases = [(0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.1, 0.45, 0.45), (1.0, 0.0, 0.0), (0.9, 0.0, 0.1)]
    for fractions in cases:
        n_train, n_val, n_test = split_counts(n, fractions)
        assert n_train + n_val + n_test == n
        assert min(n_train, n_val, n_test) >= 0
        if n >= 1:
            assert n_train >= 1
        if n >= 3:
            assert n_val >= (1 if fractions[1] > 0 else 0)
            assert n_test >= (1 if fractions[2] > 0 else 0)
        if fractions[1] == 0:
            assert n_val == 0


def test_split_counts_round_half_up() -> None:
    # 15 x 0.1 = 1.5 rounds to 2 (truncation would give 1 and hand train the question).
    assert split_counts(15, (0.8, 0.1, 0.1)) == (11, 2, 2)
    assert split_counts(25, (0.8, 0.1, 0.1)) == (19, 3, 3)  # 2.5 -> 3
    assert split_counts(24, (0.8, 0.1, 0.1)) == (20, 2, 2)  # 2.4 -> 2
    assert split_counts(100, (0.8, 0.1, 0.1)) == (80, 10, 10)
    assert split_counts(10, (0.5, 0.25, 0.25)) == (4, 3, 3)  # 2.5 -> 3 on both sides


def test_subject_split_deterministic_and_seed_dependent() -> None:
    source = _source({"a": 60, "b": 60})
    first, again = subject_split(source, seed=3), subject_split(source, seed=3)
    other = subject_split(source, seed=4)
    assert _uids(first.test) == _uids(again.test) and _uids(first.train) == _uids(again.train)
    assert set(_uids(first.test)) != set(_uids(other.test))


def test_subject_split_ignores_input_order() -> None:
    source = _source({"a": 50, "b": 30})
    shuffled = {"test": list(reversed(source["test"]))}
    assert build_manifest(subject_split(source, seed=7)) == build_manifest(subject_split(shuffled, seed=7))


@pytest.mark.parametrize("fractions", [(0.8, 0.2), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_subject_split_rejects_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(UsageError, match="fraction"):
        subject_split(_source({"a": 10}), fractions=fractions)


def test_subject_split_rejects_duplicate_uids() -> None:
    source = _source({"a": 5})
    source["dev"] = [source["test"][0]]
    with pytest.raises(DataError, match="uid"):
        subject_split(source)


# --------------------------------------------------------------------------- standard split


def test_standard_split_requires_auxiliary_train() -> None:
    source = {"dev": [_example("a", 0, "dev")], "val": [_example("a", 0, "val")], "test": [_example("a", 0)]}
    with pytest.raises(DataError, match="subject-split"):
        standard_split(source)

    source["auxiliary_train"] = [_example("race", i, "auxiliary_train") for i in range(3)]
    split = standard_split(source)
    assert _uids(split.train) == [f"race/auxiliary_train/{i}" for i in range(3)] + ["a/dev/0"]
    assert _uids(split.val) == ["a/val/0"] and _uids(split.test) == ["a/test/0"]
    assert split.tasks() == ["a", "race"]


# --------------------------------------------------------------------------- manifest


def test_manifest_round_trip_through_json() -> None:
    source = _source({"a": 20, "b": 20})
    split = subject_split(source, seed=2)
    manifest = json.loads(json.dumps(build_manifest(split)))
    assert set(manifest) == {"train", "val", "test", "fingerprints", "uid_digests", "dedup"}
    assert apply_manifest(source, manifest) == split


def test_manifest_detects_changed_and_missing_examples() -> None:
    source = _source({"a": 20})
    manifest = build_manifest(subject_split(source))
    victim = manifest["test"][0]

    changed = {
        "test": [
            dataclasses.replace(ex, answer=(ex.answer + 1) % 4) if ex.uid == victim else ex
            for ex in source["test"]
        ]
    }
    with pytest.raises(DataError, match="no longer matches"):
        apply_manifest(changed, manifest)

    missing = {"test": [ex for ex in source["test"] if ex.uid != victim]}
    with pytest.raises(DataError, match=f"no longer matches.*{victim}"):
        apply_manifest(missing, manifest)

    with pytest.raises(DataError, match="malformed"):
        apply_manifest(source, {"train": []})


# --------------------------------------------------------------------------- hub loader


def test_hub_loader_maps_splits_and_subjects(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")

    def table(rows: list[tuple[str, str, list[str], int]]):
        names = ("question", "subject", "choices", "answer")
        return datasets.Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(names)})

    fake = datasets.DatasetDict(
        {
            "dev": table([("d0", "anatomy", ["a", "b", "c", "d"], 0)]),
            "validation": table(
                [
                    ("v0", "anatomy", ["a", "b"], 1),
                    ("v1", "virology", ["a", "b", "c"], 2),
                    ("v2", "anatomy", ["x", "y"], 0),
                ]
            ),
            "test": table([("t0", "virology", ["a", "b", "c", "d"], 3)]),
            "auxiliary_train": table(
                [("x0", "", ["a", "b", "c", "d"], 1), ("x1", "", ["a", "b", "c", "d"], 2)]
            ),
        }
    )
    calls: list[tuple] = []

    def fake_load(*args, **kwargs):
        calls.append(args)
        return fake

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    source = load_hub_source()

    assert calls == [("cais/mmlu", "all")]
    assert set(source) == {"dev", "val", "test", "auxiliary_train"}
    assert [(ex.uid, ex.task, ex.answer) for ex in source["val"]] == [
        ("anatomy/val/0", "anatomy", 1),
        ("virology/val/0", "virology", 2),
        ("anatomy/val/1", "anatomy", 0),
    ]
    assert source["val"][1].choices == ("a", "b", "c")
    assert _uids(source["auxiliary_train"]) == [
        "auxiliary_train/auxiliary_train/0",
        "auxiliary_train/auxiliary_train/1",
    ]
    assert {ex.task for ex in source["auxiliary_train"]} == {"auxiliary_train"}
    assert standard_split(source).tasks() == ["anatomy", "auxiliary_train", "virology"]


def test_hub_loader_rejects_out_of_range_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    columns = {"question": ["q"], "subject": ["s"], "choices": [["a", "b"]], "answer": [2]}
    bad = datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: bad)
    with pytest.raises(DataError, match="test row 1: answer 2 does not index 2 choices"):  # rows count from 1
        load_hub_source()


def test_hub_loader_failure_is_a_one_line_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'cais/mmlu' on the Hub\n(LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as info:
        load_hub_source()
    message = str(info.value)
    assert "could not load" in message and "hub" in message
    assert "--data-source csv --data-dir DIR" in message and "--preset tiny" in message
    assert "\n" not in message


def test_data_split_tasks_union() -> None:
    split = DataSplit(
        train=[_example("b", 0)], val=[_example("a", 1)], test=[_example("c", 2), _example("a", 3)]
    )
    assert split.tasks() == ["a", "b", "c"]


# --------------------------------------------------------------------------- duplicates and leaks


def _copy(ex: Example, task: str, uid: str, *, spacing: bool = False) -> Example:
    """A copy of `ex` under another task/uid; `spacing` changes only its whitespace."""
    question = ex.question.replace(" ", "  ") + "\n" if spacing else ex.question
    return Example(question, ex.choices, ex.answer, task, uid)


def _leaky_source(seed: int = 0) -> dict[str, list[Example]]:
    """Six tasks with copies planted within tasks and across pairs and triples of tasks."""
    source = _source({t: 30 for t in "abcdef"})
    rng = random.Random(seed)
    originals = list(source["test"])
    planted = []
    for i, ex in enumerate(rng.sample(originals, 12)):  # within a task, another split
        planted.append(_copy(ex, ex.task, f"{ex.task}/dev/{i}", spacing=i % 2 == 0))
    for i, ex in enumerate(rng.sample(originals, 15)):  # across tasks: one or two other tasks
        others = [t for t in "abcdef" if t != ex.task]
        for j, task in enumerate(rng.sample(others, 1 + i % 2)):
            planted.append(_copy(ex, task, f"{task}/val/{i}-{j}", spacing=j == 1))
    source["dev"] = [ex for ex in planted if "/dev/" in ex.uid]
    source["val"] = [ex for ex in planted if "/val/" in ex.uid]
    return source


def _leaks(split: DataSplit) -> list[str]:
    trained = {question_key(ex) for ex in split.train}
    return [ex.uid for ex in split.val + split.test if question_key(ex) in trained]


def test_question_key_ignores_whitespace_but_not_case_or_compatibility_forms() -> None:
    ex = Example("What is  x²?\n", ("A cat", " b"), 0, "t", "t/test/0")
    assert question_key(ex) == question_key(Example("What is x²?", ("A cat", "b"), 1, "u", "u/test/0"))
    assert question_key(ex) != question_key(Example("What is x2?", ("A cat", "b"), 0, "t", "t/test/1"))
    assert question_key(ex) != question_key(Example("What is x²?", ("a cat", "b"), 0, "t", "t/test/2"))
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert question_key(Example(composed, ("a", "b"), 0, "t", "1")) == question_key(Example(decomposed, ("a", "b"), 0, "t", "2"))


def test_collapse_duplicates_keeps_the_smallest_uid_of_each_task() -> None:
    a = _example("a", 0)
    copies = [_copy(a, "a", "a/dev/0", spacing=True), _copy(a, "b", "b/test/0"), a]
    kept, removed = collapse_duplicates(copies)
    assert _uids(kept) == ["a/dev/0", "b/test/0"]  # a/dev/0 < a/test/0; the copy in b is another task's
    assert removed == {"a/test/0": "a/dev/0"}
    assert collapse_duplicates(list(reversed(copies)))[1] == removed


@pytest.mark.parametrize("seed", range(6))
def test_subject_split_never_holds_out_a_question_with_a_copy_in_training(seed: int) -> None:
    source = _leaky_source(seed)
    split = subject_split(source, seed=seed)
    assert _leaks(split) == []
    # Nothing is held out twice either, and every question is somewhere exactly once per task.
    keys = [(ex.task, question_key(ex)) for ex in split.train + split.val + split.test]
    assert len(keys) == len(set(keys)) == 180 + 8 * 1 + 7 * 2  # the originals, plus the copies in other tasks
    assert split.report["removed"] == 12
    assert split.report["cross_task_groups"] == 15 and split.report["cross_task_examples"] == 15 + 8 * 1 + 7 * 2


def test_cross_task_copies_land_on_one_side_together() -> None:
    source = _leaky_source(1)
    cross = {question_key(ex) for ex in source["val"]}  # the questions planted in other tasks
    sides: dict[tuple, set[str]] = {}
    for seed in range(4):
        split = subject_split(source, seed=seed)
        for name in ("train", "val", "test"):
            for ex in getattr(split, name):
                sides.setdefault((seed, question_key(ex)), set()).add(name)
        for task in "abcdef":  # every task still reaches val and test
            assert any(ex.task == task for ex in split.val) and any(ex.task == task for ex in split.test)
    assert all(len(found) == 1 for found in sides.values())
    # Some groups are held out together: keeping copies together is not "always train".
    assert {name for (seed, key), found in sides.items() if key in cross for name in found} == {"train", "val", "test"}


def test_subject_split_with_duplicates_ignores_input_order() -> None:
    source = _leaky_source(2)
    shuffled = {name: list(reversed(part)) for name, part in reversed(list(source.items()))}
    assert build_manifest(subject_split(source, seed=5)) == build_manifest(subject_split(shuffled, seed=5))


def test_subject_split_records_and_reports_the_duplicates() -> None:
    split = subject_split(_leaky_source(0), seed=0)
    manifest = json.loads(json.dumps(build_manifest(split)))
    dedup = manifest["dedup"]
    assert dedup["removed"] == 12 and len(dedup["removed_uids"]) == 12
    assert all(gone.split("/")[0] == kept.split("/")[0] for gone, kept in dedup["removed_uids"].items())
    assert "same question and choices" in dedup["rule"]
    assert split.notices[0].startswith("split: 12 duplicate question(s) removed within tasks")
    assert "37 question(s) with copies in other tasks kept on one side" in split.notices[0]


def test_subject_too_small_for_held_out_is_named() -> None:
    split = subject_split(_source({"big": 40, "pair": 2, "single": 1}), seed=0)
    assert split.report["too_small_for_held_out"] == ["pair", "single"]
    assert any("too few questions to appear in val or test" in n and "pair (2 questions)" in n
               and "single (1 question)" in n for n in split.notices)
    # Duplicates count against the size: five rows of one question are one question.
    dup = _source({"big": 40})
    dup["dev"] = [Example("same?", ("a", "b"), 0, "echo", f"echo/dev/{i}") for i in range(5)]
    assert subject_split(dup).report["too_small_for_held_out"] == ["echo"]
    # No notice when every subject reaches val and test.
    assert not any("too few" in n for n in subject_split(_source({"a": 10, "b": 3})).notices)


def _standard_source(test_copies_of_dev: int) -> dict[str, list[Example]]:
    dev = [_example("a", i, "dev") for i in range(5)]
    test = [_example("a", i) for i in range(10)]
    test += [_copy(dev[i], "b", f"b/test/{i}", spacing=True) for i in range(test_copies_of_dev)]
    return {
        "auxiliary_train": [_example("race", i, "auxiliary_train") for i in range(6)]
        + [_copy(_example("race", 0, "auxiliary_train"), "race", "race/auxiliary_train/9")],
        "dev": dev,
        "val": [_example("a", i, "val") for i in range(4)],
        "test": test,
    }


def test_standard_split_refuses_held_out_copies_of_training_questions() -> None:
    with pytest.raises(DataError) as info:
        standard_split(_standard_source(3))
    message = str(info.value)
    assert "3 of 13 test questions have an exact copy in training" in message and "--allow-overlap" in message
    assert "\n" not in message

    allowed = standard_split(_standard_source(3), allow_overlap=True)
    assert allowed.report["overlap"] == {"allowed": True, "val": [], "test": ["b/test/0", "b/test/1", "b/test/2"]}
    assert any("3 of 13 test questions have an exact copy in training" in n and "--allow-overlap" in n
               for n in allowed.notices)


def test_standard_split_collapses_duplicates_within_a_task() -> None:
    split = standard_split(_standard_source(0))
    assert "race/auxiliary_train/9" not in _uids(split.train) and len(split.train) == 6 + 5
    assert split.report["removed"] == 1 and split.report["overlap"]["test"] == []
    assert split.notices[0].startswith("split: 1 duplicate question(s) removed within tasks")


def test_edited_manifest_is_blamed_on_the_manifest_not_the_data() -> None:
    source = _source({"a": 20})
    manifest = build_manifest(subject_split(source))
    edited = json.loads(json.dumps(manifest))
    edited["test"].append(edited["train"].pop())  # a train question moved to test by hand
    with pytest.raises(DataError) as info:
        apply_manifest(source, edited)
    assert "split manifest (split.json) was edited" in str(info.value)
    assert "the manifest changed, not the data" in str(info.value)

    # Changed data, intact manifest: the data is blamed.
    victim = manifest["test"][0]
    changed = {"test": [dataclasses.replace(ex, question="edited") if ex.uid == victim else ex for ex in source["test"]]}
    with pytest.raises(DataError, match="the content of the test examples changed"):
        apply_manifest(changed, manifest)

    # A manifest from before uid digests cannot tell the two apart, and says so.
    old = {k: v for k, v in manifest.items() if k not in ("uid_digests", "dedup")}
    old["test"] = edited["test"]
    old["train"] = edited["train"]
    with pytest.raises(DataError, match="the data changed since the run was made, or the manifest was edited"):
        apply_manifest(source, old)
