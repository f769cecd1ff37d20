"""Marina's solver against scikit-learn, side by side in one run, on the same float64 data.

    python benchmarks/solver_bench.py                       # 10,000 and 1,000,000 rows x 100 features
    python benchmarks/solver_bench.py --rows 200000 --features 50 --repeat 3

For each size it times OLS (LinearRegression), ridge (Ridge) and lasso (Lasso, same alpha and
tol) and prints time, speed-up ratio, the largest coefficient difference and, for the lasso,
both objectives. Then it streams the largest size through SufficientStatistics in chunks,
reports the peak of numpy's allocations (tracemalloc) against one chunk + d², and checks the
streamed coefficients against the in-memory fit. Timings are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from marina.solver import LinearRegressor, SufficientStatistics

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Row:
    rows: int
    model: str
    marina_s: float
    sklearn_s: float
    max_coef_diff: float
    note: str = ""

    def render(self) -> str:
        ratio = self.sklearn_s / self.marina_s
        return (
            f"{self.rows:>9,} {self.model:<8} {self.marina_s:>9.3f} {self.sklearn_s:>9.3f} "
            f"{ratio:>7.1f}x {self.max_coef_diff:>12.2e}  {self.note}"
        )


def make_data(rows: int, features: int, seed: int, chunk: int) -> tuple[Array, Array, Array]:
    """The benchmark's data set in memory, built from the same chunks the streaming check reads."""
    X = np.empty((rows, features))
    y = np.empty(rows)
    truth = _truth(features, seed)
    for start, X_chunk, y_chunk in _chunks(rows, features, seed, chunk):
        X[start : start + len(y_chunk)] = X_chunk
        y[start : start + len(y_chunk)] = y_chunk
    return X, y, truth


def _truth(features: int, seed: int) -> Array:
    rng = np.random.default_rng(seed + 1)
    return np.where(rng.random(features) < 0.3, rng.normal(0.0, 2.0, features), 0.0)


def _chunks(rows: int, features: int, seed: int, chunk: int):  # type: ignore[no-untyped-def]
    """The same rows in the same order whether collected in memory or streamed, one buffer reused.

    Features: offsets in [-5, 5] and AR(1) correlation (x_j = 0.7·x_(j-1) + z_j), so neighbours
    correlate like real features do while the design stays well-conditioned (cond ≈ 30).
    """
    rng = np.random.default_rng(seed)
    offsets = np.random.default_rng(seed + 2).uniform(-5.0, 5.0, features)
    truth = _truth(features, seed)
    X_chunk = np.empty((chunk, features))
    for start in range(0, rows, chunk):
        size = min(chunk, rows - start)
        block = X_chunk[:size]
        rng.standard_normal(out=block)
        for j in range(1, features):
            block[:, j] += CORRELATION * block[:, j - 1]
        block += offsets
        y_chunk = block @ truth + 1.5 + rng.standard_normal(size)
        yield start, block, y_chunk


def best_time(fit: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fit()
        best = min(best, time.perf_counter() - start)
    return best, result


def lasso_objective(X: Array, y: Array, coef: Array, intercept: float, alpha: float) -> float:
    residual = y - X @ coef - intercept
    return float(residual @ residual / (2 * len(y)) + alpha * np.abs(coef).sum())


def compare(X: Array, y: Array, alpha_ridge: float, alpha_lasso: float, tol: float, repeat: int) -> list[Row]:
    rows = len(y)
    results = []
    pairs: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("OLS", lambda: LinearRegressor().fit(X, y), lambda: LinearRegression().fit(X, y)),
        (
            "Ridge",
            lambda: LinearRegressor(penalty="l2", alpha=alpha_ridge).fit(X, y),
            lambda: Ridge(alpha=alpha_ridge).fit(X, y),
        ),
        (
            "Lasso",
            lambda: LinearRegressor(penalty="l1", alpha=alpha_lasso, tol=tol).fit(X, y),
            lambda: Lasso(alpha=alpha_lasso, tol=tol).fit(X, y),
        ),
    ]
    for name, ours_fit, theirs_fit in pairs:
        ours_s, ours = best_time(ours_fit, repeat)
        theirs_s, theirs = best_time(theirs_fit, repeat)
        diff = float(np.max(np.abs(ours.coef_ - theirs.coef_)))
        note = f"marina solver={ours.solver_}"
        if name == "Lasso":
            ours_obj = lasso_objective(X, y, ours.coef_, ours.intercept_, alpha_lasso)
            theirs_obj = lasso_objective(X, y, theirs.coef_, float(theirs.intercept_), alpha_lasso)
            verdict = "no worse" if ours_obj <= theirs_obj * (1 + 1e-12) else "WORSE"
            note = (
                f"objective marina {ours_obj:.10g} vs sklearn {theirs_obj:.10g} ({verdict}); "
                f"n_iter {ours.n_iter_} vs {theirs.n_iter_}; nonzero {np.count_nonzero(ours.coef_)}"
            )
        results.append(Row(rows, name, ours_s, theirs_s, diff, note))
    return results


