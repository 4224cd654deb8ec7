"""The statistics of ``genolang compare``: means and standard deviations over seeds,
Welch's t-test and Holm's correction for comparing the best genotype with each other.

Why Welch's test. A comparison has 3 to 5 seeds per genotype. A permutation test makes
no assumption about the noise but cannot reject anything at that size: with 3 seeds
against 3 its smallest two-sided p-value is 2/20 = 0.1. Pairing by seed buys little,
because two architectures trained with the same seed share the data order but not
their initial weights. Welch's t-test assumes the seed-to-seed noise of each genotype
is roughly normal, lets the genotypes' variances differ, and does give an answer with
3 seeds when the gap is large against the noise.

How it is used. The best genotype (highest mean accuracy, lowest mean perplexity) is
compared with every other one, two-sided: the best is picked by the same runs, and the
two-sided test spends half its level on the direction that picking already chose. The
p-values of the k-1 comparisons are adjusted by Holm's step-down method, which keeps the
chance of any false "better" at most 0.05 whatever the dependence between them. "Not
significant" means the seeds cannot tell the two apart at this budget, not that they
are equal.

Pure Python (the Student t distribution through the regularised incomplete beta
function): no scipy needed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
TEST_NAME = "Welch's t-test (two-sided, unequal variances), Holm-corrected over the comparisons with the best"


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def std(xs: Sequence[float]) -> float:
    """The sample standard deviation (n - 1 in the denominator); 0 for one value."""
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class Welch:
    """Welch's t-test of mean(a) - mean(b)."""

    difference: float
    t: float
    df: float
    p: float
    note: str = ""


def welch(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's two-sided t-test; None when either side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    diff = mean(a) - mean(b)
    va, vb = std(a) ** 2 / len(a), std(b) ** 2 / len(b)
    se2 = va + vb
    if se2 == 0.0:
        if diff == 0.0:
            return Welch(0.0, 0.0, math.inf, 1.0, "every seed scored the same")
        return Welch(diff, math.copysign(math.inf, diff), math.inf, 0.0,
                     "no seed-to-seed variation at all: the test is degenerate")
    t = diff / math.sqrt(se2)
    df = se2 ** 2 / ((va ** 2 / (len(a) - 1) if va else 0.0) + (vb ** 2 / (len(b) - 1) if vb else 0.0))
    return Welch(diff, t, df, t_two_sided_p(t, df))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
