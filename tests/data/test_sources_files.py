"""The `files` data source and the column mapping it shares with the `hub` source, on generated files."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from acct.data.columns import ColumnMapping, answer_index
from acct.config.train import DataSettings
from acct.config.resolve import resolve_train
from acct.data.protocols import standard_split, subject_split
from acct.errors import DataError, UsageError
from acct.data.sources.files import load_files_source

# `datasets` is imported by the tests that use it, not when the file is collected (2 s a process).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs the datasets library")


def quiz_rows(tasks=("add", "sub", "mul"), per_task=6, k=4, seed=0, start=0, letters=False):
    """Arithmetic questions in MMLU's hub layout (question, choices, answer, subject), k choices each, all distinct."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + per_task):
        for task in tasks:
            a, b = rng.randint(2, 40), rng.randint(2, 40)
            right = {"add": a + b, "sub": a - b, "mul": a * b}.get(task, a + 2 * b)
            choices = [str(right + d) for d in range(k)]
            rng.shuffle(choices)
            answer = choices.index(str(right))
            rows.append({"question": f"{task} item {i}: {a} and {b}?", "choices": choices,
                         "answer": "ABCDEFGHIJ"[answer] if letters else answer, "subject": task})
    return rows


def write_jsonl(path: Path, rows, blank_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "value, choices, expected",
    [
        (2, ("x", "y", "z"), 2),
        ("1", ("x", "y", "z"), 1),
        ("C", ("x", "y", "z"), 2),
        ("b", ("x", "y", "z"), 1),
        (" z ", ("x", "y", "z"), 2),
        ("J", tuple("0123456789"), 9),  # ten choices: A..J
        ("B", ("A", "B"), 1),  # the letter and the text agree
    ],
)
def test_answer_is_an_index_a_letter_or_the_text_of_a_choice(value, choices, expected):
    assert answer_index(value, choices) == expected


@pytest.mark.parametrize(
    "value, choices, reason",
    [
        (3, ("x", "y", "z"), "does not index 3 choices"),
        (-1, ("x", "y"), "does not index 2 choices"),
        ("D", ("x", "y", "z"), "does not name one of 3 choices"),
        ("wheel", ("x", "y", "z"), "not an index, a letter or the text"),
        ("w", ("x", "y", "z"), "does not name one of 3 choices"),
        ("A", ("B", "A"), "ambiguous"),  # letter A is choice 0, but choice 1 reads "A"
        ("1", ("1", "2"), "ambiguous"),  # index 1 is "2", but choice 0 reads "1"
        (None, ("x", "y"), "no answer"),
        (True, ("x", "y"), "not an index"),
    ],
)
def test_answers_that_name_no_single_choice_are_refused(value, choices, reason):
    with pytest.raises(ValueError, match=reason):
        answer_index(value, choices)


# --------------------------------------------------------------------------- reading files


def test_jsonl_pool_reads_every_row_with_stable_uids(tmp_path):
    rows = quiz_rows(per_task=3, k=10)
    rows[0]["answer"] = "C"  # letters and indices may mix in one file
    source = load_files_source([str(write_jsonl(tmp_path / "quiz.jsonl", rows))])
    assert list(source) == ["all"]
    examples = source["all"]
    assert [ex.uid for ex in examples[:4]] == ["add/all/0", "sub/all/0", "mul/all/0", "add/all/1"]
    assert [len(ex.choices) for ex in examples] == [10] * 9
    assert examples[0].answer == 2 and examples[1].answer == rows[1]["answer"]
    assert examples[4].question == rows[4]["question"] and examples[4].choices == tuple(rows[4]["choices"])


def test_csv_choice_columns_keep_cells_verbatim_and_allow_fewer_choices(tmp_path):
    path = tmp_path / "quiz.csv"
    path.write_text(
        "id,stem,A,B,C,D,key,topic\n"
        '1,"Which is zero, padded?",007,7,None,1.50,A,padding\n'
        "2,Pick the second,first,2.50,,,B,padding\n"
        "3,Which word is a colour?,red,010,,,red,words\n",  # column B looks numeric in every row
        encoding="utf-8",
    )
    mapping = ColumnMapping(question="stem", choices=None, choice_columns=("A", "B", "C", "D"), answer="key",
                            task="topic")
    examples = load_files_source([str(path)], mapping)["all"]
    assert examples[0].choices == ("007", "7", "None", "1.50") and examples[0].question == "Which is zero, padded?"
    assert examples[1].choices == ("first", "2.50") and examples[1].answer == 1
    assert examples[2].choices == ("red", "010") and examples[2].answer == 0 and examples[2].task == "words"


