"""Marina's solver against scikit-learn, side by side in one run, on the same float64 data.

    python benchmarks/solver_bench.py                       # 10,000 and 1,000,000 rows x 100 features
    python benchmarks/solver_bench.py --rows 200000 --features 50 --repeat 3

For each size it times OLS (LinearRegression), ridge (Ridge) and lasso (Lasso, same alpha and
tol) and prints time, speed-up ratio, the largest coefficient difference and, for the lasso,
both objectives. For each size it also times the OLS fit against one ``X.T @ X`` (the Gram alone,
the least a normal-equations fit must do), interleaved round by round in this process, and prints
every round and the medians of wall and process CPU time (CPU is steadier on a shared machine; with
several BLAS threads it adds them up). Then it streams the largest size through SufficientStatistics
in chunks, reports the peak of numpy's allocations (tracemalloc) against one chunk + d², and checks the
streamed coefficients against the in-memory fit. Timings are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from marina.solver import LinearRegressor, SufficientStatistics

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Timing:
    """Best wall-clock and best CPU seconds over the repeats (CPU time is steadier on a busy machine)."""

    wall: float
    cpu: float


@dataclass(frozen=True)
class Row:
    rows: int
    model: str
    marina: Timing
    sklearn: Timing
    max_coef_diff: float
    note: str = ""

    HEADER = (
        f"{'rows':>9} {'model':<6} {'marina s':>9} {'sklearn s':>9} {'ratio':>7} "
        f"{'cpu ratio':>9} {'max|Δcoef|':>11}  note"
    )

    def render(self) -> str:
        return (
            f"{self.rows:>9,} {self.model:<6} {self.marina.wall:>9.3f} {self.sklearn.wall:>9.3f} "
            f"{self.sklearn.wall / self.marina.wall:>6.1f}x {self.sklearn.cpu / self.marina.cpu:>8.1f}x "
            f"{self.max_coef_diff:>11.2e}  {self.note}"
        )


@dataclass(frozen=True)
class Design:
    """What data to generate: size, seed, rows per streamed chunk, size of the feature offsets."""

    rows: int
    features: int
    seed: int
    chunk: int
    offset: float


def make_data(design: Design) -> tuple[Array, Array]:
    """The benchmark's data set in memory, built from the same chunks the streaming check reads."""
    X = np.empty((design.rows, design.features))
    y = np.empty(design.rows)
    for start, X_chunk, y_chunk in _chunks(design):
        X[start : start + len(y_chunk)] = X_chunk
        y[start : start + len(y_chunk)] = y_chunk
    return X, y


def _truth(features: int, seed: int) -> Array:
    rng = np.random.default_rng(seed + 1)
    return np.where(rng.random(features) < 0.3, rng.normal(0.0, 2.0, features), 0.0)


def _chunks(design: Design) -> Iterator[tuple[int, Array, Array]]:
    """The same rows in the same order whether collected in memory or streamed, one buffer reused.

    Features: offsets uniform in [-offset, offset] and AR(1) correlation (x_j = 0.7·x_(j-1) + z_j),
    so neighbours correlate like real features do while the design stays well-conditioned.
    """
    rows, features, chunk = design.rows, design.features, design.chunk
    rng = np.random.default_rng(design.seed)
    offsets = np.random.default_rng(design.seed + 2).uniform(-design.offset, design.offset, features)
    truth = _truth(features, design.seed)
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


def best_time(fit: Callable[[], Any], repeat: int) -> tuple[Timing, Any]:
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fit()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return Timing(wall, cpu), result


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


def gram_ratio(X: Array, y: Array, rounds: int) -> list[str]:
    """``LinearRegressor().fit`` against one ``X.T @ X``, alternating, every round and the medians."""
    steps: dict[str, Callable[[], Any]] = {
        "X.T @ X": lambda: X.T @ X,
        "fit": lambda: LinearRegressor().fit(X, y),
    }
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    lines = []
    for clock, times in (("wall", wall), ("cpu", cpu)):
        for name, values in times.items():
            rounds_text = " ".join(f"{v:.3f}" for v in values)
            lines.append(f"  {clock:<4} {name:<8} {rounds_text}  median {median(values):.3f} s")
        ratios = [f / g for f, g in zip(times["fit"], times["X.T @ X"], strict=True)]
        lines.append(
            f"  {clock:<4} fit / X.T @ X: {median(times['fit']) / median(times['X.T @ X']):.2f} (medians); "
            f"per round {' '.join(f'{r:.2f}' for r in ratios)}, median {median(ratios):.2f} (target <= 1.1)"
        )
    return lines


def streaming_check(design: Design, X: Array, y: Array) -> list[str]:
    """Peak numpy memory of a streamed fit against one chunk + d², and equality with the in-memory fit."""
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    rows, features, chunk = design.rows, design.features, design.chunk
    stats = SufficientStatistics(features)
    for _, X_chunk, y_chunk in _chunks(design):
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
    parser.add_argument("--rounds", type=int, default=5, help="rounds of fit against X.T @ X")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--offset",
        type=float,
        default=5.0,
        help="feature means uniform in [-OFFSET, OFFSET]; above ~4 std devs marina shifts blocks first",
    )
    args = parser.parse_args()
    sizes = [int(value) for value in args.rows.split(",")]

    print(f"{blas_description()}; features {args.features}, offsets up to ±{args.offset:g}")
    print(Row.HEADER)
    X = y = None
    design = None
    for rows in sizes:
        design = Design(rows, args.features, args.seed, args.chunk, args.offset)
        X, y = make_data(design)
        for row in compare(X, y, args.alpha_ridge, args.alpha_lasso, args.tol, args.repeat):
            print(row.render(), flush=True)
        print(f"{rows:>9,} OLS fit against one X.T @ X, {args.rounds} rounds interleaved:")
        for line in gram_ratio(X, y, args.rounds):
            print(line, flush=True)
    if design is not None and X is not None and y is not None:
        for line in streaming_check(design, X, y):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
