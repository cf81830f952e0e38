"""The one exception type meddap raises for bad input, and the last resort for the others."""

from __future__ import annotations

import os
import traceback


class MeddapError(Exception):
    """Bad input or configuration; the message is one sentence naming the file or key."""


def crash_sentence(err: BaseException, what: str, log: str | os.PathLike[str]) -> str:
    """Append `err`'s traceback to `log`; return one sentence naming `what` failed and `log`.

    The last resort for an exception that is no MeddapError: the user reads one line, the
    traceback waits in the log for whoever debugs it.
    """
    with open(log, "a") as out:
        traceback.print_exception(err, file=out)
    lines = str(err).strip().splitlines()
    detail = f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__
    return f"{what} failed unexpectedly ({detail}); the traceback is in {log}"
