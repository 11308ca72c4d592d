"""close_position: every revert reason, and a partial then full close paid
to the unit (funding off; trading fee 5 bp, 30% of it to the fund)."""

from tests.unit.perp_exits.helpers import (
    BTC, USDC, WAD, assert_events_agree, free, no_funding, ok, open_position, position, price, reverts, step,
)


def test_close_position__bad_requests__revert_with_their_reasons(twin, owner, trader, other_trader):
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    open_position(twin, other_trader, -WAD, 2_000 * USDC)
    price(twin, owner, 80_500)
    for args, reason in (
        ((2, -WAD, 0), "market: unknown"),
        ((BTC, 0, 0), "position: zero size"),
        ((BTC, -(2**120), 0), "position: size too large"),
        ((BTC, WAD, 0), "position: not reducing"),
        ((BTC, -WAD - 1, 0), "position: close exceeds size"),
        ((BTC, -WAD, 80_500 * WAD + 1), "position: price below acceptable"),
        # 0.996 of 1 BTC leaves 0.004 BTC with 8 USDC margin, below the 10 minimum.
        ((BTC, -996 * 10**15, 0), "position: dust remainder"),
    ):
        reverts(twin, trader, "close_position", *args, reason=reason)
    reverts(twin, other_trader, "close_position", BTC, WAD, 80_500 * WAD - 1, reason="position: price above acceptable")
    reverts(twin, owner, "close_position", BTC, -WAD, 0, reason="position: none")
    twin.advance(3_600)
    reverts(twin, trader, "close_position", BTC, -WAD, 0, reason="stale price")
    # Below maintenance (equity 300 < 391.5 at 78,300) only liquidation may close it.
    price(twin, owner, 78_300)
    reverts(twin, trader, "close_position", BTC, -WAD, 0, reason="position: liquidatable")
    step(twin)


def test_close_position__partial_then_full__releases_margin_pro_rata_and_pays_pnl_less_fee(twin, owner, trader):
    # Long 1 BTC at 80,000 with 2,000; at 81,000 close 0.4: margin 800 +
    # PnL 400 - fee ceil(0.4 * 81,000 * 0.0005) = 16.2 -> 1,183.8; 0.6 BTC and
    # 1,200 margin stay. Then the rest: 1,200 + 600 - 24.3 = 1,775.7.
    # Together 2,959.5 = 2,000 + 1,000 - 40.5 in fees: a full close returns all.
    no_funding(twin, owner)
    open_position(twin, trader, WAD, 2_000 * USDC)
    price(twin, owner, 81_000)
    ok(twin, owner, "pause")  # closing works while paused
    before = free(twin, trader)
    n = len(twin.w.events)
    ok(twin, trader, "close_position", BTC, -4 * 10**17, 81_000 * WAD)
    assert free(twin, trader) - before == 1_183_800_000
    (closed,) = assert_events_agree(twin, "PositionClosed", n)
    assert (closed["size_closed"], closed["pnl"], closed["fee"]) == (4 * 10**17, 400 * USDC, 16_200_000)
    assert position(twin, trader)[:3] == (6 * 10**17, 80_000 * WAD, 1_200 * USDC)
    step(twin)
    ok(twin, trader, "close_position", BTC, -6 * 10**17, 0)
    assert free(twin, trader) - before == 2_959_500_000
    assert position(twin, trader) == (0, 0, 0, 0, 0, 0)
    step(twin)
