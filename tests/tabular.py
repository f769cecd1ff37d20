"""Tables the tests write: shared by the unit tests and the end-to-end tests (tests/ is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
