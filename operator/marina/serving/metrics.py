"""Prometheus metrics: request counts and latency, and input statistics for drift.

Per request the hot path does a dict lookup and a bisect; the answered rows reach the statistics of
input features in batches (`marina.serving.recording`), merged with Chan et al.'s parallel update of
Welford's running moments, so monitoring costs almost nothing per call.
`prometheus_client` writes the exposition: custom collectors turn these structures into metric
families at scrape time, so its per-sample locks never touch the hot path
(benchmarks/metrics_bench.py measures the difference against hand-written text and native
instruments).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from marina.model.answers import CATEGORY, LEVERAGE, RANGE, REASONS, Reason, Verdicts
from marina.serving.histograms import WindowedHistograms
from marina.serving.model import TRAINING_STATISTICS, ServedModel

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
_BUCKET_LABELS = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")  # the `le` labels
#: CPU seconds, resident memory and open files of this process (read from /proc at scrape time).
_PROCESS = ProcessCollector(registry=None)
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

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "marina_http_requests_in_flight",
            "Requests being answered now (this scrape included).",
            value=self.in_flight,
        )
        requests = CounterMetricFamily(
            "marina_http_requests_total",
            "HTTP requests answered, by endpoint and status.",
            labels=("endpoint", "status"),
        )
        duration = HistogramMetricFamily(
            "marina_http_request_duration_seconds",
            "Time from request start to response sent, by endpoint and status.",
            labels=("endpoint", "status"),
        )
        for (endpoint, status), series in sorted(self._series.items()):
            key = [endpoint, str(status)]
            requests.add_metric(key, series.count)
            cumulative = zip(_BUCKET_LABELS, accumulate(series.buckets), strict=True)
            duration.add_metric(key, [(bound, float(count)) for bound, count in cumulative], series.total)
        refused = CounterMetricFamily(
            "marina_http_connections_refused_total",
            "Connections closed by the limits, by status.",
            labels=("status",),
        )
        for status, count in sorted(self._refused.items()):
            refused.add_metric([str(status)], count)
        yield requests
        yield refused
        yield duration


class RunningStatistics:
    """Count, mean, variance, min and max per column of every batch seen, merged exactly.

    Each batch merges at once with the pairwise update (n = na + nb, δ = mean_b - mean_a,
    M2 = M2a + M2b + δ²·na·nb/n); callers hand over batches, not single rows.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self._count = 0
        self._mean = np.zeros(width)
        self._m2 = np.zeros(width)
        self._min = np.full(width, np.inf)
        self._max = np.full(width, -np.inf)
        self.out_of_range = 0  # rows left out because a value exceeded STATISTICS_MAGNITUDE

    def add(self, batch: np.ndarray) -> None:
        """Merge a (rows, width) batch (or rows values when width is 1)."""
        if len(batch):
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
        return self._count

    def summary(self) -> dict[str, np.ndarray]:
        """Population variance (M2 / n); NaN for mean and variance before any row arrives."""
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
        # The guard's verdicts: rows outside per reason, and per reason and input (range, category).
        self.answers = served.answers
        self.outside = dict.fromkeys(REASONS, 0)
        self.outside_inputs: dict[Reason, int] = {}
        if self.answers is not None:
            self.outside_inputs = {Reason(RANGE, name): 0 for name in self.answers.range_inputs}
            self.outside_inputs.update({Reason(CATEGORY, name): 0 for name in self.answers.category_inputs})

    def count_extrapolation(self, features: np.ndarray, predictions: np.ndarray, at: float) -> None:
        """A batch of answered rows (a `recording.Sink`): the guard's verdict on each, counted."""
        if self.answers is not None and len(features):
            self.count_verdicts(self.answers.verdicts(features))

    def count_verdicts(self, verdicts: Verdicts) -> None:
        if not verdicts.outside.any():
            return
        self.outside[LEVERAGE] += int(verdicts.leverage.sum())
        self.outside[RANGE] += int(verdicts.range.any(axis=1).sum())
        self.outside[CATEGORY] += int(verdicts.category.any(axis=1).sum())
        for reason, count in verdicts.counts().items():
            if reason.input is not None:
                self.outside_inputs[reason] = self.outside_inputs.get(reason, 0) + count

    def count_unseen(self, counts: Mapping[str, int]) -> None:
        for name, count in counts.items():
            self.unseen[name] += count

    def record(self, features: np.ndarray, predictions: np.ndarray, at: float | None = None) -> None:
        """A batch of answered rows (a `recording.Sink`): statistics and drift histograms."""
        self.features.add(features)
        self.predictions.add(predictions)  # 1-D: reshaped to one column when merged
        if self.histograms is not None:
            self.histograms.add(features, predictions, at)

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "marina_model_info",
            "The served model; the value is always 1.",
            labels=("model", "version", "sha256", "n_features"),
        )
        info.add_metric([self.model, self.version, self.sha256, str(len(self.feature_names))], 1)
        yield info
        features = GaugeMetricFamily(
            "marina_model_features", "Number of input features the model expects.", labels=("model",)
        )
        features.add_metric([self.model], len(self.feature_names))
        yield features
        yield from self._collect_statistics("feature", self.features, self.feature_names)
        yield from self._collect_training()
        yield from self._collect_statistics("prediction", self.predictions, None)
        if self.unseen:  # only for models with category inputs, so a numbers-only model's scrape is unchanged
            unseen = CounterMetricFamily(
                "marina_unseen_category_values_total",
                "Category values served as all zeros: not seen in training, or null.",
                labels=("model", "input"),
            )
            for name, count in self.unseen.items():
                unseen.add_metric([self.model, name], count)
            yield unseen
        if self.histograms is not None:
            yield from _collect_bins(self.histograms, self.model, self.feature_names)
        if self.answers is not None:
            yield from self._collect_extrapolation()

    def _collect_extrapolation(self) -> Iterator[Metric]:
        rows = CounterMetricFamily(
            "marina_extrapolation_rows_total",
            "Rows outside the training data, by the guard's reason (leverage, range, category); a row "
            "outside for two reasons counts under both.",
            labels=("model", "reason"),
        )
        for check, count in self.outside.items():
            rows.add_metric([self.model, check], count)
        yield rows
        inputs = CounterMetricFamily(
            "marina_extrapolation_input_rows_total",
            "Rows outside the training data because of one input: beyond its range, or an unseen category.",
            labels=("model", "reason", "input"),
        )
        for cause, count in sorted(self.outside_inputs.items(), key=lambda item: str(item[0])):
            inputs.add_metric([self.model, cause.check, str(cause.input)], count)
        yield inputs

    def _collect_training(self) -> Iterator[Metric]:
        """Training statistics from the artifact, and how far the serving mean has moved from them."""
        for stat in TRAINING_STATISTICS:
            family = self._per_feature(
                f"marina_feature_training_{stat}",
                f"Training split's {stat} of each feature, from the model artifact.",
            )
            for name, stats in self.training.items():
                if stat in stats:
                    family.add_metric([self.model, name], stats[stat])
            yield family
        shift = self._per_feature(
            "marina_feature_mean_shift_stds",
            "(serving mean - training mean) / training std per feature: input drift.",
        )
        serving_mean = dict(zip(self.feature_names, self.features.summary()["mean"], strict=True))
        for name, stats in self.training.items():
            mean, std = serving_mean[name], stats.get("std", 0.0)
            if "mean" in stats and std > 0 and not np.isnan(mean):
                shift.add_metric([self.model, name], (float(mean) - stats["mean"]) / std)
        yield shift

    def _per_feature(self, name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=("model", "feature"))

    def _collect_statistics(
        self, kind: str, statistics: RunningStatistics, names: Sequence[str] | None
    ) -> Iterator[Metric]:
        count = statistics.count
        summary = statistics.summary()
        label_names = ("model", "feature") if names else ("model",)
        series = [[self.model, name] for name in names] if names else [[self.model]]
        rows = GaugeMetricFamily(
            f"marina_{kind}_count",
            "Rows seen since start-up (input statistics for drift monitoring).",
            labels=label_names,
        )
        for label_values in series:
            rows.add_metric(label_values, count)
        yield rows
        out_of_range = CounterMetricFamily(
            f"marina_{kind}_rows_out_of_range_total",
            f"Rows left out of the statistics: a value beyond ±{STATISTICS_MAGNITUDE:g}.",
            labels=("model",),
        )
        out_of_range.add_metric([self.model], statistics.out_of_range)
        yield out_of_range
        for stat, text in (
            ("mean", "Running mean"),
            ("variance", "Running population variance"),
            ("min", "Smallest value"),
            ("max", "Largest value"),
        ):
            family = GaugeMetricFamily(
                f"marina_{kind}_{stat}", f"{text} of each {kind} since start-up.", labels=label_names
            )
            for label_values, value in zip(series, summary[stat].tolist(), strict=True):
                family.add_metric(label_values, value)
            yield family


