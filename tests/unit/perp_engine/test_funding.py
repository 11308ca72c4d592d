"""Funding through PerpEngine's verbs: skew-based, lazily accrued, and
zero-sum to the unit between traders and the vault (SPEC §4)."""

import pytest

from tests.unit.perp_engine.helpers import (
    SCALE, USDC, WAD, btc, ceil_div, events, expect_ok, position)

PRICE = 80_000 * WAD
INSURANCE_SHARE = 3 * 10**17


def settlements(twin, since):
    """Funding paid, vault and fund shares of fees, and realised PnL, summed
    over the model's events from index `since`."""
    funding = fees_to_vault = fees_to_fund = pnl = 0
    for name, f in twin.w.events[since:]:
        if name in ("PositionOpened", "PositionClosed", "MarginChanged"):
            funding += f["funding_paid"]
        if name in ("PositionOpened", "PositionClosed"):
            to_fund = f["fee"] * INSURANCE_SHARE // WAD
            fees_to_fund += to_fund
            fees_to_vault += f["fee"] - to_fund
        if name == "PositionClosed":
            pnl += f["pnl"]
    return funding, fees_to_vault, fees_to_fund, pnl


@pytest.mark.parametrize("skew", [1, -1], ids=["long_skew", "short_skew"])
def test_funding__skewed_book_over_a_day__zero_sum_to_the_unit(twin, owner, trader, other_trader, keeper, skew):
    e, tok = twin.p.engine, twin.p.token
    vault, fund = twin.p.vault, twin.p.insurance_fund
    book = ((trader, skew * 2 * WAD), (other_trader, -skew * WAD // 2), (keeper, -skew * WAD // 4))
    for who, size in book:
        expect_ok(twin, who, "deposit", 20_000 * USDC)
        expect_ok(twin, who, "open_position", 0, size, 5_000 * USDC, PRICE if size > 0 else 0)
    settled_at = {who.address: position(twin, who)[3] for who, _ in book}
    vault0, fund0 = tok.balanceOf(vault), tok.balanceOf(fund)
    since = len(twin.w.events)

    twin.advance(86_400)
    twin.set_price(0, btc(80_000), owner)  # fresh, and unchanged: no PnL anywhere
    # One trader settles by adding to the position (same price: entry unchanged),
    # one by removing margin; then everyone closes.
    steps = [(trader, "open_position", (0, skew * WAD // 10, 100 * USDC, PRICE if skew > 0 else 0)),
             (other_trader, "remove_margin", (0, 100 * USDC))]
    steps += [(who, "close_position", None) for who, _ in book]
    paid = {who.address: 0 for who, _ in book}
    for who, verb, args in steps:
        size = position(twin, who)[0]
        if args is None:
            args = (0, -size, PRICE if size < 0 else 0)
        expect_ok(twin, who, verb, *args)
        index = e.market_state(0)[5]
        owed = twin.w.events[-1][1]["funding_paid"]
        # size * index change since the last settlement, rounded up (against the trader).
        assert owed == ceil_div(size * (index - settled_at[who.address]), SCALE)
        settled_at[who.address] = index
        paid[who.address] += owed
    assert e.open_interest(0) == (0, 0)

    funding, fees_to_vault, fees_to_fund, pnl = settlements(twin, since)
    assert pnl == 0
    # The dominant side paid, the other received, the vault took the net.
    assert paid[trader.address] > 0 > paid[other_trader.address] and paid[keeper.address] < 0
    assert funding == sum(paid.values()) > 0
    assert tok.balanceOf(vault) - vault0 == funding + fees_to_vault - pnl
    assert tok.balanceOf(fund) - fund0 == fees_to_fund
    # Nothing is left in the engine but free collateral (all positions closed).
    assert tok.balanceOf(e) == sum(e.free_collateral(a) for a in twin.accounts)
    twin.assert_same()


def test_funding__balanced_book__index_stands_still(twin, owner, trader, other_trader):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    expect_ok(twin, trader, "open_position", 0, WAD, 1_000 * USDC, PRICE)
    expect_ok(twin, other_trader, "open_position", 0, -WAD, 1_000 * USDC, 0)
    idx = e.market_state(0)[5]
    # The long alone for one second: one second of the full rate, rounded up.
    owed = ceil_div(WAD * idx, SCALE)
    assert idx > 0 and e.funding_owed(trader, 0) == owed and e.funding_owed(other_trader, 0) == 0
    twin.advance(86_400)
    twin.set_price(0, btc(80_000), owner)
    assert e.funding_rate(0) == 0
    assert e.funding_owed(trader, 0) == owed and e.funding_owed(other_trader, 0) == 0
    expect_ok(twin, trader, "close_position", 0, -WAD, 0)
    assert e.market_state(0)[5] == idx
    assert events(twin, "PositionClosed")[-1]["funding_paid"] == owed
    twin.assert_same()
