"""The error types acct raises for problems a user can fix, and their exit codes.

Anything raised as an `AcctError` is shown to the user as one line; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class AcctError(Exception):
    """A failure at run time that the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(AcctError):
    """Bad settings, flags, paths or input files (exit code 2)."""

    exit_code = 2


class DataError(UsageError):
    """Input data that cannot be read as multiple-choice examples (exit code 2)."""


class CheckpointError(AcctError):
    """A run directory or checkpoint that is missing, corrupted or does not match (exit code 1)."""
