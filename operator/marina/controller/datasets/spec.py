"""A Dataset's spec, parsed into the exact arguments of `marina prepare`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marina.contract import DATASET, SERVED_LOGS, SERVED_SOURCE, SOURCE_KINDS
from marina.contract.schema import Array
from marina.controller.shared.fields import Fields, InvalidSpec, Resources, keep_last


@dataclass(frozen=True)
class ServedLogs:
    """spec.source.servedLogs: which ModelDeployment's served rows, over which window."""

    model_deployment: str
    window_hours: int
    label_delay_hours: int
    max_rows: int

    @property
    def field(self) -> str:
        return f"spec.source.{SERVED_LOGS}.modelDeployment"


@dataclass(frozen=True)
class DatasetSpec:
    source: str  # the `--source` value of `marina prepare`
    inline_rows: str | None  # JSON list of row objects, for source `inline`
    target: str
    features: tuple[str, ...] | None
    missing: str
    max_categories: int
    test_fraction: float
    seed: int
    resources: Resources
    # Not inputs of the preparation: out of repr, so out of the Job's digest (builders.short_hash). The
    # pods sharing it make the same dataset whatever their number.
    keep_last: int | None = field(default=None, repr=False)
    parallelism: int = field(default=DATASET.default("spec.parallelism"), repr=False)
    # The source's kind (csv, parquet, ...): where a bad URI is reported; the URI itself is in `source`.
    source_kind: str = field(default="", repr=False)
    # The served rows read (alone, `source` is SERVED_SOURCE; else after its rows). Out of repr, so a spec
    # without them keeps the Job digest it had before they existed (reconcile.inputs_digest adds them).
    served: ServedLogs | None = field(default=None, repr=False)

    @property
    def stored_uri(self) -> str | None:
        """The object or prefix a `csv` or `parquet` source reads (the sources that read storage)."""
        return self.source if self.source.startswith("s3://") else None

    @property
    def uri_field(self) -> str:
        return f"spec.source.{self.source_kind}.uri"


def parse(spec: Mapping[str, Any] | None) -> DatasetSpec:
    fields = Fields(spec, DATASET.spec)
    target = fields.required_string("target")
    features = fields.strings("features")
    if features is not None and target in features:
        raise InvalidSpec(fields.where("features"), f"must not include the target column {target!r}")
    section = fields.section("source")
    source, inline_rows = _source(section, target, features)
    parallelism = fields.integer("parallelism")
    if parallelism > 1 and section.has(SERVED_LOGS):
        raise InvalidSpec(
            fields.where("parallelism"),
            f"a Dataset reading {SERVED_LOGS} prepares in one pod (its served rows are at most maxRows)",
        )
    split = fields.section("split")
    return DatasetSpec(
        source=source,
        inline_rows=inline_rows,
        target=target,
        features=features,
        missing=fields.section("cleaning").required_string("missing"),
        max_categories=fields.section("cleaning").integer("maxCategories"),
        test_fraction=split.number("testFraction"),
        seed=split.integer("seed"),
        resources=fields.resources(),
        keep_last=keep_last(fields),
        parallelism=parallelism,
        source_kind=next((kind for kind in SOURCE_KINDS if section.has(kind)), SERVED_LOGS),
        served=_served(section.section(SERVED_LOGS)) if section.has(SERVED_LOGS) else None,
    )


def _source(source: Fields, target: str, features: tuple[str, ...] | None) -> tuple[str, str | None]:
    given = [kind for kind in SOURCE_KINDS if source.has(kind)]
    if not given and source.has(SERVED_LOGS):
        return SERVED_SOURCE, None
    if len(given) != 1:
        raise InvalidSpec(
            source.path,
            f"set exactly one of {', '.join(SOURCE_KINDS)} (got {given or 'none'}); {SERVED_LOGS} may be set "
            "beside it, or alone",
        )
    kind = given[0]
    if kind == "builtin":
        return f"builtin:{source.required_string('builtin')}", None
    if kind in ("csv", "parquet"):  # one object, or a prefix ending in '/' of many parts
        return source.section(kind).required_string("uri"), None
    if kind == "synthetic":
        return _synthetic(source.section("synthetic")), None
    return "inline", _inline_rows(source.section("inline"), target, features)


def _served(served: Fields) -> ServedLogs:
    return ServedLogs(
        model_deployment=served.required_string("modelDeployment"),
        window_hours=served.integer("windowHours"),
        label_delay_hours=served.integer("labelDelayHours"),
        max_rows=served.integer("maxRows"),
    )


def _synthetic(synthetic: Fields) -> str:
    params = {
        "rows": synthetic.integer("rows"),
        "features": synthetic.integer("features"),
        "noise": synthetic.number("noise"),
        "seed": synthetic.integer("seed"),
        "missing": synthetic.number("missing"),
    }
    return "synthetic:" + ",".join(f"{key}={value}" for key, value in params.items())


def _inline_rows(inline: Fields, target: str, features: tuple[str, ...] | None) -> str:
    columns = inline.strings("columns")
    rows = inline.data.get("rows")
    if columns is None:
        raise InvalidSpec(inline.where("columns"), "is required")
    if target not in columns:
        raise InvalidSpec(inline.where("columns"), f"must include the target column {target!r}")
    unknown = sorted(set(features or ()) - set(columns))
    if unknown:
        raise InvalidSpec(
            "spec.features", f"names columns not in source.inline.columns: {', '.join(unknown)}"
        )
    declared = DATASET.at("spec.source.inline.rows")
    assert isinstance(declared, Array) and declared.size is not None
    if not isinstance(rows, list) or len(rows) not in declared.size:
        raise InvalidSpec(inline.where("rows"), f"must be a list of {declared.size} rows")
    records = []
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidSpec(
                f"{inline.where('rows')}[{index}]", f"must have {len(columns)} values, one per column"
            )
        records.append(dict(zip(columns, row, strict=True)))
    return json.dumps(records, separators=(",", ":"))
