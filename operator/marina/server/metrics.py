"""Prometheus metrics written by hand: request counts and latency, and input statistics for drift.

Per request the hot path does a dict lookup, a bisect and a list append; the statistics of input
features are merged in batches (Chan et al.'s parallel update of Welford's running moments) when
enough rows are pending or when `/metrics` is scraped, so monitoring costs almost nothing per call.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from marina.server.exposition import escape_label, labels, number
from marina.server.histograms import WindowedHistograms
from marina.server.model import TRAINING_STATISTICS, ServedModel

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
FLUSH_ROWS = 8192
#: Rows with a value beyond this magnitude are left out of the running statistics (and counted):
#: their squares, summed over up to 1e10 rows, would overflow float64 and turn the moments into NaN.
STATISTICS_MAGNITUDE = 1e144


@dataclass
class _LatencySeries:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))


class RequestMetrics:
    """Requests and latency histograms keyed by (endpoint, status)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, int], _LatencySeries] = {}
        self.in_flight = 0  # requests whose headers arrived and whose response is not sent yet
        self._refused: dict[int, int] = {}  # connections refused before the app saw a request

    def refuse(self, status: int) -> None:
        """A connection closed by the server's limits (slow or oversized headers, a stalled body)."""
        self._refused[status] = self._refused.get(status, 0) + 1

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        series = self._series.get((endpoint, status))
        if series is None:
            series = self._series[(endpoint, status)] = _LatencySeries()
        series.count += 1
        series.total += seconds
        series.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def count(self, endpoint: str, status: int) -> int:
        series = self._series.get((endpoint, status))
        return 0 if series is None else series.count

    def render(self) -> Iterable[str]:
        yield "# HELP marina_http_requests_in_flight Requests being answered now (this scrape included)."
        yield "# TYPE marina_http_requests_in_flight gauge"
        yield f"marina_http_requests_in_flight {self.in_flight}"
        yield "# HELP marina_http_requests_total HTTP requests answered, by endpoint and status."
        yield "# TYPE marina_http_requests_total counter"
        for (endpoint, status), series in sorted(self._series.items()):
            yield f"marina_http_requests_total{labels(endpoint=endpoint, status=str(status))} {series.count}"
        yield "# HELP marina_http_connections_refused_total Connections closed by the limits, by status."
        yield "# TYPE marina_http_connections_refused_total counter"
        for status, count in sorted(self._refused.items()):
            yield f"marina_http_connections_refused_total{labels(status=str(status))} {count}"
        name = "marina_http_request_duration_seconds"
        yield f"# HELP {name} Time from request start to response sent, by endpoint and status."
        yield f"# TYPE {name} histogram"
        for (endpoint, status), series in sorted(self._series.items()):
            base = f'endpoint="{escape_label(endpoint)}",status="{status}"'
            cumulative = 0
            for bound, hits in zip((*LATENCY_BUCKETS, float("inf")), series.buckets, strict=True):
                cumulative += hits
                yield f'{name}_bucket{{{base},le="{number(bound)}"}} {cumulative}'
            yield f"{name}_sum{{{base}}} {number(series.total)}"
            yield f"{name}_count{{{base}}} {series.count}"


