"""Errors of the harness itself (not of the ring under test)."""


class UsageError(Exception):
    """Bad input from the user (an option, a name, a file): one line, exit 2."""