def test_parquet_and_categories(tmp_path):
    import datasets

    rows = quiz_rows(per_task=2, k=5)
    for row in rows:
        row["area"] = "arithmetic" if row["subject"] != "mul" else "products"
    path = tmp_path / "quiz.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    categories: dict[str, str] = {}
    source = load_files_source([str(path)], ColumnMapping(category="area"), categories=categories)
    assert len(source["all"]) == 6 and {len(ex.choices) for ex in source["all"]} == {5}
    assert categories == {"add": "arithmetic", "sub": "arithmetic", "mul": "products"}


def test_files_per_split_become_the_source_splits(tmp_path):
    files = {name: [str(write_jsonl(tmp_path / f"{name}.jsonl", quiz_rows(per_task=n, start=s)))]
             for name, n, s in (("train", 6, 0), ("validation", 2, 100), ("test", 2, 200))}
    source = load_files_source(files)
    assert {k: len(v) for k, v in source.items()} == {"train": 18, "val": 6, "test": 6}
    assert source["val"][0].uid == "add/val/0"
    split = standard_split(source)
    assert (len(split.train), len(split.val), len(split.test)) == (18, 6, 6)
    assert [ex.uid for ex in split.test] == [ex.uid for ex in source["test"]]


def test_globs_are_read_in_sorted_order(tmp_path):
    write_jsonl(tmp_path / "b.jsonl", quiz_rows(tasks=("sub",), per_task=2, seed=1))
    write_jsonl(tmp_path / "a.jsonl", quiz_rows(tasks=("sub",), per_task=2, seed=2, start=10))
    examples = load_files_source([str(tmp_path / "*.jsonl")])["all"]
    assert [ex.question.split(":")[0] for ex in examples] == ["sub item 10", "sub item 11", "sub item 0", "sub item 1"]


def test_datasets_own_cache_holds_the_converted_file(tmp_path):
    import datasets

    load_files_source([str(write_jsonl(tmp_path / "quiz.jsonl", quiz_rows(per_task=1)))])
    cached = list(Path(datasets.config.HF_DATASETS_CACHE).glob("json/*/*/*/*.arrow"))
    assert cached, "datasets wrote no Arrow copy of the file in its cache"


# --------------------------------------------------------------------------- bad rows


def _bad_file(tmp_path: Path, case: str) -> tuple[Path, ColumnMapping]:
    rows = quiz_rows(per_task=2, letters=case == "letter out of range")
    mapping = ColumnMapping()
    if case == "missing column":
        for row in rows:
            del row["subject"]
    elif case == "missing value":
        del rows[3]["question"]  # line 5 of the file: a blank line comes first
    elif case == "answer out of range":
        rows[3]["answer"] = 4
    elif case == "letter out of range":
        rows[3]["answer"] = "E"
    elif case == "empty choices":
        rows[3]["choices"] = []
    elif case == "one choice":
        rows[3]["choices"] = ["only"]
    elif case == "category conflict":
        for i, row in enumerate(rows):
            row["area"] = "x" if i != 3 else "y"
        mapping = ColumnMapping(category="area")
    elif case == "not utf-8":
        path = write_jsonl(tmp_path / "quiz.jsonl", rows, blank_after=2)
        data = path.read_bytes().split(b"\n")
        data[4] = data[4].replace(b"item", b"it\xe9m")  # latin-1, not UTF-8
        path.write_bytes(b"\n".join(data))
        return path, mapping
    elif case == "blank line, mixed answers":
        rows[5]["answer"] = "B"  # numbers and text in one column: `datasets` refuses the blank line then
    elif case == "not json":
        path = write_jsonl(tmp_path / "quiz.jsonl", rows, blank_after=2)
        lines = path.read_text().split("\n")
        lines[4] = lines[4][:-1]
        path.write_text("\n".join(lines))
        return path, mapping
    return write_jsonl(tmp_path / "quiz.jsonl", rows, blank_after=2), mapping


@pytest.mark.parametrize(
    "case, where, reason",
    [
        ("missing column", "", "no column 'subject'"),
        ("missing value", " line 5", "no value in column 'question'"),
        ("answer out of range", " line 5", "answer 4 does not index 4 choices"),
        ("letter out of range", " line 5", "answer 'E' does not name one of 4 choices"),
        ("empty choices", " line 5", "needs at least 2 choices, got 0"),
        ("one choice", " line 5", "needs at least 2 choices, got 1"),
        ("category conflict", " line 5", "task 'add' has category 'y' here but 'x' at"),
        ("not utf-8", " line 5", "not UTF-8"),
        ("not json", " line 5", "not valid JSON"),
        ("blank line, mixed answers", " line 3", "a blank line"),
    ],
)
def test_a_bad_row_names_its_file_and_line(tmp_path, case, where, reason):
    path, mapping = _bad_file(tmp_path, case)
    with pytest.raises(DataError) as info:
        load_files_source([str(path)], mapping)
    message = str(info.value)
    assert message.startswith(f"{path}{where}:"), message
    assert reason in message and "\n" not in message


