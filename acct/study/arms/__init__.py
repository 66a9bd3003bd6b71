"""acct's own ablation arms, one file each (the file's name is the registered name): the three
configurations of the study behind its claim (`baseline`, `contrastive`, `full`), and one arm per
component of the field that a study compares with (each is `baseline` plus that one component).

Contract of an arm (docs/extending.md): a function registered with
`acct.study.register_ablation_arm`, called as `arm(base)` with the study's base
`TrainSettings`, returning the settings layer (a nested mapping) that turns the base into the
arm's configuration; its docstring's first line describes it. `acct ablate --arms a,b,c` runs
them in the order given; the first (or `--reference NAME`) is the reference of every comparison.
"""
