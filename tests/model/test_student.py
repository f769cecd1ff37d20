"""Student's t quantiles without scipy: equal to 40-digit ones (mpmath) to the continued fraction's
rounding, at every level and degrees of freedom an interval may need."""

from __future__ import annotations

import math

import mpmath
import pytest

from bounds import continued_fraction_tolerance
from marina.model import student

PROBABILITIES = [0.5000001, 0.51, 0.6, 0.75, 0.8, 0.9, 0.95, 0.975, 0.995, 0.9995, 1 - 1e-8, 1 - 1e-12]


def exact_quantile(probability: float, dof: float) -> float:
    """The root of P(T <= t) = probability at 40 digits; P from the incomplete beta function."""
    mpmath.mp.dps = 40
    p, v = mpmath.mpf(probability), mpmath.mpf(dof)

    def excess(t: mpmath.mpf) -> mpmath.mpf:
        centre = mpmath.betainc(0.5, v / 2, 0, t * t / (v + t * t), regularized=True) / 2
        return centre - (p - mpmath.mpf(0.5))

    guess = student.quantile(probability, dof)
    return float(mpmath.findroot(excess, mpmath.mpf(guess)))


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 10, 29, 30, 100, 342, 9999, 10_000, 123_456, 10**6])
def test_quantiles_equal_40_digit_ones(dof: int) -> None:
    # Lentz's fraction for I_x(dof/2, ½) takes O(√dof) terms near the centre (Numerical Recipes §6.4)
    bound = continued_fraction_tolerance(math.sqrt(dof))
    for probability in PROBABILITIES:
        ours = student.quantile(probability, dof)
        assert abs(ours / exact_quantile(probability, dof) - 1) <= bound, probability


def test_the_two_sided_multiplier_and_symmetry() -> None:
    assert student.two_sided(0.95, 342) == student.quantile(0.975, 342)
    assert student.quantile(0.1, 7) == -student.quantile(0.9, 7)
    assert student.quantile(0.5, 7) == 0.0


@pytest.mark.parametrize(("probability", "dof"), [(0.0, 5), (1.0, 5), (0.9, 0), (0.9, 0.5)])
def test_out_of_range_arguments_are_refused(probability: float, dof: float) -> None:
    with pytest.raises(ValueError):
        student.quantile(probability, dof)
