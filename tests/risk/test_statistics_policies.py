"""The sweep's statistics and the lab's alternative ADL rules, on cases
small enough to check by hand."""

from fractions import Fraction

import pytest

from risk import policies as R
from risk.sweep import quantile_ci, wilson


def test_quantile__is_the_smallest_value_with_the_share_at_or_below_it():
    xs = list(range(1, 101))  # 1..100
    point, (lo, hi) = quantile_ci(xs, 0.9)
    assert point == 90
    # the binomial 95% interval of the 90th of 100 spans order statistics ~84..96
    assert 80 <= lo < 90 < hi <= 97


def test_quantile__too_few_scenarios_for_the_upper_end__says_so():
    point, (lo, hi) = quantile_ci([5, 1, 3], 0.99)
    assert point == 5 and hi is None


def test_wilson__brackets_the_proportion():
    lo, hi = wilson(95, 100)
    assert lo < 0.95 < hi and hi < 1
    assert wilson(0, 10)[0] == 0.0
    for n in (1, 7, 100, 500):  # all or none: the interval still holds the proportion
        lo, hi = wilson(n, n)
        assert lo < 1.0 == hi
        assert wilson(0, n)[0] == 0.0 < wilson(0, n)[1]


def _event(u, bad, bankrupt_size, winners):
    ev = R.Shortfall(0, bankrupt_size, 10**18, winners)
    ev.bad_debt, ev.uncovered = bad, u
    return ev


WINNERS = [  # (account, size, pnl, notional, equity)
    ("0x" + "01" * 20, 10, 600, 5_000, 1_000),  # 5x
    ("0x" + "02" * 20, 10, 300, 5_000, 500),  # 10x
    ("0x" + "03" * 20, 20, 100, 10_000, 2_000),  # 5x
]


def test_pro_rata__splits_the_uncovered_debt_by_pnl_to_the_unit():
    alloc = R.allocate("pro_rata", _event(501, 1_000, 20, WINNERS))
    assert sum(h for _, h in alloc.values()) == 501
    assert all(q == 0 for q, _ in alloc.values())
    # 501 x 600/1000 = 300.6, x 300/1000 = 150.3, x 100/1000 = 50.1: the unit left goes to the largest remainder
    assert [alloc[a][1] for a, *_ in WINNERS] == [301, 150, 50]


def test_pro_rata__more_debt_than_pnl__takes_all_pnl_and_socializes_the_rest():
    alloc = R.allocate("pro_rata", _event(5_000, 5_000, 20, WINNERS))
    assert [alloc[a][1] for a, *_ in WINNERS] == [600, 300, 100]
    s = R.summarize([_event(5_000, 5_000, 20, WINNERS)])["pro_rata"]
    assert s["socialized"] == 4_000


def test_drain__closes_the_engines_size_from_the_most_levered_first():
    ev = _event(500, 1_000, 20, WINNERS)  # half the debt: ceil(500 x 20 / 1000) = 10 units to close
    alloc = R.allocate("drain", ev)
    assert sum(q for q, _ in alloc.values()) == 10
    assert alloc[WINNERS[1][0]][0] == max(q for q, _ in alloc.values())  # the 10x pays most
    assert sum(h for _, h in alloc.values()) == 500
    s = R.summarize([ev])
    assert s["drain"]["max_leverage_after"] < s["drain"]["max_leverage_before"] == 10.0
    assert s["pro_rata"]["max_leverage_after"] > 10.0


def test_gini():
    assert R.gini([1, 1, 1, 1]) == 0
    assert R.gini([0, 0, 0, 4]) == pytest.approx(0.75)
    assert R.gini([]) == 0
    assert Fraction(1, 2)  # noqa - fractions used by the sweep's CI
