"""Multiple-choice data: records, the sources that produce them, and the protocols that split them.

- `records`: the `Example` record, split names, MMLU's subject -> category map;
- `columns`: a table's columns -> `Example`s;
- `sources`, `files`, `mmlu_csv`, `hub`, `synthetic`: the built-in data sources and their loaders;
- `dedup`, `protocols`, `manifests`: duplicates, the evaluation protocols, a run's split manifest;
- `tokenize`, `batching`: encoding, caching and collation; the per-task batch sampler.

A data-source plugin imports `Example` and `register_data_source` from here.
"""

from acct.data.records import Example
from acct.registry import register_data_source

__all__ = ["Example", "register_data_source"]
