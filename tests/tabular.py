"""Tables the tests write: shared by the unit tests and the end-to-end tests (tests/ is on sys.path)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from marina.data import parts
from marina.data.dataset import V2_FORMAT, VERSION_LENGTH

CUTS = ("Fair", "Good", "Very Good", "Premium", "Ideal")
COLORS = tuple("DEFGHIJ")


def write_diamonds(path: Path, rows: int = 3_000, seed: int = 5) -> None:
    """A diamonds-like table: numbers, two text columns and one text column no one selects."""
    rng = np.random.default_rng(seed)
    cuts, colors = list(CUTS), list(COLORS)
    carat = rng.uniform(0.2, 2.5, rows)
    cut = rng.choice(cuts, rows)
    color = rng.choice(colors, rows)
    effect = {c: 150.0 * k for k, c in enumerate(cuts)} | {c: -90.0 * k for k, c in enumerate(colors)}
    price = 4000 * carat + [effect[c] for c in cut] + [effect[c] for c in color] + rng.normal(0, 200, rows)
    lines = ["carat,cut,color,clarity,price"]
    cells = zip(carat, cut, color, price, strict=True)
    lines += [f"{a:.3f},{b},{c},SI{k % 3},{p:.2f}" for k, (a, b, c, p) in enumerate(cells)]
    path.write_text("\n".join(lines) + "\n")


def write_second_format(folder: Path, train: np.ndarray, test: np.ndarray, gap_fill: float) -> str:
    """A dataset as format 2 wrote it: row-major parts named by the sha256 of their float64 rows, category
    cells as codes into the manifest's dictionaries, each split hashed over its rows in order."""
    columns, dictionaries = ("city", "a", "y"), {"city": ["rome", "oslo"]}
    inputs = [
        {"name": "city", "type": "category", "categories": ["oslo", "rome"]},
        {"name": "a", "type": "number"},
    ]
    (folder / parts.PARTS_FOLDER).mkdir(parents=True)
    listed = {}
    for split, values in (("train", train), ("test", test)):
        canonical = parts.canonical(values)
        name = hashlib.sha256(canonical.data).hexdigest() + parts.SUFFIX
        (folder / parts.PARTS_FOLDER / name).write_bytes(parts.to_parquet(values, columns))
        listed[split] = {
            "sha256": hashlib.sha256(canonical.data).hexdigest(),
            "parts": [{"name": name, "rows": len(values)}],
        }
    fills = {"a": gap_fill}
    document = {
        "format": V2_FORMAT,
        "features": ["city", "a"],
        "target": "y",
        "fills": fills,
        "inputs": inputs,
        "dictionaries": dictionaries,
        **{
            split: {"rows": len(v), "sha256": listed[split]["sha256"]}
            for split, v in (("train", train), ("test", test))
        },
    }
    sha = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    version = folder / sha[:VERSION_LENGTH]
    version.mkdir()
    manifest = {
        "format": V2_FORMAT,
        "sha256": sha,
        "version": sha[:VERSION_LENGTH],
        "name": "old",
        "columns": list(columns),
        "features": ["city", "a"],
        "target": "y",
        "cleaning": {"fillValues": fills},
        "inputs": inputs,
        "dictionaries": dictionaries,
        "parts": {"folder": f"../{parts.PARTS_FOLDER}", **listed},
    }
    (version / "dataset.json").write_text(json.dumps(manifest))
    return str(version)
