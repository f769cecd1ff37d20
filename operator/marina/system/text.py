"""Text for status, events and result files: one line, bounded, so a message always fits where it goes."""

from __future__ import annotations

MESSAGE_LIMIT = 1024


def one_line(text: str, limit: int = MESSAGE_LIMIT, *, keep_end: bool = False) -> str:
    """Collapse whitespace to single spaces and cut to `limit` characters.

    A command's own message says what matters first, so its start is kept; a log tail says it last
    (the exception after the traceback), so `keep_end` keeps its end.
    """
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return "..." + flat[-(limit - 3) :] if keep_end else flat[: limit - 3] + "..."
