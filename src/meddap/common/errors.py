"""The one exception type meddap raises for bad input."""


class MeddapError(Exception):
    """Bad input or configuration; the message is one sentence naming the file or key."""
