"""acct's own task-sampling strategies, one per module; each registers itself on import.

The registry (acct.registry.strategies) imports a module only when its strategy is used.
"""
