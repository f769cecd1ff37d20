"""Partial statistics of a train split: what one pass (or one shard of it) gathers, and how shards meet.

A pass over train rows gathers, per cross-validation fold (folds by a seeded hash of the row number),
the fold's `SufficientStatistics`, plus a seeded bottom-k sample of the rows for the reference
distribution. Gathering is the same whether one pod reads every part or N pods each read every N-th
part: each shard writes its share as JSON (the statistics, exact float round trips) and a Parquet
file (its sample with the rows' numbers), both named by the sha256 of their bytes, and the reduce
merges the shards in index order. Merging is exact in algebra (Chan's update), so the model equals the
single-pod one to rounding.

Files under the partials folder: `shard-<i>-of-<N>-<sha256>.json` and its sample, `<sha256>.parquet`
(the sha256 of the sample's canonical float64 bytes, as for dataset parts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from marina import storage
from marina.data import parts, sampling
from marina.data.table import DataError
from marina.solver import SufficientStatistics
from marina.solver.crossval import merge

FORMAT = "marina.dev/partial-statistics/v1"
ROW_COLUMN = "row"


@dataclass
class Gathered:
    held_out: list[SufficientStatistics]
    sample: sampling.BottomSample

    @classmethod
    def empty(cls, width: int, folds: int, seed: int) -> Gathered:
        return cls([SufficientStatistics(width) for _ in range(folds)], sampling.BottomSample(width, seed))

    def add(self, first_row: int, chunk: np.ndarray, seed: int) -> None:
        x, y = chunk[:, :-1], chunk[:, -1]
        if len(self.held_out) == 1:  # no cross-validation: every row, without a masked copy
            self.held_out[0].update(x, y)
        else:
            fold_of = sampling.folds(first_row, len(y), seed, len(self.held_out))
            for k, statistics in enumerate(self.held_out):
                chosen = fold_of == k
                statistics.update(x[chosen], y[chosen])
        self.sample.add(np.arange(first_row, first_row + len(y)), x)

    @property
    def statistics(self) -> SufficientStatistics:
        return merge(self.held_out)

    def absorb(self, other: Gathered) -> None:
        self.held_out = [a.merge(b) for a, b in zip(self.held_out, other.held_out, strict=True)]
        self.sample.add(other.sample.numbers, other.sample.rows)


def gather(chunks: Iterable[tuple[int, np.ndarray]], width: int, folds: int, seed: int) -> Gathered:
    gathered = Gathered.empty(width, folds, seed)
    for first_row, chunk in chunks:
        gathered.add(first_row, chunk, seed)
    return gathered


def write(gathered: Gathered, folder: str, dataset_sha: str, shards: int, index: int, seed: int) -> str:
    """Store one shard's share; returns the JSON's URI. Same rows, same bytes, same names."""
    sample = gathered.sample
    order = sample.order()
    table = np.column_stack([sample.numbers[order].astype(np.float64), sample.rows[order]])
    columns = [ROW_COLUMN, *(f"x{j}" for j in range(sample.rows.shape[1]))]
    sample_name = hashlib.sha256(parts.canonical(table).data).hexdigest() + parts.SUFFIX
    storage.write_bytes(
        storage.join(folder, sample_name), parts.to_parquet(table, columns), "application/vnd.apache.parquet"
    )
    document = {
        "format": FORMAT,
        "dataset": dataset_sha,
        "shards": shards,
        "index": index,
        "seed": seed,
        "statistics": [s.to_dict() for s in gathered.held_out],
        "sample": sample_name,
    }
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    uri = storage.join(folder, f"shard-{index}-of-{shards}-{hashlib.sha256(body).hexdigest()}.json")
    storage.write_bytes(uri, body, "application/json")
    return uri


def read_all(folder: str, dataset_sha: str, shards: int, seed: int, width: int, folds: int) -> Gathered:
    """Every shard's share merged in index order; refuses a missing, extra or foreign shard by name."""
    names = storage.list_folder(folder)
    merged = Gathered.empty(width, folds, seed)
    for index in range(shards):
        prefix = f"shard-{index}-of-{shards}-"
        found = sorted({n for n in names if n.startswith(prefix) and n.endswith(".json")})
        if len(found) != 1:
            raise DataError(f"{folder}: expected one {prefix}<sha256>.json, found {len(found)}")
        merged.absorb(_read_one(folder, found[0], dataset_sha, shards, index, seed, width, folds))
    return merged


def _read_one(
    folder: str, name: str, dataset_sha: str, shards: int, index: int, seed: int, width: int, folds: int
) -> Gathered:
    body = storage.read_bytes(storage.join(folder, name))
    if not name.endswith(f"-{hashlib.sha256(body).hexdigest()}.json"):
        raise DataError(f"{folder}/{name}: its content does not hash to the sha256 in its name")
    try:
        document = json.loads(body)
        expected = {"format": FORMAT, "dataset": dataset_sha, "shards": shards, "index": index, "seed": seed}
        wrong = [key for key, value in expected.items() if document.get(key) != value]
        if wrong:
            raise DataError(
                f"{folder}/{name}: {wrong[0]} is {document.get(wrong[0])!r}, not {expected[wrong[0]]!r}"
            )
        held_out = [SufficientStatistics.from_dict(s) for s in document["statistics"]]
        sample_name = str(document["sample"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{folder}/{name}: not a partial-statistics document ({exc})") from exc
    if len(held_out) != folds or any(s.n_features != width for s in held_out):
        raise DataError(f"{folder}/{name}: statistics for other folds or features than this training")
    gathered = Gathered(held_out, sampling.BottomSample(width, seed))
    columns = [ROW_COLUMN, *(f"x{j}" for j in range(width))]
    try:
        blocks = list(parts.read_part(storage.join(folder, sample_name), columns, verify=sample_name))
    except parts.PartError as exc:
        raise DataError(f"{folder}: {exc}") from exc
    rows = np.vstack(blocks or [np.empty((0, width + 1))])
    gathered.sample.add(rows[:, 0].astype(np.int64), rows[:, 1:])
    return gathered
