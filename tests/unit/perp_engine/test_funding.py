"""Funding through PerpEngine's verbs: skew-based, lazily accrued, and
zero-sum to the unit between traders and the vault (SPEC §4). Trades are
orders, executed by the keeper at a later round: the execution fees move
free collateral between accounts and never reach the vault."""

import pytest

from tests.unit.perp_engine.helpers import (
    SCALE, USDC, WAD, btc, ceil_div, events, expect_ok, expect_order_ok, position)

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


SETTLING = ("PositionOpened", "PositionClosed", "MarginChanged")


@pytest.mark.parametrize("skew", [1, -1], ids=["long_skew", "short_skew"])
def test_funding__skewed_book_over_a_day__zero_sum_to_the_unit(twin, owner, trader, other_trader, keeper, skew):
    e, tok = twin.p.engine, twin.p.token
    vault, fund = twin.p.vault, twin.p.insurance_fund
    book = ((trader, skew * 2 * WAD), (other_trader, -skew * WAD // 2), (keeper, -skew * WAD // 4))
    for who, size in book:
        expect_ok(twin, who, "deposit", 20_000 * USDC)
        expect_order_ok(twin, who, 0, size, 5_000 * USDC, PRICE, keeper)
    settled_at = {who.address: position(twin, who)[3] for who, _ in book}
    vault0, fund0 = tok.balanceOf(vault), tok.balanceOf(fund)
    since = len(twin.w.events)

    twin.advance(86_400)
    twin.set_price(0, btc(80_000), owner)  # fresh, and unchanged: no PnL anywhere
    # One trader settles by adding to the position (same price: entry unchanged),
    # one by removing margin; then everyone closes.
    steps = [(trader, (0, skew * WAD // 10, 100 * USDC, PRICE)),
             (other_trader, (0, 0, -100 * USDC, 0))]
    steps += [(who, None) for who, _ in book]
    paid = {who.address: 0 for who, _ in book}
    for who, args in steps:
        size = position(twin, who)[0]
        if args is None:
            args = (0, -size, 0, PRICE if size < 0 else 0)
        expect_order_ok(twin, who, *args, keeper)
        index = e.market_state(0)[5]
        name, settled = [ev for ev in twin.w.events if ev[0] in SETTLING][-1]
        assert settled["account"] == who.address
        owed = settled["funding_paid"]
        # size * index change since the last settlement, rounded up (against the trader).
        due = ceil_div(size * (index - settled_at[who.address]), SCALE)
        if args[1] == 0 and due < 0:
            # A margin removal leaves funding received accrued (paid at the
            # close, under the payout cap: docs/solvency.md): nothing settles,
            # the position keeps its index.
            assert owed == 0 and position(twin, who)[3] == settled_at[who.address]
            continue
        assert owed == due
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
    # Nothing is left in the engine but free collateral (all positions closed, no order pending).
    assert tok.balanceOf(e) == sum(e.free_collateral(a) for a in twin.accounts)
    twin.assert_same()


def test_funding__balanced_book__index_stands_still(twin, owner, trader, other_trader, keeper):
    e = twin.p.engine
    expect_ok(twin, trader, "deposit", 10_000 * USDC)
    expect_ok(twin, other_trader, "deposit", 10_000 * USDC)
    # Both requested, then executed in consecutive blocks after one later round.
    ok, _, long_id = twin.request(trader, 0, WAD, 1_000 * USDC, PRICE)
    ok2, _, short_id = twin.request(other_trader, 0, -WAD, 1_000 * USDC, PRICE)
    assert ok and ok2
    twin.restamp(0, keeper)
    assert twin.execute(keeper, long_id) == ("executed", None)
    assert twin.execute(keeper, short_id) == ("executed", None)
    idx = e.market_state(0)[5]
    # The long alone for one second: one second of the full rate, rounded up.
    assert idx == e.market_params(0)[7] * PRICE * 1 // WAD  # all long: the rate is k
    owed = ceil_div(WAD * idx, SCALE)
    assert idx > 0 and e.funding_owed(trader, 0) == owed and e.funding_owed(other_trader, 0) == 0
    twin.advance(86_400)
    twin.set_price(0, btc(80_000), owner)
    assert e.funding_rate(0) == 0
    assert e.funding_owed(trader, 0) == owed and e.funding_owed(other_trader, 0) == 0
    expect_order_ok(twin, trader, 0, -WAD, 0, 0, keeper)
    assert e.market_state(0)[5] == idx
    assert events(twin, "PositionClosed")[-1]["funding_paid"] == owed
    twin.assert_same()
