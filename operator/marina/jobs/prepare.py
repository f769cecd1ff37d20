"""`marina prepare`: load a source, check and clean it, split it, version it and store it.

    marina prepare --source SPEC --output DIR_OR_S3 [--target target] [--name NAME]
                   [--test-fraction 0.2] [--seed 42] [--missing drop|mean|median|fail]
                   [--features a,b,c] [--max-categories 100]
                   [--inline-rows JSON_OR_YAML | --rows-file PATH_OR_S3] [--result-file PATH]
                   [--phase all|shard|reduce --shards N --partials DIR_OR_S3 [--shard-index I]]

SPEC is `builtin:diabetes`, `synthetic:rows=1000,features=5,noise=0.1,seed=7`, `inline` (with
`--inline-rows` or `--rows-file`), `s3://bucket/key.csv[.gz]` or a local CSV path (see
`marina.data.sources`), or `served`: the rows a ModelDeployment served joined with their truth, read from
its logs prefix `--served-logs` (and the truth files under `--served-uploads`) over the last
`--served-window-hours`; with another SPEC and `--served-logs`, that source's rows and then the served
ones (see `marina.data.served_source`). The splits land as Parquet parts under `<output>/parts/` and the
manifest in `<output>/<version>/dataset.json` (see `marina.data.dataset`).

Sharded (a Dataset's `parallelism`, an Indexed Job of N pods, `--phase shard`): pod I reads its share
of the source (whole part groups of source rows near the I-th of N even cuts of its bytes), writes its
parts and leaves its partial result under `--partials`; then one pod (`--phase reduce`) merges them into
the dataset one pod would have written (see `marina.data.dataset`). A shard's result: partial (its
document's URI), shard, shards, firstRow, rowsIn, peakMemoryBytes.

Result JSON (stdout, one line, and `--result-file`; always < 4096 bytes):
  version      content version (first 16 hex digits of sha256), also the folder name
  sha256       full content sha256
  uri          the versioned folder, e.g. s3://marina/datasets/3f2a9c0e1b7d4a55 (give it to `train --data`)
  name         dataset name
  rows, trainRows, testRows, rowsDropped   row counts after cleaning
  columns      feature columns then the target;  target: the target column
  reused       true when this version was already stored (nothing was written)
  shards       pods that prepared it (1, or --shards of the reduce)
  statistics   train-split statistics per column: {mean, std, min, max, missing} (6 significant digits)
  peakMemoryBytes  the container's cgroup peak (or the process's VmHWM outside one): what to size limits by
  truncated    present only when keys were dropped to fit 4096 bytes (statistics first, then columns)
  format       marina.dev/result/v1
On failure: `marina prepare: error: <message>` on stderr, the failure's kind and message in the
result file and the kind's exit code (see `marina.contract`).
"""

from __future__ import annotations

import argparse
from typing import Any

from marina import storage
from marina.contract import DATASET, SERVED_SOURCE, PrepareRequest
from marina.data import dataset, served_source, sources
from marina.data.dataset import PrepareOptions
from marina.jobs import progress, results
from marina.jobs.progress import Progress
from marina.jobs.sharding import shard_index
from marina.system.cpu import blas_beside_a_reader
from marina.system.memory import memory_used

DROPPABLE = ("statistics", "columns")


def configure(parser: argparse.ArgumentParser) -> None:
    PrepareRequest.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command(
        "prepare", lambda: prepare_command(PrepareRequest.from_args(args)), DROPPABLE, args.result_file
    )


def options_of(request: PrepareRequest) -> PrepareOptions:
    return PrepareOptions(
        target=request.target,
        features=request.features,
        test_fraction=request.test_fraction,
        seed=request.seed,
        missing=request.missing,
        max_categories=request.max_categories,
    )


def inline_text(request: PrepareRequest) -> str | None:
    if request.rows_file is not None:
        return storage.read_bytes(request.rows_file).decode("utf-8-sig", errors="replace")
    return request.inline_rows


def open_request_source(request: PrepareRequest) -> sources.Source:
    """The source a request names: with --served-logs, the served rows alone (--source served) or after
    the source's rows."""
    logs = served_logs_of(request)
    if logs is not None and request.source == SERVED_SOURCE:
        return served_source.open_served(logs, request.target)
    source = sources.open_source(request.source, inline_text(request))
    if logs is None:
        return source
    return served_source.union(source, served_source.open_served(logs, request.target, required=False))


def served_logs_of(request: PrepareRequest) -> served_source.ServedLogs | None:
    if request.served_logs is None:
        return None

    def given(value: int | None, key: str) -> int:
        return int(DATASET.default(f"{served_source.FIELD}.{key}")) if value is None else value

    return served_source.ServedLogs(
        request.served_logs,
        request.served_uploads,
        given(request.served_window_hours, "windowHours"),
        given(request.served_label_delay_hours, "labelDelayHours"),
        given(request.served_max_rows, "maxRows"),
    )


def prepare_command(request: PrepareRequest) -> dict[str, Any]:
    options = options_of(request)
    source = open_request_source(request)
    name = (request.name or source.default_name).strip()
    if request.phase == "shard":
        return shard_command(request, source, options)
    if request.phase == "reduce":
        prepared = dataset.reduce_shards(
            source, options, request.output, name, str(request.partials), request.shards
        )
    else:
        progress = Progress("marina prepare", source.expected_rows, request.progress)
        with blas_beside_a_reader():
            prepared = dataset.prepare_source(source, options, request.output, name, progress.rows)
        progress.done()
    assert prepared.uri is not None
    return {
        **summary(prepared.description, prepared.uri, prepared.reused),
        "shards": request.shards,
        **memory_used(),
    }


def shard_command(request: PrepareRequest, source: sources.Source, options: PrepareOptions) -> dict[str, Any]:
    """One share of the source: its parts under the output's parts folder, its partial result under
    `--partials` for the reduce."""
    index = shard_index(request.shard_index, request.shards)
    share = None if source.expected_rows is None else -(-source.expected_rows // request.shards)
    uri = progress.shard_uri(request.progress, index) if request.progress else None
    reporter = Progress(f"marina prepare shard {index}", share, uri)
    with blas_beside_a_reader():
        partial, result = dataset.prepare_shard(
            source, options, request.output, str(request.partials), request.shards, index, reporter.rows
        )
    reporter.done()
    return {
        "partial": partial,
        "shard": index,
        "shards": request.shards,
        "firstRow": result.counts.first_row,
        "rowsIn": result.counts.rows,
        **memory_used(),
    }


def summary(description: dict[str, Any], uri: str, reused: bool) -> dict[str, Any]:
    train_stats = description["statistics"]["train"]
    return {
        "version": description["version"],
        "sha256": description["sha256"],
        "uri": uri,
        "name": description["name"],
        "rows": description["rows"],
        "trainRows": description["trainRows"],
        "testRows": description["testRows"],
        "rowsDropped": description["cleaning"]["rowsDropped"],
        "columns": description["columns"],
        "target": description["target"],
        "reused": reused,
        "statistics": {
            column: {key: _short(stats[key]) for key in _SUMMARY_KEYS if key in stats}
            for column, stats in train_stats.items()
        },
    }


# Numbers: mean, std, min, max; categories: how many the train split holds. Both: missing values.
_SUMMARY_KEYS = ("mean", "std", "min", "max", "categories", "missing")


def _short(value: float | int) -> float | int:
    return value if isinstance(value, int) else float(f"{value:.6g}")
