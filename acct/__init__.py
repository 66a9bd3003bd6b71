"""acct: adaptive confusion-driven curriculum training for multi-task multiple choice."""

__version__ = "0.1.0"
