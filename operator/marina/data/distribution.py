"""Reference distributions: the training split's quantile bins, counted the same way when serving.

Drift is a change in how inputs spread over the values the model was trained on. Training records,
per feature and for the model's predictions, the inner edges of B quantile bins of the training split
and how many training rows fell into each; serving counts its own rows into the very same bins, so
the two histograms compare bin by bin (PSI and friends) with no distributional assumption. The same
two functions bin on both sides, so a value on an edge lands in the same bin everywhere.

Bin i holds edges[i-1] <= v < edges[i]; bin 0 is everything below the first edge and the last bin
everything at or above the last one, so values outside the training range are counted, not lost.
Ties collapse edges: a feature with k distinct training values gets at most k + 1 bins.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_BINS = 10
FORMAT = "marina.dev/reference-distribution/v1"

Edges = NDArray[np.float64]
Counts = NDArray[np.int64]


def quantile_edges(values: NDArray[np.float64], bins: int = DEFAULT_BINS) -> Edges:
    """Inner edges at the 1/B … (B-1)/B quantiles of the finite values, without duplicates.

    The quantiles are values of the data (the inverse of the empirical CDF, no interpolation), so a
    feature with few distinct values gets edges only at those values and no bin that nothing can fill.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0)
    levels = np.arange(1, bins) / bins
    edges: Edges = np.unique(np.quantile(finite, levels, method="inverted_cdf"))
    return edges


def quantile_edges_of_columns(values: NDArray[np.float64], bins: int = DEFAULT_BINS) -> list[Edges]:
    """`quantile_edges` of every column of a table (rows x columns), from one sort of the table: the
    inverted-CDF quantile at level p is the value of rank ceil(n·p) - 1 among a column's finite values."""
    ordered = np.sort(np.where(np.isfinite(values), values, np.inf), axis=0)
    counts = np.isfinite(values).sum(axis=0)
    levels = np.arange(1, bins) / bins
    edges = []
    for j, n in enumerate(counts.tolist()):
        if n == 0:
            edges.append(np.empty(0))
            continue
        ranks = np.clip(np.ceil(n * levels).astype(np.intp) - 1, 0, n - 1)
        edges.append(np.unique(ordered[ranks, j]))
    return edges


def bin_index(edges: Edges, values: NDArray[np.float64]) -> NDArray[np.intp]:
    """The bin of each value (0 … len(edges)); one vectorised search, nothing per row in Python."""
    return np.searchsorted(edges, values, side="right")


def bin_counts(edges: Edges, values: NDArray[np.float64]) -> Counts:
    counts: Counts = np.bincount(bin_index(edges, values), minlength=len(edges) + 1).astype(np.int64)
    return counts


@dataclass(frozen=True)
class Histogram:
    """Edges and the count of rows per bin (``len(counts) == len(edges) + 1``)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: NDArray[np.float64], bins: int = DEFAULT_BINS) -> Histogram:
        edges = quantile_edges(values, bins)
        return cls(tuple(float(e) for e in edges), tuple(int(c) for c in bin_counts(edges, values)))

    @classmethod
    def from_dict(cls, document: Any, where: str) -> Histogram:
        if not isinstance(document, Mapping):
            raise ValueError(f"{where}: expected an object with edges and counts")
        edges, counts = document.get("edges"), document.get("counts")
        if not isinstance(edges, list) or not isinstance(counts, list) or len(counts) != len(edges) + 1:
            raise ValueError(f"{where}: expected edges and counts with one more count than edges")
        if not all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges):
            raise ValueError(f"{where}.edges: expected numbers")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"{where}.edges: must increase strictly")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(f"{where}.counts: expected non-negative integers")
        return cls(tuple(float(e) for e in edges), tuple(counts))

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @property
    def edge_array(self) -> Edges:
        return np.asarray(self.edges, dtype=np.float64)


@dataclass(frozen=True)
class Reference:
    """The training split's histograms: one per feature (in the model's feature order) and one of the
    model's predictions on those rows."""

    features: tuple[Histogram, ...]
    prediction: Histogram
    bins: int = DEFAULT_BINS

    @classmethod
    def of(
        cls, x_train: NDArray[np.float64], predictions: NDArray[np.float64], bins: int = DEFAULT_BINS
    ) -> Reference:
        features = tuple(Histogram.of(np.asarray(x_train[:, j]), bins) for j in range(x_train.shape[1]))
        return cls(features, Histogram.of(np.asarray(predictions), bins), bins)

    def to_dict(self, feature_names: Sequence[str]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "bins": self.bins,
            "features": {name: h.to_dict() for name, h in zip(feature_names, self.features, strict=True)},
            "prediction": self.prediction.to_dict(),
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], feature_names: Sequence[str]) -> Reference:
        """Parse and validate what `to_dict` wrote; raises ValueError naming the bad part."""
        if document.get("format") != FORMAT:
            raise ValueError(f"reference.format: expected {FORMAT!r}, got {document.get('format')!r}")
        features = document.get("features")
        if not isinstance(features, Mapping) or sorted(features) != sorted(feature_names):
            raise ValueError("reference.features: expected one histogram per feature of the model")
        prediction = document.get("prediction")
        bins = document.get("bins")
        if not isinstance(prediction, Mapping) or not isinstance(bins, int) or bins < 1:
            raise ValueError("reference: expected a prediction histogram and a positive bin count")
        histograms = tuple(
            Histogram.from_dict(features[name], f"reference.features.{name}") for name in feature_names
        )
        return cls(histograms, Histogram.from_dict(prediction, "reference.prediction"), bins)