def test_a_bad_csv_row_names_its_line_and_a_bad_parquet_row_its_row(tmp_path):
    import datasets

    path = tmp_path / "quiz.csv"
    # The quoted question of row 1 spans two lines: row 2 starts on line 4.
    path.write_text('question,A,B,answer,subject\n"two\nlines",x,y,A,t\nok,x,y,C,t\n', encoding="utf-8")
    mapping = ColumnMapping(choices=None, choice_columns=("A", "B"))
    with pytest.raises(DataError, match=rf"^{path} line 4: answer 'C' does not name one of 2 choices"):
        load_files_source([str(path)], mapping)
    rows = quiz_rows(per_task=1)
    rows[2]["choices"] = []
    parquet = tmp_path / "quiz.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    with pytest.raises(DataError, match=rf"^{parquet} row 3: needs at least 2 choices, got 0"):
        load_files_source([str(parquet)])


def test_missing_files_and_unknown_formats_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no file matches"):
        load_files_source([str(tmp_path / "*.jsonl")])
    with pytest.raises(DataError, match="data file not found"):
        load_files_source([str(tmp_path / "none.jsonl")])
    (tmp_path / "quiz.txt").write_text("x\n")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_files_source([str(tmp_path / "quiz.txt")])
    both = write_jsonl(tmp_path / "q.jsonl", quiz_rows(per_task=1))
    with pytest.raises(DataError, match="given for both the train and the test split"):
        load_files_source({"train": [str(both)], "test": [str(both)]})


# --------------------------------------------------------------------------- duplicates and overlap


def test_duplicates_are_collapsed_and_copies_across_tasks_kept_together(tmp_path):
    rows = quiz_rows(per_task=10)
    rows.append(dict(rows[0]))  # an exact copy within task add
    rows.append({**rows[1], "question": "  " + rows[1]["question"].replace(" ", "  ")})  # spacing only
    rows.append({**rows[2], "subject": "other"})  # a copy in another task
    source = load_files_source([str(write_jsonl(tmp_path / "quiz.jsonl", rows))])
    split = subject_split(source, seed=3)
    assert split.report["removed"] == 2
    assert split.report["removed_uids"] == {"add/all/10": "add/all/0", "sub/all/10": "sub/all/0"}
    sides = {ex.uid: name for name in ("train", "val", "test") for ex in getattr(split, name)}
    assert sides["mul/all/0"] == sides["other/all/0"]


def test_standard_refuses_test_questions_that_are_in_the_training_files(tmp_path):
    train = quiz_rows(per_task=6)
    test = quiz_rows(per_task=2, start=100)
    test.append(dict(train[4]))
    files = {"train": [str(write_jsonl(tmp_path / "train.jsonl", train))],
             "validation": [str(write_jsonl(tmp_path / "val.jsonl", quiz_rows(per_task=2, start=50)))],
             "test": [str(write_jsonl(tmp_path / "test.jsonl", test))]}
    source = load_files_source(files)
    with pytest.raises(DataError, match=r"1 of 7 test questions have an exact copy in training \(train; first: 'sub/test/2'\)"):
        standard_split(source)
    split = standard_split(source, allow_overlap=True)
    assert split.report["overlap"]["test"] == ["sub/test/2"]
    assert any("--allow-overlap" in note for note in split.notices)


def test_protocols_name_the_tasks_too_small_for_a_split(tmp_path):
    rows = quiz_rows(per_task=6) + quiz_rows(tasks=("rare",), per_task=2, start=500)
    split = subject_split(load_files_source([str(write_jsonl(tmp_path / "pool.jsonl", rows))]))
    assert [n for n in split.notices if "too few questions" in n] == [
        "split: too few questions to appear in val or test (trained on, not scored there): rare (2 questions)"
    ]
    files = {"train": [str(write_jsonl(tmp_path / "train.jsonl", quiz_rows(per_task=4)))],
             "validation": [str(write_jsonl(tmp_path / "val.jsonl", quiz_rows(per_task=1, start=50)))],
             "test": [str(write_jsonl(tmp_path / "test.jsonl", quiz_rows(tasks=("add", "div"), per_task=1, start=90)))]}
    split = standard_split(load_files_source(files))
    assert "split: 1 task(s) have no training questions (scored in val/test, never trained on): div" in split.notices
    with pytest.raises(DataError, match="needs the val split"):
        standard_split(load_files_source({"train": files["train"], "test": files["test"]}))
    with pytest.raises(DataError, match="needs a training split .* train=GLOB"):
        standard_split(load_files_source(files["train"]))


