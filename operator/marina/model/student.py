"""Student's t quantiles in pure Python, for prediction intervals at any level a request asks for.

Serving images carry numpy, not scipy. With x = dof/(dof + t²), the upper tail of t with dof degrees of
freedom is ½·I_x(dof/2, ½) and the mass between 0 and t is ½·I_{1-x}(½, dof/2) (I the regularized
incomplete beta function); whichever of the two has the fast-converging continued fraction (Lentz's
method, Numerical Recipes' betacf) is evaluated and the other follows by difference, where that
loses nothing. The prefactor x^a·(1-x)^b/B(a, b) is taken in logarithms from t itself (log1p) and from
a Stirling series for log B(dof/2, ½) once dof is large, because differences of lgamma of large numbers
lose digits. The quantile is then refined by Newton's method: on log P(T > t) against log t in the
tail (heavy tails are straight lines there), on P(0 < T < t) near the centre. Beyond `EXPANSION_DOF`
the Cornish-Fisher expansion (A&S 26.7.5, four terms: error O(dof⁻⁵)) is exact in double precision.
tests/model/test_student.py checks the quantiles against scipy's distribution function to 1e-12.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

EXPANSION_DOF = 1e4
_TINY = 1e-300
_ITERATIONS = 1_000_000
_NEWTON_STEPS = 100
_LOG_SQRT_PI = 0.5 * math.log(math.pi)  # lgamma(½)
#: Below this tail probability the quantile is found on the tail, above it on the central mass.
_TAIL_SIDE = 0.25


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a + 1)/(a + b + 2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _ITERATIONS):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for numerator in (even, odd):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            return h
    raise ArithmeticError(f"the incomplete beta fraction did not converge for a={a}, b={b}, x={x}")


def _log_gamma_ratio_half(a: float) -> float:
    """log Γ(a + ½) - log Γ(a), from Stirling's series for a >= 20 (truncation below 1e-16)."""
    if a < 20.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)

    def series(z: float) -> float:
        inverse, square = 1.0 / z, 1.0 / (z * z)
        return inverse * (1 / 12 - square * (1 / 360 - square * (1 / 1260 - square / 1680)))

    # (a)·log(a + ½) - (a - ½)·log a - ½ = ½·log a + (a·log1p(1/(2a)) - ½)
    return 0.5 * math.log(a) + (a * math.log1p(0.5 / a) - 0.5) + series(a + 0.5) - series(a)


def _tail_and_centre(t: float, dof: float) -> tuple[float, float]:
    """(P(T > t), P(0 < T < t)) for t > 0, each to about 1e-15 relative."""
    a, b = dof / 2.0, 0.5
    t2 = t * t
    log_front = (
        -a * math.log1p(t2 / dof)
        + math.log(t)
        - 0.5 * math.log(dof + t2)
        + _log_gamma_ratio_half(a)
        - _LOG_SQRT_PI
    )
    front = math.exp(log_front)
    x = dof / (dof + t2)
    if x < (a + 1.0) / (a + b + 2.0):
        tail = 0.5 * front * _fraction(a, b, x) / a
        return tail, 0.5 - tail
    centre = 0.5 * front * _fraction(b, a, t2 / (dof + t2)) / b
    return 0.5 - centre, centre


def upper_tail(t: float, dof: float) -> float:
    """P(T > t)."""
    if t == 0.0:
        return 0.5
    tail, _ = _tail_and_centre(abs(t), dof)
    return tail if t > 0 else 1.0 - tail


def density(t: float, dof: float) -> float:
    log_norm = _log_gamma_ratio_half(dof / 2.0) - _LOG_SQRT_PI - 0.5 * math.log(dof)
    return math.exp(log_norm - (dof + 1.0) / 2.0 * math.log1p(t * t / dof))


def _cornish_fisher(z: float, dof: float) -> float:
    """The t quantile from the normal one z (Abramowitz & Stegun 26.7.5)."""
    z2 = z * z
    g1 = (z2 + 1.0) * z / 4.0
    g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
    g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
    g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


@lru_cache(maxsize=256)
def quantile(probability: float, dof: float) -> float:
    """The `probability` quantile of Student's t with `dof` >= 1 degrees of freedom (0 < probability < 1)."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if not dof >= 1.0:
        raise ValueError(f"degrees of freedom must be at least 1, got {dof}")
    if probability < 0.5:
        return -quantile(1.0 - probability, dof)
    if probability == 0.5:
        return 0.0
    tail = 1.0 - probability
    if dof == 1.0:  # Cauchy: from whichever of p - ½ and 1 - p is exact
        return (
            math.tan(math.pi * (probability - 0.5)) if tail > _TAIL_SIDE else 1.0 / math.tan(math.pi * tail)
        )
    if dof == 2.0:
        return (2.0 * probability - 1.0) / math.sqrt(2.0 * probability * tail)
    z = NormalDist().inv_cdf(probability)
    if dof >= EXPANSION_DOF:
        return _cornish_fisher(z, dof)
    t = _cornish_fisher(z, dof) if dof > 4 else z
    for _ in range(_NEWTON_STEPS):
        tail_now, centre_now = _tail_and_centre(t, dof)
        if tail < _TAIL_SIDE:  # Newton on log P(T > t) in log t
            new = t * math.exp(min(math.log(tail_now / tail) * tail_now / (t * density(t, dof)), 2.0))
        else:  # Newton on P(0 < T < t) in t
            new = t + (probability - 0.5 - centre_now) / density(t, dof)
        if abs(new - t) <= 2e-16 * abs(t):
            return new
        t = new
    return t


def two_sided(level: float, dof: float) -> float:
    """t such that P(|T| <= t) = level: the multiplier of a central interval at that level."""
    return quantile(0.5 + level / 2.0, dof)