# -- comparing serving counts with the reference ---------------------------------------------------

#: Share given to an empty bin before taking logarithms: half a row of the smaller sample is the usual
#: continuity correction, so one unseen bin cannot make PSI infinite.
EMPTY_BIN_ROWS = 0.5


def population_stability_index(reference: Sequence[int], serving: Sequence[int]) -> float:
    """PSI = Σ (s_i - r_i)·ln(s_i / r_i) over the bins' shares, empty bins given half a row.

    The usual reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift. Both samples are
    finite, so PSI is never exactly 0 even without drift: see `psi_null_scale`.
    """
    r, s = _shares(reference), _shares(serving)
    return float(np.sum((s - r) * np.log(s / r)))


def psi_null_scale(reference_rows: int, serving_rows: int) -> float:
    """Without drift, PSI / (1/n_r + 1/n_s) is approximately χ² with (bins - 1) degrees of freedom.

    PSI is the symmetrised Kullback-Leibler divergence, whose second-order expansion is the
    χ² statistic of homogeneity scaled by (1/n_r + 1/n_s); so noise alone gives PSI ≈ (B - 1)·scale.
    """
    return 1.0 / reference_rows + 1.0 / serving_rows


def psi_p_value(reference: Sequence[int], serving: Sequence[int]) -> float:
    """The chance of a PSI at least this large from sampling alone (the two histograms equal)."""
    bins = len(reference)
    n_reference, n_serving = int(sum(reference)), int(sum(serving))
    if bins < 2 or n_reference == 0 or n_serving == 0:
        return 1.0
    statistic = population_stability_index(reference, serving) / psi_null_scale(n_reference, n_serving)
    return chi_square_survival(statistic, bins - 1)


def jensen_shannon_distance(reference: Sequence[int], serving: Sequence[int]) -> float:
    """√(JS divergence) in base 2: a distribution-free distance between the two histograms in [0, 1]."""
    r, s = _raw_shares(reference), _raw_shares(serving)
    middle = (r + s) / 2
    divergence = 0.5 * _kl_bits(r, middle) + 0.5 * _kl_bits(s, middle)
    return float(np.sqrt(max(divergence, 0.0)))


def chi_square_survival(x: float, degrees: int) -> float:
    """P(χ²_k ≥ x) for an integer k, in closed form (the regularised upper gamma of half-integers)."""
    if x <= 0:
        return 1.0
    half = x / 2.0
    if degrees % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, degrees // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(half) / math.gamma(1.5)  # (x/2)^(1/2) / Γ(3/2)
    for i in range(1, (degrees + 1) // 2):
        total += math.exp(-half) * term
        term *= half / (i + 0.5)
    return min(1.0, total)


def _raw_shares(counts: Sequence[int]) -> NDArray[np.float64]:
    array = np.asarray(counts, dtype=np.float64)
    shares: NDArray[np.float64] = array / max(array.sum(), 1.0)
    return shares


def _shares(counts: Sequence[int]) -> NDArray[np.float64]:
    array = np.asarray(counts, dtype=np.float64)
    array = np.where(array > 0, array, EMPTY_BIN_ROWS)
    shares: NDArray[np.float64] = array / array.sum()
    return shares


def _kl_bits(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    used = p > 0
    return float(np.sum(p[used] * np.log2(p[used] / q[used])))
