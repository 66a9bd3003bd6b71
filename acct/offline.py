"""Offline start-up: whether everything a run needs from the Hugging Face hub is in the local cache.

A run on hub pieces (the `hub` data source's dataset, a tokenizer and an encoder named by hub
id) loads them one after the other. Offline, each missing one would fail on its own, and a
user who fixed one would meet the next; `check_cached` looks for all of them in the local
caches first (without loading them) and names every missing one in a single error.

Offline means HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE, HF_DATASETS_OFFLINE) is set, by the user
or by `acct train`, which sets it when the hub does not answer (`mark_switched`). Online, the
libraries download what is missing and nothing is checked here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from acct.data.sources import hub_dataset
from acct.data.sources.files import quiet_datasets
from acct.errors import UsageError

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
# Any one of these makes a tokenizer loadable (fast tokenizers, sentencepiece, WordPiece, BPE).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spm.model", "sentencepiece.bpe.model", "vocab.txt",
                    "vocab.json")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

_switched = False  # set when acct itself turned offline mode on, because the hub did not answer


def mark_switched() -> None:
    """Record that offline mode was switched on by acct (the hub did not answer), not by the user."""
    global _switched
    _switched = True


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)


def _why() -> str:
    if _switched:
        return "the Hugging Face hub did not answer"
    named = [v for v in _OFFLINE_VARS if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]
    return f"{named[0]} is set" if named else "offline"


def _on_hub(name: str | None) -> bool:
    """A name that is neither the tiny preset nor a local path: a hub id."""
    from acct.config.fields import TINY

    return bool(name) and name != TINY and not Path(name).expanduser().exists()


def _cached(repo_id: str, filenames: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    # try_to_load_from_cache answers a path for a cached file, None or a "known missing" marker otherwise.
    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


def _dataset_cached(dataset: str, config: str | None) -> bool:
    import datasets


    # Offline, the builder comes from the cache or not at all; nothing is downloaded or prepared here.
    with quiet_datasets():
        try:
            datasets.load_dataset_builder(dataset, config)
        except Exception:  # the library says "not cached" with several exception types
            return False
    return True


def missing_pieces(settings: Any) -> list[str]:
    """The hub pieces `settings` needs that are not in the local caches, as phrases for an error line."""
    missing: list[str] = []
    data, model = settings.data, settings.model

    hub = hub_dataset(data)
    if hub is not None and not _dataset_cached(*hub):
        config = "" if hub[1] is None else f" (config {hub[1]!r})"
        missing.append(f"dataset {hub[0]!r}{config}")
    if settings.resume or settings.init_from is not None:
        return missing  # the encoder and tokenizer come from a checkpoint
    tokenizer = model.tokenizer or model.name_or_path
    if _on_hub(tokenizer) and not _cached(tokenizer, _TOKENIZER_FILES):
        missing.append(f"tokenizer {tokenizer!r}")
    if _on_hub(model.name_or_path):
        parts = [what for what, files in (("config", ("config.json",)), ("weights", _WEIGHT_FILES))
                 if not _cached(model.name_or_path, files)]
        if parts:
            missing.append(f"model {model.name_or_path!r} ({' and '.join(parts)})")
    return missing


def check_cached(settings: Any) -> None:
    """Offline, refuse a run whose hub pieces are not all cached, naming every missing one at once."""
    if not offline():
        return
    missing = missing_pieces(settings)
    if not missing:
        return
    fixes = []
    if any(m.startswith("dataset") for m in missing):
        fixes.append("--data-source csv --data-dir DIR (the MMLU release) or --data-source files --data-files PATH")
    if any(m.startswith("tokenizer") for m in missing):
        fixes.append("--tokenizer DIR")
    if any(m.startswith("model") for m in missing):
        fixes.append("--model DIR")
    raise UsageError(
        f"offline ({_why()}), and {len(missing)} of what the run needs {'is' if len(missing) == 1 else 'are'} not in "
        f"the local Hugging Face cache: {'; '.join(missing)}. Run once with network to cache "
        f"{'it' if len(missing) == 1 else 'them'}, use local copies ({', '.join(fixes)}), or --preset tiny to run offline"
    )
