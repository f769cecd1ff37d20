"""The hand-written Prometheus text exporter Marina's server used before prometheus_client (commit
ec2ad62, `server/metrics.py` and `server/histograms.py`), kept only as the baseline of
benchmarks/metrics_bench.py. It renders the same structures (`RequestMetrics`, `ModelMetrics`) the
server keeps today, so a run compares the exposition alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from marina.serving.histograms import WindowedHistograms
from marina.serving.metrics import (
    LATENCY_BUCKETS,
    STATISTICS_MAGNITUDE,
    ModelMetrics,
    RequestMetrics,
    RunningStatistics,
)
from marina.serving.model import TRAINING_STATISTICS


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in pairs.items()) + "}"


def number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(requests: RequestMetrics, model: ModelMetrics | None) -> bytes:
    lines = list(_requests(requests))
    if model is not None:
        lines.extend(_model(model))
    return ("\n".join(lines) + "\n").encode()


def _requests(requests: RequestMetrics) -> Iterable[str]:
    series_by_key = requests._series
    yield "# HELP marina_http_requests_in_flight Requests being answered now (this scrape included)."
    yield "# TYPE marina_http_requests_in_flight gauge"
    yield f"marina_http_requests_in_flight {requests.in_flight}"
    yield "# HELP marina_http_requests_total HTTP requests answered, by endpoint and status."
    yield "# TYPE marina_http_requests_total counter"
    for (endpoint, status), series in sorted(series_by_key.items()):
        yield f"marina_http_requests_total{labels(endpoint=endpoint, status=str(status))} {series.count}"
    yield "# HELP marina_http_connections_refused_total Connections closed by the limits, by status."
    yield "# TYPE marina_http_connections_refused_total counter"
    for status, count in sorted(requests._refused.items()):
        yield f"marina_http_connections_refused_total{labels(status=str(status))} {count}"
    name = "marina_http_request_duration_seconds"
    yield f"# HELP {name} Time from request start to response sent, by endpoint and status."
    yield f"# TYPE {name} histogram"
    for (endpoint, status), series in sorted(series_by_key.items()):
        base = f'endpoint="{escape_label(endpoint)}",status="{status}"'
        cumulative = 0
        for bound, hits in zip((*LATENCY_BUCKETS, float("inf")), series.buckets, strict=True):
            cumulative += hits
            yield f'{name}_bucket{{{base},le="{number(bound)}"}} {cumulative}'
        yield f"{name}_sum{{{base}}} {number(series.total)}"
        yield f"{name}_count{{{base}}} {series.count}"


def _model(metrics: ModelMetrics) -> Iterable[str]:
    model = escape_label(metrics.model)
    yield "# HELP marina_model_info The served model; the value is always 1."
    yield "# TYPE marina_model_info gauge"
    info = labels(
        model=metrics.model,
        version=metrics.version,
        sha256=metrics.sha256,
        n_features=str(len(metrics.feature_names)),
    )
    yield f"marina_model_info{info} 1"
    yield "# HELP marina_model_features Number of input features the model expects."
    yield "# TYPE marina_model_features gauge"
    yield f'marina_model_features{{model="{model}"}} {len(metrics.feature_names)}'
    yield from _statistics(metrics.model, "feature", metrics.features, metrics.feature_names)
    yield from _training(metrics)
    yield from _statistics(metrics.model, "prediction", metrics.predictions, None)
    if metrics.unseen:
        name = "marina_unseen_category_values_total"
        yield f"# HELP {name} Category values served as all zeros: not seen in training, or null."
        yield f"# TYPE {name} counter"
        for column, count in metrics.unseen.items():
            yield f"{name}{labels(model=metrics.model, input=column)} {count}"
    if metrics.histograms is not None:
        yield from _bins(metrics.histograms, metrics.model, metrics.feature_names)


def _training(metrics: ModelMetrics) -> Iterable[str]:
    model = escape_label(metrics.model)
    for stat in TRAINING_STATISTICS:
        metric = f"marina_feature_training_{stat}"
        yield f"# HELP {metric} Training split's {stat} of each feature, from the model artifact."
        yield f"# TYPE {metric} gauge"
        for name, stats in metrics.training.items():
            if stat in stats:
                yield f'{metric}{{model="{model}",feature="{escape_label(name)}"}} {number(stats[stat])}'
    metric = "marina_feature_mean_shift_stds"
    yield f"# HELP {metric} (serving mean - training mean) / training std per feature: input drift."
    yield f"# TYPE {metric} gauge"
    serving_mean = dict(zip(metrics.feature_names, metrics.features.summary()["mean"], strict=True))
    for name, stats in metrics.training.items():
        mean, std = serving_mean[name], stats.get("std", 0.0)
        if "mean" in stats and std > 0 and not np.isnan(mean):
            shift = (float(mean) - stats["mean"]) / std
            yield f'{metric}{{model="{model}",feature="{escape_label(name)}"}} {number(shift)}'


def _statistics(
    model: str, kind: str, statistics: RunningStatistics, names: Sequence[str] | None
) -> Iterable[str]:
    count = statistics.count
    summary = statistics.summary()
    series = [
        f'model="{escape_label(model)}"' + (f',feature="{escape_label(n)}"' if names else "")
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
    yield f'{metric}{{model="{escape_label(model)}"}} {statistics.out_of_range}'
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


def _bins(histograms: WindowedHistograms, model: str, feature_names: Sequence[str]) -> Iterable[str]:
    histograms.windows()
    metric = "marina_feature_bin_rows_total"
    yield f"# HELP {metric} Serving rows per training-quantile bin of each feature since start-up."
    yield f"# TYPE {metric} counter"
    for name, counts in zip(feature_names, histograms.total.features, strict=True):
        yield from _series(metric, model, counts, feature=name)
    metric = "marina_prediction_bin_rows_total"
    yield f"# HELP {metric} Predictions per training-quantile bin of the predictions since start-up."
    yield f"# TYPE {metric} counter"
    yield from _series(metric, model, histograms.total.prediction)
    metric = "marina_feature_reference_bin_ratio"
    yield f"# HELP {metric} Share of the training rows in each bin of each feature (the reference)."
    yield f"# TYPE {metric} gauge"
    for name, histogram in zip(feature_names, histograms.reference.features, strict=True):
        counts = np.asarray(histogram.counts, dtype=np.float64)
        yield from _series(metric, model, counts / max(counts.sum(), 1.0), feature=name)


def _series(metric: str, model: str, values: np.ndarray, feature: str | None = None) -> Iterable[str]:
    for index, value in enumerate(values.tolist()):
        pairs = {"model": model, **({"feature": feature} if feature is not None else {}), "bin": str(index)}
        yield f"{metric}{labels(**pairs)} {number(float(value))}"
