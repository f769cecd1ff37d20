"""False alarms and detection of Marina's live-accuracy check (the Degraded condition), over many trials.

Each trial is one check: a model whose held-out residuals (the artifact's calibration sample, and the
test rmse it states) come from a test split of `--test-rows` rows, and `n` labelled live rows whose
errors are drawn afresh, judged by the operator's own code (`performance.decide`, margin 0.1, alpha 0.01 by
default). Two noise shapes: normal, and Student-t with 4 degrees of freedom (heavy tails: the squared
errors' mean converges slowly, the case the z-test's CLT assumption fits worst).

Printed:
- no change (live errors drawn like the held-out ones): the false-alarm rate, which should be far below alpha;
- at the boundary (live rmse exactly (1 + margin) x the test rmse): the rate of Degraded True, which the
  test promises to be about alpha (the worst case of "not degraded");
- a concept shift (the target's relation to a feature changes: error e + s·x with x ~ N(0, σ²), so the
  live rmse is √(1 + s²) x the test rmse): the detection rate per size s and per n;
- the cost of the join itself on 1,000,000 logged rows and 200,000 feedback rows.

    python benchmarks/degraded_bench.py [--trials 20000] [--rows 200 1000 5000] [--shifts 0.3 0.5 0.7 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from marina.controller.modeldeployments import performance
from marina.controller.modeldeployments.performance import Labelled, Reference
from marina.controller.modeldeployments.spec import Performance

Draw = Callable[[np.random.Generator, int], np.ndarray]


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=n)


def student4(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_t(4, size=n) / np.sqrt(2.0)  # variance 4/(4-2) = 2: scaled to 1


SHAPES: dict[str, Draw] = {"normal": normal, "student-t(4)": student4}


def reference_of(draw: Draw, rng: np.random.Generator, test_rows: int) -> Reference:
    """What training records: the test split's rmse and (up to 8,192 of) its absolute residuals."""
    residuals = draw(rng, test_rows)
    rmse = float(np.sqrt(np.mean(residuals**2)))
    return Reference.of(rmse, np.sort(np.abs(residuals[:8192])), test_rows)


def rate(
    draw: Draw,
    n: int,
    scale: float,
    shift: float,
    trials: int,
    settings: Performance,
    test_rows: int,
    seed: int,
) -> float:
    """Share of trials judged Degraded: live errors scale·e (+ shift·x, x a standard normal feature)."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(trials):
        reference = reference_of(draw, rng, test_rows)  # each trial a model of its own
        errors = scale * draw(rng, n)
        if shift:
            errors = errors + shift * rng.normal(size=n)
        alarms += performance.decide(Labelled(errors, n, 0, 0), reference, settings).status == "True"
    return alarms / trials


def join_cost(rows: int = 1_000_000, labelled: int = 200_000) -> tuple[float, int]:
    """Seconds to join `rows` logged predictions (requests of 1 to 4 rows) with `labelled` feedback rows."""
    rng = np.random.default_rng(0)
    requests = rng.integers(1, 5, size=rows)
    ids = np.repeat(np.arange(len(requests)), requests)[:rows]
    within = (np.arange(rows) - np.repeat(np.cumsum(requests) - requests, requests)[:rows]).astype(np.int32)
    names = pa.array(ids.astype(str))
    stamp = pa.array(np.arange(rows, dtype=np.int64), pa.timestamp("us", tz="UTC"))
    model = "a" * 64
    predictions = pa.table(
        {
            "id": names,
            "row": within,
            "time": stamp,
            "model": pa.repeat(pa.scalar(model), rows),
            "prediction": rng.normal(size=rows),
        }
    )
    chosen = np.sort(rng.choice(rows, size=labelled, replace=False))
    feedback = pa.table(
        {
            "id": names.take(pa.array(chosen)),
            "row": pa.array(within[chosen]),
            "time": stamp.take(pa.array(chosen)),
            "target": rng.normal(size=labelled),
        }
    )
    start = time.perf_counter()
    joined = performance.join(predictions, feedback, model)
    return time.perf_counter() - start, joined.rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    parser.add_argument("--rows", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args()
    began = time.perf_counter()
    print(
        f"margin {args.margin}, falseAlarmRate (alpha) {args.alpha}, test split {args.test_rows} rows, "
        f"{args.trials} trials per cell"
    )
    for name, draw in SHAPES.items():
        print(f"\n{name} errors")
        print(
            f"{'n':>7} {'no change':>10} {'boundary':>9} "
            + " ".join(f"{f's={s:g} ({np.sqrt(1 + s * s):.3f}x)':>16}" for s in args.shifts)
        )
        for n in args.rows:
            settings = Performance(min_rows=min(n, 100), margin=args.margin, false_alarm_rate=args.alpha)
            cells = [
                rate(draw, n, 1.0, 0.0, args.trials, settings, args.test_rows, seed=1),
                rate(draw, n, 1.0 + args.margin, 0.0, args.trials, settings, args.test_rows, seed=2),
            ]
            shifted = [
                rate(draw, n, 1.0, s, max(args.trials // 10, 200), settings, args.test_rows, seed=3)
                for s in args.shifts
            ]
            print(f"{n:>7} {cells[0]:>10.4f} {cells[1]:>9.4f} " + " ".join(f"{r:>16.3f}" for r in shifted))
    seconds, joined = join_cost()
    print(
        f"\njoin of 1,000,000 logged rows with 200,000 feedback rows: {seconds:.2f} s ({joined} rows joined)"
    )
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
