"""`marina prepare`: load a source, check and clean it, split it, version it and store it.

    marina prepare --source SPEC --output DIR_OR_S3 [--target target] [--name NAME]
                   [--test-fraction 0.2] [--seed 42] [--missing drop|mean|median|fail]
                   [--features a,b,c] [--inline-rows JSON_OR_YAML | --rows-file PATH_OR_S3]
                   [--result-file PATH]

SPEC is `builtin:diabetes`, `synthetic:rows=1000,features=5,noise=0.1,seed=7`, `inline` (with
`--inline-rows` or `--rows-file`), `s3://bucket/key.csv[.gz]` or a local CSV path (see
`marina.sources`). The dataset lands in `<output>/<version>/` (train.csv, test.csv, dataset.json).

Result JSON (stdout, one line, and `--result-file`; always < 4096 bytes):
  version      content version (first 16 hex digits of sha256), also the folder name
  sha256       full content sha256
  uri          the versioned folder, e.g. s3://marina/datasets/3f2a9c0e1b7d4a55 (give it to `train --data`)
  name         dataset name
  rows, trainRows, testRows, rowsDropped   row counts after cleaning
  columns      feature columns then the target;  target: the target column
  reused       true when this version was already stored (nothing was written)
  statistics   train-split statistics per column: {mean, std, min, max, missing} (6 significant digits)
  truncated    present only when keys were dropped to fit 4096 bytes (statistics first, then columns)
On failure: exit code 1, `marina prepare: error: <message>` on stderr and `{"error": "<message>"}` in the
result file.
"""

from __future__ import annotations

import argparse
from typing import Any

from marina import dataset, results, sources, storage
from marina.dataset import DataError, PrepareOptions

DROPPABLE = ("statistics", "columns")


def configure(parser: argparse.ArgumentParser) -> None:
    # Values are parsed in `run` (not by argparse types) so that every bad value reaches the result file.
    add = parser.add_argument
    add(
        "--source",
        metavar="SPEC",
        help="builtin:diabetes | synthetic:rows=N,features=N,noise=F,seed=N,missing=F | "
        "inline | s3://bucket/key.csv | local CSV path (required)",
    )
    add(
        "--output",
        metavar="DIR_OR_S3",
        help="folder or s3:// prefix; the dataset goes to <output>/<version>/ (required)",
    )
    add("--target", metavar="COLUMN", default="target", help="target column (default: target)")
    add("--name", metavar="NAME", help="dataset name recorded in dataset.json (default: from the source)")
    add(
        "--test-fraction",
        metavar="F",
        default="0.2",
        help="share of rows held out for testing, in (0, 1) (default: 0.2)",
    )
    add("--seed", metavar="N", default="42", help="seed of the train/test split (default: 42)")
    add(
        "--missing",
        metavar="POLICY",
        default="drop",
        help="missing values: drop | mean | median | fail (default: drop)",
    )
    add(
        "--features",
        metavar="A,B,C",
        help="comma-separated feature columns to keep (default: every column but the target)",
    )
    add(
        "--inline-rows",
        metavar="JSON",
        help='rows for --source inline, as a JSON/YAML list of objects: [{"x":1,"y":2}]',
    )
    add("--rows-file", metavar="PATH_OR_S3", help="file or s3:// object holding the rows for --source inline")
    results.add_result_file(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command("prepare", lambda: prepare_command(args), DROPPABLE, args.result_file)


def options_from_args(args: argparse.Namespace) -> PrepareOptions:
    features = None
    if args.features is not None:
        features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    return PrepareOptions(
        target=args.target.strip(),
        features=features,
        test_fraction=results.parse_value(args.test_fraction, "--test-fraction", float),
        seed=results.parse_value(args.seed, "--seed", int),
        missing=args.missing.strip().lower(),
    )


def inline_text(args: argparse.Namespace) -> str | None:
    if args.inline_rows is not None and args.rows_file is not None:
        raise DataError("give inline rows either with --inline-rows or with --rows-file, not both")
    if args.rows_file is not None:
        return storage.read_bytes(args.rows_file).decode("utf-8-sig", errors="replace")
    return args.inline_rows  # type: ignore[no-any-return]


def prepare_command(args: argparse.Namespace) -> dict[str, Any]:
    if not args.source:
        raise DataError("--source is required")
    if not args.output:
        raise DataError("--output is required")
    options = options_from_args(args)
    loaded = sources.load(args.source, inline_text(args))
    prepared, report = dataset.prepare(loaded.table, options)
    name = (args.name or loaded.default_name).strip()
    description = dataset.manifest(prepared, report, options, name, loaded.description)
    uri, reused = dataset.write(prepared, description, args.output)
    return summary(description, uri, reused)


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
            column: {key: _short(stats[key]) for key in ("mean", "std", "min", "max", "missing")}
            for column, stats in train_stats.items()
        },
    }


def _short(value: float | int) -> float | int:
    return value if isinstance(value, int) else float(f"{value:.6g}")
