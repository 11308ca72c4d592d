"""Seed scenario: a crash that drains the insurance fund deleverages the
highest-ranked profitable shorts first; the 2x short is touched only after
every higher-ranked one is fully closed.

Default market parameters (fees and funding on). A crowd of 22 shorts with
leverage from 50x down to 3x, opened at 82,000, 78,000 and 80,000, and one
2x short of 2 BTC; a 100x long of 3 BTC at 80,000. The fund holds 2,000
USDC plus its share of the trading fees. BTC crashes to 70,000: the long
owes about 27,600, the fund pays what it has, and the rest (about 25,500,
some 2.8 BTC at 9,200 a BTC) is deleveraged. The 22 crowd shorts hold
2.2 BTC, so all of them close and the 2x pays the remainder. That takes 23
targets: `liquidate` with the top 20, then `deleverage` with the rest.
The expected order is computed here from the score's formula, not taken
from the model.
"""

from model import adl as model_adl
from model import perp_engine as model_engine
from tests.conftest import USDC, WAD
from tests.unit.perp_exits.helpers import (
    BTC, assert_events_agree, balance, hand_score, haircuts, ok, open_position, position, price, seed_fund, step,
)

CENTI = 10**16  # 0.01 BTC
# (entry, leverage, size in 0.01 BTC); at 78,000 at most 20x, so a short
# opened there survives the move back to 80,000.
CROWD = (
    [(82_000, lev, s) for lev, s in ((50, 8), (45, 12), (40, 10), (33, 9), (25, 11), (20, 10), (12, 8), (8, 12),
                                      (5, 10), (3, 9))]
    + [(78_000, lev, s) for lev, s in ((20, 10), (15, 11), (10, 9), (5, 10), (3, 12))]
    + [(80_000, lev, s) for lev, s in ((48, 9), (30, 10), (16, 11), (10, 8), (6, 10), (4, 9), (3, 12))]
)
TWO_X = (80_000, 2, 200)
CRASH = 70_000


def _open_short(twin, who, entry, lev, centis):
    size = centis * CENTI
    margin_ = size * entry * WAD // 10**30 // lev
    twin.fund(who, 2 * margin_ + 1_000 * USDC, spenders=[twin.p.engine])
    open_position(twin, who, -size, margin_, deposit=margin_ + 1_000 * USDC)
    return size, margin_


def test_crash__drains_the_fund_then_deleverages_by_rank_and_the_2x_last(twin, owner, keeper, trader, crowd):
    assert len(crowd) >= len(CROWD) + 1
    seed_fund(twin, 2_000 * USDC)
    books = {}
    for group in (82_000, 78_000, 80_000):
        price(twin, owner, group)
        for (entry, lev, centis), who in zip(CROWD, crowd):
            if entry == group:
                books[who.address] = (entry,) + _open_short(twin, who, entry, lev, centis)
    two_x = crowd[len(CROWD)]
    books[two_x.address] = (TWO_X[0],) + _open_short(twin, two_x, *TWO_X)
    open_position(twin, trader, 3 * WAD, 2_400 * USDC)
    step(twin)

    price(twin, owner, CRASH)
    assert twin.p.engine.equity(trader, BTC) < 0
    # Expected order from the formula: score descending, lower address first.
    expected = sorted(books, key=lambda a: (-hand_score(-books[a][1], books[a][0] * WAD, CRASH * WAD, books[a][2]),
                                            int(a, 16)))
    assert expected[-1] == two_x.address
    for a in expected:
        entry, size, margin_ = books[a]
        assert twin.p.engine.adl_score(a, BTC) == hand_score(-size, entry * WAD, CRASH * WAD, margin_)
    # The keeper's plan (the model's full ranking) must be that order.
    plan = model_engine.adl_ranking(twin.w, trader.address, BTC, limit=None)
    assert plan == expected
    step(twin)

    fund_before = balance(twin, twin.p.insurance_fund)
    assert fund_before > 2_000 * USDC  # seed plus the fees' share
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, plan[:20])
    (liq,) = assert_events_agree(twin, "PositionLiquidated", n)
    (drawn,) = assert_events_agree(twin, "InsuranceFundDrawn", n)
    assert (drawn["amount"], drawn["remaining"]) == (fund_before, 0)
    assert balance(twin, twin.p.insurance_fund) == 0
    uncovered = liq["bad_debt"] - fund_before
    fills = haircuts(twin, n)
    assert twin.p.engine.adl_pending(BTC).remaining > 0
    step(twin)

    pending = twin.p.engine.adl_pending(BTC)
    rest = model_adl._ranking(twin.w, BTC, pending.bankrupt_size, CRASH * WAD, limit=None)
    assert rest == expected[20:]
    n = len(twin.w.events)
    ok(twin, keeper, "deleverage", BTC, rest)
    fills += haircuts(twin, n)
    assert twin.p.engine.adl_pending(BTC).remaining == 0
    assert assert_events_agree(twin, "BadDebtSocialized", n) == []
    step(twin)

    # Deleveraged in ranking order; every crowd short closed in full before
    # the 2x, which is reduced last and only in part.
    assert [t for t, _, _ in fills] == [a.lower() for a in expected]
    for (target, size, _), a in zip(fills[:-1], expected[:-1]):
        assert size == -books[a][1]
        assert position(twin, a)[0] == 0
    two_x_size = books[two_x.address][1]
    assert -two_x_size < fills[-1][1] < 0
    assert position(twin, two_x)[0] == -two_x_size - fills[-1][1]
    assert not twin.p.engine.is_liquidatable(two_x, BTC)
    # The haircuts cover exactly what the fund could not.
    assert sum(h for _, _, h in fills) == uncovered
