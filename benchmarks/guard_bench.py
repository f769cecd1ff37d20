"""The extrapolation guard's false alarms and detections, and the prediction intervals' coverage.

Every model here is made by `marina prepare` and `marina train` from a CSV this script writes, and every
verdict and interval comes from `marina.model.answers`, the code serving and batch scoring run.

- False alarms: fresh rows drawn from the training distribution (Gaussian, exponential, Student t with
  3 degrees of freedom; the guard's tail assumption is exact for the exponential, conservative for
  the Gaussian and wrong for t3), per check and per row, beside the rates the model states (under
  the tail assumption, and whatever the distribution). On real data, the diabetes set split again
  and again: the share of held-out rows flagged.
- Detection: fresh rows with one feature moved by k training standard deviations (k = 2 to 10):
  the share flagged, and named by that feature; and rows that keep every feature inside its range but
  break the features' correlation (only the leverage can see those).
- Coverage: the share of fresh rows whose target falls inside the interval, at 90 % and 95 %, over
  several training sets: least squares (Student t) with Gaussian noise, and ridge and lasso (split
  conformal) with Gaussian and with t3 noise (where the t interval's assumption fails, conformal's
  does not).

    python benchmarks/guard_bench.py [--rows 5000] [--fresh 100000] [--repeats 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from marina.cli import main as marina
from marina.data import dataset
from marina.model import artifact
from marina.model.answers import Answers

FEATURES = 6
Sampler = Callable[[np.random.Generator, int], np.ndarray]


def run(*args: str) -> dict[str, object]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = marina(list(args))
    if code != 0:
        raise SystemExit(f"marina {' '.join(args)} failed with {code}")
    result: dict[str, object] = json.loads(out.getvalue())
    return result


def trained(folder: Path, x: np.ndarray, y: np.ndarray, *options: str) -> artifact.ModelArtifact:
    """Prepare and train on (x, y) written as a CSV, as a user would."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"x{j}" for j in range(x.shape[1])]
    lines = [",".join([*names, "y"])]
    lines += [",".join(repr(float(v)) for v in row) for row in np.column_stack([x, y])]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    prepared = run(
        "prepare", "--source", str(folder / "data.csv"), "--output", str(folder / "d"), "--target", "y"
    )
    result = run("train", "--data", str(prepared["uri"]), "--output", str(folder / "m"), *options)
    return artifact.load(str(result["uri"]))


def gaussian(rng: np.random.Generator, rows: int) -> np.ndarray:
    return rng.standard_normal((rows, FEATURES))


def exponential(rng: np.random.Generator, rows: int) -> np.ndarray:
    return rng.exponential(1.0, (rows, FEATURES))


def student3(rng: np.random.Generator, rows: int) -> np.ndarray:
    return rng.standard_t(3, (rows, FEATURES))


