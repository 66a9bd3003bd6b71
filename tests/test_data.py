"""Tests for acct.data: the CSV and hub loaders, the protocols and the split manifest."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from acct.data import (
    MMLU_CATEGORIES,
    DataSplit,
    Example,
    apply_manifest,
    build_manifest,
    category_of,
    load_csv_source,
    load_hub_source,
    split_counts,
    standard_split,
    subject_split,
)
from acct.errors import DataError, UsageError

REAL_MMLU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlu"

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
    return Example(f"{task} q{i}", ("a", "b", "c", "d"), i % 4, task, f"{task}/{split}/{i}")


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
        ["What is 1,000 + 1?\nAnswer carefully.", "1,001", "", "line one\nline two", "42", "C"],
        ['He said "hi", then left.', "a", "b", "c", "d", " b "],
    ]
    _write_csv(root / "test" / "alpha_test.csv", tricky)
    source = load_csv_source(root)

    assert set(source) == {"dev", "val", "test"}
    first, second = [ex for ex in source["test"] if ex.task == "alpha"]
    assert first.question == "What is 1,000 + 1?\nAnswer carefully."
    assert first.choices == ("1,001", "", "line one\nline two", "42")
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
    assert set(manifest) == {"train", "val", "test", "fingerprints"}
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
    with pytest.raises(DataError, match="test row 0"):
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