# --------------------------------------------------------------------------- the hub source


def _hub_dict(columns_rows: dict[str, list[dict]]):
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in columns_rows.items()})


def test_hub_source_reads_any_dataset_through_the_column_mapping(monkeypatch):
    import datasets

    from acct.train.data import data_source

    def renamed(rows):
        return [{"prompt": r["question"], "options": r["choices"], "label": "ABCDE"[r["answer"]], "topic": r["subject"],
                 "field": "maths"} for r in rows]

    fake = _hub_dict({"train": renamed(quiz_rows(per_task=4, k=5)), "validation": renamed(quiz_rows(per_task=1, k=5, start=50)),
                      "test": renamed(quiz_rows(per_task=1, k=5, start=90))})
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or fake)
    data = DataSettings(source="hub", hub_dataset="org/quiz", hub_config="main", question_column="prompt",
                        choices_column="options", answer_column="label", task_column="topic", category_column="field",
                        protocol="standard")
    reader = data_source(data)
    source = reader.load(data, seed=0)
    assert calls == [("org/quiz", "main")]
    assert {k: len(v) for k, v in source.items()} == {"train": 12, "val": 3, "test": 3}
    assert source["test"][0].choices == tuple(quiz_rows(per_task=1, k=5, start=90)[0]["choices"])
    assert reader.categories == {"add": "maths", "sub": "maths", "mul": "maths"}
    assert len(standard_split(source).train) == 12
    # Another hub dataset defaults to its own default config; cais/mmlu to "all", as before.
    assert DataSettings(hub_dataset="org/quiz").hub_config is None
    assert DataSettings().hub_config == "all"


def test_hub_source_names_the_missing_column_and_the_flag(monkeypatch):
    import datasets

    fake = _hub_dict({"test": [{"prompt": "q", "choices": ["a", "b"], "answer": 0, "subject": "s"}]})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    from acct.data.hub import load_hub_source

    with pytest.raises(DataError, match=r"dataset 'cais/mmlu' \(config 'all'\), split test: no column 'question' .*--question-column"):
        load_hub_source()


# --------------------------------------------------------------------------- settings


def test_data_files_settings_shapes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DataSettings(source="files", files="a.jsonl").files == [str(tmp_path / "a.jsonl")]
    split = DataSettings(source="files", files=["train=t.jsonl", "val=v.csv", "test=/d/*.parquet"]).files
    assert split == {"train": [str(tmp_path / "t.jsonl")], "validation": [str(tmp_path / "v.csv")], "test": ["/d/*.parquet"]}
    assert DataSettings(source="files", files={"train": "t.jsonl"}).files == {"train": [str(tmp_path / "t.jsonl")]}
    monkeypatch.setenv("ACCT_DATA__FILES", json.dumps({"test": ["x.jsonl"]}))
    monkeypatch.setenv("ACCT_DATA__SOURCE", "files")
    assert resolve_train({}, preset="tiny").data.files == {"test": [str(tmp_path / "x.jsonl")]}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"source": "files"}, "needs data files"),
        ({"source": "synthetic", "files": ["a.jsonl"]}, "add --data-source files"),
        ({"source": "files", "files": ["train=a.jsonl", "b.jsonl"]}, "names no split"),
        ({"source": "files", "files": {"dev": "a.jsonl"}}, "unknown split 'dev'"),
        ({"source": "files", "files": ["a"], "choices_column": "c", "choice_columns": ["A", "B"]}, "not both"),
        ({"source": "files", "files": ["a"], "choice_columns": ["A"]}, "two or more choice columns"),
    ],
)
def test_data_settings_refuse_what_cannot_be_read(fields, message):
    from acct.config.layers import nest

    with pytest.raises(UsageError, match=message):
        resolve_train(nest({f"data.{k}": v for k, v in fields.items()}), preset="tiny")


def test_the_model_card_of_a_files_run_names_its_files_and_no_mmlu_leaderboard():
    from acct.run.model_card import model_card

    settings = json.loads(resolve_train({"data": {"source": "files", "files": {"train": ["/d/train.jsonl"],
                                                                               "test": ["/d/test.jsonl"]}}}).model_dump_json())
    config = {"settings": settings, "tasks": ["add"], "task_categories": {"add": "other"}, "acct_version": "x",
              "source": {"run_dir": "/r/run", "checkpoint": "best", "step": 1, "val_accuracy": 0.5}, "evaluations": {}}
    card = model_card(config)
    assert "Data: local files (test.jsonl, train.jsonl), subject-split protocol" in card and "MMLU" not in card
    settings["data"]["protocol"] = "standard"
    assert "standard protocol: trained on its train split" in model_card({**config, "settings": settings})
