"""A folder of Parquet parts in the namespace's raw area, as users keep their tables: the Dataset reads
every part as one table, and its version is the one `marina prepare` computes from the same folder
anywhere else (the content hash does not depend on where, or in how many parts, the rows were read)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bounds import EPS, SAFETY, condition
from marina import storage
from marina.data import dataset, sources
from marina.model import artifact
from marina.solver import LinearRegressor

ROWS_PER_PART, PARTS = (40_000, 25_000, 35_000), 3


def parquet_part(values: np.ndarray, names: list[str], row_group: int) -> bytes:
    buffer = io.BytesIO()
    table = pa.table({name: values[:, j] for j, name in enumerate(names)})
    pq.write_table(table, buffer, row_group_size=row_group, compression="snappy")
    return buffer.getvalue()


def test_a_folder_of_parquet_parts_prepares_and_trains(marina: Any, storage_env: None) -> None:
    rng = np.random.default_rng(17)
    names = ["x1", "x2", "x3", "y"]
    truth = np.array([1.5, -2.0, 0.25])
    folder = f"s3://marina/raw/{marina.namespace}/table/"
    for index, rows in enumerate(ROWS_PER_PART):
        x = rng.standard_normal((rows, 3))
        values = np.column_stack([x, x @ truth + 3.0 + 0.1 * rng.standard_normal(rows)])
        part = parquet_part(values, names, row_group=7_000 + 1_000 * index)
        storage.write_bytes(
            storage.join(folder, f"part-{index}.parquet"), part, "application/vnd.apache.parquet"
        )

    marina.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "table"},
            "spec": {"source": {"parquet": {"uri": folder}}, "target": "y"},
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "table"},
            "spec": {"dataset": {"name": "table"}},
        },
    )
    prepared = marina.wait_ready("dataset", "table", timeout=300)
    assert prepared["rows"] == sum(ROWS_PER_PART)
    local = dataset.prepare_source(
        sources.open_source(folder), dataset.PrepareOptions(target="y"), None, "table"
    )
    assert prepared["version"] == local.description["version"]

    trained = marina.wait_ready("trainingjob", "table", timeout=300)
    assert trained["datasetVersion"] == prepared["version"]
    stored = dataset.open_stored(prepared["uri"]).data
    reference = LinearRegressor().fit(stored.x_train, stored.y_train)
    model = artifact.load(trained["model"]["uri"], trained["model"]["sha256"])
    # The same rows and solver in the pod and here; only the BLAS summation order may differ. With the
    # design's condition number about 1 (independent standard normal features), the coefficients then
    # differ by at most the rounding of n-term sums: SAFETY * n * eps relative to the largest.
    n = stored.x_train.shape[0]
    bound = SAFETY * n * EPS * condition(stored.x_train) * float(np.max(np.abs(reference.coef_)))
    assert np.max(np.abs(np.array(model.coefficients) - reference.coef_)) <= bound
