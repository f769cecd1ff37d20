"""False alarms and detection of Marina's drift check, against PSI alone, over many repeated windows.

The reference is what a model artifact carries: quantile bins of scikit-learn's diabetes data (a seeded
80 % train split, as `marina prepare` makes) and of a least-squares model's predictions on it. Each trial
is one serving window: `rows` rows drawn with replacement from the train split (in distribution) or with
one feature moved by a multiple of its standard deviation, counted by the serving pods' own code
(`WindowedHistograms`) and judged by the operator's own code (`monitoring.judge`) as one check does.

Two rules decide on the same counts:
- `PSI alone`: a feature drifts when its PSI reaches the threshold (0.2), the common rule (Evidently's
  PSI test, most hand-written monitors);
- `Marina`: PSI at the threshold and its chi-square p-value below 1/1000 divided by the number of
  features (Bonferroni), what sets the Drifted condition.

Printed per window size: the false-alarm rate over the in-distribution trials, and the detection rate
(with the moved feature named first) for each shift.

    python benchmarks/drift_bench.py [--trials 1000] [--rows 100 1000 20000] [--shifts 0.25 0.5 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from sklearn.datasets import load_diabetes

from marina.controller.modeldeployments import monitoring
from marina.controller.modeldeployments.spec import Monitoring
from marina.data.distribution import Reference
from marina.serving.histograms import WindowedHistograms

PSI_THRESHOLD = 0.2
SHIFTED_FEATURE = "bmi"
TEST_FRACTION = 0.2
SPLIT_SEED = 0


class Clock:
    """A fixed time: every trial's rows fall into one window."""

    def __init__(self) -> None:
        self.now = 6000.0

    def __call__(self) -> float:
        return self.now


def train_split() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The train rows, a least-squares model's coefficients on them (intercept last), the feature names."""
    data = load_diabetes()
    x = np.asarray(data.data, dtype=np.float64)
    keep = np.random.default_rng(SPLIT_SEED).random(len(x)) >= TEST_FRACTION
    x_train = x[keep]
    design = np.column_stack([x_train, np.ones(len(x_train))])
    coefficients = np.linalg.lstsq(design, np.asarray(data.target)[keep], rcond=None)[0]
    return x_train, coefficients, tuple(data.feature_names)


def judge(
    reference: Reference, coefficients: np.ndarray, rows: np.ndarray, names: tuple[str, ...]
) -> monitoring.Assessment:
    clock = Clock()
    counts = WindowedHistograms(reference, clock=clock)
    counts.add(rows, rows @ coefficients[:-1] + coefficients[-1])
    windows = counts.windows()
    document = {
        "name": "m",
        "version": "v1",
        "reference": reference.to_dict(names),
        "windowSeconds": counts.window_seconds,
        "windows": [w.to_dict(names, complete=w is not windows[-1]) for w in windows],
    }
    read = monitoring.parse_counts(document, "pod", clock.now)
    settings = Monitoring(interval_seconds=10, min_rows=len(rows), psi_threshold=PSI_THRESHOLD)
    judged = monitoring.judge([monitoring.history(read, None)], "v1", settings)
    assert judged is not None
    return judged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 1000, 20000])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    arguments = parser.parse_args()

    x_train, coefficients, names = train_split()
    reference = Reference.of(x_train, x_train @ coefficients[:-1] + coefficients[-1])
    column = names.index(SHIFTED_FEATURE)
    print(
        f"diabetes train split: {len(x_train)} rows x {len(names)} features, {reference.bins} bins; "
        f"{arguments.trials} windows per case; PSI threshold {PSI_THRESHOLD}"
    )
    print(f"{'rows':>6}  {'case':<22} {'PSI alone':>12} {'Marina':>12} {'named':>8}  {'ms/check':>8}")
    for count in arguments.rows:
        for shift in [0.0, *arguments.shifts]:
            rng = np.random.default_rng(int(count * 1000 + shift * 100))
            psi_alone = marina = named = 0
            started = time.perf_counter()
            for _ in range(arguments.trials):
                rows = x_train[rng.integers(0, len(x_train), count)].copy()
                rows[:, column] += shift * x_train[:, column].std()
                judged = judge(reference, coefficients, rows, names)
                psi_alone += any(f.psi >= PSI_THRESHOLD for f in judged.features)
                if judged.level is monitoring.Level.DRIFTED:
                    marina += 1
                    named += judged.drifted[0].name == SHIFTED_FEATURE
            per_check = 1000 * (time.perf_counter() - started) / arguments.trials
            case = "in distribution" if shift == 0 else f"{SHIFTED_FEATURE} + {shift:g} sd"
            rate = "false alarms" if shift == 0 else "detected"
            print(
                f"{count:>6}  {case:<22} {psi_alone / arguments.trials:>12.4f} "
                f"{marina / arguments.trials:>12.4f} {named if shift else '':>8}  {per_check:>8.2f}"
                f"  ({rate})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