def streaming_check(rows: int, features: int, seed: int, chunk: int, X: Array, y: Array) -> list[str]:
    """Peak numpy memory of a streamed fit against one chunk + d², and equality with the in-memory fit."""
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    stats = SufficientStatistics(features)
    for _, X_chunk, y_chunk in _chunks(rows, features, seed, chunk):
        stats.update(X_chunk, y_chunk)
    streamed = {
        penalty: LinearRegressor(penalty=penalty, alpha=a).fit_statistics(stats) for penalty, a in PENALTIES
    }
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    budget = chunk * features * 8 + features * features * 8
    lines = [
        f"streaming {rows:,} x {features} in chunks of {chunk:,}: {elapsed:.2f} s, "
        f"peak numpy memory {peak / 2**20:.1f} MiB = {peak / budget:.2f} x (one chunk + d² = "
        f"{budget / 2**20:.1f} MiB), target <= 1.5 x: {'met' if peak <= 1.5 * budget else 'MISSED'}"
    ]
    for penalty, alpha in PENALTIES:
        whole = LinearRegressor(penalty=penalty, alpha=alpha).fit(X, y)
        diff = float(np.max(np.abs(streamed[penalty].coef_ - whole.coef_)))
        lines.append(
            f"  {penalty:<5} streamed vs in-memory max |Δcoef| = {diff:.2e} "
            f"(target <= 1e-10: {'met' if diff <= 1e-10 else 'MISSED'})"
        )
    gc.collect()
    tracemalloc.start()
    LinearRegressor().fit(X, y)
    _, fit_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines.append(
        f"  in-memory OLS fit: extra numpy memory {fit_peak / 2**20:.1f} MiB "
        f"for an X of {X.nbytes / 2**20:.0f} MiB (X is never copied)"
    )
    return lines


PENALTIES = [("none", 1.0), ("l2", 1.0), ("l1", 0.05)]
CORRELATION = 0.7


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [
            f"{i['internal_api']} {i.get('version')} {i.get('architecture')} x{i['num_threads']}"
            for i in threadpool_info()
        ]
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        info = ["unknown"]
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return f"BLAS: {', '.join(info)}; OPENBLAS_CORETYPE={coretype}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", default="10000,1000000", help="comma-separated row counts (default: %(default)s)"
    )
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50_000, help="rows per streamed chunk")
    parser.add_argument("--alpha-ridge", type=float, default=1.0)
    parser.add_argument("--alpha-lasso", type=float, default=0.05)
    parser.add_argument("--tol", type=float, default=1e-4, help="lasso tol, the same for both")
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(value) for value in args.rows.split(",")]

    print(blas_description())
    print(f"{'rows':>9} {'model':<8} {'marina s':>9} {'sklearn s':>9} {'ratio':>8} {'max|Δcoef|':>12}  note")
    X = y = None
    for rows in sizes:
        X, y, _ = make_data(rows, args.features, args.seed, args.chunk)
        for row in compare(X, y, args.alpha_ridge, args.alpha_lasso, args.tol, args.repeat):
            print(row.render(), flush=True)
    if X is not None and y is not None:
        for line in streaming_check(sizes[-1], args.features, args.seed, args.chunk, X, y):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
