"""One-line messages: whitespace collapsed, cut to the limit at the end that matters."""

from __future__ import annotations

import pytest

from marina.system.text import MESSAGE_LIMIT, one_line


@pytest.mark.parametrize(
    ("text", "limit", "keep_end", "expected"),
    [
        ("a\n  b\tc ", MESSAGE_LIMIT, False, "a b c"),
        ("first second third", 12, False, "first sec..."),
        ("first second third", 12, True, "...ond third"),
    ],
    ids=["collapses", "keeps-the-start", "keeps-the-end"],
)
def test_one_line(text: str, limit: int, keep_end: bool, expected: str) -> None:
    assert one_line(text, limit, keep_end=keep_end) == expected


@pytest.mark.parametrize("keep_end", [False, True])
def test_long_messages_fit_the_limit(keep_end: bool) -> None:
    assert len(one_line("x " * 5000, keep_end=keep_end)) == MESSAGE_LIMIT