class RunningStatistics:
    """Count, mean, variance, min and max per column of every batch seen, merged exactly.

    Batches wait in a list until FLUSH_ROWS rows are pending or a reader asks, then merge with
    the pairwise update (n = na + nb, δ = mean_b - mean_a, M2 = M2a + M2b + δ²·na·nb/n).
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self._count = 0
        self._mean = np.zeros(width)
        self._m2 = np.zeros(width)
        self._min = np.full(width, np.inf)
        self._max = np.full(width, -np.inf)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self.out_of_range = 0  # rows left out because a value exceeded STATISTICS_MAGNITUDE

    def add(self, batch: np.ndarray) -> None:
        """Queue a (rows, width) batch (or rows values when width is 1); cheap enough for every request."""
        rows = len(batch)
        if rows:
            self._pending.append(batch)
            self._pending_rows += rows
            if self._pending_rows >= FLUSH_ROWS:
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        self._merge(self._in_range(batch.reshape(len(batch), self.width)))

    def _in_range(self, batch: np.ndarray) -> np.ndarray:
        """The rows whose every value is finite and within STATISTICS_MAGNITUDE."""
        inside = np.abs(batch) <= STATISTICS_MAGNITUDE  # False for NaN too
        if inside.all():
            return batch
        keep = inside.all(axis=1)
        self.out_of_range += int(len(batch) - keep.sum())
        kept: np.ndarray = batch[keep]
        return kept

    def _merge(self, batch: np.ndarray) -> None:
        count_b = len(batch)
        if count_b == 0:
            return
        mean_b = batch.mean(axis=0)
        m2_b = ((batch - mean_b) ** 2).sum(axis=0)
        count = self._count + count_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (count_b / count)
        self._m2 = self._m2 + m2_b + delta**2 * (self._count * count_b / count)
        self._count = count
        self._min = np.minimum(self._min, batch.min(axis=0))
        self._max = np.maximum(self._max, batch.max(axis=0))

    @property
    def count(self) -> int:
        self.flush()
        return self._count

    def summary(self) -> dict[str, np.ndarray]:
        """Population variance (M2 / n); NaN for mean and variance before any row arrives."""
        self.flush()
        if self._count == 0:
            nan = np.full(self.width, np.nan)
            return {"mean": nan, "variance": nan, "min": nan, "max": nan}
        return {
            "mean": self._mean.copy(),
            "variance": self._m2 / self._count,
            "min": self._min.copy(),
            "max": self._max.copy(),
        }


class ModelMetrics:
    """Model identity plus running statistics of its input features and of its predictions."""

    def __init__(self, served: ServedModel) -> None:
        self.model, self.version, self.sha256 = served.name, served.version, served.sha256
        self.feature_names = served.feature_names
        self.training = served.training_statistics
        self.features = RunningStatistics(len(self.feature_names))
        self.predictions = RunningStatistics(1)
        reference = served.reference
        self.histograms = None if reference is None else WindowedHistograms(reference)
        # Per category input: values served as all zeros (unseen in training, or null).
        self.unseen = {item.name: 0 for item in served.raw_inputs.items if item.is_category}

    def count_unseen(self, counts: Mapping[str, int]) -> None:
        for name, count in counts.items():
            self.unseen[name] += count

    def record(self, features: np.ndarray, predictions: np.ndarray) -> None:
        self.features.add(features)
        self.predictions.add(predictions)  # 1-D: reshaped to one column when merged
        if self.histograms is not None:
            self.histograms.add(features, predictions)

    def render(self) -> Iterable[str]:
        model = escape_label(self.model)
        yield "# HELP marina_model_info The served model; the value is always 1."
        yield "# TYPE marina_model_info gauge"
        info = labels(
            model=self.model,
            version=self.version,
            sha256=self.sha256,
            n_features=str(len(self.feature_names)),
        )
        yield f"marina_model_info{info} 1"
        yield "# HELP marina_model_features Number of input features the model expects."
        yield "# TYPE marina_model_features gauge"
        yield f'marina_model_features{{model="{model}"}} {len(self.feature_names)}'
        yield from self._render_statistics("feature", self.features, self.feature_names)
        yield from self._render_training()
        yield from self._render_statistics("prediction", self.predictions, None)
        if self.unseen:
            yield from self._render_unseen()
        if self.histograms is not None:
            yield from self.histograms.render(self.model, self.feature_names)

    def _render_unseen(self) -> Iterable[str]:
        """Only for models with category inputs, so a numbers-only model's scrape is unchanged."""
        metric = "marina_unseen_category_values_total"
        yield f"# HELP {metric} Category values served as all zeros: not seen in training, or null."
        yield f"# TYPE {metric} counter"
        for name, count in self.unseen.items():
            yield f"{metric}{labels(model=self.model, input=name)} {count}"

    def _render_training(self) -> Iterable[str]:
        """Training statistics from the artifact, and how far the serving mean has moved from them."""
        model = escape_label(self.model)
        for stat in TRAINING_STATISTICS:
            metric = f"marina_feature_training_{stat}"
            yield f"# HELP {metric} Training split's {stat} of each feature, from the model artifact."
            yield f"# TYPE {metric} gauge"
            for name, stats in self.training.items():
                if stat in stats:
                    yield f'{metric}{{model="{model}",feature="{escape_label(name)}"}} {number(stats[stat])}'
        metric = "marina_feature_mean_shift_stds"
        yield f"# HELP {metric} (serving mean - training mean) / training std per feature: input drift."
        yield f"# TYPE {metric} gauge"
        serving_mean = dict(zip(self.feature_names, self.features.summary()["mean"], strict=True))
        for name, stats in self.training.items():
            mean, std = serving_mean[name], stats.get("std", 0.0)
            if "mean" in stats and std > 0 and not np.isnan(mean):
                shift = (float(mean) - stats["mean"]) / std
                yield f'{metric}{{model="{model}",feature="{escape_label(name)}"}} {number(shift)}'

    def _render_statistics(
        self, kind: str, statistics: RunningStatistics, names: Sequence[str] | None
    ) -> Iterable[str]:
        count = statistics.count
        summary = statistics.summary()
        series = [
            f'model="{escape_label(self.model)}"' + (f',feature="{escape_label(n)}"' if names else "")
            for n in (names or [""])
        ]
        metric = f"marina_{kind}_count"
        yield f"# HELP {metric} Rows seen since start-up (input statistics for drift monitoring)."
        yield f"# TYPE {metric} gauge"
        for label_set in series:
            yield f"{metric}{{{label_set}}} {count}"
        metric = f"marina_{kind}_rows_out_of_range_total"
        yield f"# HELP {metric} Rows left out of the statistics: a value beyond ±{STATISTICS_MAGNITUDE:g}."
        yield f"# TYPE {metric} counter"
        yield f'{metric}{{model="{escape_label(self.model)}"}} {statistics.out_of_range}'
        for stat, text in (
            ("mean", "Running mean"),
            ("variance", "Running population variance"),
            ("min", "Smallest value"),
            ("max", "Largest value"),
        ):
            metric = f"marina_{kind}_{stat}"
            yield f"# HELP {metric} {text} of each {kind} since start-up."
            yield f"# TYPE {metric} gauge"
            for label_set, value in zip(series, summary[stat], strict=True):
                yield f"{metric}{{{label_set}}} {number(float(value))}"


def render(requests: RequestMetrics, model: ModelMetrics | None) -> bytes:
    lines = list(requests.render())
    if model is not None:
        lines.extend(model.render())
    return ("\n".join(lines) + "\n").encode()