def correlated(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Gaussian features with x1 = 0.95·x0 + noise: a thin ellipse the range check cannot see."""
    x = rng.standard_normal((rows, FEATURES))
    x[:, 1] = 0.95 * x[:, 0] + np.sqrt(1 - 0.95**2) * x[:, 1]
    return x


COEFFICIENTS = np.array([1.5, -2.0, 0.5, 1.0, 0.0, 3.0])


def false_alarms(folder: Path, rows: int, fresh: int) -> None:
    print(
        f"False alarms on {fresh:,} fresh in-distribution rows (training: {rows:,} rows, {FEATURES} features)"
    )
    print(
        f"{'distribution':14}{'leverage':>12}{'range (any)':>14}{'row':>12}{'stated':>12}{'any distr.':>12}"
    )
    for name, sample in (("gaussian", gaussian), ("exponential", exponential), ("student-t3", student3)):
        rng = np.random.default_rng(1)
        x = sample(rng, rows)
        model = trained(folder / name, x, x @ COEFFICIENTS + rng.standard_normal(rows))
        answers = Answers(model)
        verdicts = answers.verdicts(sample(rng, fresh))
        stated = answers.guard_description()
        print(
            f"{name:14}{verdicts.leverage.mean():>12.2e}{verdicts.range.any(axis=1).mean():>14.2e}"
            f"{verdicts.outside.mean():>12.2e}{stated['falseAlarmRate']:>12.2e}"
            f"{stated['falseAlarmRateAnyDistribution']:>12.2e}"
        )
    print()


def diabetes_resplits(folder: Path, repeats: int) -> None:
    flagged = held_out = 0
    for seed in range(repeats):
        prepared = run(
            "prepare",
            "--source",
            "builtin:diabetes",
            "--output",
            str(folder / f"s{seed}"),
            "--seed",
            str(seed),
        )
        result = run("train", "--data", str(prepared["uri"]), "--output", str(folder / f"m{seed}"))
        answers = Answers(artifact.load(str(result["uri"])))
        x_test = dataset.open_stored(str(prepared["uri"])).data.x_test
        flagged += int(answers.verdicts(x_test).outside.sum())
        held_out += len(x_test)
    print(
        f"Diabetes split {repeats} times (seeds 0-{repeats - 1}): {flagged} of {held_out} held-out rows "
        "flagged"
    )
    print()


def detection(folder: Path, rows: int, fresh: int) -> None:
    rng = np.random.default_rng(2)
    x = correlated(rng, rows)
    model = trained(folder / "detection", x, x @ COEFFICIENTS + rng.standard_normal(rows))
    answers = Answers(model)
    sd = x.std(axis=0)
    print(f"Detection of shifted rows ({fresh:,} per line; correlated Gaussian training rows)")
    print(f"{'shift':28}{'flagged':>10}{'named':>10}{'by leverage':>13}")
    base = correlated(rng, fresh)
    for k in (2.0, 3.0, 5.0, 7.0, 10.0):
        feature = rng.integers(0, FEATURES, fresh)
        moved = base.copy()
        moved[np.arange(fresh), feature] += k * sd[feature] * rng.choice([-1.0, 1.0], fresh)
        verdicts = answers.verdicts(moved)
        named = verdicts.range[np.arange(fresh), feature]
        line = f"{f'one feature by {k:g} sd':28}{verdicts.outside.mean():>10.4f}{named.mean():>10.4f}"
        print(f"{line}{verdicts.leverage.mean():>13.4f}")
    for k in (
        3.0,
        5.0,
        8.0,
        12.0,
    ):  # along x0 - x1, whose training spread is tiny: every feature stays in range
        moved = base.copy()
        spread = float(np.std(x[:, 0] - x[:, 1]))
        moved[:, 0] += k * spread / 2
        moved[:, 1] -= k * spread / 2
        verdicts = answers.verdicts(moved)
        line = f"{f'x0 - x1 by {k:g} sd (in range)':28}{verdicts.outside.mean():>10.4f}{'':>10}"
        print(f"{line}{verdicts.leverage.mean():>13.4f}")
    print()


def coverage(folder: Path, rows: int, fresh: int, repeats: int) -> None:
    print(
        f"Coverage of intervals on {fresh:,} fresh rows, {repeats} training sets each (min / median / max, %)"
    )
    print(f"{'model, noise':28}{'method':>16}{'at 90 %':>24}{'at 95 %':>24}")
    for label, options, noise in (
        ("least squares, gaussian", [], "gaussian"),
        ("least squares, t3", [], "t3"),
        ("ridge, gaussian", ["--penalty", "l2", "--alpha", "20"], "gaussian"),
        ("ridge, t3", ["--penalty", "l2", "--alpha", "20"], "t3"),
        ("lasso, gaussian", ["--penalty", "l1", "--alpha", "0.05"], "gaussian"),
    ):
        found: dict[float, list[float]] = {0.9: [], 0.95: []}
        method = ""
        for seed in range(repeats):
            rng = np.random.default_rng(100 + seed)

            def draw(
                count: int, rng: np.random.Generator = rng, noise: str = noise
            ) -> tuple[np.ndarray, np.ndarray]:
                x = rng.standard_normal((count, FEATURES))
                error = rng.standard_normal(count) if noise == "gaussian" else rng.standard_t(3, count)
                return x, x @ COEFFICIENTS + 2.0 * error

            model = trained(
                folder / f"{label}-{seed}".replace(" ", "").replace(",", "-"), *draw(rows), *options
            )
            answers = Answers(model)
            method = str(model.answers["intervals"]["method"])
            x, y = draw(fresh)
            predictions = model.predict(x)
            for level in found:
                width = answers.half_widths(x, level)
                found[level].append(100 * float(np.mean(np.abs(y - predictions) <= width)))
        cells = [f"{min(v):.2f} / {statistics.median(v):.2f} / {max(v):.2f}" for v in found.values()]
        print(f"{label:28}{method:>16}{cells[0]:>24}{cells[1]:>24}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="training rows per model")
    parser.add_argument("--fresh", type=int, default=100_000, help="fresh rows per measurement")
    parser.add_argument(
        "--repeats", type=int, default=10, help="training sets per coverage line, diabetes splits"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marina-guard-bench-") as temporary:
        folder = Path(temporary)
        false_alarms(folder, args.rows, args.fresh)
        diabetes_resplits(folder / "diabetes", args.repeats)
        detection(folder, args.rows, args.fresh)
        coverage(folder / "coverage", args.rows, min(args.fresh, 20_000), args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
