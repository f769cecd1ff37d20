"""Exact medians of columns read in chunks, in memory bounded by a histogram, not by the row count.

Each pass counts the values of the interval still holding the wanted rank into `BINS` equal-width
bins and keeps the bin that holds it, bounded by that bin's own smallest and largest value (binning
is monotone, so exactly the bin's values lie between those two). Once an interval holds at most
`COLLECT` values, one last pass collects and sorts them. Rows ~ 1e9 take three passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

BINS = 4096
COLLECT = 1 << 16


@dataclass
class _Target:
    column: int
    rank: int  # 0-based rank among the column's present values
    low: float
    high: float
    below: int = 0  # present values < low
    inside: int = -1  # present values in [low, high]; unknown before the first pass
    value: float | None = None


def exact_medians(
    read: Callable[[], Iterable[np.ndarray]], counts: np.ndarray, minimum: np.ndarray, maximum: np.ndarray
) -> np.ndarray:
    """The median of each column's present values (as numpy.nanmedian), from repeated reads of the rows."""
    targets = []
    for j, n in enumerate(int(c) for c in counts):
        for rank in sorted({(n - 1) // 2, n // 2}):
            targets.append(_Target(j, rank, float(minimum[j]), float(maximum[j]), inside=n))
    while any(t.value is None for t in targets):
        open_targets = [t for t in targets if t.value is None]
        for t in open_targets:
            if t.low == t.high:
                t.value = t.low
        collecting = [t for t in open_targets if t.value is None and t.inside <= COLLECT]
        narrowing = [t for t in open_targets if t.value is None and t.inside > COLLECT]
        _pass(read, collecting, narrowing)
    medians = np.empty(len(counts))
    for j in range(len(counts)):
        picked = [t.value for t in targets if t.column == j]
        medians[j] = np.mean(np.array(picked, dtype=np.float64)) if len(picked) > 1 else picked[0]
    return medians


def _pass(
    read: Callable[[], Iterable[np.ndarray]], collecting: list[_Target], narrowing: list[_Target]
) -> None:
    collected: list[list[np.ndarray]] = [[] for _ in collecting]
    bins = [np.zeros(BINS, dtype=np.int64) for _ in narrowing]
    lows = [np.full(BINS, np.inf) for _ in narrowing]
    highs = [np.full(BINS, -np.inf) for _ in narrowing]
    for chunk in read():
        for target, into in zip(collecting, collected, strict=True):
            values = chunk[:, target.column]
            into.append(values[(values >= target.low) & (values <= target.high)])
        for k, target in enumerate(narrowing):
            values = chunk[:, target.column]
            values = values[(values >= target.low) & (values <= target.high)]
            index = _bin_of(values, target.low, target.high)
            bins[k] += np.bincount(index, minlength=BINS)
            np.minimum.at(lows[k], index, values)
            np.maximum.at(highs[k], index, values)
    for target, parts in zip(collecting, collected, strict=True):
        values = np.sort(np.concatenate(parts)) if parts else np.empty(0)
        target.value = float(values[target.rank - target.below])
    for k, target in enumerate(narrowing):
        cumulative = np.cumsum(bins[k])
        chosen = int(np.searchsorted(cumulative, target.rank - target.below, side="right"))
        target.below += int(cumulative[chosen - 1]) if chosen else 0
        target.inside = int(bins[k][chosen])
        target.low, target.high = float(lows[k][chosen]), float(highs[k][chosen])


def _bin_of(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Monotone in the value: floor((v - low) / (high - low) · BINS), clipped to the last bin."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - low) / (high - low) * BINS
    return np.clip(np.nan_to_num(scaled, nan=0.0, posinf=BINS - 1), 0, BINS - 1).astype(np.intp)
