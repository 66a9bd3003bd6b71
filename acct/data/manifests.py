"""The split manifest a run writes (uids and fingerprints of its train / val / test examples), so
that later commands score exactly the run's held-out examples, and its reading back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from acct.data.protocols import DataSplit
from acct.data.records import Example
from acct.errors import DataError

_MANIFEST_SPLITS: tuple[str, ...] = ("train", "val", "test")


def build_manifest(split: DataSplit) -> dict[str, Any]:
    """A JSON-ready record of which uids a run used, with fingerprints of their content.

    `uid_digests` fingerprint the uid lists themselves, so that an edited manifest is told apart
    from changed data; `dedup` records what the protocol collapsed or kept together.
    """
    manifest: dict[str, Any] = {name: [ex.uid for ex in getattr(split, name)] for name in _MANIFEST_SPLITS}
    manifest["fingerprints"] = {name: fingerprint(getattr(split, name)) for name in _MANIFEST_SPLITS}
    manifest["uid_digests"] = {name: _uid_digest(manifest[name]) for name in _MANIFEST_SPLITS}
    manifest["dedup"] = split.report
    return manifest


def _uid_digest(uids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(uids), ensure_ascii=False).encode("utf-8")).hexdigest()


def fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over the examples' content, in order."""
    digest = hashlib.sha256()
    for ex in examples:
        # JSON keeps field boundaries unambiguous even when text contains separators.
        record = [ex.question, list(ex.choices), ex.answer, ex.task, ex.uid]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def apply_manifest(source: Mapping[str, list[Example]], manifest: Mapping[str, Any]) -> DataSplit:
    """Rebuild a run's split from freshly loaded data, refusing data that has changed since.

    A uid list that no longer matches its own recorded digest means the manifest was edited,
    and the message says so rather than blaming the data.
    """
    _check_manifest_shape(manifest)
    digests = manifest.get("uid_digests")
    if isinstance(digests, Mapping):
        for name in _MANIFEST_SPLITS:
            if digests.get(name) != _uid_digest(manifest[name]):
                raise DataError(
                    f"the run's split manifest (split.json) was edited: its {name} list no longer matches the "
                    "digest recorded when the run was made; the manifest changed, not the data. Restore the "
                    "original split.json"
                )
    by_uid: dict[str, Example] = {}
    for part in source.values():
        for ex in part:
            by_uid[ex.uid] = ex

    parts: dict[str, list[Example]] = {}
    for name in _MANIFEST_SPLITS:
        uids: list[str] = manifest[name]
        missing = [uid for uid in uids if uid not in by_uid]
        if missing:
            raise DataError(
                "the data no longer matches the run's split manifest: "
                f"{len(missing)} {name} example(s) are missing from the source (first: {missing[0]!r})"
            )
        parts[name] = [by_uid[uid] for uid in uids]
        if fingerprint(parts[name]) != manifest["fingerprints"][name]:
            if isinstance(digests, Mapping):  # the uid lists are intact: the data changed
                raise DataError(
                    "the data no longer matches the run's split manifest: "
                    f"the content of the {name} examples changed since the run was made"
                )
            raise DataError(
                f"the {name} examples no longer match the fingerprint in the run's split manifest (split.json): "
                "the data changed since the run was made, or the manifest was edited"
            )
    return DataSplit(train=parts["train"], val=parts["val"], test=parts["test"], report=dict(manifest.get("dedup") or {}))


def _check_manifest_shape(manifest: Mapping[str, Any]) -> None:
    if not isinstance(manifest, Mapping):
        raise DataError("the split manifest is malformed: expected a JSON object")
    for name in _MANIFEST_SPLITS:
        uids = manifest.get(name)
        if not isinstance(uids, list) or not all(isinstance(uid, str) for uid in uids):
            raise DataError(f"the split manifest is malformed: {name!r} must be a list of uids")
    prints = manifest.get("fingerprints")
    if not isinstance(prints, Mapping) or not all(isinstance(prints.get(n), str) for n in _MANIFEST_SPLITS):
        raise DataError("the split manifest is malformed: 'fingerprints' must map train/val/test to hashes")
