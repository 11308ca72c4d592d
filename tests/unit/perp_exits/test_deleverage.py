"""An ADL that needs more targets than one call takes (MAX_ADL_TARGETS = 20):
`liquidate` with the top 20 leaves an AdlPending, `deleverage` finishes it.
Default parameters (fees and funding on), so the fund holds the fees' share
and the exact debt comes from the events; every step compares model and
chain and checks token conservation.

Book: 23 shorts of 0.045 BTC at 80,000 with leverage 50x down to 3x (same
entry and size, so the ranking is the leverage order); trader long 1 BTC
with 1,000 margin and other_trader long 0.1 BTC with 100 margin. At 76,000
the trader's bad debt is about 3,000 and each short pays about 135: twenty
shorts cover 2,700, the rest needs two more in full and a sliver of a third.
"""

from model import adl as model_adl
from model import perp_engine as model_engine
from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, assert_events_agree, balance, haircuts, ok, open_position, position, price, reverts, step,
)

SIZE = 45 * 10**15
LEVERAGES = (50, 48, 45, 42, 40, 36, 33, 30, 28, 25, 22, 20, 18, 16, 14, 12, 10, 9, 8, 6, 5, 4, 3)


def test_deleverage__liquidation_needing_more_than_20_targets__completes_in_a_second_call(
        twin, owner, keeper, trader, other_trader, crowd):
    shorts = crowd[:len(LEVERAGES)]
    for who, lev in zip(shorts, LEVERAGES):
        twin.fund(who, 2_000 * USDC, spenders=[twin.p.engine])
        open_position(twin, who, -SIZE, 3_600 * USDC // lev, deposit=2_000 * USDC)
    open_position(twin, trader, WAD, 1_000 * USDC)
    open_position(twin, other_trader, 10**17, 100 * USDC)
    price(twin, owner, 76_000)
    step(twin)

    # The keeper's plan: the whole ranking (the view stops at 20).
    plan = model_engine.adl_ranking(twin.w, trader.address, BTC, limit=None)
    assert plan == [w.address for w in shorts]  # leverage order, by construction
    assert list(twin.p.engine.adl_ranking(trader, BTC)) == plan[:20]

    fund_before = balance(twin, twin.p.insurance_fund)
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", trader, BTC, plan[:20])
    (liq,) = assert_events_agree(twin, "PositionLiquidated", n)
    (drawn,) = assert_events_agree(twin, "InsuranceFundDrawn", n)
    assert (drawn["amount"], drawn["remaining"]) == (fund_before, 0)
    uncovered = liq["bad_debt"] - fund_before
    first = haircuts(twin, n)
    assert [t for t, _, _ in first] == [a.lower() for a in plan[:20]]
    assert all(size == -SIZE for _, size, _ in first)
    (pending_event,) = assert_events_agree(twin, "DeleveragePending", n)
    pending = twin.p.engine.adl_pending(BTC)
    assert pending.remaining == pending_event["remaining"] == uncovered - sum(h for _, _, h in first) > 0
    assert (pending.bad_debt, pending.bankrupt_size, pending.size_left) == (liq["bad_debt"], WAD, WAD - 20 * SIZE)
    assert pending.bankrupt == trader.address
    assert assert_events_agree(twin, "BadDebtSocialized", n) == []
    step(twin)

    # deleverage works paused, refuses a stale price and a list that stops
    # short (a second bankruptcy meanwhile queues: tests/stateful/test_adl_jobs.py)
    ok(twin, owner, "pause")
    twin.advance(3_600)
    reverts(twin, keeper, "deleverage", BTC, plan[20:], reason="stale price")
    price(twin, owner, 76_000)
    rest = model_adl._ranking(twin.w, BTC, pending.bankrupt_size, 76_000 * WAD, limit=None)
    assert rest == plan[20:]
    reverts(twin, keeper, "deleverage", BTC, rest[:2], reason="adl: more targets needed")
    step(twin)

    n = len(twin.w.events)
    ok(twin, keeper, "deleverage", BTC, rest)
    second = haircuts(twin, n)
    assert [t for t, _, _ in second] == [a.lower() for a in rest]
    assert [size for _, size, _ in second[:2]] == [-SIZE, -SIZE] and -SIZE < second[2][1] < 0
    assert sum(h for _, _, h in first + second) == uncovered
    assert twin.p.engine.adl_pending(BTC).remaining == 0
    assert assert_events_agree(twin, "BadDebtSocialized", n) == []
    last = position(twin, rest[2])
    assert last[0] == -SIZE - second[2][1] and not twin.p.engine.is_liquidatable(rest[2], BTC)
    reverts(twin, keeper, "deleverage", BTC, [], reason="adl: nothing pending")
    step(twin)

    # The second bankrupt long now deleverages the one short left, and what
    # that cannot cover is socialized.
    n = len(twin.w.events)
    ok(twin, keeper, "liquidate", other_trader, BTC, [rest[2]])
    (liq2,) = assert_events_agree(twin, "PositionLiquidated", n)
    third = haircuts(twin, n)
    (social,) = assert_events_agree(twin, "BadDebtSocialized", n)
    assert [t for t, _, _ in third] == [rest[2].lower()]
    assert third[0][2] + social["amount"] == liq2["bad_debt"]
    assert twin.p.engine.position_count(BTC, False) == 0
    step(twin)
