"""The `Example` record every other part of acct consumes, the split names of a source, and the MMLU
subject -> category map.

A *source* is a `dict[str, list[Example]]` keyed by source split name ("dev", "val", "test", and,
when present, "train" (a dataset's own training split) and "auxiliary_train" (MMLU's)); every
loader returns one, and every protocol takes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EVAL_SPLITS: tuple[str, ...] = ("dev", "val", "test")
AUX_SPLIT = "auxiliary_train"
TRAIN_SPLIT = "train"  # a dataset's own training split (files and hub sources; MMLU has none)
ANSWER_LETTERS = "ABCD"


@dataclass(frozen=True)
class Example:
    """One multiple-choice question.

    Construction does not validate (it runs once per row of large files); loaders
    check K >= 2 and 0 <= answer < K before building one.
    """

    question: str
    choices: tuple[str, ...]
    answer: int
    task: str
    uid: str


# The original release (hendrycks/test, categories.py) maps each subject to a
# subcategory and each subcategory to one of four categories; this is that composition,
# written out so a reader can check a subject without following two tables.
MMLU_CATEGORIES: dict[str, str] = {
    # STEM: physics, chemistry, biology, computer science, math, engineering
    "abstract_algebra": "STEM",
    "astronomy": "STEM",
    "college_biology": "STEM",
    "college_chemistry": "STEM",
    "college_computer_science": "STEM",
    "college_mathematics": "STEM",
    "college_physics": "STEM",
    "computer_security": "STEM",
    "conceptual_physics": "STEM",
    "electrical_engineering": "STEM",
    "elementary_mathematics": "STEM",
    "high_school_biology": "STEM",
    "high_school_chemistry": "STEM",
    "high_school_computer_science": "STEM",
    "high_school_mathematics": "STEM",
    "high_school_physics": "STEM",
    "high_school_statistics": "STEM",
    "machine_learning": "STEM",
    # humanities: history, philosophy, law
    "formal_logic": "humanities",
    "high_school_european_history": "humanities",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_law": "humanities",
    "world_religions": "humanities",
    # social sciences: politics, culture, economics, geography, psychology
    "econometrics": "social sciences",
    "high_school_geography": "social sciences",
    "high_school_government_and_politics": "social sciences",
    "high_school_macroeconomics": "social sciences",
    "high_school_microeconomics": "social sciences",
    "high_school_psychology": "social sciences",
    "human_sexuality": "social sciences",
    "professional_psychology": "social sciences",
    "public_relations": "social sciences",
    "security_studies": "social sciences",
    "sociology": "social sciences",
    "us_foreign_policy": "social sciences",
    # other: business, health, misc.
    "anatomy": "other",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_medicine": "other",
    "global_facts": "other",
    "human_aging": "other",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "nutrition": "other",
    "professional_accounting": "other",
    "professional_medicine": "other",
    "virology": "other",
}


def category_of(task: str, extra: Mapping[str, str] | None = None) -> str:
    """The category of `task`: `extra` first (e.g. the synthetic suite's), then MMLU, else "other"."""
    if extra is not None and task in extra:
        return extra[task]
    return MMLU_CATEGORIES.get(task, "other")
