"""Ranges as a JSON schema states them, and the words a message uses when a value falls outside."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marina.contract.failures import SpecError


@dataclass(frozen=True)
class Bound:
    """A closed, open or half-open interval, as a JSON schema's minimum/maximum/exclusive* state it."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def __contains__(self, value: float) -> bool:
        low, high = self.minimum, self.maximum
        above = low is None or (value > low if self.exclusive_minimum else value >= low)
        below = high is None or (value < high if self.exclusive_maximum else value <= high)
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.minimum is None else plain(self.minimum)
        high = "inf" if self.maximum is None else plain(self.maximum)
        opening = "(" if self.exclusive_minimum or self.minimum is None else "["
        closing = ")" if self.exclusive_maximum or self.maximum is None else "]"
        return f"{opening}{low}, {high}{closing}"

    def problem(self, value: float) -> str | None:
        """Why `value` is outside, in words a status or an error message can carry; None when inside."""
        return None if value in self else f"must be in {self}, got {value!r}"

    def check(self, where: str, value: float) -> None:
        problem = self.problem(value)
        if problem:
            raise SpecError(f"{where}: {problem}")


def plain(number: float) -> str:
    """A number as a person writes it: 64, not 64.0."""
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def check_choice(where: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SpecError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")


def either(values: Sequence[str]) -> str:
    """`a, b or c`, for messages."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