def _collect_bins(
    histograms: WindowedHistograms, model: str, feature_names: Sequence[str]
) -> Iterator[Metric]:
    """Cumulative counts per bin as counters, and the reference's share of each bin."""
    histograms.windows()  # rotate, so the windows are current
    rows = CounterMetricFamily(
        "marina_feature_bin_rows_total",
        "Serving rows per training-quantile bin of each feature since start-up.",
        labels=("model", "feature", "bin"),
    )
    for name, counts in zip(feature_names, histograms.total.features, strict=True):
        for index, count in enumerate(counts.tolist()):
            rows.add_metric([model, name, str(index)], count)
    yield rows
    predictions = CounterMetricFamily(
        "marina_prediction_bin_rows_total",
        "Predictions per training-quantile bin of the predictions since start-up.",
        labels=("model", "bin"),
    )
    for index, count in enumerate(histograms.total.prediction.tolist()):
        predictions.add_metric([model, str(index)], count)
    yield predictions
    shares = GaugeMetricFamily(
        "marina_feature_reference_bin_ratio",
        "Share of the training rows in each bin of each feature (the reference).",
        labels=("model", "feature", "bin"),
    )
    for name, histogram in zip(feature_names, histograms.reference.features, strict=True):
        counts = np.asarray(histogram.counts, dtype=np.float64)
        for index, share in enumerate((counts / max(counts.sum(), 1.0)).tolist()):
            shares.add_metric([model, name, str(index)], share)
    yield shares


class Scrape(Collector):
    """What one server exports: its requests, its model (once loaded) and its process."""

    def __init__(
        self, requests: RequestMetrics, model: ModelMetrics | None, extra: Sequence[Collector] = ()
    ) -> None:
        self.requests, self.model, self.extra = requests, model, extra

    def collect(self) -> Iterable[Metric]:
        yield from self.requests.collect()
        if self.model is not None:
            yield from self.model.collect()
        for collector in self.extra:
            yield from collector.collect()
        yield from _PROCESS.collect()


def render(requests: RequestMetrics, model: ModelMetrics | None, extra: Sequence[Collector] = ()) -> bytes:
    """The text exposition format 0.0.4 (`exposition.CONTENT_TYPE`), which every Prometheus reads.
    `extra`: more collectors (the payload log's)."""
    return generate_latest(Scrape(requests, model, extra))
