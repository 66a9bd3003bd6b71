"""Settings for every command: one strict pydantic model per command, and how values resolve.

Precedence, lowest first: field defaults < preset < YAML file < ``ACCT_*`` environment variables
(nested with ``__``, e.g. ``ACCT_OPTIM__LR``) < command-line flags. The package stays free of
torch so that ``acct --help`` is fast.

- `fields`: value types and checks every model shares;
- `train`: `TrainSettings` (`acct train`, every run of `acct ablate`), section by section;
- `commands`: the settings of `evaluate`, `predict`, `ablate`, `inspect-confusion`;
- `layers`: presets, YAML files, merges;
- `resolve`: resolution and one-line validation errors;
- `environment`: ``ACCT_*`` variables read outside the models, trust in remote code;
- `notes`: notices derived from settings.
"""
