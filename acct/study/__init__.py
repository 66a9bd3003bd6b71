"""Ablation studies: the arms and their plan, the guard against empty comparisons, the comparison at
the seed level, and the reports.

- `arms`, `builtin_arms`, `study_file`, `sweep`: what the arms are (settings layers, a grid each);
- `plan`, `guard`, `cluster`: which runs train, where, and whether two arms would train identically;
- `history`, `compare`, `replicates`, `stats`: what the runs did and how the arms compare;
- `report`, `plots`: the Markdown report and the figures.

An arm plugin imports `register_ablation_arm` from here (docs/extending.md).
"""

from acct.registry import register_ablation_arm

__all__ = ["register_ablation_arm"]
