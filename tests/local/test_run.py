"""`marina run`: the samples go Ready on this machine with no cluster, a served model answers on localhost,
a second run reuses what the first did, a bad CSV fails as on a cluster, and an invalid spec is refused as
the API server refuses it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from marina.contract import DATASET, schema
from marina.data import sources
from marina.data.dataset import PrepareOptions, prepare_source
from marina.local import table

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"


def marina_run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "marina.cli", "run", "--once", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_tables(output: str) -> dict[str, list[str]]:
    """The last printed row of each resource (NAME -> its cells)."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and "marina.dev/" in cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_samples_go_ready_and_a_served_model_answers(tmp_path: Path) -> None:
    started = time.monotonic()
    done = marina_run("-f", str(SAMPLES), "--store", str(tmp_path / "store"))
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    rows = last_tables(done.stdout)
    assert rows["dataset.marina.dev/diabetes"][0] == "True"
    assert rows["trainingjob.marina.dev/diabetes"][:2] == ["Succeeded", "True"]
    assert rows["modeldeployment.marina.dev/diabetes"][0] == "True"
    answer = next(line for line in done.stdout.splitlines() if "-> {predict:" in line)
    assert float(answer.split("predict:")[1].strip(" }")) > 0  # the diabetes target is a positive count
    assert "skipped Kustomization" in done.stdout
    assert took < 60, f"{took:.1f} s"  # 3-5 s on this machine; generous for a loaded CI

    # The version is the content's: what `marina prepare` gives the same spec anywhere (a cluster too).
    dataset = yaml.safe_load((SAMPLES / "marina.dev_v1alpha1_dataset.yaml").read_text())
    options = PrepareOptions(
        target=dataset["spec"]["target"],
        test_fraction=dataset["spec"]["split"]["testFraction"],
        seed=dataset["spec"]["split"]["seed"],
        missing=dataset["spec"]["cleaning"]["missing"],
    )
    prepared = prepare_source(sources.open_source("builtin:diabetes"), options, str(tmp_path / "direct"), "d")
    assert rows["dataset.marina.dev/diabetes"][1] == prepared.description["version"]

    again = marina_run("-f", str(SAMPLES), "--store", str(tmp_path / "store"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Running" not in again.stdout  # nothing prepared or trained twice
    logs = sorted(p.name for p in (tmp_path / "store" / "logs").iterdir())
    assert sum(name.startswith("diabetes-train-") for name in logs) == 1


def test_a_bad_csv_fails_with_the_cell_named(tmp_path: Path) -> None:
    store = tmp_path / "store"
    raw = store / "objects" / "marina" / "raw" / "default"
    raw.mkdir(parents=True)
    (raw / "bad.csv").write_text("x,target\n1,2\n2,oops\n3,4\n")
    resource = {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "bad"},
        "spec": {"source": {"csv": {"uri": "s3://marina/raw/default/bad.csv"}}},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(resource))
    done = marina_run("-f", str(path), "--store", str(store))
    assert done.returncode == 1
    rows = last_tables(done.stdout)
    assert rows["dataset.marina.dev/bad"][0] == "False"
    wide = marina_run("-f", str(path), "--store", str(store), "--wide")
    assert "PrepareFailed" in last_tables(wide.stdout)["dataset.marina.dev/bad"]
    state = (store / "state" / "default" / "Dataset" / "bad.json").read_text()
    assert "column 'target' row 2: 'oops' is not a number" in state


def test_an_invalid_spec_is_refused_naming_the_field(tmp_path: Path) -> None:
    resource = {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "split"},
        "spec": {"source": {"builtin": "diabetes"}, "split": {"testFraction": 1.5}},
    }
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(resource))
    done = marina_run("-f", str(path), "--store", str(tmp_path / "store"))
    assert done.returncode == 1
    assert (
        'The Dataset "split" is invalid: spec.split.testFraction: must be in (0, 1), got 1.5' in done.stdout
    )
    assert schema.violations(DATASET, resource) == ["spec.split.testFraction: must be in (0, 1), got 1.5"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ('.status.conditions[?(@.type=="Ready")].status', "True"),
        ('.status.conditions[?(@.type=="Stalled")].status', None),
        (".status.model.version", "abc"),
        (".status.missing.deeper", None),
    ],
)
def test_printer_columns_read_their_json_path(path: str, value: str | None) -> None:
    body = {"status": {"conditions": [{"type": "Ready", "status": "True"}], "model": {"version": "abc"}}}
    assert table.read_path(body, path) == value


def test_a_dataset_prepared_by_two_pods_has_the_one_pod_version(tmp_path: Path) -> None:
    """`parallelism: 2` runs the Indexed Job of shards and the reduce here too; 800,000 rows of 3 columns
    are parts of 349,520 rows, so both shards read some."""
    store = tmp_path / "store"
    raw = store / "objects" / "marina" / "raw" / "default"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(8)
    with (raw / "wide.csv").open("w") as out:
        out.write("x1,x2,target\n")
        np.savetxt(out, rng.standard_normal((800_000, 3)).round(3), delimiter=",", fmt="%.3f")
    resources = [
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": f"p{parallelism}"},
            "spec": {
                "source": {"csv": {"uri": "s3://marina/raw/default/wide.csv"}},
                "parallelism": parallelism,
            },
        }
        for parallelism in (1, 2)
    ]
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump_all(resources))
    done = marina_run("-f", str(path), "--store", str(store), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = last_tables(done.stdout)
    one, two = rows["dataset.marina.dev/p1"], rows["dataset.marina.dev/p2"]
    assert one[0] == two[0] == "True" and one[1] == two[1] and one[2] == two[2] == "800000"
    logs = sorted(p.name for p in (store / "logs").iterdir())
    assert sum(name.startswith("p2-shard-") for name in logs) == 2, logs  # one log per shard pod
