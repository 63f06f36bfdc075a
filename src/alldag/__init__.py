"""alldag: reproducible ALL blood-smear classification, evaluation and explanation."""

__version__ = "0.1.0"


class AlldagError(Exception):
    """A user-facing error: its message is one line that says what went wrong and how to fix it."""
